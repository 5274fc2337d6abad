# Sourced by scripts/run and scripts/test: a virtual environment in .venv with chatscribe installed.
# Usage: bootstrap_venv EXTRAS [DEBIAN PACKAGES...]

bootstrap_venv() {
    local extras="$1"; shift
    local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root" || return 1
    local wanted=()
    python3 -c 'import venv, ensurepip' 2>/dev/null || wanted+=(python3-venv)
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || wanted+=("$pkg")
    done
    if [ "${#wanted[@]}" -gt 0 ]; then
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "installing Debian packages: ${wanted[*]}" >&2
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${wanted[@]}" >/dev/null \
            || { echo "could not install ${wanted[*]}; install them and run again" >&2; return 1; }
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "chatscribe needs Python 3.11 or newer (found $(python3 --version))" >&2; return 1; }
    [ -x .venv/bin/python ] || python3 -m venv .venv || return 1
    local stamp=".venv/.installed-$extras"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q -e ".[$extras]" || return 1
        touch "$stamp"
    fi
}
