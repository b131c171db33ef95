"""Export never fails silently (issue 29, class 9): a flags export that cannot be written says
so in the status bar (and a dialog where dialogs are allowed), and no flag is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtWidgets

from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def test_a_failed_export_is_said_and_the_flags_stay(qtbot, window, demo_small, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "ws"))
    open_and_wait(qtbot, window, demo_small["aisslab"])
    store = window.flags
    store.flag("1|x|y|z", "1", "suspect")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "flags.csv"  # its folder is a file: the export cannot be written
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV (*.csv)"))
    window.annotation_panel.export_flags()
    message = window.statusBar().currentMessage()
    assert "could not be exported" in message and str(store.path) in message
    assert [f.note for f in store.flags()] == ["suspect"] and "suspect" in Path(store.path).read_text()
    good = tmp_path / "out.csv"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(good), "CSV (*.csv)"))
    window.annotation_panel.export_flags()
    assert "1 flag(s) exported" in window.statusBar().currentMessage() and good.is_file()
