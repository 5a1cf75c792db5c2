#!/usr/bin/env bash
# Create .venv (Python 3.11), install .[dev], then ruff, mypy and pytest (two phases).
# Exits non-zero on any failure; a pytest run that collects no test is a failure too.
# Arguments are passed to the first pytest run (for example -k cli or -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
. scripts/_venv.sh
ensure_venv dev

# One compile cache for the whole suite (and the `mpt` subprocesses it starts).
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$(cd "$VENV_DIR" && pwd)/numba-cache}"
mkdir -p "$NUMBA_CACHE_DIR"
BIN="$VENV_DIR/bin"

run_pytest() {
    local rc=0
    "$BIN/pytest" "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "error: pytest collected no tests ($*)" >&2
        return 1
    fi
    return "$rc"
}

_say "ruff check"
"$BIN/ruff" check .
_say "mypy"
"$BIN/mypy"
_say "pytest"
run_pytest "$@"
_say "pytest -m nojit with NUMBA_DISABLE_JIT=1"
NUMBA_DISABLE_JIT=1 run_pytest -m nojit
_say "all checks passed"
