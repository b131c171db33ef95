"""DICOMweb with dicomweb-client: QIDO-RS (search), WADO-RS (retrieve), STOW-RS (send).

Credentials come from the server's auth file (``basic USER:PASSWORD`` or ``bearer TOKEN``; see
:mod:`.servers`), are set on the HTTP session only, and never appear in a message. A retrieve
streams the series' multipart parts: each instance is stored and indexed as its part arrives
(the first slice is viewable before the last comes), progress is reported per part, and
cancel takes effect at the next part. As with DIMSE, what the database has is not fetched
again, and failed connections are retried with back-off (at most 3 times by default).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lumbarview.core.errors import Cancelled
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.services.pacs.dimse import RetrieveResult, SendResult
from lumbarview.services.pacs.servers import PacsError, Server, read_credentials
from lumbarview.services.study_db import SeriesRecord, StudyDatabase, StudyRecord

__all__ = ["find_series", "find_studies", "retrieve", "send"]

ProgressCallback = Callable[[int, int], None]


class _Transient(PacsError):
    pass


def _session() -> Any:
    import requests

    class WildcardSession(requests.Session):
        """QIDO-RS wildcards as ``*``, not ``%2A``: the two are equivalent in a query (RFC 3986
        2.2), but Orthanc's DICOMweb plugin (1.7) matches ``%2A`` literally."""

        def prepare_request(self, request: Any) -> Any:
            prepared = super().prepare_request(request)
            if prepared.url and "?" in prepared.url:
                head, _, query = prepared.url.partition("?")
                prepared.url = head + "?" + query.replace("%2A", "*")
            return prepared

    return WildcardSession()


def _client(server: Server) -> Any:
    from dicomweb_client.api import DICOMwebClient

    if not server.is_web:
        raise PacsError(f"{server.describe()} is a DIMSE server; this operation needs a DICOMweb root")
    session = _session()
    if server.auth_file:
        credentials = read_credentials(server.auth_file)
        if credentials.scheme == "basic":
            session.auth = (credentials.user, credentials.secret)
        else:
            session.headers["Authorization"] = f"Bearer {credentials.secret}"
    if server.tls_ca:
        session.verify = server.tls_ca
    return DICOMwebClient(server.url, session=session)


@contextmanager
def _http_errors(server: Server, what: str) -> Iterator[None]:
    """HTTP and connection failures as one-line :class:`PacsError` (transient when a retry may help)."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        reason = exc.response.reason if exc.response is not None else ""
        hint = {401: " (the credentials were refused: check the auth file)",
                403: " (not allowed for these credentials)", 404: " (not found on this server)"}.get(code, "")
        raise (_Transient if code >= 500 else PacsError)(
            f"{server.describe()}: {what} failed: HTTP {code} {reason}{hint}") from None
    except requests.Timeout:
        raise _Transient(f"{server.describe()}: {what} timed out") from None
    except requests.ConnectionError as exc:
        detail = str(exc.args[0]) if exc.args else ""
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            raise PacsError(f"{server.describe()}: the server's TLS certificate was not trusted (give the CA file)")\
                from None
        raise _Transient(f"{server.describe()}: cannot connect ({type(exc).__name__})") from None


def _value(item: dict[str, Any], tag: str) -> str:
    element = item.get(tag) or {}
    values = element.get("Value") or [""]
    first = values[0]
    if isinstance(first, dict):  # a person name
        return str(first.get("Alphabetic", ""))
    return str(first)


def find_series(server: Server, study_uid: str) -> list[SeriesRecord]:
    client = _client(server)
    with _http_errors(server, "QIDO-RS series search"):
        found = client.search_for_series(study_instance_uid=study_uid,
                                         fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"])
    records = []
    for item in found:
        n = _value(item, "00201209")
        number = _value(item, "00200011")
        records.append(SeriesRecord(_value(item, "0020000E"), _value(item, "0008103E"), _value(item, "00080060"),
                                    int(n) if n.isdigit() else 0, int(number) if number.isdigit() else None))
    return sorted(records, key=lambda s: (s.series_number is None, s.series_number or 0, s.uid))


def find_studies(server: Server, patient_id: str = "", patient_name: str = "", date_from: str = "",
                 date_to: str = "", modality: str = "", description: str = "",
                 with_series: bool = True) -> list[StudyRecord]:
    filters: dict[str, str] = {}
    if patient_id:
        filters["PatientID"] = patient_id
    if patient_name:
        filters["PatientName"] = patient_name
    if date_from or date_to:
        filters["StudyDate"] = date_from if date_from == date_to else f"{date_from}-{date_to}"
    if modality:
        filters["ModalitiesInStudy"] = modality
    if description:
        filters["StudyDescription"] = description
    client = _client(server)
    with _http_errors(server, "QIDO-RS study search"):
        found = client.search_for_studies(search_filters=filters, fields=["StudyDescription"])
    studies = []
    for item in found:
        uid = _value(item, "0020000D")
        series = tuple(find_series(server, uid)) if with_series else ()
        if modality and series and not any(s.modality.upper() == modality.upper() for s in series):
            continue
        studies.append(StudyRecord(uid, _value(item, "00100020"), _value(item, "00100010"), _value(item, "00080020"),
                                   _value(item, "00081030"), series))
    return sorted(studies, key=lambda s: (s.study_date, s.study_uid), reverse=True)


def _part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def retrieve(server: Server, study_uid: str, db: StudyDatabase, series_uids: Sequence[str] = (),
             progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
             retries: int = 3, backoff_s: float = 0.5,
             on_instance: Callable[[str], None] | None = None) -> RetrieveResult:
    """WADO-RS the given series (all of the study's without any) into ``db``; see
    :func:`lumbarview.services.pacs.dimse.retrieve` for the contract."""
    client = _client(server)
    result = RetrieveResult(method="wado")
    origin = f"pacs:{server.name}"
    listed = find_series(server, study_uid)
    counts = {s.uid: s.n_instances for s in listed}
    wanted = list(series_uids) or list(counts)
    if not wanted:
        raise PacsError(f"{server.describe()} has no series in study {study_uid}")

    def instances(uid: str) -> set[str]:
        with _http_errors(server, "QIDO-RS instance search"):
            found = client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=uid,
                                                fields=["SOPInstanceUID"], get_remaining=True)
        uids = {_value(i, "00080018") for i in found} - {""}
        if not uids:
            raise PacsError(f"{server.describe()} has no instance of series {uid} in study {study_uid}")
        return uids

    # As with DIMSE: a series of which nothing is here is fetched whole without listing its
    # instances first (the series search gave their number, for the progress bar).
    expected: dict[str, set[str] | None] = {uid: instances(uid) if db.instances_of_series(uid) else None
                                            for uid in wanted}
    result.already_had = sum(len(db.instances_of_series(uid) & known) for uid, known in expected.items()
                             if known is not None)
    total = sum(len(known) if known is not None else counts.get(uid, 0) for uid, known in expected.items())
    done = result.already_had
    unusable: set[str] = set()

    def take(ds: Dataset) -> None:
        nonlocal done
        header, issue = db.add_bytes(_part10(ds), origin)
        if issue is not None:
            result.issues.append(issue)
            if header is None and issue.code != "db.duplicate":
                unusable.add(str(ds.get("SOPInstanceUID", "")))
        if header is not None:
            result.received += 1
            if header.study_uid != study_uid:
                result.issues.append(LoadIssue(Severity.WARNING, "pacs.other-study",
                                               f"the server sent an instance of another study ({header.study_uid}); "
                                               "it was kept under that study", header.path))
            if on_instance is not None:
                on_instance(header.path)
        done += 1
        if progress is not None:
            progress(done, max(total, done))

    if progress is not None:
        progress(done, total)
    for series_uid in wanted:
        attempt = 0
        while True:
            known = expected[series_uid]
            missing: list[str] = []
            if known is not None:
                missing = sorted(known - db.instances_of_series(series_uid) - unusable)
                if not missing:
                    break
                if attempt > retries:
                    raise PacsError(f"{len(missing)} of {len(known)} instances of series {series_uid} did not arrive "
                                    f"after {attempt} attempts (what arrived is kept)")
            attempt += 1
            result.attempts += 1
            try:
                with _http_errors(server, "WADO-RS retrieve"):
                    if known is None or len(missing) == len(known):
                        parts: Iterator[Dataset] = client.iter_series(study_uid, series_uid)
                    else:
                        parts = (client.retrieve_instance(study_uid, series_uid, uid) for uid in missing)
                    for ds in parts:
                        take(ds)
                        if cancel is not None and cancel.is_set():
                            close = getattr(parts, "close", None)
                            if close is not None:
                                close()
                            raise Cancelled("the retrieve was cancelled; what arrived is kept")
            except _Transient as exc:
                if known is None:
                    expected[series_uid] = instances(series_uid)
                result.messages.append(f"attempt {attempt} failed ({exc}); retrying")
                if attempt > retries:
                    raise PacsError(f"{exc}; gave up after {attempt} attempts (what arrived is kept; run the retrieve "
                                    "again for the rest)") from None
                if cancel is not None and cancel.wait(backoff_s * 2 ** (attempt - 1)):
                    raise Cancelled("the retrieve was cancelled; what arrived is kept") from None
                if cancel is None:
                    time.sleep(backoff_s * 2 ** (attempt - 1))
                continue
            if known is None:  # the whole series in one request: did all of it come?
                got = db.instances_of_series(series_uid)
                expected[series_uid] = (got if len(got | unusable) >= counts.get(series_uid, 0) > 0
                                        else instances(series_uid))
    result.expected = sum(len(known) for known in expected.values() if known is not None)
    db.flush()
    return result


def send(server: Server, files: Sequence[str | Path], db: StudyDatabase | None = None) -> SendResult:
    """STOW-RS the files (one request); records what was sent where in ``db`` when given."""
    datasets = []
    for f in files:
        try:
            ds = dcmread(f)
            ds.SOPInstanceUID  # noqa: B018 (required)
        except (OSError, InvalidDicomError, AttributeError) as exc:
            raise PacsError(f"{f}: not a DICOM file that can be sent ({exc})") from None
        datasets.append(ds)
    if not datasets:
        raise PacsError("no file to send")
    client = _client(server)
    with _http_errors(server, "STOW-RS"):
        response = client.store_instances(datasets)
    failed = [str(item.get("ReferencedSOPInstanceUID", "?")) for item in response.get("FailedSOPSequence", [])]
    sent = [str(ds.SOPInstanceUID) for ds in datasets if str(ds.SOPInstanceUID) not in failed]
    if db is not None and sent:
        db.record_sent(sent, server.describe())
    if failed:
        raise PacsError(f"{server.describe()} refused {len(failed)} of {len(datasets)} instance(s) (STOW-RS): "
                        + ", ".join(failed[:3]))
    return SendResult(sent=len(sent))
