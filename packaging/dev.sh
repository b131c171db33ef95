#!/usr/bin/env bash
# Set up a fresh machine and run lumbarview or its tests.
#   bash packaging/dev.sh run     # the program, on its built-in demo study
#   bash packaging/dev.sh test    # the test suite (extra arguments go to pytest)
#   bash packaging/dev.sh fuzz [--minutes N] [--target T] [--seed S]
#                                 # fuzz the loaders (default 3 minutes, all targets); exits 1 on a
#                                 # new failure (see tests/fuzz/harness.py --help for the options)
# It installs the system libraries headless Qt and VTK need (Debian/Ubuntu, as root or with
# sudo), makes a virtual environment in .venv and installs lumbarview into it with the tested
# versions in packaging/constraints.txt. Later calls reuse what is already there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LUMBARVIEW_VENV:-$here/.venv}
cmd=${1:-}
[ $# -gt 0 ] && shift

apt_packages=(libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libx11-6
              libosmesa6 binutils)

ensure_apt() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local missing=()
    for p in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "dev.sh: please install: apt-get install ${missing[*]}" >&2; return 0; fi
    fi
    echo "dev.sh: installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
    for py in python3.11 python3.12 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))'; then
            echo "$py"; return 0
        fi
    done
    echo "dev.sh: Python 3.11 or 3.12 is required" >&2; return 1
}

ensure_venv() {
    local stamp="$venv/.lumbarview-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$here/pyproject.toml" ] && [ "$stamp" -nt "$here/packaging/constraints.txt" ]; then
        return 0
    fi
    local py; py=$(find_python)
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -c "$here/packaging/constraints.txt" -e "$here[test]"
    touch "$stamp"
}

case "$cmd" in
    run)
        ensure_apt; ensure_venv
        if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
            # No screen here: render the viewer offscreen and save what it shows.
            out="$here/lumbarview-demo.png"
            echo "dev.sh: no display; rendering the viewer offscreen to $out" >&2
            exec "$venv/bin/lumbarview" view --demo --screenshot "$out" --size 1600x900 "$@"
        fi
        exec "$venv/bin/lumbarview" view --demo "$@" ;;
    test)
        ensure_apt; ensure_venv
        cd "$here"
        "$venv/bin/lint-imports"
        "$venv/bin/ruff" check lumbarview tests benchmarks
        "$venv/bin/mypy"
        exec "$venv/bin/python" -m pytest "$@" ;;
    fuzz)
        ensure_apt; ensure_venv
        cd "$here"
        [ -f tests/fuzz/corpus/SOURCES.md ] || PYTHONPATH="$here" "$venv/bin/python" -m tests.fuzz.make_corpus
        PYTHONPATH="$here" exec nice -n 10 "$venv/bin/python" -m tests.fuzz.harness "$@" ;;
    *)
        echo "usage: bash packaging/dev.sh run|test|fuzz [args]" >&2; exit 64 ;;
esac
