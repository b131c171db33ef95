"""DICOMweb against the real Orthanc (its DICOMweb plugin): QIDO-RS, WADO-RS, STOW-RS, basic auth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from lumbarview.core.errors import Cancelled
from lumbarview.services.pacs import web
from lumbarview.services.pacs.servers import PacsError, Server
from lumbarview.services.study_db import StudyDatabase
from tests.dicom_helpers import sagittal, write_series
from tests.net.conftest import _need_orthanc
from tests.net.orthanc import Orthanc
from tests.net.test_dimse_orthanc import _assert_same_instances

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def web_stored(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("web-src")
    files = {"sag": write_series(root / "sag", sagittal(n=10, rows=30, cols=26), "WEB SAG", 1, study="WEB",
                                 patient_id="W1", patient_name="WEB^PATIENT", study_date="20230405")}
    orthanc.upload(files["sag"])
    return files


@pytest.fixture
def server(orthanc: Orthanc) -> Server:
    return Server("orthanc-web", url=orthanc.dicomweb_root, timeout_s=10)


def _study(files: list[Path]) -> tuple[str, str]:
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def test_qido_finds_studies_and_series(server: Server, web_stored: dict[str, list[Path]]) -> None:
    studies = web.find_studies(server, patient_id="W1")
    assert [s.study_uid for s in studies] == [_study(web_stored["sag"])[0]]
    assert studies[0].patient_name == "WEB^PATIENT" and studies[0].study_date == "20230405"
    assert [(s.description, s.modality, s.n_instances) for s in studies[0].series] == [("WEB SAG", "MR", 10)]
    assert [s.patient_id for s in web.find_studies(server, patient_name="WEB*")] == ["W1"]  # a wildcard
    assert web.find_studies(server, patient_name="nobody*") == []


def test_wado_retrieve_is_equal_and_streams(server: Server, tmp_path: Path,
                                           web_stored: dict[str, list[Path]]) -> None:
    study, series = _study(web_stored["sag"])
    seen: list[tuple[int, int]] = []
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(web_stored["sag"][4], copy=True)  # one we have: not fetched again
        result = web.retrieve(server, study, db, [series], progress=lambda d, t: seen.append((d, t)))
        assert (result.received, result.already_had, result.expected) == (9, 1, 10)
        assert seen[0] == (1, 10) and seen[-1] == (10, 10) and len(seen) == 10
        _assert_same_instances(db.files(study), web_stored["sag"])


def test_wado_whole_series_and_cancel(server: Server, tmp_path: Path, web_stored: dict[str, list[Path]]) -> None:
    study, series = _study(web_stored["sag"])
    cancel = threading.Event()
    with StudyDatabase(tmp_path / "db") as db:
        with pytest.raises(Cancelled):
            web.retrieve(server, study, db, [], cancel=cancel, on_instance=lambda p: cancel.set())
        assert len(db.instances_of_series(series)) == 1  # what came is kept
        result = web.retrieve(server, study, db, [])
        assert (result.received, result.already_had) == (9, 1)


def test_stow_sends_and_records(orthanc: Orthanc, server: Server, tmp_path: Path) -> None:
    files = write_series(tmp_path / "out", sagittal(n=2), "STOWED", 4, study="STOW", patient_id="ST1")
    with StudyDatabase(tmp_path / "db") as db:
        assert web.send(server, files, db).sent == 2
        assert db.sent_to(str(pydicom.dcmread(files[1]).SOPInstanceUID)) == [server.describe()]
    assert len(orthanc.post("/tools/find", b'{"Level": "Instance", "Query": {"PatientID": "ST1"}}')) == 2


@pytest.fixture(scope="module")
def guarded_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    _need_orthanc()
    server = Orthanc(tmp_path_factory.mktemp("orthanc-auth"), 11998, tls={
        "AuthenticationEnabled": True, "RegisteredUsers": {"alice": "s3cret-Pw"}})
    server.start(check_http=False)
    try:
        yield server
    finally:
        server.stop()


def test_basic_auth_from_a_file_and_a_refusal_that_shows_no_secret(guarded_orthanc: Orthanc, tmp_path: Path) -> None:
    good = tmp_path / "good.auth"
    good.write_text("basic alice:s3cret-Pw\n")
    bad = tmp_path / "bad.auth"
    bad.write_text("basic alice:wrong-Pw\n")
    ok = Server("g", url=guarded_orthanc.dicomweb_root, auth_file=str(good))
    assert web.find_studies(ok) == []
    with pytest.raises(PacsError, match="HTTP 401") as info:
        web.find_studies(Server("g", url=guarded_orthanc.dicomweb_root, auth_file=str(bad)))
    assert "wrong-Pw" not in str(info.value) and "alice" not in str(info.value)
    with pytest.raises(PacsError, match="HTTP 401"):
        web.find_studies(Server("g", url=guarded_orthanc.dicomweb_root))
