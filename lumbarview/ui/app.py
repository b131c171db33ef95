"""QApplication set-up and ``run()``: the one entry point the CLI calls."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtWidgets


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
        app = QtWidgets.QApplication(argv or [sys.argv[0]])
        app.setOrganizationName("lumbarview")
        app.setApplicationName("lumbarview")
        apply_dark_theme(app)
    assert isinstance(app, QtWidgets.QApplication)
    return app


@dataclass(frozen=True)
class ViewOptions:
    """What ``lumbarview view`` was asked for on the command line."""

    layout: str | None = None
    plane: str | None = None  # a disc level to align the axial view to
    cursor_lps: tuple[float, float, float] | None = None
    native_orientation: bool = False


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
    from lumbarview.ui.screenshot import sidecar

    window = MainWindow(layout=options.layout, native_orientation=options.native_orientation)
    window.pending_plane = options.plane
    if size is not None:
        window.resize(*size)
    window.show()
    exit_code = {"value": 0}
    if options.cursor_lps is not None:
        cursor = options.cursor_lps
        window.views_ready.connect(lambda: window.session.cursor.set_crosshair(cursor))
    if screenshot:
        os.environ["LUMBARVIEW_NO_DIALOGS"] = "1"

        def capture() -> None:
            app.processEvents()
            out = Path(screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            pixmap = window.grab()
            window.paint_3d_into(pixmap, window)  # QWidget.grab does not capture VTK's pixels
            ok = pixmap.save(str(out))
            if ok:
                doc = sidecar(window)
                out.with_suffix(".json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
            exit_code["value"] = 0 if ok else 2
            window.close()

        def failed(message: str) -> None:
            print(f"lumbarview: {message}", file=sys.stderr)
            exit_code["value"] = 2
            window.close()

        window.views_ready.connect(lambda: QtCore.QTimer.singleShot(300, lambda: window.when_3d_ready(capture)))
        window.load_failed.connect(failed)
        if path is None and not demo:
            QtCore.QTimer.singleShot(300, capture)

        def too_slow() -> None:
            print("lumbarview: nothing was shown in time for the screenshot", file=sys.stderr)
            exit_code["value"] = 2
            window.close()

        QtCore.QTimer.singleShot(int(timeout_s * 1000), too_slow)
    if demo:
        QtCore.QTimer.singleShot(0, window.open_demo)
    elif path is not None:
        QtCore.QTimer.singleShot(0, lambda: window.open(path))
    app.exec()
    return exit_code["value"]
