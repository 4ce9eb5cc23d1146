#!/usr/bin/env bash
# train.ddpm's training throughput on the CPU (images/s): the stage run by
# the engine (worker process, progress, state saves) against the same U-Net
# step in PyTorch eager (benches/ddpm_bench.py), on the same config. Goal:
# at least 1.0x. ROUNDS rounds alternate the two (PyTorch, then voxflow,
# then PyTorch, ...), so that load from other processes on a shared machine
# falls on both; each round's ratio is voxflow's rate over the PyTorch rate
# measured just before it. Prints a Markdown table, one row per round and a
# median row. Best run on a quiet machine.
#
#   bash benches/ddpm_bench.sh                    # 16x16 digits, width 32, 3 rounds
#   CONFIG="16 32 32 64" STEPS=200 THREADS=2 ROUNDS=3 bash benches/ddpm_bench.sh
#
# CONFIG is SIZE CHANNELS EMBED_DIM BATCH. On an NVIDIA GPU, the
# CIFAR-sized configuration is CONFIG="32 64 32 128" with the stage's
# device: cuda (edit the YAML below); not yet measured.
#
# voxflow's rate is from train.ddpm's train.log: every step (the first
# ones included) times the batch over the wall time of the training loop;
# benches/ddpm_bench.py leaves its first 3 steps out.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$VOXFLOW_ROOT"
CONFIG=${CONFIG:-"16 32 32 64"}
STEPS=${STEPS:-200}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
read -r S C D B <<<"$CONFIG"
if ((S % 8 != 0)); then
    echo "SIZE must be a multiple of 8 (images.digits upsamples the 8x8 digits by a whole factor)" >&2
    exit 2
fi
cargo build --release --bins -q
BIN=$CARGO_TARGET_DIR/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-ddpm-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# One voxflow run: a fresh store each round (otherwise round 2 is a cache hit).
ours_once() {
    local round=$1 dir="$WORK/round$1"
    mkdir -p "$dir"
    cat >"$dir/p.yaml" <<YAML
name: ddpm-bench
stages:
  digits:
    kind: images.digits
    params: {path: $VOXFLOW_ROOT/data/digits.csv.gz, size: $S}
  ddpm:
    kind: train.ddpm
    inputs: {images: digits}
    resources: {threads: $THREADS}
    params: {mode: regular, channels: $C, embed_dim: $D, batch_size: $B, steps: $STEPS, save_every: 100000, seed: $round, device: cpu}
YAML
    if ! "$BIN/voxflow" run "$dir/p.yaml" >"$dir/run.out" 2>&1; then
        cat "$dir/run.out" >&2
        exit 1
    fi
    local log
    log=$(find "$dir/.voxflow/objects" -name train.log | head -1)
    # "N steps in S s: R images/s ...": R is rounded to a whole number, so
    # the rate is recomputed from N and S.
    sed -n 's/^\([0-9]*\) steps in \([0-9.]*\) s:.*/\1 \2/p' "$log" |
        python3 -c "import sys; n, s = map(float, sys.stdin.read().split()); print(f'{n * $B / s:.1f}')"
}

echo "| round | config (size channels embed batch) | steps | threads | PyTorch eager images/s | train.ddpm (engine) images/s | ratio |"
echo "|---|---|---|---|---|---|---|"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    theirs=$("$VOXFLOW_PYTHON" benches/ddpm_bench.py "$S" "$C" "$D" "$B" "$STEPS" "$THREADS")
    ours=$(ours_once "$round")
    ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
    ratios+=("$ratio")
    echo "| $round | $CONFIG | $STEPS | $THREADS | $theirs | $ours | ${ratio}x |"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | python3 -c "import sys; v=[float(l) for l in sys.stdin]; print(f'{v[len(v)//2]:.2f}')")
echo "| median of $ROUNDS | | | | | | ${median}x |"
