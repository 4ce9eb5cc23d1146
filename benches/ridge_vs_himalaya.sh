#!/usr/bin/env bash
# voxflow's ridge_cv against himalaya's RidgeCV (numpy backend) on the same
# sizes, with the f32 products of voxflow's algorithm timed alone (faer and
# numpy), and voxflow's peak memory at a large number of targets.
#
#   benches/ridge_vs_himalaya.sh                 # n=3000 p=3072 v=20000, memory at v=100000
#   N=1000 P=1024 V=4000 V_MEMORY=20000 benches/ridge_vs_himalaya.sh
#
# Goals (the issue): voxflow >= 2x faster than himalaya, within 1.5x of its
# products alone, and peak RSS <= 1.5x bytes(X) + bytes(Y).
#
# The memory run uses a build without the `torch` feature: the default build
# links libtorch and its CUDA libraries, which add a fixed ~0.5 GB of RSS to
# any voxflow process whatever it computes. That fixed cost is measured on a
# tiny run of the default build and printed on its own row.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${VOXFLOW_PYTHON:-$root/.venv/bin/python}"
n="${N:-3000}"
p="${P:-3072}"
v="${V:-20000}"
v_memory="${V_MEMORY:-100000}"
alphas="${ALPHAS:-10}"
folds="${FOLDS:-5}"
if [ ! -x "$python" ]; then
  echo "error: no Python at $python" >&2
  echo "hint: run scripts/setup-python.sh, or set VOXFLOW_PYTHON" >&2
  exit 1
fi

cd "$root"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# build_bench NAME [cargo flags]: builds examples/ridge_bench and copies it
# to $scratch/NAME (both builds share one output path).
build_bench() {
  local name="$1"
  shift
  local built
  built="$(cargo build --release --example ridge_bench "$@" --message-format=json 2>/dev/null \
    | "$python" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ridge_bench" and m.get("executable"):
        print(m["executable"])')"
  if [ -z "$built" ]; then
    echo "error: cargo build --release --example ridge_bench $* failed" >&2
    exit 1
  fi
  cp "$built" "$scratch/$name"
}
build_bench ridge_bench
build_bench ridge_bench_cpu_only --no-default-features
bench="$scratch/ridge_bench"
sizes=(--n "$n" --p "$p" --alphas "$alphas" --folds "$folds")

echo "== voxflow (v=$v)" >&2
"$bench" "${sizes[@]}" --v "$v" | tee "$scratch/voxflow.txt" >&2
echo "== himalaya (v=$v)" >&2
"$python" benches/ridge_bench.py "${sizes[@]}" --v "$v" | tee "$scratch/himalaya.txt" >&2
echo "== voxflow memory (v=$v_memory)" >&2
# --stream: the refit weights go out batch by batch, as the ridge stage writes
# them to disk, instead of being returned as one p x v matrix.
/usr/bin/time -v "$scratch/ridge_bench_cpu_only" "${sizes[@]}" --v "$v_memory" --skip-gemm --stream \
  >"$scratch/memory.txt" 2>"$scratch/memory_time.txt"
cat "$scratch/memory.txt" >&2
# The default build's fixed cost: the same program on a problem of a few bytes.
/usr/bin/time -v "$bench" --n 20 --p 4 --v 3 --alphas 2 --folds 2 --skip-gemm \
  >/dev/null 2>"$scratch/libtorch_time.txt"

"$python" - "$scratch" "$n" "$p" "$v" "$v_memory" <<'EOF'
import json, os, re, sys
scratch, n, p, v, v_memory = sys.argv[1], *map(int, sys.argv[2:])
last_json = lambda name: json.loads(open(f"{scratch}/{name}").read().strip().splitlines()[-1])
vox, him, mem = last_json("voxflow.txt"), last_json("himalaya.txt"), last_json("memory.txt")
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                       open(f"{scratch}/memory_time.txt").read()).group(1))
rss = rss_kb * 1024
peak = lambda name: 1024 * int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                                         open(f"{scratch}/{name}").read()).group(1))
libtorch = peak("libtorch_time.txt")
inputs = mem["input_bytes"]
weights = 4 * p * v_memory
# The refit's eigendecomposition runs on one thread beside the scoring: it
# costs about its time divided by the number of threads.
threads = os.cpu_count() or 1
floor = (vox["gemm_seconds"] + vox["gram_seconds"] + vox["folds_f64_seconds"]
         + vox["eigh_one_thread_seconds"] / threads)
def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"

rows = [
    ("voxflow ridge_cv", f"{vox['fit_seconds']:.1f} s wall, {vox['fit_cpu_seconds']:.1f} s CPU"),
    ("himalaya RidgeCV (numpy)",
     f"{him['himalaya_seconds']:.1f} s wall, {him['himalaya_cpu_seconds']:.1f} s CPU"),
    ("speed-up over himalaya, wall (goal >= 2)", ratio(him["himalaya_seconds"], vox["fit_seconds"])),
    ("speed-up over himalaya, CPU", ratio(him["himalaya_cpu_seconds"], vox["fit_cpu_seconds"])),
    ("voxflow's products alone, faer",
     f"{vox['gemm_seconds']:.1f} s wall, {vox['gemm_cpu_seconds']:.1f} s CPU "
     f"({vox['gemm_gflop']:.0f} GFLOP)"),
    ("voxflow's products alone, numpy",
     f"{him['gemm_seconds']:.1f} s wall, {him['gemm_cpu_seconds']:.1f} s CPU"),
    ("ridge_cv / faer products, wall (goal <= 1.5)", ratio(vox["fit_seconds"], vox["gemm_seconds"])),
    ("voxflow's f64 decompositions alone",
     f"Gram {vox['gram_seconds']:.1f} s, fold Cholesky + solves {vox['folds_f64_seconds']:.1f} s, "
     f"refit eigendecomposition {vox['eigh_one_thread_seconds']:.1f} s on one thread"),
    ("(products + decompositions) / products, no other overhead",
     ratio(floor, vox["gemm_seconds"])),
    ("ridge_cv / faer products, CPU", ratio(vox["fit_cpu_seconds"], vox["gemm_cpu_seconds"])),
    (f"voxflow ridge_cv_streaming at v={v_memory}", f"{mem['fit_seconds']:.1f} s wall"),
    (f"peak RSS at v={v_memory} (build without libtorch)", f"{rss / 1e9:.2f} GB"),
    ("bytes(X) + bytes(Y)", f"{inputs / 1e9:.2f} GB"),
    ("bytes of all weights (streamed, never held)", f"{weights / 1e9:.2f} GB"),
    ("peak RSS / (X + Y) (goal <= 1.5)", ratio(rss, inputs)),
    ("peak RSS - (X + Y)", f"{(rss - inputs) / 1e9:.2f} GB"),
    ("default build (libtorch linked), peak RSS of a tiny run", f"{libtorch / 1e9:.2f} GB"),
    ("  peak RSS / (X + Y) adding that fixed cost (approx.)", ratio(rss + libtorch, inputs)),
]
print(f"ridge, n={n} p={p} v={v}")
width = max(len(name) for name, _ in rows)
for name, value in rows:
    print(f"  {name:<{width}}  {value}")
EOF
