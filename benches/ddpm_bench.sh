#!/usr/bin/env bash
# train.ddpm's training throughput on the CPU (images/s): the stage run by
# the engine (worker process, progress, state saves) against the same U-Net
# step in PyTorch eager (benches/ddpm_bench.py), on the same config. Goal:
# at least 1.0x. Prints a Markdown table. Run it on a quiet machine.
#
#   bash benches/ddpm_bench.sh                    # 16x16 digits, width 32
#   CONFIG="16 32 32 64" STEPS=200 THREADS=2 bash benches/ddpm_bench.sh
#
# CONFIG is SIZE CHANNELS EMBED_DIM BATCH. On an NVIDIA GPU, the
# CIFAR-sized configuration is CONFIG="32 64 32 128" with the stage's
# device: cuda (edit the YAML below); not yet measured.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$VOXFLOW_ROOT"
CONFIG=${CONFIG:-"16 32 32 64"}
STEPS=${STEPS:-200}
THREADS=${THREADS:-2}
read -r S C D B <<<"$CONFIG"
cargo build --release --bins -q
BIN=$CARGO_TARGET_DIR/release

theirs=$("$VOXFLOW_PYTHON" benches/ddpm_bench.py "$S" "$C" "$D" "$B" "$STEPS" "$THREADS")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-ddpm-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/p.yaml" <<YAML
name: ddpm-bench
stages:
  digits:
    kind: images.digits
    params: {path: $VOXFLOW_ROOT/data/digits.csv.gz, size: $((S / 8 * 8))}
  ddpm:
    kind: train.ddpm
    inputs: {images: digits}
    resources: {threads: $THREADS}
    params: {mode: regular, channels: $C, embed_dim: $D, batch_size: $B, steps: $STEPS, save_every: 100000, device: cpu}
YAML
"$BIN/voxflow" run "$WORK/p.yaml" >/dev/null 2>&1
log=$(find "$WORK/.voxflow/objects" -name train.log | head -1)
ours=$(sed -n 's/.*: \([0-9.]*\) images\/s.*/\1/p' "$log")
echo "| config (size channels embed batch) | threads | train.ddpm (engine) images/s | PyTorch eager images/s | ratio |"
echo "|---|---|---|---|---|"
echo "| $CONFIG | $THREADS | $ours | $theirs | $(python3 -c "print(f'{$ours / $theirs:.2f}x')") |"
