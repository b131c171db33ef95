"""Retrieving a 300-instance series from a local Orthanc: lumbarview against bare library calls.

    python benchmarks/bench_pacs.py [--rounds N] [--instances N] [--matrix N] [--json FILE]

Orthanc (Debian's package, started here on free loopback ports as the tests do) holds one
sagittal phantom series of ``--instances`` slices of ``--matrix``² 16-bit pixels. Subjects:

- bare C-GET: a pynetdicom association with the storage contexts, a C-GET at SERIES level and a
  C-STORE handler that writes each instance to its own file (plain ``write_bytes``);
- lumbarview C-GET: ``services.pacs.dimse.retrieve`` into a fresh study database (an IMAGE-level
  C-FIND to know what to fetch, each instance written atomically into the store and indexed);
- bare WADO-RS: dicomweb-client's ``iter_series`` with each instance saved to its own file;
- lumbarview WADO-RS: ``services.pacs.web.retrieve`` into a fresh study database.

Method: one untimed call each, then the four in turn for ``--rounds`` rounds; median with its
spread, and the ratio per round (lumbarview / bare, goal <= 1.2 each). Page cache warm; the
Orthanc process runs beside this one on the same (shared, 2-core) machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dicom import _line
from timing import Figure, interleaved, machine_note

from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, write_block
from lumbarview.phantom.layouts import sagittal_geometry
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams
from lumbarview.services.pacs import dimse, web
from lumbarview.services.pacs.servers import LocalAE, Server
from lumbarview.services.study_db import StudyDatabase
from tests.net.orthanc import OUR_AET, Orthanc, free_port


def write_series(folder: Path, n: int, matrix: int) -> tuple[list[Path], str, str]:
    phantom = LumbarPhantom(PhantomParams())
    geometry = sagittal_geometry(phantom, matrix, 300.0 / matrix, n, 40.0 / n)
    images, _ = phantom.render(geometry, ("T2",))
    spec = SeriesSpec(patient_id="BENCH", patient_name="BENCH^PACS", study_uid=make_uid("bench-pacs", "study"),
                      series_uid=make_uid("bench-pacs", "series", n, matrix), series_number=1,
                      description=f"T2 SAG {n}", frame_of_reference_uid=make_uid("bench-pacs", "for"))
    return write_block(folder, images["T2"], geometry, spec), spec.study_uid, spec.series_uid


def bare_cget(server: Server, study: str, series: str, out: Path) -> int:
    from pydicom.dataset import Dataset
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.presentation import build_role
    from pynetdicom.sop_class import MRImageStorage, StudyRootQueryRetrieveInformationModelGet

    count = [0]

    def store(event: Any) -> int:
        count[0] += 1
        (out / f"{count[0]:05d}.dcm").write_bytes(event.encoded_dataset())
        return 0

    ae = AE(ae_title=OUR_AET)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(MRImageStorage, ALL_TRANSFER_SYNTAXES)
    assoc = ae.associate(server.host, server.port, ae_title=server.aet,
                         ext_neg=[build_role(MRImageStorage, scp_role=True)], evt_handlers=[(evt.EVT_C_STORE, store)])
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study
    q.SeriesInstanceUID = series
    for _status, _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet):
        pass
    assoc.release()
    return count[0]


def bare_wado(url: str, study: str, series: str, out: Path) -> int:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url)
    n = 0
    for n, ds in enumerate(client.iter_series(study, series), start=1):
        ds.save_as(out / f"{n:05d}.dcm", enforce_file_format=True)
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    print(f"bench_pacs: {machine_note()} (a shared machine), {args.rounds} interleaved rounds, "
          f"{args.instances} instances of {args.matrix}x{args.matrix}")
    with tempfile.TemporaryDirectory(prefix="lv-bench-pacs-") as tmp_name:
        tmp = Path(tmp_name)
        files, study, series = write_series(tmp / "src", args.instances, args.matrix)
        pacs = Orthanc(tmp / "orthanc", free_port())
        pacs.start()
        try:
            pacs.upload(files)
            server = Server("bench", pacs.aet, "127.0.0.1", pacs.dicom_port, timeout_s=60)
            web_server = Server("bench-web", url=pacs.dicomweb_root, timeout_s=60)
            local = LocalAE(OUR_AET, "127.0.0.1", pacs.move_port)
            runs = [0]

            def fresh(name: str) -> Path:
                runs[0] += 1
                folder = tmp / f"{name}-{runs[0]}"
                folder.mkdir()
                return folder

            def ours(fetch: Any) -> Any:
                def run() -> int:
                    folder = fresh("db")
                    with StudyDatabase(folder) as db:
                        result = fetch(db)
                    shutil.rmtree(folder)
                    assert result.received == args.instances, result
                    return int(result.received)
                return run

            def bare(fetch: Any) -> Any:
                def run() -> int:
                    folder = fresh("bare")
                    n = int(fetch(folder))
                    shutil.rmtree(folder)
                    assert n == args.instances, n
                    return n
                return run

            figures = interleaved({
                "bare pynetdicom C-GET": bare(lambda out: bare_cget(server, study, series, out)),
                "lumbarview C-GET": ours(lambda db: dimse.retrieve(server, study, db, [series], "get", local)),
                "bare dicomweb-client WADO-RS": bare(lambda out: bare_wado(pacs.dicomweb_root, study, series, out)),
                "lumbarview WADO-RS": ours(lambda db: web.retrieve(web_server, study, db, [series])),
            }, args.rounds)
        finally:
            pacs.stop()
    for name, figure in figures.items():
        print(_line(name, figure))
    over: dict[str, Figure] = {}
    for kind, bare_name, our_name in (("C-GET", "bare pynetdicom C-GET", "lumbarview C-GET"),
                                      ("WADO-RS", "bare dicomweb-client WADO-RS", "lumbarview WADO-RS")):
        over[kind] = Figure(tuple(o / b for b, o in zip(figures[bare_name].values, figures[our_name].values,
                                                            strict=True)))
        print(_line(f"{kind}: lumbarview / bare (goal <= 1.2)", over[kind], "x"))
    after = machine_note()
    print(f"after: {after}")
    if args.json:
        Path(args.json).write_text(json.dumps({"times": {k: f.values for k, f in figures.items()},
                                               "over_bare": {k: f.values for k, f in over.items()},
                                               "machine_after": after}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
