# Sourced by the other scripts: one cargo profile (release) and one target
# directory outside the clone, so the demo, the tests and CI share one build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/voxflow-target}"
export VOXFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VOXFLOW_BIN="$CARGO_TARGET_DIR/release/voxflow"
mkdir -p "$CARGO_TARGET_DIR"

# System packages the build needs (Debian). Installs only what is missing.
install_system_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
  fi
}

# libtorch for the `torch` feature (tch 0.26): the torch==2.13.0 wheel that
# scripts/setup-python.sh installs into .venv. torch-sys asks this Python where
# libtorch is; build.rs bakes that directory into the binary's rpath.
# (torch-sys runs the first `python` on PATH.)
export LIBTORCH_USE_PYTORCH=1
export PATH="$VOXFLOW_ROOT/.venv/bin:$PATH"
