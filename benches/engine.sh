#!/usr/bin/env bash
# Engine benchmarks for voxflow: no-op reruns (vs Snakemake), per-stage
# overhead, and parallel speed-up. Prints the machine and a Markdown table.
#
#   bash benches/engine.sh
#
# Environment:
#   VOXFLOW_BIN     the voxflow binary (default $HOME/.cache/voxflow-target/release/voxflow)
#   SNAKEMAKE_VENV  venv holding Snakemake, created with `pip install snakemake`
#                   when missing (default $HOME/.cache/voxflow-bench-venv)
#   NO_SNAKEMAKE=1  skip the Snakemake comparison
#   NO_HYPERFINE=1  time with a shell loop (date +%s%N) instead of hyperfine
#   NOOP_RUNS, SMK_NOOP_RUNS, COLD_RUNS, SLEEP_RUNS
#                   timed runs per measurement (default 20, 10, 3, 2)
#   COLD_CLEAN=rm   delete the previous run's store (and the baselines'
#                   files) before each cold run, as this script did until
#                   2026-12-03, instead of moving it aside (see README.md)
#   KEEP=1          keep the scratch directory
#
# See benches/README.md for what each figure means.
set -euo pipefail

VOXFLOW_BIN=${VOXFLOW_BIN:-$HOME/.cache/voxflow-target/release/voxflow}
SNAKEMAKE_VENV=${SNAKEMAKE_VENV:-$HOME/.cache/voxflow-bench-venv}
NOOP_RUNS=${NOOP_RUNS:-20}
SMK_NOOP_RUNS=${SMK_NOOP_RUNS:-10}
COLD_RUNS=${COLD_RUNS:-3}
SLEEP_RUNS=${SLEEP_RUNS:-2}

log() { printf '[engine.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x $VOXFLOW_BIN ]] || die "no voxflow binary at $VOXFLOW_BIN (set VOXFLOW_BIN)"
command -v python3 >/dev/null || die "python3 is needed to generate the pipelines"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-bench.XXXXXX")
cleanup() { if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
if ! command -v hyperfine >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing hyperfine with apt-get"
        apt-get install -y hyperfine >/dev/null 2>&1 || log "apt-get install hyperfine failed; using a shell loop"
    fi
fi
HYPERFINE=$(command -v hyperfine || true)
[[ ${NO_HYPERFINE:-0} == 1 ]] && HYPERFINE=""

SNAKEMAKE=""
if [[ ${NO_SNAKEMAKE:-0} != 1 ]]; then
    if [[ ! -x $SNAKEMAKE_VENV/bin/snakemake ]]; then
        log "creating $SNAKEMAKE_VENV and installing snakemake (once)"
        python3 -m venv "$SNAKEMAKE_VENV" && "$SNAKEMAKE_VENV/bin/pip" install -q snakemake >&2 \
            || log "could not install snakemake; skipping the comparison"
    fi
    [[ -x $SNAKEMAKE_VENV/bin/snakemake ]] && SNAKEMAKE=$SNAKEMAKE_VENV/bin/snakemake
fi

# ---------------------------------------------------------------- timing
# time_cmd NAME RUNS WARMUP PREPARE CMD...
#   Times CMD (no shell; output discarded) RUNS times after WARMUP untimed
#   runs, running PREPARE (a bash snippet, may be empty) before each one.
#   Sets T[NAME] (median seconds), TMIN[NAME], TMAX[NAME], TN[NAME].
declare -A T TMIN TMAX TN
time_cmd() {
    local name=$1 runs=$2 warmup=$3 prepare=$4
    shift 4
    if [[ -n $HYPERFINE ]]; then
        local json=$WORK/hf-$name.json
        local args=(-N --style none --runs "$runs" --warmup "$warmup" --export-json "$json")
        if [[ -n $prepare ]]; then
            printf '%s\n' "$prepare" >"$WORK/prep-$name.sh"
            args+=(--prepare "bash $WORK/prep-$name.sh")
        fi
        local quoted
        quoted=$(printf '%q ' "$@")
        "$HYPERFINE" "${args[@]}" "$quoted" >/dev/null || die "$name: command failed: $quoted"
        read -r T[$name] TMIN[$name] TMAX[$name] TN[$name] < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(r["median"], r["min"], r["max"], len(r["times"]))' "$json")
    else
        local i t0 t1 times=()
        for ((i = 0; i < warmup + runs; i++)); do
            [[ -n $prepare ]] && bash -c "$prepare"
            t0=$(date +%s%N)
            "$@" >/dev/null 2>&1 || die "$name: command failed: $*"
            t1=$(date +%s%N)
            ((i >= warmup)) && times+=($((t1 - t0)))
        done
        read -r T[$name] TMIN[$name] TMAX[$name] TN[$name] < <(printf '%s\n' "${times[@]}" | sort -n | awk '
            { v[NR] = $1 / 1e9 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR], NR }')
    fi
    log "$(printf '%-22s median %8.1f ms  (min %.1f, max %.1f, n=%s)' "$name" \
        "$(awk -v s="${T[$name]}" 'BEGIN{print s*1000}')" \
        "$(awk -v s="${TMIN[$name]}" 'BEGIN{print s*1000}')" \
        "$(awk -v s="${TMAX[$name]}" 'BEGIN{print s*1000}')" "${TN[$name]}")"
}

# once NAME CMD...: one timed run (seconds in T[NAME]), stdout to $WORK/NAME.out
once() {
    local name=$1 t0 t1
    shift
    t0=$(date +%s%N)
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; die "$name failed: $*"; }
    t1=$(date +%s%N)
    T[$name]=$(awk -v d=$((t1 - t0)) 'BEGIN{print d/1e9}')
    TN[$name]=1
    log "$(printf '%-22s %8.1f ms (single run)' "$name" "$(awk -v s="${T[$name]}" 'BEGIN{print s*1000}')")"
}

# counts of stage statuses in a `voxflow run --format json` output
statuses() { python3 -c '
import json, sys, collections
c = collections.Counter(s["status"] for s in json.load(open(sys.argv[1]))["stages"])
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())))' "$1"; }

expect_status() { # FILE WANT
    local got
    got=$(statuses "$1")
    [[ $got == "$2" ]] || die "expected $2 in $1, got: $got"
}

# ---------------------------------------------------------------- generators
# 1. layered DAG: 10 layers x 20 stages; l{k}_{i} (k > 0) reads l{k-1}_{i}
#    and l{k-1}_{(i+1) % 20}, hashes them and writes the digest.
python3 - "$WORK" <<'EOF'
import os, sys
work = sys.argv[1]
L, W = 10, 20

def deps(k, i):
    return [] if k == 0 else [f"l{k-1}_{i}", f"l{k-1}_{(i + 1) % W}"]

os.makedirs(f"{work}/dag/vf")
os.makedirs(f"{work}/dag/smk")
vf = ["name: dag200", "stages:"]
smk = ["rule all:", "    input:"]
smk += [f'        "l{L-1}_{i}/o.txt",' for i in range(W)]
for k in range(L):
    for i in range(W):
        name, ins = f"l{k}_{i}", deps(k, i)
        if ins:
            vf_cmd = f"cat {' '.join('{inputs.%s}' % d for d in ins)} | md5sum > {{outputs.out}}"
            smk_cmd = f"cat {' '.join('{input.%s}' % d for d in ins)} | md5sum > {{output}}"
        else:
            vf_cmd = f"echo {name} | md5sum > {{outputs.out}}"
            smk_cmd = f"echo {name} | md5sum > {{output}}"
        vf += [f"  {name}:", "    kind: command"]
        if ins:
            vf.append(f"    inputs: [{', '.join(ins)}]")
        vf += [f'    run: "{vf_cmd}"', "    outputs: {out: o.txt}"]
        smk += ["", f"rule {name}:"]
        if ins:
            smk.append("    input: " + ", ".join(f'{d}="{d}/o.txt"' for d in ins))
        smk += [f'    output: "{name}/o.txt"', f'    shell: "{smk_cmd}"']
open(f"{work}/dag/vf/pipeline.yaml", "w").write("\n".join(vf) + "\n")
open(f"{work}/dag/smk/Snakefile", "w").write("\n".join(smk) + "\n")

# 2. 1000 trivial stages: 100 chains of 10, each stage `: NAME > {outputs.out}`
#    (the name makes every key distinct: identical stages would share a result).
os.makedirs(f"{work}/trivial")
t = ["name: trivial1000", "stages:"]
for c in range(100):
    for k in range(10):
        t += [f"  t{c}_{k}:", "    kind: command"]
        if k:
            t.append(f"    inputs: [t{c}_{k-1}]")
        t += [f'    run: ": t{c}_{k} > {{outputs.out}}"', "    outputs: {out: o.txt}"]
open(f"{work}/trivial/pipeline.yaml", "w").write("\n".join(t) + "\n")

# 3. two independent branches of four `sleep 1` stages each.
os.makedirs(f"{work}/sleep")
s = ["name: sleep8", "stages:"]
for b in "ab":
    for k in range(4):
        s += [f"  {b}{k}:", "    kind: command"]
        if k:
            s.append(f"    inputs: [{b}{k-1}]")
        s += [f'    run: "sleep 1; echo {b}{k} > {{outputs.out}}"', "    outputs: {out: o.txt}"]
open(f"{work}/sleep/pipeline.yaml", "w").write("\n".join(s) + "\n")
EOF

# the plain-bash baselines for benchmark 2: the same 1000 commands, each
# under its own `bash -c` as voxflow runs them, serially and 2 at a time
cat >"$WORK/trivial/loop.sh" <<'EOF'
d=$1/loop; bash "$1/../aside.sh" "$d"; mkdir -p "$d"
for ((i = 0; i < 1000; i++)); do bash -c ": > $d/$i.txt" </dev/null; done
EOF
cat >"$WORK/trivial/xargs.sh" <<'EOF'
d=$1/xargs; bash "$1/../aside.sh" "$d"; mkdir -p "$d"
seq 0 999 | xargs -P 2 -I{} bash -c ": > $d/{}.txt"
EOF

# aside.sh DIR: empties the place of DIR before a cold run. By default DIR
# is moved into $WORK/trash (deleted with $WORK at the end): deleting
# thousands of files just before a timed run slows the run's own file
# creations on ext4 without a journal, which skips recently freed inodes
# (benches/README.md). COLD_CLEAN=rm deletes it instead.
export COLD_CLEAN=${COLD_CLEAN:-move}
cat >"$WORK/aside.sh" <<'EOF'
d=$1
[[ -e $d ]] || exit 0
if [[ $COLD_CLEAN == rm ]]; then
    rm -rf "$d"
else
    trash=$(dirname "$0")/trash
    mkdir -p "$trash" && mv "$d" "$trash/$(date +%s%N)"
fi
EOF
ASIDE="bash $WORK/aside.sh"

VF=$VOXFLOW_BIN

# ---------------------------------------------------------------- 0. start-up
# what every voxflow command pays before main() (libtorch's static
# initialisers while it is linked in), for reading the figures below
log "0. start-up"
time_cmd vf_startup "$NOOP_RUNS" 3 "" "$VF" --version

# ---------------------------------------------------------------- 1. no-op rerun, 200 stages
log "1. no-op rerun of a 200-stage DAG"
DAG=$WORK/dag/vf/pipeline.yaml
once vf_build200 "$VF" run "$DAG" -j 2 --format json
expect_status "$WORK/vf_build200.out" "ran=200"
"$VF" run "$DAG" -j 2 --format json >"$WORK/vf_noop200.json" 2>/dev/null
expect_status "$WORK/vf_noop200.json" "cached=200"
time_cmd vf_noop200 "$NOOP_RUNS" 3 "" "$VF" run "$DAG" -j 2
time_cmd vf_plan200 "$NOOP_RUNS" 3 "" "$VF" plan "$DAG"

if [[ -n $SNAKEMAKE ]]; then
    SMK_DIR=$WORK/dag/smk
    once smk_build200 "$SNAKEMAKE" -s "$SMK_DIR/Snakefile" -d "$SMK_DIR" -j 2 --quiet
    [[ $(find "$SMK_DIR" -name o.txt | wc -l) == 200 ]] || die "snakemake did not write 200 outputs"
    # the same digests as voxflow's last layer
    cmp <(cat "$SMK_DIR"/l9_*/o.txt | sort) \
        <(for i in $(seq 0 19); do cat "$WORK"/dag/vf/.voxflow/objects/"$(python3 -c '
import json, sys
print(next(s["key"] for s in json.load(open(sys.argv[1]))["stages"] if s["name"] == sys.argv[2]))' "$WORK/vf_noop200.json" "l9_$i")"/o.txt; done | sort) \
        || log "warning: snakemake and voxflow outputs differ"
    "$SNAKEMAKE" -s "$SMK_DIR/Snakefile" -d "$SMK_DIR" -j 2 -n 2>&1 | grep -q "Nothing to be done" \
        || die "snakemake's rerun is not a no-op"
    time_cmd smk_noop200 "$SMK_NOOP_RUNS" 2 "" "$SNAKEMAKE" -s "$SMK_DIR/Snakefile" -d "$SMK_DIR" -j 2 --quiet
fi

# ---------------------------------------------------------------- 2. per-stage overhead, 1000 stages
log "2. overhead per stage, 1000 trivial stages"
TRIV=$WORK/trivial/pipeline.yaml
STORE=$WORK/trivial/store
time_cmd vf_cold1000_j1 "$COLD_RUNS" 0 "$ASIDE '$STORE'" "$VF" run "$TRIV" -j 1 --store "$STORE"
time_cmd vf_cold1000_j2 "$COLD_RUNS" 0 "$ASIDE '$STORE'" "$VF" run "$TRIV" -j 2 --store "$STORE"
[[ $(ls "$STORE/objects" | wc -l) == 1000 ]] || die "the cold run did not store 1000 results"
"$VF" run "$TRIV" -j 2 --store "$STORE" --format json >"$WORK/vf_noop1000.json" 2>/dev/null
expect_status "$WORK/vf_noop1000.json" "cached=1000"
time_cmd vf_noop1000 "$NOOP_RUNS" 2 "" "$VF" run "$TRIV" -j 2 --store "$STORE"
time_cmd bash_loop1000 "$COLD_RUNS" 1 "" bash "$WORK/trivial/loop.sh" "$WORK/trivial"
time_cmd xargs_p2_1000 "$COLD_RUNS" 1 "" bash "$WORK/trivial/xargs.sh" "$WORK/trivial"
rm -rf "$STORE"

# ---------------------------------------------------------------- 3. parallel speed-up
log "3. two branches of 4 x sleep 1, -j 1 vs -j 2"
SLEEP=$WORK/sleep/pipeline.yaml
SSTORE=$WORK/sleep/store
time_cmd vf_sleep_j1 "$SLEEP_RUNS" 0 "$ASIDE '$SSTORE'" "$VF" run "$SLEEP" -j 1 --store "$SSTORE"
time_cmd vf_sleep_j2 "$SLEEP_RUNS" 0 "$ASIDE '$SSTORE'" "$VF" run "$SLEEP" -j 2 --store "$SSTORE"

# ---------------------------------------------------------------- report
ms() { awk -v s="$1" 'BEGIN{printf "%.1f ms", s*1000}'; }
sec() { awk -v s="$1" 'BEGIN{printf "%.2f s", s}'; }
range() { # NAME UNIT-FN
    if [[ ${TN[$1]} == 1 ]]; then echo "1 run"; else echo "$($2 "${TMIN[$1]}")–$($2 "${TMAX[$1]}"), n=${TN[$1]}"; fi
}
row() { printf '| %s | %s | %s | %s |\n' "$@"; }
verdict() { awk -v v="$1" -v g="$2" -v op="$3" 'BEGIN{ok = (op == "<") ? v < g : v >= g; print ok ? "met" : "**not met**"}'; }
per_stage() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f ms", a - b}'; } # (a - b) s / 1000 stages = (a - b) ms per stage

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "## voxflow engine benchmarks"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- voxflow: $("$VF" --version 2>/dev/null || echo '?') ($VF)"
echo "- snakemake: $([[ -n $SNAKEMAKE ]] && "$SNAKEMAKE" --version || echo 'not run')"
echo "- timer: $([[ -n $HYPERFINE ]] && "$HYPERFINE" --version || echo 'shell loop with date +%s%N'); medians"
echo "- cold runs: previous store $([[ $COLD_CLEAN == rm ]] && echo deleted || echo 'moved aside') before each"
echo
row "Benchmark" "Median" "Range" "Goal"
row "---" "---:" "---" "---"
row "0. start-up, \`voxflow --version\`" "$(ms "${T[vf_startup]}")" "$(range vf_startup ms)" ""
row "1. no-op rerun, 200 stages, voxflow \`run -j 2\`" "$(ms "${T[vf_noop200]}")" "$(range vf_noop200 ms)" "< 100 ms: $(verdict "${T[vf_noop200]}" 0.1 "<")"
if [[ -n $SNAKEMAKE ]]; then
    row "1. no-op rerun, 200 stages, \`snakemake -j 2 --quiet\`" "$(ms "${T[smk_noop200]}")" "$(range smk_noop200 ms)" ""
    row "1. snakemake / voxflow (no-op rerun)" "$(awk -v a="${T[smk_noop200]}" -v b="${T[vf_noop200]}" 'BEGIN{printf "%.1fx", a/b}')" "" ""
fi
row "1. \`voxflow plan\`, 200 stages (all cached)" "$(ms "${T[vf_plan200]}")" "$(range vf_plan200 ms)" ""
row "1. first (cold) run, 200 stages, voxflow -j 2" "$(sec "${T[vf_build200]}")" "1 run" ""
[[ -n $SNAKEMAKE ]] && row "1. first (cold) run, 200 stages, snakemake -j 2" "$(sec "${T[smk_build200]}")" "1 run" ""
row "2. cold run, 1000 trivial stages, voxflow -j 1" "$(sec "${T[vf_cold1000_j1]}")" "$(range vf_cold1000_j1 sec)" ""
row "2. cold run, 1000 trivial stages, voxflow -j 2" "$(sec "${T[vf_cold1000_j2]}")" "$(range vf_cold1000_j2 sec)" ""
row "2. same 1000 commands, plain bash loop (serial)" "$(sec "${T[bash_loop1000]}")" "$(range bash_loop1000 sec)" ""
row "2. same 1000 commands, \`xargs -P 2\`" "$(sec "${T[xargs_p2_1000]}")" "$(range xargs_p2_1000 sec)" ""
row "2. voxflow overhead per stage, -j 1 (vs serial loop)" "$(per_stage "${T[vf_cold1000_j1]}" "${T[bash_loop1000]}")" "" ""
row "2. voxflow overhead per stage, -j 2 (vs xargs -P 2)" "$(per_stage "${T[vf_cold1000_j2]}" "${T[xargs_p2_1000]}")" "" ""
row "2. voxflow overhead per stage, -j 2 (vs serial loop)" "$(per_stage "${T[vf_cold1000_j2]}" "${T[bash_loop1000]}")" "" ""
speedup1000=$(awk -v a="${T[vf_cold1000_j1]}" -v b="${T[vf_cold1000_j2]}" 'BEGIN{printf "%.2f", a/b}')
row "2. speed-up -j 2 over -j 1, 1000 trivial stages" "${speedup1000}x" "" ">= 1.6x: $(verdict "$speedup1000" 1.6 ">=")"
vs_xargs=$(awk -v a="${T[vf_cold1000_j2]}" -v b="${T[xargs_p2_1000]}" 'BEGIN{printf "%.2f", a/b}')
row "2. voxflow -j 2 / \`xargs -P 2\`" "${vs_xargs}x" "" "within 1.3x: $(verdict "$vs_xargs" 1.3 "<")"
vs_xargs_started=$(awk -v a="${T[vf_cold1000_j2]}" -v s="${T[vf_startup]}" -v b="${T[xargs_p2_1000]}" 'BEGIN{printf "%.2f", (a-s)/b}')
row "2. (voxflow -j 2 - start-up) / \`xargs -P 2\`" "${vs_xargs_started}x" "" ""
row "2. no-op rerun, 1000 stages, voxflow -j 2" "$(ms "${T[vf_noop1000]}")" "$(range vf_noop1000 ms)" ""
row "3. 2 branches x 4 \`sleep 1\`, cold, -j 1" "$(sec "${T[vf_sleep_j1]}")" "$(range vf_sleep_j1 sec)" "ideal 8 s"
row "3. 2 branches x 4 \`sleep 1\`, cold, -j 2" "$(sec "${T[vf_sleep_j2]}")" "$(range vf_sleep_j2 sec)" "ideal 4 s"
speedup=$(awk -v a="${T[vf_sleep_j1]}" -v b="${T[vf_sleep_j2]}" 'BEGIN{printf "%.2f", a/b}')
row "3. speed-up -j 2 over -j 1" "${speedup}x" "" ">= 1.7x: $(verdict "$speedup" 1.7 ">=")"
