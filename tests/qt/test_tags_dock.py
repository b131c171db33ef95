"""The DICOM tags dock shows the focused view's slice, read off the GUI thread, and follows
the slice as the view steps (it was left empty by a refactoring once, with no test noticing)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom

import lumbarview.ui.panels.docks as docks_module
from tests.qt.conftest import open_and_wait


def _file_on_plane(folder_files: list[Path], plane) -> Path:  # type: ignore[no-untyped-def]
    """The file of the series whose slice position lies on ``plane`` (read with pydicom)."""
    best = min(folder_files, key=lambda p: abs(float(plane.signed_distance_mm(
        np.asarray(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient, dtype=float)))))
    return best


def _sop(rows: list[tuple[str, str, str, str]]) -> str:
    return next((value for _tag, keyword, _vr, value in rows if keyword == "SOPInstanceUID"), "")


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_the_tags_dock_lists_the_focused_views_slice(qtbot, window, demo_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    threads: list[str] = []
    real = docks_module.read_tags

    def recording(path):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(docks_module, "read_tags", recording)
    open_and_wait(qtbot, window, demo_small["sudirman"])
    axial = window.views["axial"]
    state = axial.view_state
    assert state.mode == "native" and state.series is not None
    # The series' files, found on disk by their own headers, not through the viewer.
    series_uid = pydicom.dcmread(state.current.stack.meta["files"][0], stop_before_pixels=True).SeriesInstanceUID
    files = [p for p in Path(demo_small["sudirman"]).rglob("*") if p.is_file() and p.suffix.lower() in (".ima", ".dcm")
             and pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == series_uid]
    assert len(files) >= 2

    axial.setFocus()
    qtbot.waitUntil(lambda: window.grid.focused_view() is axial, timeout=5000)
    window.show_dock("tags")
    panel = window.docks.tag_panel
    expected = _uid(_file_on_plane(files, state.plane))
    qtbot.waitUntil(lambda: _sop(panel.rows()) == expected, timeout=10_000)
    assert "slice" in panel.note.text()
    assert threads and threading.main_thread().name not in threads  # read on the worker

    # The view steps to another slice: the dock follows.
    before = _sop(panel.rows())
    state.step(1)
    expected = _uid(_file_on_plane(files, state.plane))
    assert expected != before
    qtbot.waitUntil(lambda: _sop(panel.rows()) == expected, timeout=10_000)


def test_a_view_without_dicom_says_why_it_has_no_tags(qtbot, window, demo_small) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])  # MetaImage volumes
    window.show_dock("tags")
    panel = window.docks.tag_panel
    qtbot.waitUntil(lambda: "not a DICOM series" in panel.note.text(), timeout=5000)
    assert panel.rows() == []
