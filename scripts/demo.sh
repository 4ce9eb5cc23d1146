#!/usr/bin/env bash
# The main job: build voxflow and run the demo pipeline (the encoding-model
# path on the built-in generated dataset), then print the comparison table
# and write the HTML report. Safe to run again: cached stages are not redone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VOXFLOW_ROOT"
install_system_packages pkg-config libhdf5-dev
# libtorch (torch==2.13.0) and the MiniLM model live in $VOXFLOW_VENV.
bash scripts/setup-python.sh
cargo build --release --bins
"$VOXFLOW_BIN" run pipelines/demo.yaml "$@"
"$VOXFLOW_BIN" compare pipelines/demo.yaml
"$VOXFLOW_BIN" report pipelines/demo.yaml
