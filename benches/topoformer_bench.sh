#!/usr/bin/env bash
# Step time of a Topoformer (spatial querying + reweighting) against the
# sq = sr = 1 control and standard attention at the same size, on the CPU,
# in one run (crates/voxflow-torch/examples/topoformer_bench.rs). Prints a
# Markdown table. Run it on a quiet machine.
#
#   bash benches/topoformer_bench.sh
#   CONFIG="1 400 64 32" STEPS=30 THREADS=2 bash benches/topoformer_bench.sh
#
# CONFIG is N_LAYER N_EMBD TOKENS BATCH (the paper's classifier: 1 layer, 400 units).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$VOXFLOW_ROOT"
CONFIG=${CONFIG:-"1 400 64 32"}
STEPS=${STEPS:-30}
THREADS=${THREADS:-2}
read -r L E T B <<<"$CONFIG"
cargo build --release -p voxflow-torch --example topoformer_bench -q
"$CARGO_TARGET_DIR/release/examples/topoformer_bench" "$L" "$E" "$T" "$B" "$STEPS" "$THREADS"
