"""File > Export…: the dialog builds the same request as the command line and its job exports
(run here synchronously; the window runs it on the worker thread behind the progress dialog)."""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom
import pytest

from lumbarview.ui.export_dialog import ExportDialog, export_job
from tests.dicom_helpers import sagittal, write_series

pytestmark = pytest.mark.qt


def test_dialog_job_exports_the_case_de_identified_with_the_options(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_series(tmp_path / "src" / "P1", sagittal(n=3), "sag t2", patient_id="Doewright")
    dialog = ExportDialog(None, str(tmp_path / "src"), "Doewright")
    qtbot.addWidget(dialog)
    assert dialog.deidentify.isChecked()  # de-identified unless the user unticks it
    dialog.dates.setChecked(True)
    dialog.key_file.setText(str(tmp_path / "project.key"))
    dialog.out.setText(str(tmp_path / "out"))
    seen: list[tuple[int, int]] = []
    report = export_job(dialog)(lambda n, total: seen.append((n, total)), threading.Event())
    assert report.deidentified and report.profile["options"] == ["retain_longitudinal_modified_dates"]
    assert seen and seen[-1][0] == seen[-1][1]
    assert (tmp_path / "project.key").is_file()
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 3
    assert all(pydicom.dcmread(f).PatientID != "Doewright" for f in files)
    dialog.deidentify.setChecked(False)
    assert not dialog.dates.isEnabled()
    request = dialog.request(None)
    assert request is not None and not request.deidentify and request.key is None
