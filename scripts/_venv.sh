# Shared by scripts/*: make (or reuse) a virtualenv with the project installed.
# PYTHON picks the interpreter (default python3); VENV the folder (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV with $($PYTHON --version 2>&1)" >&2
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.stamp-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -e "$stamp" ]; then
    echo ">> installing django-job-tasks[dev] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]" >&2
    rm -f "$VENV"/.stamp-*
    touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
