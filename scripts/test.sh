#!/usr/bin/env bash
# The test suite: the reference Python environment (numpy, pyarrow,
# scikit-learn, himalaya) in $VOXFLOW_VENV, a single-node Slurm cluster
# (scripts/slurm-start.sh, stopped again on exit), then every Rust test in
# the release profile (the same build the demo uses).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VOXFLOW_ROOT"
# chromium: tests/report_browser.rs opens the report in headless Chromium.
install_system_packages pkg-config libhdf5-dev chromium
bash scripts/setup-python.sh

# tests/slurm.rs runs against a real single-node Slurm: start one here unless
# a controller already answers, and stop what this script started on exit.
if scontrol ping 2>/dev/null | grep -q UP; then
  echo "test.sh: using the Slurm cluster that is already running" >&2
else
  as_root=""
  [ "$(id -u)" = 0 ] || as_root=sudo
  trap '$as_root bash "$VOXFLOW_ROOT/scripts/slurm-stop.sh" >&2' EXIT
  trap 'exit 130' INT TERM
  $as_root bash scripts/slurm-start.sh >&2
fi

cargo test --release --workspace --no-fail-fast "$@"
