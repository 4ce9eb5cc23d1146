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

# The Python environment (scripts/setup-python.sh): torch==2.13.0, whose
# libtorch the `torch` feature (tch 0.26) links, and the tests' references.
# Like the target directory it lives outside the clone, because the build
# bakes its libtorch directory into the binaries' rpath (build.rs): a target
# directory shared by several clones must not point into one of them.
export VOXFLOW_VENV="${VOXFLOW_VENV:-$HOME/.cache/voxflow-venv}"
export VOXFLOW_PYTHON="${VOXFLOW_PYTHON:-$VOXFLOW_VENV/bin/python}"
# torch-sys asks the first `python` on PATH where libtorch is. It only tests
# LIBTORCH_USE_PYTORCH for presence, but cargo reruns its build script when
# the value changes: the value names the environment, so pointing
# VOXFLOW_VENV elsewhere relinks against that environment's libtorch.
export LIBTORCH_USE_PYTORCH="$VOXFLOW_VENV"
export PATH="$VOXFLOW_VENV/bin:$PATH"
