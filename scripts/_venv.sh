# Shared by demo.sh and test.sh (sourced, not run): create or reuse .venv and install an extra.
#
#   ensure_venv EXTRA   -> .venv with Python 3.11 and `pip install -e ".[EXTRA]"`
#
# Idempotent: the venv is reused while it runs Python 3.11 with a working pip, and the install
# is skipped while pyproject.toml is unchanged since the last successful install of EXTRA.
# PYTHON overrides the interpreter used to create the venv (default: python3.11).

VENV_DIR="${VENV_DIR:-.venv}"

_say() { printf '==> %s\n' "$*" >&2; }

_venv_ok() {
    [ -x "$VENV_DIR/bin/python" ] \
        && "$VENV_DIR/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
        && "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1
}

_ensure_venv_module() {
    local python="$1"
    if "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        _say "installing python3-venv (venv/ensurepip missing for $python)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        # python3-venv targets Debian's default python3; add the 3.11 one when it exists apart.
        if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv >/dev/null
        fi
    fi
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "error: $python has no working venv/ensurepip; install python3-venv" >&2
        return 1
    fi
}

ensure_venv() {
    local extra="$1"
    local python="${PYTHON:-python3.11}"
    if ! _venv_ok; then
        if ! command -v "$python" >/dev/null 2>&1; then
            echo "error: $python not found; Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
            return 1
        fi
        _ensure_venv_module "$python"
        _say "creating $VENV_DIR with $("$python" --version 2>&1)"
        rm -rf "$VENV_DIR"
        "$python" -m venv "$VENV_DIR"
    fi
    local stamp="$VENV_DIR/.installed-$extra"
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        _say "$VENV_DIR is up to date with .[$extra]"
        return 0
    fi
    _say "installing .[$extra] into $VENV_DIR (first run downloads the wheels)"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$VENV_DIR/bin/python" -m pip install --quiet -e ".[$extra]"
    echo "$want" > "$stamp"
}
