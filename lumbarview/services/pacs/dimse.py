"""DIMSE with pynetdicom: C-ECHO, C-FIND, retrieve by C-GET or C-MOVE, C-STORE.

Retrieval works series by series (never a whole study in one request): the series' instances
are listed (C-FIND, IMAGE level), what the database already holds is left out, and the rest is
fetched; each instance is written atomically into the database's store and indexed as it
arrives (:meth:`StudyDatabase.add_bytes`), so that a dropped connection keeps what came and a
retry fetches only what is missing. Retries back off (0.5 s, 1 s, 2 s ...; at most 3 by
default). Cancel sends C-CANCEL and aborts the association if the peer has not stopped within
half a second.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lumbarview.core.errors import Cancelled
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.services.pacs.servers import LocalAE, PacsError, Server
from lumbarview.services.study_db import SeriesRecord, StudyDatabase, StudyRecord

__all__ = ["RetrieveResult", "SendResult", "echo", "find", "find_series", "find_studies", "retrieve", "send"]

LOG = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
InstanceCallback = Callable[[str], None]

# The storage classes a C-GET offers to receive (a C-GET association has at most 128
# presentation contexts; the query/retrieve models take a few).
_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray (presentation)
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray (processing)
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.66",  # Raw Data
)

_STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
_STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
_STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
_PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
_VERIFICATION = "1.2.840.10008.1.1"

#: Failure statuses worth a retry: out of resources (a busy PACS) and sub-operations that failed.
_TRANSIENT = {0xA700, 0xA701, 0xA702, 0xB000}


def _status_text(code: int, service: str) -> str:
    from pynetdicom import status as st

    table = {"find": st.QR_FIND_SERVICE_CLASS_STATUS, "get": st.QR_GET_SERVICE_CLASS_STATUS,
             "move": st.QR_MOVE_SERVICE_CLASS_STATUS, "store": st.STORAGE_SERVICE_CLASS_STATUS}.get(service, {})
    description = table.get(code) or st.GENERAL_STATUS.get(code)
    if description is None:
        category = st.code_to_category(code)
        return f"0x{code:04X} ({category.lower()})"
    return f"0x{code:04X} ({description[1].rstrip('.')})"


class _Transient(PacsError):
    """A failure a retry may get past (connection, timeout, out of resources)."""


class _NoContext(PacsError):
    """The peer accepted the association but none of its presentation contexts."""


def _ssl_context(server: Server) -> ssl.SSLContext | None:
    if not server.tls_ca:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server.tls_ca)
        if server.tls_cert:
            ctx.load_cert_chain(server.tls_cert, server.tls_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"TLS set-up failed: {getattr(exc, 'strerror', None) or exc} (CA file {server.tls_ca}"
                        + (f", client certificate {server.tls_cert}" if server.tls_cert else "") + ")") from None
    return ctx


@contextmanager
def _associate(server: Server, local: LocalAE, contexts: Sequence[tuple[str, Sequence[str] | None]],
               roles: Sequence[Any] = (), handlers: Sequence[Any] = ()) -> Iterator[Any]:
    """An established association to ``server`` (released, or aborted, on the way out)."""
    from pynetdicom import AE, evt
    from pynetdicom.pdu_primitives import A_ASSOCIATE

    if server.is_web:
        raise PacsError(f"{server.describe()} is a DICOMweb root; this operation needs a DIMSE server")
    ae = AE(ae_title=local.aet)
    ae.acse_timeout = server.timeout_s
    ae.dimse_timeout = server.timeout_s
    ae.network_timeout = server.timeout_s
    ae.connection_timeout = min(server.timeout_s, 10.0)
    for uid, syntaxes in contexts:
        if syntaxes is None:
            ae.add_requested_context(uid)
        else:
            ae.add_requested_context(uid, list(syntaxes))
    rejection: list[str] = []
    connected: list[bool] = []

    def on_acse(event: Any) -> None:
        primitive = event.primitive
        if isinstance(primitive, A_ASSOCIATE) and primitive.result == 0x00:
            connected.append(False)  # an A-ASSOCIATE-AC: the peer answered
        if isinstance(primitive, A_ASSOCIATE) and primitive.result in (0x01, 0x02):
            rejection.append(f"{primitive.reason_str} ({primitive.result_str.lower()}, {primitive.source_str})")

    ctx = _ssl_context(server)
    try:
        assoc = ae.associate(server.host, server.port, ae_title=server.aet, ext_neg=list(roles) or None,
                             evt_handlers=[(evt.EVT_ACSE_RECV, on_acse),
                                           (evt.EVT_CONN_OPEN, lambda e: connected.append(True)), *handlers],
                             tls_args=(ctx, server.host) if ctx is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise _Transient(f"{server.describe()}: cannot connect ({exc})") from None
    if not assoc.is_established:
        ae.shutdown()
        if assoc.is_rejected:
            reason = rejection[0] if rejection else "no reason given"
            raise PacsError(f"{server.describe()} rejected the association: {reason} (our AE title {local.aet})")
        if assoc.is_aborted and False in connected:
            raise _NoContext(f"{server.describe()} accepted none of the requested presentation contexts")
        if assoc.is_aborted and connected:
            raise _Transient(f"{server.describe()} aborted the association" + (
                " (the TLS handshake failed: check the CA file and the client certificate)" if ctx
                else " (if this is a TLS port, give --tls-ca)"))
        raise _Transient(f"{server.describe()} did not answer: connection refused, or no association within "
                         f"{server.timeout_s:g} s" + ("" if ctx or not connected else
                                                       " (is it a TLS port? give --tls-ca)"))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            with suppress(Exception):
                assoc.release()
        ae.shutdown()


def _accepted(assoc: Any, uid: str, what: str, server: Server) -> Any:
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == uid:
            return cx
    raise PacsError(f"{server.describe()} refused the {what} presentation context ({uid})")


# -- C-ECHO -----------------------------------------------------------------------------------------
def echo(server: Server, local: LocalAE | None = None) -> float:
    """C-ECHO; returns the round trip in seconds."""
    local = local or LocalAE()
    start = time.perf_counter()
    with _associate(server, local, [(_VERIFICATION, None)]) as assoc:
        _accepted(assoc, _VERIFICATION, "Verification", server)
        status = assoc.send_c_echo()
        if "Status" not in status:
            raise PacsError(f"{server.describe()} did not answer the C-ECHO within {server.timeout_s:g} s")
        if status.Status != 0:
            raise PacsError(f"{server.describe()} answered the C-ECHO with {_status_text(status.Status, 'echo')}")
    return time.perf_counter() - start


# -- C-FIND -----------------------------------------------------------------------------------------
def find(server: Server, identifier: Dataset, local: LocalAE | None = None) -> list[Dataset]:
    """One C-FIND (patient root at PATIENT level, study root otherwise); the matches."""
    local = local or LocalAE()
    model = _PATIENT_FIND if identifier.get("QueryRetrieveLevel") == "PATIENT" else _STUDY_FIND
    matches: list[Dataset] = []
    with _associate(server, local, [(model, None)]) as assoc:
        _accepted(assoc, model, "C-FIND", server)
        for status, found in assoc.send_c_find(identifier, model):
            if "Status" not in status:
                raise PacsError(f"{server.describe()} stopped answering the C-FIND (no response within "
                                f"{server.timeout_s:g} s, or the association was aborted)")
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if found is not None:
                    matches.append(found)
            elif code == 0:
                break
            else:
                raise PacsError(f"{server.describe()} failed the C-FIND: {_status_text(code, 'find')}")
    return matches


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value)


def find_series(server: Server, study_uid: str, local: LocalAE | None = None) -> list[SeriesRecord]:
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = ""
    q.SeriesDescription = ""
    q.Modality = ""
    q.SeriesNumber = ""
    q.NumberOfSeriesRelatedInstances = ""
    records = []
    for ds in find(server, q, local):
        n = ds.get("NumberOfSeriesRelatedInstances")
        number = ds.get("SeriesNumber")
        records.append(SeriesRecord(_text(ds, "SeriesInstanceUID"), _text(ds, "SeriesDescription"),
                                    _text(ds, "Modality"), int(n) if n not in (None, "") else 0,
                                    int(number) if number not in (None, "") else None))
    return sorted(records, key=lambda s: (s.series_number is None, s.series_number or 0, s.uid))


def find_studies(server: Server, patient_id: str = "", patient_name: str = "", date_from: str = "",
                 date_to: str = "", modality: str = "", description: str = "",
                 local: LocalAE | None = None, with_series: bool = True) -> list[StudyRecord]:
    """Studies matching the keys (DICOM wildcard matching on the PACS), each with its series."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientID = patient_id
    q.PatientName = patient_name
    q.StudyDate = f"{date_from}-{date_to}" if (date_from or date_to) and date_from != date_to else date_from
    q.StudyDescription = description
    q.StudyInstanceUID = ""
    q.ModalitiesInStudy = modality
    studies = []
    for ds in find(server, q, local):
        uid = _text(ds, "StudyInstanceUID")
        series = tuple(find_series(server, uid, local)) if with_series else ()
        if modality and series and not any(s.modality.upper() == modality.upper() for s in series):
            continue  # a PACS that ignores ModalitiesInStudy
        studies.append(StudyRecord(uid, _text(ds, "PatientID"), _text(ds, "PatientName"), _text(ds, "StudyDate"),
                                   _text(ds, "StudyDescription"), series))
    return sorted(studies, key=lambda s: (s.study_date, s.study_uid), reverse=True)


def _series_count(server: Server, study_uid: str, series_uid: str, local: LocalAE) -> int:
    """How many instances the PACS says the series has (0 when it does not say)."""
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = series_uid
    q.NumberOfSeriesRelatedInstances = ""
    counts = [ds.get("NumberOfSeriesRelatedInstances") for ds in find(server, q, local)]
    return max((int(n) for n in counts if n not in (None, "")), default=0)


def _listed(server: Server, study_uid: str, series_uid: str, local: LocalAE) -> set[str]:
    """The series' SOP Instance UIDs on the PACS (refused when it has none)."""
    found = _instances(server, study_uid, series_uid, local)
    if not found:
        raise PacsError(f"{server.describe()} has no instance of series {series_uid} in study {study_uid}")
    return found


def _instances(server: Server, study_uid: str, series_uid: str, local: LocalAE) -> set[str]:
    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = series_uid
    q.SOPInstanceUID = ""
    return {_text(ds, "SOPInstanceUID") for ds in find(server, q, local)} - {""}


# -- retrieve ---------------------------------------------------------------------------------------
@dataclass
class RetrieveResult:
    method: str = "get"
    received: int = 0
    already_had: int = 0
    expected: int = 0
    attempts: int = 0
    issues: list[LoadIssue] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class _Receiver:
    """Stores what arrives (C-STORE sub-operations of a C-GET, or our SCP's during a C-MOVE)."""

    def __init__(self, db: StudyDatabase, origin: str, study_uid: str, result: RetrieveResult,
                 on_instance: InstanceCallback | None, tick: Callable[[], None]) -> None:
        self.db = db
        self.origin = origin
        self.study_uid = study_uid
        self.result = result
        self.on_instance = on_instance
        self.tick = tick
        self.unusable: set[str] = set()
        self.lock = threading.Lock()

    def handle(self, event: Any) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # pynetdicom could not make a file of it
            self._unusable(event, f"a received instance could not be encoded ({exc})")
            return 0xC210
        header, issue = self.db.add_bytes(data, self.origin)
        with self.lock:
            if issue is not None:
                self.result.issues.append(issue)
                if header is None and issue.code != "db.duplicate":
                    self.unusable.add(str(getattr(event.request, "AffectedSOPInstanceUID", "")))
            if header is not None:
                self.result.received += 1
                if header.study_uid != self.study_uid:
                    self.result.issues.append(LoadIssue(
                        Severity.WARNING, "pacs.other-study",
                        f"the PACS sent an instance of another study ({header.study_uid}); it was kept under "
                        "that study", header.path))
                self._budget(header.path, header.rows, header.cols, header.n_frames, header.samples_per_pixel,
                             header.bits_allocated)
        if header is not None and self.on_instance is not None:
            self.on_instance(header.path)
        self.tick()
        return 0x0000

    def _budget(self, path: str, *sizes: int) -> None:
        from lumbarview.core.limits import ResourceLimitError
        from lumbarview.io.dicom.headers import check_pixel_budget

        try:
            check_pixel_budget(path, *sizes)
        except ResourceLimitError as exc:
            self.result.issues.append(LoadIssue(Severity.WARNING, "pacs.over-budget",
                                                f"a received instance is kept but exceeds the memory budget: {exc}",
                                                path))

    def _unusable(self, event: Any, message: str) -> None:
        with self.lock:
            self.unusable.add(str(getattr(event.request, "AffectedSOPInstanceUID", "")))
            self.result.issues.append(LoadIssue(Severity.ERROR, "pacs.malformed", message, self.origin))


def _storage_contexts() -> list[tuple[str, Sequence[str] | None]]:
    from pynetdicom import ALL_TRANSFER_SYNTAXES

    return [(uid, ALL_TRANSFER_SYNTAXES) for uid in _STORAGE_CLASSES]


def _identifier(study_uid: str, series_uid: str, sop_uids: Sequence[str]) -> Dataset:
    q = Dataset()
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = series_uid
    if sop_uids:
        q.QueryRetrieveLevel = "IMAGE"
        q.SOPInstanceUID = list(sop_uids) if len(sop_uids) > 1 else sop_uids[0]
    else:
        q.QueryRetrieveLevel = "SERIES"
    return q


class _CancelWatch:
    """Sends C-CANCEL when ``cancel`` is set, and aborts if the peer goes on for 0.5 s more."""

    def __init__(self, assoc: Any, context_id: int, cancel: threading.Event | None) -> None:
        self.assoc = assoc
        self.context_id = context_id
        self.cancel = cancel
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None
        if cancel is not None:
            self.thread = threading.Thread(target=self._run, name="pacs-cancel", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        assert self.cancel is not None
        while not self.finished.is_set():
            if self.cancel.wait(0.05):
                with suppress(Exception):
                    self.assoc.send_c_cancel(1, self.context_id)
                if not self.finished.wait(0.5):
                    with suppress(Exception):
                        self.assoc.abort()
                    # Wake the request waiting for the next response now rather than at the end of
                    # its DIMSE timeout: an empty message is what pynetdicom queues on a timeout.
                    with suppress(Exception):
                        self.assoc.dimse.msg_queue.put((None, None))
                return

    def close(self) -> None:
        self.finished.set()
        if self.thread is not None:
            self.thread.join(timeout=2)


def _run_responses(responses: Iterator[tuple[Dataset, Dataset | None]], server: Server, service: str,
                   progress: Callable[[int, int], None]) -> None:
    """Walk the C-GET/C-MOVE responses; raise on failure, report the pending counts."""
    for status, _ in responses:
        if "Status" not in status:
            raise _Transient(f"{server.describe()} stopped answering the C-{service.upper()} (no response within "
                             f"{server.timeout_s:g} s, or the connection dropped)")
        code = int(status.Status)
        counts = [int(status.get(k) or 0) for k in ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
                                                    "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")]
        if code in (0xFF00, 0xFF01):
            remaining, done = counts[0], sum(counts[1:])
            progress(done, done + remaining)
            continue
        if code == 0xFE00:
            return  # cancelled: the caller checks its event
        if code == 0x0000:
            return
        failed = counts[2]
        what = f"{server.describe()} failed the C-{service.upper()}: {_status_text(code, service)}" + (
            f", {failed} sub-operation(s) failed" if failed else "")
        raise (_Transient if code in _TRANSIENT else PacsError)(what)


def _start_move_listener(local: LocalAE, receiver: _Receiver) -> Any:
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

    scp = AE(ae_title=local.aet)
    scp.network_timeout = 30
    for uid in _STORAGE_CLASSES:
        scp.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
    try:
        return scp.start_server((local.host, local.port), block=False,
                                evt_handlers=[(evt.EVT_C_STORE, receiver.handle)])
    except OSError as exc:
        raise PacsError(f"cannot listen for the C-MOVE on {local.host}:{local.port} ({exc.strerror or exc}); "
                        "free the port or set another under 'local' in the server configuration") from None


def retrieve(server: Server, study_uid: str, db: StudyDatabase, series_uids: Sequence[str] = (),
             method: str = "get", local: LocalAE | None = None, progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None, retries: int = 3, backoff_s: float = 0.5,
             on_instance: InstanceCallback | None = None) -> RetrieveResult:
    """Fetch the given series of a study (all its series when none are given) into ``db``.

    ``method``: ``"get"`` (C-GET; when the PACS refuses the C-GET context, C-MOVE instead) or
    ``"move"`` (C-MOVE to a Storage SCP started here for the retrieve, as ``local`` says).
    ``progress(done, total)`` counts instances over all series; ``on_instance(path)`` is
    called for each stored instance as it arrives (the viewer shows the first before the last).

    Raises
    ------
    PacsError
        One line: what failed (after the retries), and what was kept.
    Cancelled
        ``cancel`` was set; what arrived before is kept.
    """
    if method not in ("get", "move"):
        raise PacsError(f"the retrieve method is 'get' or 'move', not {method!r}")
    local = local or LocalAE()
    result = RetrieveResult(method=method)
    origin = f"pacs:{server.name}"
    wanted = list(series_uids) or [s.uid for s in find_series(server, study_uid, local)]
    if not wanted:
        raise PacsError(f"{server.describe()} has no series in study {study_uid}")
    # A series of which nothing is here yet is fetched whole at once; its instances are listed
    # (C-FIND, IMAGE level) only when something of it is here or a retry must know what is missing.
    expected: dict[str, set[str] | None] = {}
    for uid in wanted:
        expected[uid] = _listed(server, study_uid, uid, local) if db.instances_of_series(uid) else None
    result.already_had = sum(len(db.instances_of_series(uid) & known) for uid, known in expected.items()
                             if known is not None)
    done_lock = threading.Lock()
    state = {"done": result.already_had, "base": result.already_had, "after": 0,
             "total": sum(len(known) for known in expected.values() if known is not None)}

    def report() -> None:
        if progress is not None:
            progress(state["done"], max(state["total"], state["done"]))

    def tick() -> None:
        with done_lock:
            state["done"] += 1
        report()

    def pending(done: int, total: int) -> None:
        """The peer's pending counts (remaining, completed...) for this request."""
        state["total"] = max(state["total"], state["base"] + total + state["after"])
        if progress is not None:
            progress(max(state["done"], state["base"] + done), state["total"])

    receiver = _Receiver(db, origin, study_uid, result, on_instance, tick)
    report()
    for index, series_uid in enumerate(wanted):
        state["after"] = sum(len(known) for uid, known in expected.items()
                             if known is not None and uid in wanted[index + 1:])
        attempt = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the retrieve was cancelled; what arrived is kept")
            known = expected[series_uid]
            missing: list[str] = []
            if known is not None:
                missing = sorted(known - db.instances_of_series(series_uid) - receiver.unusable)
                if not missing:
                    break
            if attempt > retries:
                assert known is not None
                raise PacsError(f"{len(missing)} of {len(known)} instances of series {series_uid} did not arrive "
                                f"after {attempt} attempts (what arrived is kept)")
            attempt += 1
            result.attempts += 1
            state["base"] = state["done"]
            identifier = _identifier(study_uid, series_uid,
                                     [] if known is None or len(missing) == len(known) else missing)
            try:
                if result.method == "get":
                    try:
                        _get(server, local, identifier, receiver, cancel, pending)
                    except _GetRefused as exc:
                        result.method = "move"
                        result.messages.append(f"{exc}; retrieving by C-MOVE instead, to {local.describe()}: the "
                                               "PACS must know this AE title, host and port")
                        attempt -= 1
                        result.attempts -= 1
                        continue
                else:
                    _move(server, local, identifier, receiver, cancel, pending)
            except _Transient as exc:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the retrieve was cancelled; what arrived is kept") from None
                if known is None:
                    expected[series_uid] = known = _listed(server, study_uid, series_uid, local)
                if attempt > retries:
                    left = len(known - db.instances_of_series(series_uid) - receiver.unusable)
                    raise PacsError(f"{exc}; gave up after {attempt} attempts with {left} of {len(known)} "
                                    f"instances of series {series_uid} missing (what arrived is kept; run the "
                                    "retrieve again for the rest)") from None
                result.messages.append(f"attempt {attempt} failed ({exc}); retrying")
                if _sleep(backoff_s * 2 ** (attempt - 1), cancel):
                    raise Cancelled("the retrieve was cancelled; what arrived is kept") from None
                continue
            if cancel is not None and cancel.is_set():
                raise Cancelled("the retrieve was cancelled; what arrived is kept")
            if known is None:  # the whole series in one successful request: did all of it come?
                got = db.instances_of_series(series_uid)
                if len(got | receiver.unusable) >= _series_count(server, study_uid, series_uid, local) > 0:
                    expected[series_uid] = got
                    break
                expected[series_uid] = _listed(server, study_uid, series_uid, local)  # no: list what is missing
    result.expected = sum(len(known) for known in expected.values() if known is not None)
    report()
    db.flush()
    for uid in receiver.unusable - {""}:
        result.issues.append(LoadIssue(Severity.ERROR, "pacs.unusable-instance",
                                       f"instance {uid} arrived but could not be kept (see the issue before)", origin))
    return result


def _sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Wait; True when cancelled meanwhile."""
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)


class _GetRefused(PacsError):
    pass


def _get(server: Server, local: LocalAE, identifier: Dataset, receiver: _Receiver,
         cancel: threading.Event | None, progress: Callable[[int, int], None]) -> None:
    from pynetdicom import evt
    from pynetdicom.presentation import build_role

    roles = [build_role(uid, scp_role=True) for uid in _STORAGE_CLASSES]
    with ExitStack() as stack:
        try:
            assoc = stack.enter_context(_associate(server, local, [(_STUDY_GET, None), *_storage_contexts()], roles,
                                                   [(evt.EVT_C_STORE, receiver.handle)]))
        except _NoContext:
            raise _GetRefused(f"{server.describe()} refused the C-GET presentation context") from None
        cx = next((c for c in assoc.accepted_contexts if c.abstract_syntax == _STUDY_GET), None)
        if cx is None:
            raise _GetRefused(f"{server.describe()} refused the C-GET presentation context")
        watch = _CancelWatch(assoc, cx.context_id, cancel)
        try:
            _run_responses(assoc.send_c_get(identifier, _STUDY_GET), server, "get", progress)
        finally:
            watch.close()


def _move(server: Server, local: LocalAE, identifier: Dataset, receiver: _Receiver,
          cancel: threading.Event | None, progress: Callable[[int, int], None]) -> None:
    listener = _start_move_listener(local, receiver)
    try:
        with _associate(server, local, [(_STUDY_MOVE, None)]) as assoc:
            cx = _accepted(assoc, _STUDY_MOVE, "C-MOVE", server)
            watch = _CancelWatch(assoc, cx.context_id, cancel)
            try:
                _run_responses(assoc.send_c_move(identifier, local.aet, _STUDY_MOVE), server, "move", progress)
            except PacsError as exc:
                if "0xA801" in str(exc):
                    raise PacsError(f"{exc}: the PACS does not know our AE title {local.aet}; register "
                                    f"{local.describe()} (this machine's address) with it") from None
                raise
            finally:
                watch.close()
    finally:
        listener.shutdown()


# -- C-STORE ----------------------------------------------------------------------------------------
@dataclass
class SendResult:
    sent: int = 0
    failed: list[str] = field(default_factory=list)


def send(server: Server, files: Sequence[str | Path], local: LocalAE | None = None,
         db: StudyDatabase | None = None) -> SendResult:
    """C-STORE each file; records what was sent where in ``db`` when given.

    Raises
    ------
    PacsError
        A file is not DICOM, the PACS refuses the association or every context, or a store fails.
    """
    local = local or LocalAE()
    datasets: list[tuple[Path, Dataset]] = []
    for f in files:
        path = Path(f)
        try:
            read = dcmread(path, stop_before_pixels=False)
            read.SOPClassUID, read.SOPInstanceUID, read.file_meta.TransferSyntaxUID  # noqa: B018 (all required)
        except (OSError, InvalidDicomError, AttributeError) as exc:
            raise PacsError(f"{path}: not a DICOM file that can be sent ({exc})") from None
        datasets.append((path, read))
    if not datasets:
        raise PacsError("no file to send")
    pairs = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets}
    if len(pairs) > 120:
        raise PacsError("more than 120 kinds of instance in one send; send them in smaller groups")
    by_class: dict[str, set[str]] = {}
    for uid, syntax in pairs:
        by_class.setdefault(uid, set()).add(syntax)
    contexts: list[tuple[str, Sequence[str] | None]] = [(uid, sorted(s)) for uid, s in by_class.items()]
    result = SendResult()
    with _associate(server, local, contexts) as assoc:
        for path, ds in datasets:
            if not any(cx.abstract_syntax == ds.SOPClassUID for cx in assoc.accepted_contexts):
                raise PacsError(f"{server.describe()} refused the presentation context for SOP class "
                                f"{ds.SOPClassUID} ({path.name}); it does not store this kind of instance")
            status = assoc.send_c_store(ds)
            if "Status" not in status:
                raise PacsError(f"{server.describe()} stopped answering while storing {path.name} (after {result.sent}"
                                " sent)")
            code = int(status.Status)
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                result.failed.append(f"{path.name}: {_status_text(code, 'store')}")
                continue
            result.sent += 1
            if db is not None:
                db.record_sent([str(ds.SOPInstanceUID)], server.describe())
    if result.failed:
        raise PacsError(f"{server.describe()} refused {len(result.failed)} of {len(datasets)} instance(s): "
                        + "; ".join(result.failed[:3]))
    return result
