"""QApplication set-up and ``run()``: the one entry point the CLI calls."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from lumbarview.ui.display_check import check_display


def _configure_environment() -> None:
    # VTK inside offscreen Qt must render through OSMesa (EGL draws black there); set before any
    # render window exists.
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")


def make_app(argv: list[str] | None = None) -> QtWidgets.QApplication:
    _configure_environment()
    import pyqtgraph as pg

    from lumbarview.ui.theme import apply_dark_theme

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QtWidgets.QApplication.instance()
    if app is None:
        # Qt aborts the process when its X11 platform lacks a library: say which, first.
        check_display()
        app = QtWidgets.QApplication(argv or [sys.argv[0]])
        app.setOrganizationName("lumbarview")
        app.setApplicationName("lumbarview")
        apply_dark_theme(app)
    assert isinstance(app, QtWidgets.QApplication)
    return app


class _Timing:
    """For benchmarks (LUMBARVIEW_REPORT_TIMING=1): seconds from start to the first image and to
    the screenshot, the longest gap of the GUI event loop, the wall-clock time of the first image
    and the resident memory then, printed as one JSON line on stderr."""

    def __init__(self, window: Any) -> None:
        self.start = time.perf_counter()
        self.first_image: float | None = None
        self.first_image_at: float | None = None
        self.first_image_rss_mb: float | None = None
        self.max_gap = 0.0
        self._last = self.start
        self._timer = QtCore.QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        window.views_ready.connect(self._ready)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.max_gap = max(self.max_gap, now - self._last)
        self._last = now

    def _ready(self) -> None:
        if self.first_image is None:
            self.first_image = time.perf_counter() - self.start
            self.first_image_at = time.time()  # wall clock: a benchmark measures from the spawn
            self.first_image_rss_mb = _rss_mb()

    def report(self) -> None:
        print(json.dumps({"first_image_s": self.first_image, "screenshot_s": time.perf_counter() - self.start,
                          "max_event_loop_gap_s": self.max_gap,
                          "first_image_at": self.first_image_at, "first_image_rss_mb": self.first_image_rss_mb}),
              file=sys.stderr)


def _rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux), or None where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class ViewOptions:
    """What ``lumbarview view`` was asked for on the command line."""

    layout: str | None = None
    plane: str | None = None  # a disc level to align the axial view to
    cursor_lps: tuple[float, float, float] | None = None
    native_orientation: bool = False
    session: str | None = None  # a session file to open (``view --session FILE``)
    interactive: bool = True  # modal dialogs may open (never with a screenshot)


def run(path: str | None = None, screenshot: str | None = None, size: tuple[int, int] | None = None,
        demo: bool = False, timeout_s: float = 120.0, options: ViewOptions | None = None) -> int:
    """Show the main window (on ``path``, or the demo, or the start screen).

    With ``screenshot``, wait until the views have painted, save the window as PNG (and
    ``OUT.json`` beside it, see :mod:`lumbarview.ui.screenshot`) and exit (0 when saved; 2 when
    the data could not be opened or nothing was painted in time).
    """
    options = options or ViewOptions()
    app = make_app()
    from lumbarview.ui.main_window import MainWindow
    from lumbarview.ui.screenshot import grab, sidecar

    window = MainWindow(layout=options.layout, native_orientation=options.native_orientation,
                        interactive=options.interactive and not screenshot)
    window.pending_plane = options.plane
    if size is not None:
        window.resize(*size)
    window.show()
    exit_code = {"value": 0}
    if options.cursor_lps is not None:
        cursor = options.cursor_lps
        window.views_ready.connect(lambda: window.session.cursor.set_crosshair(cursor))
    timing = _Timing(window) if os.environ.get("LUMBARVIEW_REPORT_TIMING") else None
    if screenshot:
        def capture() -> None:
            app.processEvents()
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            image = grab(window)  # the 3D pane's pixels too (QWidget.grab misses them)
            if size is not None and (image.width(), image.height()) != tuple(size):
                print(f"lumbarview: the window needs at least {window.minimumSizeHint().width()} x "
                      f"{window.minimumSizeHint().height()} pixels for its panels: the screenshot is "
                      f"{image.width()} x {image.height()}, not {size[0]} x {size[1]} (hide panels from the "
                      "View menu, or ask for a larger --size)", file=sys.stderr)
            ok = image.save(str(out))
            if ok:
                doc = sidecar(window)
                out.with_suffix(".json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
            exit_code["value"] = 0 if ok else 2
            if timing is not None:
                timing.report()
            window.close()

        def failed(message: str) -> None:
            print(f"lumbarview: {message}", file=sys.stderr)
            exit_code["value"] = 2
            window.close()

        def when_idle() -> None:
            # The time and memory of a screenshot include the work queued at open (thumbnails,
            # prefetch, 3D surfaces): capture once the background work has finished.
            if window.worker.idle:
                window.grid.when_3d_ready(lambda: QtCore.QTimer.singleShot(100, capture))
            else:
                QtCore.QTimer.singleShot(50, when_idle)

        window.views_ready.connect(lambda: QtCore.QTimer.singleShot(200, when_idle))
        window.load_failed.connect(failed)
        if path is None and not demo and options.session is None:
            QtCore.QTimer.singleShot(300, capture)

        def too_slow() -> None:
            print("lumbarview: nothing was shown in time for the screenshot", file=sys.stderr)
            exit_code["value"] = 2
            window.close()

        QtCore.QTimer.singleShot(int(timeout_s * 1000), too_slow)
    if options.session is not None:
        session_file = options.session
        QtCore.QTimer.singleShot(0, lambda: window.measure.open_session(session_file, path))
    elif demo:
        QtCore.QTimer.singleShot(0, window.open_demo)
    elif path is not None:
        QtCore.QTimer.singleShot(0, lambda: window.open(path))
    app.exec()
    return exit_code["value"]
