"""pynetdicom's own SCP in this process, scripted to produce what a real PACS will not on demand
(failure statuses, rejected contexts, dropped or silent connections, odd instances)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.net.orthanc import free_port

#: get(attempt, wanted datasets, association) -> what the C-GET handler yields after the count
GetScript = Callable[[int, list[Dataset], Any], Iterator[Any]]


class FakePacs:
    def __init__(self, instances: list[Dataset], *, get: bool = True, move_to: int | None = None,
                 get_script: GetScript | None = None, find_delay_s: float = 0.0, find_status: int | None = None,
                 require_calling_aet: list[str] | None = None, count: int | None = None) -> None:
        self.instances = instances
        self.get_script = get_script
        self.find_delay_s = find_delay_s
        self.find_status = find_status
        self.move_to = move_to
        self.count = count
        self.get_attempts = 0
        self.requests: list[Dataset] = []
        self.port = free_port()
        ae = AE(ae_title="FAKEPACS")
        ae.add_supported_context(Verification)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        if get:
            ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
            for ds in {str(d.SOPClassUID) for d in instances}:
                ae.add_supported_context(ds, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", ALL_TRANSFER_SYNTAXES)
        if require_calling_aet:
            ae.require_calling_aet = require_calling_aet
        self.ae = ae
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_FIND, self._find), (evt.EVT_C_GET, self._get), (evt.EVT_C_MOVE, self._move)])

    def stop(self) -> None:
        self.server.shutdown()

    def _matching(self, q: Dataset) -> list[Dataset]:
        out = []
        for ds in self.instances:
            if q.get("SeriesInstanceUID") and ds.SeriesInstanceUID != q.SeriesInstanceUID:
                continue
            if q.get("QueryRetrieveLevel") == "IMAGE" and q.get("SOPInstanceUID"):
                wanted = q.SOPInstanceUID
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                if ds.SOPInstanceUID not in wanted:
                    continue
            out.append(ds)
        return out

    def _find(self, event: Any) -> Iterator[Any]:
        q = event.identifier
        if self.find_delay_s:
            time.sleep(self.find_delay_s)
        if self.find_status is not None:
            yield self.find_status, None
            return
        level = q.QueryRetrieveLevel
        seen = set()
        for ds in self._matching(q):
            key = ds.SOPInstanceUID if level == "IMAGE" else ds.SeriesInstanceUID
            if key in seen:
                continue
            seen.add(key)
            r = Dataset()
            r.QueryRetrieveLevel = level
            r.StudyInstanceUID = ds.StudyInstanceUID
            r.SeriesInstanceUID = ds.SeriesInstanceUID
            r.SOPInstanceUID = ds.SOPInstanceUID
            r.Modality = "MR"
            r.SeriesDescription = ds.get("SeriesDescription", "")
            r.NumberOfSeriesRelatedInstances = sum(1 for d in self.instances
                                                   if d.SeriesInstanceUID == ds.SeriesInstanceUID)
            yield 0xFF00, r

    def _get(self, event: Any) -> Iterator[Any]:
        self.get_attempts += 1
        self.requests.append(event.identifier)
        wanted = self._matching(event.identifier)
        yield self.count if self.count is not None else len(wanted)
        if self.get_script is not None:
            yield from self.get_script(self.get_attempts, wanted, event.assoc)
            return
        for ds in wanted:
            yield 0xFF00, ds

    def _move(self, event: Any) -> Iterator[Any]:
        self.requests.append(event.identifier)
        yield "127.0.0.1", self.move_to
        wanted = self._matching(event.identifier)
        yield len(wanted)
        for ds in wanted:
            yield 0xFF00, ds
