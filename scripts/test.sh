#!/usr/bin/env bash
# Everything CI checks, in order; works on a fresh machine (it runs setup.sh first).
#
#   bash scripts/test.sh                      # as root: setup, ruff, mypy, pytest tests, notebooks
#   bash scripts/test.sh -x -k overlay        # extra arguments go to `pytest tests`
#   bash scripts/test.sh tests/unit/test_doctor.py   # a path narrows `pytest tests` to it
#
# Every step runs even after one fails, so CI shows all the problems at once; the exit status
# is non-zero if any step failed. pytest's "no tests collected" (exit 5) counts as a failure:
# a test run that ran nothing has checked nothing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SETUP_SKIP_DEMO=1 SETUP_TEST_TOOLS=1 bash scripts/setup.sh

# The venv's interpreter by path: never a pyenv shim, and the same python the kernel tests
# and notebooks run containers with. Its bin/ goes first on PATH for tests that run
# `minidocker` or `jupyter` as commands.
PY="$REPO/.venv/bin/python"
export PATH="$REPO/.venv/bin:$PATH"

failed=()

step() {
    local name=$1
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    local rc=0
    "$@" || rc=$?
    if ((rc == 5)) && [[ $name == pytest* ]]; then
        failed+=("$name (no tests collected)")
    elif ((rc != 0)); then
        failed+=("$name (exit $rc)")
    fi
}

# A fresh clone has no empty directories, so lint only the ones that exist.
lint_paths=()
for dir in minidocker tests benchmarks; do
    [[ -d $dir ]] && lint_paths+=("$dir")
done

step ruff "$PY" -m ruff check "${lint_paths[@]}"
step mypy "$PY" -m mypy
# A path among the arguments (tests/unit/test_x.py::test_y) narrows the run to it.
pytest_paths=(tests)
for arg in "$@"; do
    [[ $arg != -* && -e ${arg%%::*} ]] && pytest_paths=()
done
step pytest "$PY" -m pytest "${pytest_paths[@]}" "$@"

shopt -s nullglob
notebooks=(notebooks/*.ipynb)
shopt -u nullglob
if ((${#notebooks[@]})); then
    step "pytest notebooks" "$PY" -m pytest --nbval-lax --nbval-current-env \
        --nbval-sanitize-with notebooks/sanitize.cfg notebooks/
else
    printf '\n==> notebooks: none yet, skipped\n'
fi

if ((${#failed[@]})); then
    printf '\n' >&2
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
printf '\nall checks passed\n'
