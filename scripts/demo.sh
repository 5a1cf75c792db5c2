#!/usr/bin/env bash
# Quick start: create .venv (Python 3.11), install the engine and run `mpt demo`.
# Arguments are passed to `mpt demo` (for example --json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
. scripts/_venv.sh
ensure_venv engine
exec "$VENV_DIR/bin/mpt" demo "$@"
