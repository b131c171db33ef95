"""Before Qt aborts on an X11 display that lacks its xcb libraries, the app names each missing
library, its package and the command that installs them; nothing is checked where Qt will not
use xcb."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lumbarview.ui.display_check import XCB_LIBRARIES, uses_xcb, xcb_problem

ROOT = Path(__file__).resolve().parents[2]


def test_xcb_is_checked_only_where_qt_uses_it() -> None:
    assert uses_xcb({"DISPLAY": ":0"}, "linux")
    assert uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({}, "linux")
    assert not uses_xcb({"DISPLAY": ":0"}, "darwin")
    assert xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, load=_never) is None


def _never(name: str) -> None:
    raise AssertionError(f"nothing may be loaded here ({name})")


def test_every_missing_library_is_named_with_its_package() -> None:
    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}

    def load(name: str) -> None:
        if name in absent:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    message = xcb_problem({"DISPLAY": ":0"}, load=load)
    assert message is not None
    assert "libxcb-icccm.so.4 (package libxcb-icccm4)" in message
    assert "libxcb-keysyms.so.1 (package libxcb-keysyms1)" in message
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in message
    assert "cursor" not in message  # Qt's own hint blamed xcb-cursor


def test_a_library_the_real_loader_cannot_find_is_reported() -> None:
    libraries = {"libxcb.so.1": "libxcb1", "liblumbarview-absent.so.7": "liblumbarview-absent7"}
    message = xcb_problem({"DISPLAY": ":0"}, libraries=libraries)
    assert message is not None and "liblumbarview-absent.so.7 (package liblumbarview-absent7)" in message
    assert "libxcb.so.1" not in message  # present on this machine (headless Qt needs it)


def test_the_plugins_own_load_error_is_passed_on() -> None:
    def load(name: str) -> None:
        if name.endswith("libqxcb.so"):
            raise OSError("libsomething-else.so.2: cannot open shared object file")

    message = xcb_problem({"DISPLAY": ":0"}, load=load, plugin=Path("/x/libqxcb.so"))
    assert message is not None and "libsomething-else.so.2" in message


def test_the_app_says_what_is_missing_instead_of_aborting(tmp_path: Path) -> None:
    """The real start-up path (cli -> ui.app.make_app), on a display whose xcb lacks a library
    (a library name no system has, added to the list in the child)."""
    child = ("import sys; import lumbarview.ui.display_check as d; "
             "d.XCB_LIBRARIES['libxcb-lumbarview-absent.so.3'] = 'libxcb-lumbarview-absent3'; "
             "from lumbarview.cli import main; sys.exit(main(['view', '--demo']))")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update({"DISPLAY": ":97", "PYTHONPATH": str(ROOT), "LUMBARVIEW_CACHE_DIR": str(tmp_path / "cache"),
                "XDG_CONFIG_HOME": str(tmp_path / "config")})
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "libxcb-lumbarview-absent.so.3 (package libxcb-lumbarview-absent3)" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(XCB_LIBRARIES) >= 16
