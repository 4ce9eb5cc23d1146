#!/usr/bin/env bash
# The test suite: the reference Python environment (numpy, pyarrow,
# scikit-learn, himalaya) in .venv, then every Rust test in the release
# profile (the same build the demo uses).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VOXFLOW_ROOT"
install_system_packages pkg-config libhdf5-dev
bash scripts/setup-python.sh
cargo test --release --no-fail-fast "$@"
