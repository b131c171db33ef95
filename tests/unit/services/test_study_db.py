"""The local study database: import, search, open, delete, schema versions, and a killed writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from lumbarview.core.errors import LoadError, NothingToOpenError
from lumbarview.services.study_db import SCHEMA_VERSION, StudyDatabase, StudyQuery
from tests.conftest import REPO
from tests.dicom_helpers import axial_block, sagittal, write_series


def _two_patients(root: Path) -> dict[str, list[Path]]:
    files = {
        "sag": write_series(root / "p1" / "sag", sagittal(n=6), "T2 SAG", 1, study_date="20240105"),
        "ax": write_series(root / "p1" / "ax", axial_block(0.0, 10.0, n=5), "T2 AX", 2, study_date="20240105"),
        "other": write_series(root / "p2", sagittal(n=3), "T1 SAG", 1, patient_id="Q7", study="S2",
                              patient_name="DOE^JANE", study_date="20191231", study_description="LUMBAR FOLLOW-UP"),
    }
    return files


def _read_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}


def test_import_in_place_lists_studies_and_series_as_the_files_say(tmp_path: Path) -> None:
    files = _two_patients(tmp_path / "data")
    with StudyDatabase(tmp_path / "db") as db:
        report = db.import_path(tmp_path / "data")
        assert report.added == 14 and report.already_there == 0 and not report.issues
        studies = {s.patient_id: s for s in db.search()}
        assert set(studies) == {"P1", "Q7"}
        p1 = studies["P1"]
        first = pydicom.dcmread(files["sag"][0], stop_before_pixels=True)
        assert p1.study_uid == first.StudyInstanceUID and p1.study_date == "20240105"
        assert {(s.description, s.modality, s.n_instances) for s in p1.series} == {("T2 SAG", "MR", 6),
                                                                                 ("T2 AX", "MR", 5)}
        # Referenced in place: the database lists the user's own files, nothing was copied.
        assert {str(p) for p in db.files(p1.study_uid)} == {str(p) for p in files["sag"] + files["ax"]}
        assert not any(db.store.rglob("*.dcm"))
        json_doc = studies["Q7"].to_json()
        assert set(json_doc) == {"study_uid", "patient_id", "patient_name", "study_date", "description", "series"}
        assert json_doc["patient_name"] == "DOE^JANE" and json_doc["description"] == "LUMBAR FOLLOW-UP"
        assert set(json_doc["series"][0]) == {"uid", "description", "modality", "n_instances"}
        # A second import finds everything there already.
        again = db.import_path(tmp_path / "data")
        assert again.added == 0 and again.already_there == 14


@pytest.mark.parametrize(("query", "expected"), [
    (StudyQuery(patient_id="Q7"), {"Q7"}),
    (StudyQuery(patient_id="q*"), {"Q7"}),
    (StudyQuery(patient_name="*jane"), {"Q7"}),
    (StudyQuery(patient_name="phantom*"), {"P1"}),
    (StudyQuery(date_from="20200101"), {"P1"}),
    (StudyQuery(date_to="20191231"), {"Q7"}),
    (StudyQuery(date_from="20191231", date_to="20240105"), {"P1", "Q7"}),
    (StudyQuery(modality="MR"), {"P1", "Q7"}),
    (StudyQuery(modality="CT"), set()),
    (StudyQuery(description="follow"), {"Q7"}),
    (StudyQuery(description="T2 AX"), {"P1"}),
    (StudyQuery(patient_id="P_"), set()),  # '_' is a literal, not SQL's wildcard
])
def test_search_filters(tmp_path: Path, query: StudyQuery, expected: set[str]) -> None:
    _two_patients(tmp_path / "data")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(tmp_path / "data")
        assert {s.patient_id for s in db.search(query)} == expected


def test_date_range_parsing() -> None:
    assert StudyQuery.parse_date_range("20240101-20241231") == ("20240101", "20241231")
    assert StudyQuery.parse_date_range("20240101-") == ("20240101", "")
    assert StudyQuery.parse_date_range("-20241231") == ("", "20241231")
    assert StudyQuery.parse_date_range("20240229") == ("20240229", "20240229")
    for bad in ("2024", "20241301-", "20240102-20240101", "yesterday", "-"):
        with pytest.raises(ValueError, match="date"):
            StudyQuery.parse_date_range(bad)


def test_open_study_from_the_database_matches_the_files(tmp_path: Path) -> None:
    files = _two_patients(tmp_path / "data")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(tmp_path / "data")
        study_uid = str(pydicom.dcmread(files["sag"][0], stop_before_pixels=True).StudyInstanceUID)
        dataset = db.open_study(study_uid)
        series = {s.description: s for s in dataset.cases[0].series}
        assert set(series) == {"T2 SAG", "T2 AX"}
        stack = series["T2 SAG"].stacks[0]
        assert stack.geometry.shape_kji == (6, 24, 20)
        pixels = stack.pixels()
        by_position = sorted((pydicom.dcmread(f) for f in files["sag"]),
                             key=lambda d: float(d.ImagePositionPatient[0]))
        got = sorted(range(6), key=lambda k: float(stack.geometry.index_to_lps((0, 0, k))[0]))
        for k, ds in zip(got, by_position, strict=True):
            assert (pixels[k] == ds.pixel_array).all()
        with pytest.raises(NothingToOpenError, match="no study"):
            db.open_study("1.2.3.4")


def test_copy_import_and_delete_keep_files_outside_the_store(tmp_path: Path) -> None:
    files = _two_patients(tmp_path / "data")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(tmp_path / "data" / "p2", copy=True)
        db.import_path(tmp_path / "data" / "p1")  # in place
        stored = list(db.store.rglob("*.dcm"))
        assert len(stored) == 3 and _read_uids(stored) == _read_uids(files["other"])
        p1, q7 = sorted(db.search(), key=lambda s: s.patient_id)
        assert db.delete_study(p1.study_uid) == (11, 0)
        assert all(f.is_file() for f in files["sag"] + files["ax"])  # the user's files are untouched
        assert db.delete_study(q7.study_uid) == (3, 3)
        assert not list(db.store.rglob("*.dcm"))
        assert all(f.is_file() for f in files["other"])  # the copies went, the originals stay
        assert db.search() == []


def test_duplicates_malformed_files_and_missing_identity_are_issues(tmp_path: Path) -> None:
    files = _two_patients(tmp_path / "data")
    (tmp_path / "data" / "p1" / "copy.dcm").write_bytes(files["sag"][0].read_bytes())
    (tmp_path / "data" / "p1" / "broken.dcm").write_bytes(files["sag"][1].read_bytes()[:400])
    (tmp_path / "data" / "notes.txt").write_text("not dicom")
    with StudyDatabase(tmp_path / "db") as db:
        report = db.import_path(tmp_path / "data")
        codes = sorted(i.code for i in report.issues)
        assert "db.duplicate" in codes
        assert report.added == 14  # nothing else lost
        assert any(i.path and i.path.endswith("broken.dcm") for i in report.issues)


def test_received_bytes_are_stored_atomically_and_indexed(tmp_path: Path) -> None:
    files = write_series(tmp_path / "in", sagittal(n=3), "T2 SAG")
    with StudyDatabase(tmp_path / "db") as db:
        header, issue = db.add_bytes(files[0].read_bytes(), "pacs:TEST")
        assert issue is None and header is not None
        assert Path(header.path).read_bytes() == files[0].read_bytes()
        assert db.has_instance(header.sop_instance_uid)
        _, dup = db.add_bytes(files[0].read_bytes(), "pacs:TEST")
        assert dup is not None and dup.code == "db.duplicate"
        _, bad = db.add_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00", "pacs:TEST")
        assert bad is not None and bad.code == "pacs.malformed"
        _, junk = db.add_bytes(b"hello", "pacs:TEST")
        assert junk is not None and junk.code == "pacs.malformed"
        assert not list((db.store / ".incoming").iterdir())  # nothing left half-way
        assert len(db.instances_of_series(header.series_uid)) == 1


def test_schema_version_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    with StudyDatabase(tmp_path / "db") as db:
        assert db.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "db" / StudyDatabase.FILE_NAME)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute("UPDATE schema_info SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(LoadError, match="newer"):
        StudyDatabase(tmp_path / "db")


def test_a_damaged_database_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / StudyDatabase.FILE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LoadError, match="cannot be read"):
        StudyDatabase(tmp_path / "db")


_WRITER = """
import sys
from pathlib import Path
from lumbarview.services.study_db import StudyDatabase
db = StudyDatabase(Path(sys.argv[1]))
blobs = [Path(p).read_bytes() for p in sys.argv[2:]]
print("ready", flush=True)
for n, b in enumerate(blobs, start=1):
    db.add_bytes(b, "pacs:KILLTEST")
    print(f"added {n}", flush=True)
print("done", flush=True)
"""


def test_the_database_survives_a_killed_writer(tmp_path: Path) -> None:
    files = write_series(tmp_path / "in", sagittal(n=40, rows=64, cols=64), "T2 SAG")
    survivors = []
    # Killed once the writer says it added 2, 15 and 30 instances (by count, not by a sleep that a
    # loaded machine stretches): the kill lands while it is writing the next ones.
    for after in (2, 15, 30):
        folder = tmp_path / f"db-{after}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), *map(str, files)],
                                stdout=subprocess.PIPE, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        for line in iter(proc.stdout.readline, b""):
            if line.strip() == f"added {after}".encode():
                break
        else:
            raise AssertionError(f"the writer stopped before adding {after} instances")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with StudyDatabase(folder) as db:
            assert db._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            listed = [f for s in db.search() for f in db.files(s.study_uid)]
            # Every instance the database lists is there, whole.
            for f in listed:
                assert pydicom.dcmread(f).pixel_array.shape == (64, 64)
            survivors.append(len(listed))
            # Another writer can go on: a retry adds only what is missing.
            for f in files:
                db.add_bytes(f.read_bytes(), "pacs:KILLTEST")
            assert sum(s.n_instances for s in db.search()[0].series) == 40
    assert any(0 < n < 40 for n in survivors), survivors  # at least one kill landed mid-way


def test_a_series_filed_under_two_studies_is_refused_with_an_issue(tmp_path: Path) -> None:
    files = write_series(tmp_path / "a", sagittal(n=2), "T2 SAG", study="A")
    ds = pydicom.dcmread(files[0])
    ds.StudyInstanceUID = "1.2.3.4.5"  # same series UID, another study
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.save_as(tmp_path / "odd.dcm")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(tmp_path / "a")
        report = db.import_path(tmp_path / "odd.dcm", copy=True)
        assert [i.code for i in report.issues] == ["db.series-conflict"] and report.added == 0
        header, issue = db.add_bytes((tmp_path / "odd.dcm").read_bytes(), "pacs:X")
        assert header is None and issue is not None and issue.code == "db.series-conflict"
        assert [s.study_uid for s in db.search()] == [str(pydicom.dcmread(files[0]).StudyInstanceUID)]
        assert not list(db.store.rglob("*.dcm"))  # neither the copy made at import nor the received one stays


def test_reopen_uses_the_kept_assembly_until_a_file_changes(tmp_path: Path) -> None:
    files = _two_patients(tmp_path / "data")
    with StudyDatabase(tmp_path / "db") as db:
        db.import_path(tmp_path / "data")
        first = db.open_studies()
        assert db._db.execute("SELECT COUNT(*) FROM assemblies").fetchone()[0] == 2
        second = db.open_studies()  # from the kept assemblies
        shape = {s.description: s.stacks[0].geometry.shape_kji for c in second.cases for s in c.series}
        assert shape == {s.description: s.stacks[0].geometry.shape_kji for c in first.cases for s in c.series}
        sag = next(s for c in second.cases for s in c.series if s.description == "T2 SAG")
        read = [pydicom.dcmread(f) for f in files["sag"]]
        expected = {float(d.ImagePositionPatient[0]): d.pixel_array for d in read}
        pixels = sag.stacks[0].pixels()  # decoded through the stored headers
        for k in range(6):
            x = float(sag.stacks[0].geometry.index_to_lps((0, 0, k))[0])
            assert (pixels[k] == expected[min(expected, key=lambda e: abs(e - x))]).all()
        # A file rewritten with other pixels is read again; a deleted one is an issue.
        ds = pydicom.dcmread(files["sag"][0])
        ds.PixelData = (ds.pixel_array * 0 + 7).astype("<u2").tobytes()
        ds.save_as(files["sag"][0])
        files["ax"][0].unlink()
        third = db.open_studies()
        sag3 = next(s for c in third.cases for s in c.series if s.description == "T2 SAG")
        assert (sag3.stacks[0].pixels() == 7).all(axis=(1, 2)).sum() == 1
        assert any(i.code == "db.missing-file" for c in third.cases for i in c.issues)
        ax3 = next(s for c in third.cases for s in c.series if s.description == "T2 AX")
        assert sum(k.geometry.shape_kji[0] for k in ax3.stacks) == 4


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    from lumbarview.services import study_db

    write_series(tmp_path / "data", sagittal(n=2), "OLD")
    folder = tmp_path / "db"
    folder.mkdir()
    con = sqlite3.connect(folder / StudyDatabase.FILE_NAME)
    con.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
    for statement in filter(str.strip, study_db._SCHEMA_V1.split(";")):
        con.execute(statement)
    con.execute("INSERT INTO schema_info VALUES (1)")
    con.execute("INSERT INTO patients VALUES (1, 'OLD1', 'OLD^ONE')")
    con.execute("INSERT INTO studies VALUES ('1.2.3', 1, '20000101', 'kept', 0)")
    con.commit()
    con.close()
    with StudyDatabase(folder) as db:
        assert db.schema_version == SCHEMA_VERSION == 2
        assert [(s.patient_id, s.description) for s in db.search()] == [("OLD1", "kept")]
        db.import_path(tmp_path / "data")
        db.open_studies([s.study_uid for s in db.search() if s.patient_id == "P1"])
        assert db._db.execute("SELECT COUNT(*) FROM assemblies").fetchone()[0] == 1


def test_a_stored_file_cut_short_is_fetched_again(tmp_path: Path) -> None:
    """What a power cut can leave (a file of the store shorter than indexed) is not counted as
    present, and the same instance arriving again replaces it."""
    files = write_series(tmp_path / "in", sagittal(n=2), "T2 SAG")
    with StudyDatabase(tmp_path / "db") as db:
        header, _ = db.add_bytes(files[0].read_bytes(), "pacs:TEST")
        assert header is not None
        Path(header.path).write_bytes(b"")
        assert db.instances_of_series(header.series_uid) == set()
        again, issue = db.add_bytes(files[0].read_bytes(), "pacs:TEST")
        assert issue is None and again is not None
        assert Path(again.path).read_bytes() == files[0].read_bytes()
        assert db.instances_of_series(header.series_uid) == {header.sop_instance_uid}


def test_import_a_dicomdir_export(tmp_path: Path) -> None:
    """The phantom's UniData export: a DICOMDIR and extension-less files (pydicom's FileSet)."""
    from lumbarview.phantom.layouts import Sizes, write_unidata
    from lumbarview.phantom.spine import LumbarPhantom, PhantomParams

    root = write_unidata(tmp_path / "disc", LumbarPhantom(PhantomParams()), Sizes.small())
    dicomdir = root / "DICOMDIR" if root.is_dir() else root
    listed = [str(r.ReferencedFileID if isinstance(r.ReferencedFileID, str) else "/".join(r.ReferencedFileID))
              for r in pydicom.dcmread(dicomdir).DirectoryRecordSequence if "ReferencedFileID" in r]
    with StudyDatabase(tmp_path / "db") as db:
        report = db.import_path(dicomdir.parent, copy=True)
        assert report.added == len(listed) > 0
        rows = db._db.execute("SELECT DISTINCT origin FROM instances").fetchall()
        assert rows == [("dicomdir",)]
        assert sum(s.n_instances for st in db.search() for s in st.series) == len(listed)
