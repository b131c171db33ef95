"""The Studies window: search the database, open a study by double-click, find on a PACS, and a
retrieve with progress, an early first slice and cancel (a paced in-process SCP makes the timing
deterministic)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from lumbarview.services.pacs.servers import Server
from lumbarview.services.study_db import StudyDatabase
from tests.dicom_helpers import sagittal, write_series
from tests.net.fake_pacs import FakePacs
from tests.net.orthanc import Orthanc

pytestmark = [pytest.mark.qt]
os.environ.setdefault("LUMBARVIEW_NO_DIALOGS", "1")


@pytest.fixture
def studies(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from lumbarview.ui.studies_window import StudiesWindow

    monkeypatch.setenv("LUMBARVIEW_CONFIG_DIR", str(tmp_path / "config"))
    write_series(tmp_path / "a", sagittal(n=3), "LOCAL SAG", patient_id="A1", patient_name="ALPHA^ONE",
                 study="LA", study_date="20210101")
    write_series(tmp_path / "b", sagittal(n=2), "OTHER SAG", patient_id="B2", patient_name="BETA^TWO",
                 study="LB", study_date="20230101")
    db = StudyDatabase(tmp_path / "db")
    db.import_path(tmp_path)
    window = StudiesWindow(db)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.local_tree.topLevelItemCount() == 2, timeout=5000)
    yield window
    window.shutdown()
    db.close()


def test_search_and_double_click_opens(studies: Any, qtbot: Any) -> None:
    studies.fields["patient_name"].setText("beta*")
    studies.search()
    qtbot.waitUntil(lambda: studies.local_tree.topLevelItemCount() == 1, timeout=5000)
    item = studies.local_tree.topLevelItem(0)
    assert item.text(1) == "B2" and item.childCount() == 1 and item.child(0).text(3) == "OTHER SAG"
    with qtbot.waitSignal(studies.open_study, timeout=2000) as signal:
        studies.local_tree.itemDoubleClicked.emit(item.child(0), 0)  # a series row opens its study
    assert signal.args == [item.text(6)]
    studies.fields["patient_name"].setText("")
    studies.fields["date"].setText("2023-")  # not a date range
    studies.search()
    assert "Dates:" in studies.status.text()


def test_find_on_the_real_orthanc(studies: Any, qtbot: Any, orthanc: Orthanc, tmp_path: Path) -> None:
    orthanc.upload(write_series(tmp_path / "remote", sagittal(n=2), "REMOTE SAG", patient_id="R5", study="RM"))
    studies.server_box.setEditText(f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")
    studies.fields["patient_id"].setText("R5")
    studies.find_remote()
    qtbot.waitUntil(lambda: studies.remote_tree.topLevelItemCount() == 1, timeout=10000)
    assert studies.remote_tree.topLevelItem(0).child(0).text(3) == "REMOTE SAG"


def _paced(delay_s: float) -> Any:
    def script(attempt: int, wanted: list[Dataset], assoc: Any) -> Iterator[Any]:
        for ds in wanted:
            time.sleep(delay_s)
            yield 0xFF00, ds
    return script


def test_retrieve_shows_the_first_slice_early_and_cancels(studies: Any, qtbot: Any, tmp_path: Path) -> None:
    files = write_series(tmp_path / "slow", sagittal(n=20, rows=48, cols=40), "SLOW SAG", patient_id="S9",
                         study="SLOW")
    instances = [pydicom.dcmread(f) for f in files]
    pacs = FakePacs(instances, get_script=_paced(0.08))
    series_uid = str(instances[0].SeriesInstanceUID)
    try:
        server = Server("fake", "FAKEPACS", "127.0.0.1", pacs.port, timeout_s=10)
        with qtbot.waitSignal(studies.first_instance, timeout=10000):
            studies.start_retrieve(server, str(instances[0].StudyInstanceUID), [series_uid])
        had = len(studies.db.instances_of_series(series_uid))
        assert 1 <= had < 20  # the first slice is on screen before the series is complete
        assert studies.preview.pixmap() is not None and not studies.preview.pixmap().isNull()
        assert studies.cancel_button.isEnabled()
        with qtbot.waitSignal(studies.retrieve_finished, timeout=3000) as done:
            t0 = time.perf_counter()
            studies.cancel_button.click()
        assert time.perf_counter() - t0 < 1.0 and "cancelled" in studies.status.text()
        kept = len(studies.db.instances_of_series(series_uid))
        assert kept < 20
        # Again, to the end: only the missing ones are fetched, and the bar ends full.
        with qtbot.waitSignal(studies.retrieve_finished, timeout=15000) as done:
            studies.start_retrieve(server, str(instances[0].StudyInstanceUID), [series_uid])
        assert done.args[0].received == 20 - kept and done.args[0].already_had == kept
        assert studies.progress.value() == studies.progress.maximum() == 20
        qtbot.waitUntil(lambda: studies.local_tree.topLevelItemCount() == 3, timeout=5000)
    finally:
        pacs.stop()
