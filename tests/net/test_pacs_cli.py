"""The command line contracts of issue 25 against the real Orthanc, through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from lumbarview.cli import main
from tests.dicom_helpers import sagittal, write_series
from tests.net.orthanc import OUR_AET, Orthanc, free_port

pytestmark = pytest.mark.orthanc

STUDY_KEYS = {"study_uid", "patient_id", "patient_name", "study_date", "description", "series"}
SERIES_KEYS = {"uid", "description", "modality", "n_instances"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, move_port: int) -> Path:
    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("LUMBARVIEW_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "servers.json").write_text(json.dumps({"local": {"aet": OUR_AET, "host": "127.0.0.1",
                                                                            "port": move_port}}))
    return tmp_path


@pytest.fixture(scope="module")
def cli_study(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = write_series(tmp_path_factory.mktemp("cli-src"), sagittal(n=5), "CLI SAG", 3, study="CLI",
                         patient_id="C1", patient_name="CLI^TEST", study_date="20220202")
    orthanc.upload(files)
    return files


def _json_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, object]]:
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, list)
    return doc


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lumbarview: "), err
    for needle in needles:
        assert needle in err, err
    return err


def test_find_get_list_view_and_send(orthanc: Orthanc, cli_study: list[Path], env: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    dimse = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    study_uid = str(pydicom.dcmread(cli_study[0]).StudyInstanceUID)
    assert main(["pacs", "echo", dimse]) == 0
    assert "answers (C-ECHO" in capsys.readouterr().out
    assert main(["pacs", "echo", orthanc.dicomweb_root]) == 0
    assert "answers (QIDO-RS)" in capsys.readouterr().out
    found = _json_out(capsys, ["pacs", "find", dimse, "--patient-id", "C1", "--date", "20220101-20221231",
                               "--modality", "MR", "--json"])
    assert [s["study_uid"] for s in found] == [study_uid]
    assert set(found[0]) == STUDY_KEYS and set(found[0]["series"][0]) == SERIES_KEYS  # type: ignore[index]
    web_found = _json_out(capsys, ["pacs", "find", orthanc.dicomweb_root, "--patient-name", "CLI*", "--json"])
    assert web_found == found  # the same answer by QIDO-RS as by C-FIND
    assert main(["pacs", "get", dimse, "--study", study_uid, "--method", "move"]) == 0
    assert "retrieved 5 instance(s) by MOVE" in capsys.readouterr().out
    listed = _json_out(capsys, ["db", "list", "--json"])
    assert listed == found  # what the database holds now, as the PACS described it
    assert main(["db", "list"]) == 0
    assert "CLI^TEST" in capsys.readouterr().out
    shot = env / "view.png"
    assert main(["view", "--study", study_uid, "--screenshot", str(shot), "--size", "800x500"]) == 0
    assert shot.is_file() and shot.stat().st_size > 1000
    sent = write_series(env / "send", sagittal(n=2), "CLI SENT", 7, study="CLISEND", patient_id="C2")
    assert main(["pacs", "send", dimse, *map(str, sent)]) == 0
    assert "sent 2 instance(s)" in capsys.readouterr().out


def test_db_import_and_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_series(env / "data", sagittal(n=3), "IMPORTED", 1, study="IMP", patient_id="I1")
    assert main(["db", "import", str(env / "data")]) == 0
    assert "imported 3 instance(s) of 1 study" in capsys.readouterr().out
    listed = _json_out(capsys, ["db", "list", "--json"])
    assert [(s["patient_id"], s["series"][0]["n_instances"]) for s in listed] == [("I1", 3)]  # type: ignore[index]
    _one_line_error(capsys, ["db", "import", str(env / "nowhere")], "no such file")


def test_bad_servers_and_arguments_are_one_line_errors(orthanc: Orthanc, env: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["pacs", "echo", "dicom://TOO-LONG-AE-TITLE-X@127.0.0.1:104"], "1 to 16 characters")
    _one_line_error(capsys, ["pacs", "echo", "dicom://PACS@bad_host!:104"], "not a host name")
    _one_line_error(capsys, ["pacs", "echo", "dicom://PACS@127.0.0.1:70000"], "1 to 65535")
    _one_line_error(capsys, ["pacs", "echo", "nosuchserver"], "no server named 'nosuchserver'")
    _one_line_error(capsys, ["pacs", "echo", f"dicom://X@127.0.0.1:{free_port()}"], "did not answer")
    _one_line_error(capsys, ["pacs", "find", f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", "--date",
                             "20221301-"], "--date")
    _one_line_error(capsys, ["pacs", "get", f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", "--study",
                             "1.2.3.4.5.6.7"], "no series")
    _one_line_error(capsys, ["pacs", "echo", orthanc.dicomweb_root + "/nothing-here"], "HTTP 404")
    _one_line_error(capsys, ["view", "--study", "1.2.3"], "no study 1.2.3")


def test_a_configured_server_by_name(orthanc: Orthanc, env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = env / "config" / "servers.json"
    config.write_text(json.dumps({"servers": {"here": {"aet": orthanc.aet, "host": "127.0.0.1",
                                                       "port": orthanc.dicom_port},
                                              "web": {"url": orthanc.dicomweb_root}}}))
    assert main(["pacs", "echo", "here"]) == 0
    assert main(["pacs", "echo", "web"]) == 0
    config.write_text(json.dumps({"servers": {"broken": {"aet": "A", "host": "h", "port": "x"}}}))
    _one_line_error(capsys, ["pacs", "echo", "broken"], "server 'broken'", "not a number")
