#!/usr/bin/env bash
# Set up a fresh machine and run lumbarview or its tests.
#   bash packaging/dev.sh run     # the program, on its built-in demo study
#   bash packaging/dev.sh test    # the test suite (extra arguments go to pytest)
#   bash packaging/dev.sh fuzz [--minutes N] [--target T] [--seed S]
#                                 # fuzz the loaders (default 3 minutes, all targets); exits 1 on a
#                                 # new failure (see tests/fuzz/harness.py --help for the options)
#   bash packaging/dev.sh app [--self-test]
#                                 # the standalone app (PyInstaller, one folder) in dist/lumbarview/;
#                                 # with --self-test, then runs its self-test with no display and
#                                 # no virtual environment in sight (exit 1 when it fails)
# It installs the system libraries Qt (headless and on an X11 display) and VTK need
# (Debian/Ubuntu, as root or with sudo), makes a virtual environment in .venv and installs
# lumbarview into it with the tested versions in packaging/constraints.txt. Later calls reuse
# what is already there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LUMBARVIEW_VENV:-$here/.venv}
cmd=${1:-}
[ $# -gt 0 ] && shift

apt_packages=(libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libx11-6
              libosmesa6 binutils)
# What Qt's xcb platform (a window on an X11 display) links beyond that: read from the plugin
# with ldd (libqxcb.so, libQt6XcbQpa.so.6, the GLX/EGL integrations); the same list is
# lumbarview/ui/display_check.py XCB_LIBRARIES, which names what is missing at start.
apt_packages+=(libxcb1 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
               libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1
               libxcb-xfixes0 libxcb-xkb1 libxcb-glx0 libxkbcommon-x11-0)
# The PACS the network tests run against (tests/net/orthanc.py starts its own instance on free
# loopback ports with a generated configuration; the packaged service is never used, and
# whether its postinst could start it does not matter).
apt_packages+=(orthanc orthanc-dicomweb)

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

ensure_app_tools() {
    # PyInstaller (the `app` extra, pinned in packaging/constraints.txt); it needs objdump.
    if ! command -v objdump >/dev/null 2>&1; then
        echo "dev.sh: PyInstaller needs objdump: install binutils (apt-get install binutils)" >&2; return 1
    fi
    local stamp="$venv/.lumbarview-app-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$here/pyproject.toml" ] && [ "$stamp" -nt "$here/packaging/constraints.txt" ]; then
        return 0
    fi
    "$venv/bin/python" -m pip install -q -c "$here/packaging/constraints.txt" -e "$here[app]"
    touch "$stamp"
}

build_app() {
    cd "$here"
    local start=$SECONDS
    echo "dev.sh: building the standalone app (PyInstaller; several minutes)" >&2
    "$venv/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$here/dist" --workpath "$here/build/pyinstaller" packaging/lumbarview.spec
    [ -x "$here/dist/lumbarview/lumbarview" ] || { echo "dev.sh: the build left no dist/lumbarview/lumbarview" >&2; return 1; }
    echo "dev.sh: built $here/dist/lumbarview in $((SECONDS - start)) s: $(du -sh "$here/dist/lumbarview" | cut -f1)," \
         "$(find "$here/dist/lumbarview" -type f | wc -l) files" >&2
    # The size budget (issue 16: at most 600 MB); the largest parts are listed when it is exceeded.
    local budget_mb=${LUMBARVIEW_APP_BUDGET_MB:-600}
    local size_mb; size_mb=$(du -sm "$here/dist/lumbarview" | cut -f1)
    if [ "$size_mb" -gt "$budget_mb" ]; then
        echo "dev.sh: the app is $size_mb MB, over its $budget_mb MB budget; its largest parts:" >&2
        du -sm "$here/dist/lumbarview/_internal/"* | sort -rn | head -12 >&2
        return 1
    fi
}

app_self_test() {
    # As a user's shell without a display would run it: no DISPLAY, no virtual environment on
    # PATH, nothing of ours in the environment.
    local log="$here/dist/lumbarview-self-test.log"
    echo "dev.sh: running the app's self-test with no display (log: $log)" >&2
    if env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="${HOME:-/tmp}" TMPDIR="${TMPDIR:-/tmp}" \
            timeout --kill-after=10 900 "$here/dist/lumbarview/lumbarview" --self-test >"$log" 2>&1; then
        cat "$log"
        return 0
    else
        local rc=$?
        cat "$log" >&2
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "dev.sh: the standalone app's self-test did not finish within 900 s" >&2
        else
            echo "dev.sh: the standalone app's self-test FAILED (exit $rc): see the FAIL lines above" >&2
        fi
        return 1
    fi
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
    app)
        ensure_apt; ensure_venv; ensure_app_tools
        build_app
        if [ "${1:-}" = "--self-test" ]; then app_self_test; fi ;;
    *)
        echo "usage: bash packaging/dev.sh run|test|fuzz|app [args]" >&2; exit 64 ;;
esac
