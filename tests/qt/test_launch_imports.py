"""Launch stays light: the main window's start (built and shown, nothing open yet) loads none of
the heavy modules a user may never need in a session. They load on first use (the engine when a
case is measured or a 3D label map's disc planes are computed, highdicom and the SR module on an
SR export, the DICOM overlay parser when a DICOM case loads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Modules (and their submodules) the window's start must not load.
HEAVY = ("lumbarview.measure.engine", "lumbarview.measure.measurer", "lumbarview.services.engine_view",
         "lumbarview.services.measure_case", "lumbarview.services.sr", "lumbarview.io.dicom.overlays",
         "scipy.ndimage", "highdicom")

_CHILD = """
import sys
from lumbarview.ui.app import make_app
from lumbarview.ui.main_window import MainWindow

app = make_app()
window = MainWindow()
window.show()
app.processEvents()
heavy = sys.argv[1].split(",")
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
window.close()
print("LOADED " + " ".join(loaded))
"""


def _start_window(tmp_path: Path, heavy: tuple[str, ...]) -> list[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "LUMBARVIEW_WORKSPACE": str(tmp_path / "workspace"), "LUMBARVIEW_NO_DIALOGS": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, ",".join(heavy)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return line.split()[1:]


def test_the_main_windows_start_loads_no_engine_scipy_ndimage_highdicom_or_sr(tmp_path: Path) -> None:
    assert _start_window(tmp_path, HEAVY) == []


def test_the_check_sees_a_module_the_window_does_load(tmp_path: Path) -> None:
    """The check itself can fail: a module the window needs (its own) is reported loaded."""
    assert _start_window(tmp_path, ("lumbarview.ui.main_window", "PySide6.QtWidgets")) == [
        "PySide6.QtWidgets", "lumbarview.ui.main_window"]
