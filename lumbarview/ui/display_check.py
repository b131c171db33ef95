"""Before Qt opens a window on X11: are the libraries of Qt's xcb platform there?

Without them Qt prints a hint that names only ``xcb-cursor`` and aborts the process (exit 134)
before any of our code can speak. :func:`xcb_problem` loads each library the xcb platform
plugin links (the list below, read from the plugin with ``ldd`` and mapped to Debian/Ubuntu
packages) and then the plugin itself, and returns a message naming every library that is
missing, its package, and the command that installs them; ``bash packaging/dev.sh`` installs
the same list. Nothing is loaded when Qt will not use xcb (offscreen, Wayland, no display).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lumbarview.core.errors import LumbarviewError

#: Library (soname) -> the Debian/Ubuntu package that has it: what Qt's xcb platform plugin
#: (``libqxcb.so``, ``libQt6XcbQpa.so.6``) and its GLX/EGL integrations link beyond the libraries
#: headless Qt needs already.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
}


class DisplayLibrariesMissing(LumbarviewError):
    """Qt cannot open a window on this X11 display: libraries are missing (the message says
    which and how to install them)."""


def uses_xcb(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will open its windows through xcb (X11) in ``env``."""
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if chosen:
        return chosen == "xcb"
    if env.get("WAYLAND_DISPLAY"):
        return False  # Qt prefers its Wayland platform there
    return bool(env.get("DISPLAY"))


def _load(name: str) -> None:
    ctypes.CDLL(name)


def _plugin() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    found = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return found if found.is_file() else None


def xcb_problem(env: Mapping[str, str] | None = None, load: Callable[[str], None] = _load,
                plugin: Path | None = None, libraries: Mapping[str, str] | None = None) -> str | None:
    """What keeps Qt's xcb platform from starting, as a message for the user; None when nothing
    does (or Qt will not use xcb). ``libraries``: soname -> package (default
    :data:`XCB_LIBRARIES`)."""
    env = os.environ if env is None else env
    if not uses_xcb(env):
        return None
    missing: list[tuple[str, str]] = []
    for soname, package in (XCB_LIBRARIES if libraries is None else libraries).items():
        try:
            load(soname)
        except OSError:
            missing.append((soname, package))
    other = ""
    plugin = plugin if plugin is not None else _plugin()
    if not missing and plugin is not None:
        try:
            load(str(plugin))
        except OSError as exc:  # something not in the list above: say what the loader said
            other = str(exc)
    if not missing and not other:
        return None
    lines = ["lumbarview cannot open a window on this X11 display: Qt's xcb platform needs "
             + ("libraries that are not installed:" if missing else f"a library that does not load ({other}).")]
    lines += [f"  {soname} (package {package})" for soname, package in missing]
    if missing:
        lines.append("Install them (Debian/Ubuntu): sudo apt-get install "
                     + " ".join(sorted({package for _, package in missing})))
        lines.append("(`bash packaging/dev.sh run` installs them too.)")
    lines.append("Without a window: lumbarview view PATH --screenshot OUT.png renders offscreen.")
    return "\n".join(lines)


def check_display(env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`DisplayLibrariesMissing` with :func:`xcb_problem`'s message, if any."""
    problem = xcb_problem(env)
    if problem is not None:
        raise DisplayLibrariesMissing(problem)
