#!/usr/bin/env bash
# Creates the project-local Python environment (.venv) that the tests and
# benchmarks use as independent references: numpy, pyarrow, scikit-learn,
# himalaya. Idempotent: a second run only checks that the packages import.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, pyarrow, sklearn, himalaya, scipy" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "numpy>=1.26,<3" "pyarrow>=15" "scikit-learn>=1.4" "scipy>=1.11" "himalaya==0.4.11" "packaging"
fi
"$venv/bin/python" -c "import numpy, pyarrow, sklearn, himalaya; print('python env ok:', numpy.__version__, pyarrow.__version__, sklearn.__version__, himalaya.__version__)"
