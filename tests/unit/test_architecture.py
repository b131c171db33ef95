"""The layering rules of house-style §2, checked at run time (import-linter checks them
statically in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dicom_helpers import sagittal, write_series

_QT = "{'PySide6', 'pyqtgraph', 'vtk', 'vtkmodules', 'superqt', 'shiboken6'}"


def test_core_packages_never_load_qt_or_vtk() -> None:
    code = ("import sys, lumbarview.core.geometry, lumbarview.core.types, lumbarview.services.info, "
            "lumbarview.services.open_study, lumbarview.services.open_dataset, lumbarview.services.measure_all, "
            "lumbarview.services.annotations, lumbarview.io.dicom.assemble, lumbarview.phantom.layouts, "
            "lumbarview.measure.lumbar, lumbarview.model.overlays, lumbarview.model.flags, "
            "lumbarview.slicing.cut, lumbarview.slicing.cache;"
            f"bad = {_QT} & set(sys.modules);"
            "sys.exit(', '.join(sorted(bad)) or None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_headless_info_run_never_loads_qt_or_vtk(tmp_path: Path) -> None:
    write_series(tmp_path, sagittal(n=3), "sag")
    code = ("import sys; from lumbarview.cli import main; rc = main(['info', sys.argv[1]]);"
            f"bad = {_QT} & set(sys.modules);"
            "sys.exit(', '.join(sorted(bad)) if bad else rc)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
