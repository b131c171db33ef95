"""Error paths a real PACS will not produce on demand, against pynetdicom's in-process SCP."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from lumbarview.services.pacs.dimse import echo, find_studies, retrieve
from lumbarview.services.pacs.servers import LocalAE, PacsError, Server
from lumbarview.services.study_db import StudyDatabase
from tests.dicom_helpers import sagittal, write_series
from tests.net.fake_pacs import FakePacs
from tests.net.orthanc import free_port


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> list[Dataset]:
    files = write_series(tmp_path_factory.mktemp("fake-src"), sagittal(n=6), "T2 SAG", study="FAKE")
    return [pydicom.dcmread(f) for f in files]


@pytest.fixture
def local() -> LocalAE:
    return LocalAE("LUMBARVIEW", "127.0.0.1", free_port())


def _run(pacs: FakePacs, db: StudyDatabase, local: LocalAE, method: str = "get", **kw: Any) -> Any:
    server = Server("fake", "FAKEPACS", "127.0.0.1", pacs.port, timeout_s=kw.pop("timeout_s", 5))
    study = str(pacs.instances[0].StudyInstanceUID)
    return retrieve(server, study, db, [], method, local, backoff_s=0.01, **kw)


def test_a_rejected_get_context_falls_back_to_move_and_says_what_the_pacs_must_know(
        instances: list[Dataset], local: LocalAE, tmp_path: Path) -> None:
    pacs = FakePacs(instances, get=False, move_to=local.port)
    try:
        with StudyDatabase(tmp_path / "db") as db:
            result = _run(pacs, db, local)
            assert (result.method, result.received) == ("move", 6)
            assert any(f"AE title LUMBARVIEW, port {local.port}" in m and "must know" in m for m in result.messages)
    finally:
        pacs.stop()


def _fail_with(status: int) -> Any:
    def script(attempt: int, wanted: list[Dataset], assoc: Any) -> Iterator[Any]:
        yield 0xFF00, wanted[0]
        yield status, None
    return script


def test_out_of_resources_is_retried_with_back_off_then_reported(instances: list[Dataset], local: LocalAE,
                                                                 tmp_path: Path) -> None:
    pacs = FakePacs(instances, get_script=_fail_with(0xA702))
    try:
        with StudyDatabase(tmp_path / "db") as db:
            with pytest.raises(PacsError, match="0xA702") as info:
                _run(pacs, db, local)
            assert pacs.get_attempts == 4  # one try and three retries
            assert "gave up after 4 attempts" in str(info.value) and "\n" not in str(info.value)
            # Each retry asked only for what was missing, and what came was kept.
            assert [len(r.get("SOPInstanceUID", [])) for r in pacs.requests] == [0, 5, 4, 3]
            assert sum(s.n_instances for s in db.search()[0].series) == 4
    finally:
        pacs.stop()


def test_unable_to_process_is_not_retried(instances: list[Dataset], local: LocalAE, tmp_path: Path) -> None:
    pacs = FakePacs(instances, get_script=_fail_with(0xC000))
    try:
        with StudyDatabase(tmp_path / "db") as db, pytest.raises(PacsError, match="0xC000"):
            _run(pacs, db, local)
        assert pacs.get_attempts == 1
    finally:
        pacs.stop()


def test_a_series_split_over_a_dropped_connection_completes_on_retry(instances: list[Dataset], local: LocalAE,
                                                                     tmp_path: Path) -> None:
    def script(attempt: int, wanted: list[Dataset], assoc: Any) -> Iterator[Any]:
        if attempt == 1:
            for ds in wanted[:2]:
                yield 0xFF00, ds
            assoc.abort()  # the connection drops mid-series
            return
        for ds in wanted:
            yield 0xFF00, ds

    pacs = FakePacs(instances, get_script=script)
    try:
        with StudyDatabase(tmp_path / "db") as db:
            result = _run(pacs, db, local)
            assert result.received == 6 and result.attempts == 2
            assert len(pacs.requests[1].SOPInstanceUID) == 4  # only the four that had not come
    finally:
        pacs.stop()


def test_odd_instances_are_issues_and_nothing_else_is_lost(instances: list[Dataset], local: LocalAE,
                                                           tmp_path: Path) -> None:
    foreign = copy.deepcopy(instances[1])
    foreign.StudyInstanceUID = "1.2.3.999"
    foreign.SeriesInstanceUID = "1.2.3.999.7"
    foreign.SOPInstanceUID = "1.2.3.999.7.1"
    no_series = copy.deepcopy(instances[2])
    del no_series.SeriesInstanceUID

    def script(attempt: int, wanted: list[Dataset], assoc: Any) -> Iterator[Any]:
        if attempt > 1:  # the retry asks for instance 1 only (2 came, unusable)
            yield from ((0xFF00, ds) for ds in wanted)
            return
        yield 0xFF00, wanted[0]
        yield 0xFF00, wanted[0]  # a duplicate
        yield 0xFF00, foreign  # another study's
        yield 0xFF00, no_series  # malformed: no Series Instance UID
        for ds in wanted[3:]:
            yield 0xFF00, ds

    pacs = FakePacs(instances, get_script=script, count=10)
    try:
        with StudyDatabase(tmp_path / "db") as db:
            result = _run(pacs, db, local)
            codes = {i.code for i in result.issues}
            assert {"db.duplicate", "pacs.other-study", "pacs.malformed"} <= codes
            ours = db.search()
            assert {s.study_uid for s in ours} == {str(instances[0].StudyInstanceUID), "1.2.3.999"}
            kept = db.instances_of_series(str(instances[0].SeriesInstanceUID))
            # Every good instance came (instance 2 is the malformed one and stays missing; instance 1
            # came on the retry).
            assert kept == {str(d.SOPInstanceUID) for i, d in enumerate(instances) if i != 2}
    finally:
        pacs.stop()


def test_a_rejected_association_names_the_reason(instances: list[Dataset], local: LocalAE) -> None:
    pacs = FakePacs(instances, require_calling_aet=["SOMEONE"])
    try:
        with pytest.raises(PacsError, match=r"rejected the association: .*[Cc]alling AE title"):
            echo(Server("fake", "FAKEPACS", "127.0.0.1", pacs.port, timeout_s=5), local)
    finally:
        pacs.stop()


def test_a_peer_that_stops_answering_times_out(instances: list[Dataset], local: LocalAE) -> None:
    pacs = FakePacs(instances, find_delay_s=3)
    try:
        with pytest.raises(PacsError, match="stopped answering the C-FIND"):
            find_studies(Server("fake", "FAKEPACS", "127.0.0.1", pacs.port, timeout_s=1), local=local)
    finally:
        pacs.stop()


def test_a_failed_find_says_its_status(instances: list[Dataset], local: LocalAE) -> None:
    pacs = FakePacs(instances, find_status=0xA700)
    try:
        with pytest.raises(PacsError, match="0xA700"):
            find_studies(Server("fake", "FAKEPACS", "127.0.0.1", pacs.port, timeout_s=5), local=local)
    finally:
        pacs.stop()
