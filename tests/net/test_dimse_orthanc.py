"""DIMSE against the real Orthanc: C-ECHO, C-FIND at three levels, C-GET, C-MOVE, C-STORE, and
a retrieve that is equal, pixel for pixel and tag for tag, to what was stored."""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from lumbarview.core.errors import Cancelled
from lumbarview.services.pacs.dimse import echo, find, find_series, find_studies, retrieve, send
from lumbarview.services.pacs.servers import LocalAE, PacsError, Server
from lumbarview.services.study_db import StudyDatabase
from tests.dicom_helpers import axial_block, sagittal, write_series
from tests.net.orthanc import OUR_AET, Orthanc

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def stored(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two series of one study and a second patient's study, uploaded by REST (not by our code)."""
    root = tmp_path_factory.mktemp("pacs-src")
    orthanc.clear()
    files = {
        "sag": write_series(root / "sag", sagittal(n=12, rows=32, cols=28), "T2 SAG", 1, study="NET",
                            study_date="20240310"),
        "ax": write_series(root / "ax", axial_block(0.0, 5.0, n=6), "T2 AX", 2, study="NET", study_date="20240310"),
        "other": write_series(root / "other", sagittal(n=3), "T1 SAG", 1, patient_id="Q9", patient_name="ROE^RICH",
                              study="OTHER", study_date="20180704"),
    }
    orthanc.upload([f for group in files.values() for f in group])
    return files


@pytest.fixture
def server(orthanc: Orthanc) -> Server:
    return Server("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, timeout_s=10)


@pytest.fixture
def local(move_port: int) -> LocalAE:
    return LocalAE(OUR_AET, "127.0.0.1", move_port)


def _uid(files: list[Path], keyword: str) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True)[keyword].value)


def test_echo(server: Server, local: LocalAE) -> None:
    assert echo(server, local) < 5


def test_find_at_patient_study_and_series_level(server: Server, local: LocalAE,
                                                stored: dict[str, list[Path]]) -> None:
    q = Dataset()
    q.QueryRetrieveLevel = "PATIENT"
    q.PatientID = ""
    q.PatientName = ""
    assert {str(d.PatientID) for d in find(server, q, local)} == {"P1", "Q9"}
    studies = find_studies(server, patient_id="P1", local=local)
    assert [s.study_uid for s in studies] == [_uid(stored["sag"], "StudyInstanceUID")]
    assert {(s.description, s.modality, s.n_instances) for s in studies[0].series} == {("T2 SAG", "MR", 12),
                                                                                       ("T2 AX", "MR", 6)}
    assert [s.patient_id for s in find_studies(server, patient_name="ROE*", local=local)] == ["Q9"]
    assert [s.patient_id for s in find_studies(server, date_from="20200101", date_to="20241231", local=local)] == ["P1"]
    assert find_studies(server, modality="CT", local=local) == []
    series = find_series(server, _uid(stored["other"], "StudyInstanceUID"), local)
    assert [(s.description, s.n_instances) for s in series] == [("T1 SAG", 3)]


def _assert_same_instances(received: list[Path], originals: list[Path]) -> None:
    """Tag for tag (every data element, file meta aside) and pixel for pixel."""
    by_uid = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in originals}
    got = [pydicom.dcmread(f) for f in received]
    assert sorted(str(d.SOPInstanceUID) for d in got) == sorted(by_uid)
    for ds in got:
        original = by_uid[str(ds.SOPInstanceUID)]
        assert {e.tag for e in ds} == {e.tag for e in original}
        for element in original:
            assert ds[element.tag].value == element.value, element.keyword
        assert (ds.pixel_array == original.pixel_array).all()


def test_retrieve_one_series_by_get_is_equal_to_what_was_stored(server: Server, local: LocalAE, tmp_path: Path,
                                                                stored: dict[str, list[Path]]) -> None:
    study = _uid(stored["sag"], "StudyInstanceUID")
    series = _uid(stored["sag"], "SeriesInstanceUID")
    seen: list[tuple[int, int]] = []
    arrived: list[str] = []
    with StudyDatabase(tmp_path / "db") as db:
        result = retrieve(server, study, db, [series], "get", local, progress=lambda d, t: seen.append((d, t)),
                          on_instance=arrived.append)
        assert (result.method, result.received, result.expected, result.already_had) == ("get", 12, 12, 0)
        assert not result.issues
        assert len(arrived) == 12 and seen[-1] == (12, 12)
        assert [s.description for s in db.search()[0].series] == ["T2 SAG"]  # only the series asked for
        _assert_same_instances(db.files(study), stored["sag"])
        again = retrieve(server, study, db, [series], "get", local)
        assert (again.received, again.already_had, again.attempts) == (0, 12, 0)


def test_retrieve_by_move_to_our_storage_scp(server: Server, local: LocalAE, tmp_path: Path,
                                             stored: dict[str, list[Path]]) -> None:
    study = _uid(stored["sag"], "StudyInstanceUID")
    with StudyDatabase(tmp_path / "db") as db:
        result = retrieve(server, study, db, [], "move", local)
        assert (result.method, result.received) == ("move", 18)
        assert {s.description for s in db.search()[0].series} == {"T2 SAG", "T2 AX"}
        _assert_same_instances(db.files(study), stored["sag"] + stored["ax"])


def test_a_retry_fetches_only_what_is_missing(server: Server, local: LocalAE, tmp_path: Path,
                                              stored: dict[str, list[Path]]) -> None:
    study = _uid(stored["sag"], "StudyInstanceUID")
    series = _uid(stored["sag"], "SeriesInstanceUID")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(stored["sag"][0].parent / stored["sag"][3].name)  # one we have already
        db.import_path(stored["sag"][7])
        result = retrieve(server, study, db, [series], "get", local)
        assert (result.received, result.already_had) == (10, 2)
        assert not [i for i in result.issues if i.code == "db.duplicate"]  # the two were not sent again
        assert len(db.instances_of_series(series)) == 12


def test_cancel_stops_a_retrieve_within_a_second(server: Server, local: LocalAE, tmp_path: Path,
                                                 stored: dict[str, list[Path]]) -> None:
    import time

    study = _uid(stored["sag"], "StudyInstanceUID")
    cancel = threading.Event()
    stamps: dict[str, float] = {}

    def first(path: str) -> None:
        if "set" not in stamps:
            stamps["set"] = time.perf_counter()
            cancel.set()
            time.sleep(0.2)  # keep the store slow so that the retrieve is still running

    with StudyDatabase(tmp_path / "db") as db:
        with pytest.raises(Cancelled):
            retrieve(server, study, db, [], "get", local, cancel=cancel, on_instance=first)
        assert time.perf_counter() - stamps["set"] < 1.0
        got = sum(s.n_instances for s in db.search()[0].series)
        assert 1 <= got < 18  # what arrived is kept; not everything came


def test_send_by_c_store_lands_in_orthanc(orthanc: Orthanc, server: Server, local: LocalAE, tmp_path: Path) -> None:
    files = write_series(tmp_path / "out", sagittal(n=2), "SENT", 9, study="SENT", patient_id="S1")
    with StudyDatabase(tmp_path / "db") as db:
        assert send(server, files, local, db).sent == 2
        uid = str(pydicom.dcmread(files[0]).SOPInstanceUID)
        assert db.sent_to(uid) == [server.describe()]
    found = orthanc.post("/tools/find", b'{"Level": "Instance", "Query": {"PatientID": "S1"}}')
    assert len(found) == 2


def test_send_refuses_a_file_that_is_not_dicom(server: Server, local: LocalAE, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_text("hello")
    with pytest.raises(PacsError, match="not a DICOM file"):
        send(server, [junk], local)


def test_a_closed_port_is_a_one_line_error(local: LocalAE) -> None:
    from tests.net.orthanc import free_port

    with pytest.raises(PacsError, match="did not answer") as info:
        echo(Server("nobody", "NOBODY", "127.0.0.1", free_port(), timeout_s=2), local)
    assert "\n" not in str(info.value)
