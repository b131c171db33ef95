"""Command line: ``lumbarview info``, ``demo``, ``view``, ``measure``, ``db`` and ``pacs``.

``main(argv) -> int`` never lets a traceback reach the user: known problems are one line on
stderr and exit code 2; an unexpected failure is one line too, with the traceback written to a
log file in the user's cache folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumbarview import __version__
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.text import safe_line

EXIT_OK = 0
EXIT_NOTHING_OPENED = 2
EXIT_FAILURE_BUDGET = 3
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumbarview",
        description="Viewer and measurement tools for lumbar spine MRI.",
    )
    parser.add_argument("--version", action="version", version=f"lumbarview {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation (phantom, 2D and 3D rendering, a measurement, JPEG and "
                             "JPEG 2000 decoding) and exit 0 when all pass; renders offscreen with no display")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="describe the dataset, cases, series, stacks and overlays under PATH")
    info.add_argument("path", help="dataset root, folder, DICOMDIR or file")
    info.add_argument("--json", action="store_true", help="write JSON to stdout")
    info.add_argument("--no-cache", action="store_true",
                      help="ignore and do not update the header index cache")
    info.add_argument("--labels", metavar="SCHEME.json",
                      help="label scheme for a dataset lumbarview does not know")

    measure = sub.add_parser("measure", help="measure canal, foramina and discs of every case under PATH")
    measure.add_argument("path", help="dataset root, case folder or label file")
    out = measure.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per value, per line (NDJSON)")
    out.add_argument("--csv", metavar="OUT", help="write rows to OUT (appends and resumes: finished cases "
                                                   "listed in OUT.done are skipped)")
    measure.add_argument("--geometry", action="store_true",
                         help="with --json: each row's geometry, the lines (LPS mm) its value was measured on")
    measure.add_argument("--summary", action="store_true",
                     help="per case, a table of levels by quantity for people (with --csv: beside the file)")
    measure.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    measure.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                         help="run on this Dask cluster instead (needs lumbarview[cluster]; every worker must "
                              "see PATH at the same path)")
    measure.add_argument("--max-failures", metavar="N|N%",
                         help="failure budget: stop starting new cases once more than N cases (or N%% of "
                              "them) failed; exit 3")
    measure.add_argument("--progress", action="store_true",
                         help="show the progress bar on stderr even when it is not a terminal")
    measure.add_argument("--no-cache", action="store_true", help="ignore the header index cache")

    measure.add_argument("--labels", metavar="LABELS",
                         help="measure this label map (e.g. from `lumbarview segment`) on the image PATH")

    segment = sub.add_parser("segment", help="segment bodies, discs and the canal of an image from seeds "
                             "(semi-automatic; no labels needed)")
    segment.add_argument("image", help="the image (a volume file: .nii.gz, .nii, .mha, .nrrd)")
    segment.add_argument("--seeds", metavar="SEEDS.json", required=True,
                         help="bodies, discs and canal clicks in LPS mm (see the README)")
    segment.add_argument("--out", metavar="LABELS.nii.gz", required=True,
                         help="the label map to write (never the image; refused if it exists)")
    segment.add_argument("--json", action="store_true", help="print one JSON object per structure")

    view = sub.add_parser("view", help="the viewer (the default command)")
    view.add_argument("path", nargs="?", help="dataset root, folder, DICOMDIR or file")
    view.add_argument("--demo", action="store_true", help="open the built-in demo dataset")
    view.add_argument("--screenshot", metavar="OUT.png",
                      help="render headless, save the window as PNG and exit")
    view.add_argument("--size", metavar="WxH", help="window size, e.g. 1600x900")
    view.add_argument("--layout", choices=("1x2", "1x3", "2x2"),
                      help="views: sagittal+axial, +coronal, or 2x2 with an oblique view (remembered)")
    view.add_argument("--plane", metavar="LEVEL", help="align the axial view to this disc, e.g. L4-L5")
    view.add_argument("--cursor", metavar="X,Y,Z", help="start the crosshair at this LPS point (mm)")
    view.add_argument("--session", metavar="FILE",
                      help="open with this saved session (its dataset, found through its paths, unless PATH is given)")
    view.add_argument("--prior", metavar="PRIOR", help="compare mode: PATH (the current study) beside this prior")
    view.add_argument("--scroll", type=int, default=0, metavar="N",
                      help="compare mode with --screenshot: scroll the current study N slices (in step) first")
    view.add_argument("--study", metavar="UID", help="open this study of the study database (Study Instance UID)")
    view.add_argument("--native-orientation", action="store_true",
                      help="show acquired slices as stored instead of the radiological convention")

    exp = sub.add_parser("export-measurements",
                         help="write a saved session's measurements of one case (and the engine's rows) as CSV, "
                              "JSON, DICOM SR or an HTML report")
    exp.add_argument("path", help="dataset root, folder or file the session was drawn on")
    exp.add_argument("--case", metavar="ID", help="the case (default: the session's)")
    exp.add_argument("--session", metavar="FILE", required=True, help="a session file lumbarview saved")
    exp.add_argument("--out", metavar="OUT", required=True,
                     help="OUT.csv, OUT.json, OUT.dcm (DICOM SR) or OUT.html (report); never inside the dataset")
    exp.add_argument("--engine", action="store_true", help="also run the engine on the case and export its rows")

    rep = sub.add_parser("report", help="write the structured lumbar report of one case (grades, measurements, "
                                        "the reader's words) as PDF, HTML or DICOM SR")
    rep.add_argument("path", help="dataset root, folder or file of the case")
    rep.add_argument("--case", metavar="ID", help="the case (default: the session's, or the only one)")
    rep.add_argument("--session", metavar="FILE",
                     help="a session file lumbarview saved: the reader's grades, measurements and words "
                          "(without it: the dataset's grades)")
    rep.add_argument("--out", metavar="REPORT", required=True,
                     help="REPORT.pdf, REPORT.html or REPORT.dcm (DICOM SR); never inside the dataset")
    rep.add_argument("--engine", action="store_true", help="also run the engine on the case and report its values")

    export = sub.add_parser("export", help="copy a dataset, case, study or series into a new folder, "
                                           "de-identified with --deidentify")
    export.add_argument("path", help="dataset root, case or study folder, series folder, DICOMDIR or file")
    export.add_argument("--out", metavar="DIR", required=True,
                        help="the new folder (must be missing or empty: nothing is ever overwritten)")
    export.add_argument("--deidentify", action="store_true",
                        help="apply the DICOM PS3.15 Basic Application Level Confidentiality Profile")
    export.add_argument("--profile", choices=("basic",), default="basic", help="the profile (basic)")
    export.add_argument("--retain-dates-shifted", action="store_true",
                        help="option Retain Longitudinal Temporal Information with Modified Dates: every date "
                             "moved back by one shift per patient (intervals kept)")
    export.add_argument("--retain-patient-characteristics", action="store_true",
                        help="option Retain Patient Characteristics (age, sex, size, weight...)")
    export.add_argument("--clean-descriptors", action="store_true",
                        help="option Clean Descriptors: keep series and study descriptions, cleaned")
    export.add_argument("--key-file", metavar="FILE",
                        help="the project key (created when missing; keep it secret): the same key gives the "
                             "same new UIDs, pseudonyms and date shifts in every export")
    export.add_argument("--layout", choices=("spider", "rsna"),
                        help="write a public dataset layout instead of lumbarview's own")
    export.add_argument("--case", action="append", default=[], metavar="ID", help="only this case (repeatable)")
    export.add_argument("--json", action="store_true", help="print the export report as JSON")

    cmp_ = sub.add_parser("compare", help="register a prior study to the current one per level and show the "
                                          "change of every quantity measured on both")
    cmp_.add_argument("current", help="the current study (one case: folder or file)")
    cmp_.add_argument("prior", help="the prior study (one case: folder or file)")
    where = cmp_.add_mutually_exclusive_group()
    where.add_argument("--level", metavar="L4-L5", help="only this disc level (default: every labelled level)")
    where.add_argument("--at", metavar="X,Y,Z", help="register around this LPS point (mm) of the current study")
    cmp_.add_argument("--json", action="store_true", help="one JSON object per level, per line")
    cmp_.add_argument("--csv", metavar="OUT", help="also write the change table (every level) to OUT")
    cmp_.add_argument("--different-patients", action="store_true",
                      help="go on although the two studies are of different patients (otherwise refused)")

    _add_db_and_pacs(sub)

    demo = sub.add_parser("demo", help="write the demo dataset (the lumbar phantom in the six "
                                       "dataset layouts) and print where")
    demo.add_argument("--out", help="folder to write to (default: the user cache folder)")
    demo.add_argument("--small", action="store_true", help="small images (fast; for trying things)")
    demo.add_argument("--info", action="store_true", help="also describe each layout as `info` does")

    labels = sub.add_parser("labels", help="correct label maps from an edit log, or replay a saved correction")
    labels_sub = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    apply = labels_sub.add_parser("apply", help="apply an edit log to a label file and write NEW with its "
                                                "sidecar NEW.edits.json (the source is never written to)")
    apply.add_argument("mask", metavar="MASK", help="the label file (.mha, .mhd, .nii, .nii.gz, .nrrd)")
    apply.add_argument("--log", required=True, metavar="EDITS.json", help="the edit log (README: Label editing)")
    apply.add_argument("--out", required=True, metavar="NEW", help="the corrected map to write (a new file, "
                                                                    "same format as MASK)")
    apply.add_argument("--image", metavar="IMAGE", help="the image on MASK's grid (intensities for "
                                                        "threshold-limited operations)")
    replay = labels_sub.add_parser("replay", help="re-apply a saved sidecar's log to its source and check the "
                                                  "result is byte-identical to the saved map")
    replay.add_argument("sidecar", metavar="SIDECAR.json")
    return parser


def _add_db_and_pacs(sub: Any) -> None:
    """``db import|list`` and ``pacs echo|find|get|send`` (issue 25's contracts)."""
    db = sub.add_parser("db", help="the local study database: import folders, list studies")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    imp = db_sub.add_parser("import", help="index the DICOM files of a folder, DICOMDIR or disc")
    imp.add_argument("path", help="folder, DICOMDIR or file")
    imp.add_argument("--copy", action="store_true",
                     help="copy the files into the database's store (default: reference them where they are)")
    listing = db_sub.add_parser("list", help="the studies in the database with their series")
    listing.add_argument("--json", action="store_true", help="a JSON array, one object per study")

    pacs = sub.add_parser("pacs", help="query, retrieve from and send to a PACS (DIMSE or DICOMweb)")
    pacs_sub = pacs.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("server", metavar="SERVER",
                       help="a configured server name, dicom://AET@HOST:PORT or an http(s):// DICOMweb root")
        p.add_argument("--aet", help="our own AE title (default: the configuration's, or LUMBARVIEW)")
        p.add_argument("--tls-ca", metavar="FILE", help="DICOM TLS: trust the server certificates this CA signed")
        p.add_argument("--tls-cert", metavar="FILE", help="DICOM TLS: our client certificate (PEM)")
        p.add_argument("--tls-key", metavar="FILE", help="DICOM TLS: the key of --tls-cert (PEM)")

    server_args(pacs_sub.add_parser("echo", help="check that the server answers (C-ECHO, or a QIDO-RS query)"))
    find = pacs_sub.add_parser("find", help="search the server's studies")
    server_args(find)
    find.add_argument("--patient-id", default="", metavar="ID")
    find.add_argument("--patient-name", default="", metavar="NAME", help="wildcards * and ? allowed")
    find.add_argument("--date", default="", metavar="FROM-TO", help="study dates YYYYMMDD-YYYYMMDD (an end may be "
                                                                     "left out)")
    find.add_argument("--modality", default="", metavar="MR")
    find.add_argument("--json", action="store_true", help="a JSON array, as `db list --json`")
    get = pacs_sub.add_parser("get", help="retrieve series of a study into the study database")
    server_args(get)
    get.add_argument("--study", required=True, metavar="UID", help="Study Instance UID")
    get.add_argument("--series", action="append", default=[], metavar="UID",
                     help="a Series Instance UID to fetch (repeat for more; default: every series of the study)")
    get.add_argument("--method", choices=("get", "move"), default="get",
                     help="C-GET (default; C-MOVE when the server refuses it) or C-MOVE to our Storage SCP")
    send = pacs_sub.add_parser("send", help="send DICOM files (C-STORE, or STOW-RS)")
    server_args(send)
    send.add_argument("files", nargs="+", metavar="FILE")


def _print_studies(studies: Sequence[Any], as_json: bool) -> None:
    if as_json:
        json.dump([s.to_json() for s in studies], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for s in studies:
        print(f"{s.study_date or '--------'}  {s.patient_id or '(no id)'}  {s.patient_name or '(no name)'}  "
              f"{s.description or '(no description)'}  {s.study_uid}")
        for series in s.series:
            print(f"    {series.modality or '??':3} {series.n_instances:5d}  {series.description or '(no description)'}"
                  f"  {series.uid}")
    if not studies:
        print("no study", file=sys.stderr)


def _cmd_db(args: argparse.Namespace) -> int:
    from lumbarview.services.study_db import StudyDatabase

    with StudyDatabase() as db:
        if args.db_command == "list":
            _print_studies(db.search(), args.json)
            return EXIT_OK

        def progress(done: int, total: int) -> None:
            if total >= 500 and sys.stderr.isatty():
                print(f"\rreading headers {done}/{total}", end="", file=sys.stderr, flush=True)

        report = db.import_path(args.path, copy=args.copy, progress=progress)
        for issue in report.issues:
            print(f"lumbarview: {issue.severity.label}: {issue.message}" + (f" ({issue.path})" if issue.path else ""),
                  file=sys.stderr)
        print(f"imported {report.added} instance(s) of {len(report.studies)} study(ies) "
              f"({report.already_there} already in the database) into {db.folder}")
        if not report.added and not report.already_there:
            print(f"lumbarview: {args.path}: no DICOM instance found to import", file=sys.stderr)
            return EXIT_NOTHING_OPENED
    return EXIT_OK


def _cmd_pacs(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lumbarview.services.pacs import dimse, web
    from lumbarview.services.pacs.servers import load_config, resolve_server, validate_aet
    from lumbarview.services.study_db import StudyDatabase, StudyQuery

    server = resolve_server(args.server, tls_ca=args.tls_ca or "")
    if args.tls_cert:
        server = replace(server, tls_cert=args.tls_cert, tls_key=args.tls_key or "")
    _, local = load_config()
    if args.aet:
        local = replace(local, aet=validate_aet(args.aet, "our AE title (--aet)"))
    if args.pacs_command == "echo":
        if server.is_web:
            web.find_studies(server, patient_id="LUMBARVIEW-ECHO", with_series=False)
            print(f"{server.describe()} answers (QIDO-RS)")
        else:
            seconds = dimse.echo(server, local)
            print(f"{server.describe()} answers (C-ECHO, {seconds * 1000:.0f} ms)")
        return EXIT_OK
    if args.pacs_command == "find":
        try:
            date_from, date_to = StudyQuery.parse_date_range(args.date) if args.date else ("", "")
        except ValueError as exc:
            print(f"lumbarview: --date: {exc}", file=sys.stderr)
            return EXIT_NOTHING_OPENED
        keys = {"patient_id": args.patient_id, "patient_name": args.patient_name, "date_from": date_from,
                "date_to": date_to, "modality": args.modality}
        studies = web.find_studies(server, **keys) if server.is_web else dimse.find_studies(server, local=local,
                                                                                            **keys)
        _print_studies(studies, args.json)
        return EXIT_OK
    with StudyDatabase() as db:
        if args.pacs_command == "send":
            sent = web.send(server, args.files, db) if server.is_web else dimse.send(server, args.files, local, db)
            print(f"sent {sent.sent} instance(s) to {server.describe()}")
            return EXIT_OK
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if sys.stderr.isatty() and (now - last[0] > 0.25 or done == total):
                last[0] = now
                print(f"\rretrieving {done}/{total}", end="", file=sys.stderr, flush=True)

        if server.is_web:
            result = web.retrieve(server, args.study, db, args.series, progress=progress)
        else:
            result = dimse.retrieve(server, args.study, db, args.series, args.method, local, progress=progress)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        for message in result.messages:
            print(f"lumbarview: {message}", file=sys.stderr)
        for issue in result.issues:
            print(f"lumbarview: {issue.severity.label}: {issue.message}", file=sys.stderr)
        print(f"retrieved {result.received} instance(s) by {result.method.upper()} ({result.already_had} of "
              f"{result.expected} already in the database); open with: lumbarview view --study {args.study}")
    return EXIT_OK


def _demo_root(out: str | None) -> Path:
    if out:
        return Path(out)
    from lumbarview.services.demo import default_demo_root

    return default_demo_root()


def _cmd_info(args: argparse.Namespace) -> int:
    from lumbarview.services.info import build_dataset_info, format_dataset_info
    from lumbarview.services.open_dataset import open_path

    def progress(done: int, total: int) -> None:
        if total >= 500 and sys.stderr.isatty():
            print(f"\rreading headers {done}/{total}", end="", file=sys.stderr, flush=True)

    dataset = open_path(args.path, use_cache=not args.no_cache, progress=progress,
                        scheme_path=getattr(args, "labels", None))
    info = build_dataset_info(dataset)
    if args.json:
        json.dump(info, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(safe_line(line, limit=4096) for line in format_dataset_info(info).split("\n")))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from lumbarview.services.demo import ensure_demo

    roots = ensure_demo(_demo_root(args.out), small=args.small)
    for root in roots.values():
        print(root)
    if args.info:
        for root in roots.values():
            print()
            code = _cmd_info(argparse.Namespace(path=str(root), json=False, no_cache=False, labels=None))
            if code != EXIT_OK:
                return code
    return EXIT_OK


def _log_crash() -> str:
    from lumbarview.services.demo import default_demo_root

    log = default_demo_root().parent / "crash.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:  # each line terminal-safe (a log is read with cat)
            fh.write("".join(safe_line(line, 4096) + "\n" for line in traceback.format_exc().splitlines()))
        return str(log)
    except OSError:
        return "(could not write a log)"


_COMMANDS = ("info", "demo", "view", "measure", "export", "export-measurements", "report", "db", "pacs", "segment",
             "compare", "labels")


class _Tee:
    """Commits to several sinks in order (the CSV first: it is what a resume relies on)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def commit(self, case: str, labels_path: str, rows: Sequence[dict[str, Any]]) -> None:
        for sink in self.sinks:
            sink.commit(case, labels_path, rows)


def _cmd_measure(args: argparse.Namespace) -> int:
    from lumbarview.services.batch.plan import FailureBudget, Provenance
    from lumbarview.services.batch.progress import ProgressBar
    from lumbarview.services.batch.runners import DaskRunner, LocalProcessRunner, Runner
    from lumbarview.services.batch.summary import SummarySink
    from lumbarview.services.batch_sinks import CsvSink, NdjsonSink, TextSink, job_key
    from lumbarview.services.measure_all import EXTRA_KEYS, ROW_KEYS, is_failure, jobs_for
    from lumbarview.services.open_dataset import open_path

    try:
        budget = FailureBudget.parse(args.max_failures) if args.max_failures else FailureBudget()
    except ValueError as exc:
        print(f"lumbarview: {exc}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if args.jobs is not None and args.jobs < 1:
        print(f"lumbarview: --jobs takes a number of processes of at least 1, not {args.jobs}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if args.scheduler and not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://\S+", args.scheduler):
        print(f"lumbarview: --scheduler takes the scheduler's address, e.g. tcp://10.0.0.5:8786, "
              f"not {args.scheduler!r}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    summary = bool(args.summary)
    if summary and args.json:
        print("lumbarview: --summary prints tables for people; it does not go with --json (use --csv OUT "
              "--summary to keep the rows too)", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if args.labels:
        return _measure_labels(args)
    if args.geometry and not args.json:
        print("lumbarview: --geometry adds each value's lines to the JSON rows; use it with --json", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    dataset = open_path(args.path, use_cache=not args.no_cache)
    jobs, skipped = jobs_for(dataset, geometry=args.geometry)
    for note in skipped:
        print(f"lumbarview: skipped {safe_line(note)}", file=sys.stderr)
    if not jobs:
        print(f"lumbarview: {args.path}: no 3D label map with named disc levels, mid-sagittal disc mask or "
              f"closed dura curve to measure ({len(dataset.cases)} case(s) opened)", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    runner: Runner = (DaskRunner(args.scheduler, args.path) if args.scheduler
                      else LocalProcessRunner(args.jobs))
    csv_sink: CsvSink | None = None
    provenance: Provenance | None = None
    sink: Any
    if args.csv:
        csv_sink = CsvSink(args.csv, [*ROW_KEYS, *EXTRA_KEYS])
        sink = _Tee(csv_sink, SummarySink(sys.stdout)) if summary else csv_sink
        done_keys = csv_sink.open()  # recovers an interrupted run; ResumeError (exit 2) if not ours
        all_jobs = list(jobs)
        before = len(jobs)
        jobs = [j for j in jobs if job_key(j.case, j.labels_path) not in done_keys]
        if before != len(jobs):
            print(f"lumbarview: resuming: {before - len(jobs)} case(s) already in {args.csv}", file=sys.stderr)
    elif summary:
        sink = SummarySink(sys.stdout)
    else:
        sink = NdjsonSink(sys.stdout) if args.json else TextSink(sys.stdout)

    total = len(jobs)
    measured = 0
    failures: list[str] = []
    stopped = False

    def should_stop() -> bool:
        return stopped

    bar = ProgressBar(total, sys.stderr) if total and (args.progress or sys.stderr.isatty()) else None
    status = "interrupted"
    try:
        if csv_sink is not None:
            provenance = Provenance(args.csv, args.path, all_jobs, {"name": "dask", "scheduler": args.scheduler}
                                    if args.scheduler else runner.describe(),
                                    {"max_failures": budget.describe(), "cases_to_measure": total,
                                     "cases_already_done": len(csv_sink.done_keys)})
            for warning in provenance.warnings:
                print(f"lumbarview: {warning}", file=sys.stderr)
        for job, rows in runner.run(jobs, should_stop):
            sink.commit(job.case, job.labels_path, rows)
            if is_failure(rows):
                reason = rows[0]["reason"]
                failures.append(f"lumbarview: {safe_line(f'case {job.case}: {reason}')}")
                if not stopped and budget.exceeded(len(failures), total):
                    stopped = True
            else:
                measured += 1
            if bar is not None:
                bar.update(measured + len(failures), len(failures))
        status = "stopped: failure budget spent" if stopped else "finished"
    finally:
        if bar is not None:
            bar.finish()
        if csv_sink is not None:
            csv_sink.close()
        if provenance is not None:
            provenance.run["runner"] = runner.describe()
            provenance.finish(status, measured=measured, failed=len(failures),
                              not_started=total - measured - len(failures))
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        print(f"lumbarview: {len(failures)} of {len(failures) + measured} label map(s) could not be measured; "
              f"their rows say why", file=sys.stderr)
    if stopped:
        left = total - measured - len(failures)
        print(f"lumbarview: stopped: {len(failures)} of {total} case(s) failed, more than --max-failures "
              f"{budget.describe()} allows; {left} case(s) were not started"
              + (f" (a rerun with --csv {args.csv} measures them)" if args.csv else ""), file=sys.stderr)
        return EXIT_FAILURE_BUDGET
    if jobs and not measured:
        return EXIT_NOTHING_OPENED
    return EXIT_OK


def _measure_labels(args: argparse.Namespace) -> int:
    """``measure IMAGE --labels LABELS``: the engine on one label map bound to one image."""
    from lumbarview.services.batch.summary import SummarySink
    from lumbarview.services.batch_sinks import NdjsonSink, TextSink
    from lumbarview.services.segment import measure_labels

    if args.csv or args.scheduler:
        print("lumbarview: --labels measures one label map here; it goes with --json or --summary, not --csv or "
              "--scheduler", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    rows = measure_labels(args.path, args.labels)
    sink: Any = SummarySink(sys.stdout) if args.summary else NdjsonSink(sys.stdout) if args.json else TextSink(
        sys.stdout)
    sink.commit(str(rows[0]["case"]) if rows else args.path, args.labels, rows)
    if not any(r["value"] is not None for r in rows):
        print(f"lumbarview: {args.labels}: nothing could be measured (no disc level between two bodies, no canal "
              f"at a disc); the rows say why", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    return EXIT_OK


def _cmd_segment(args: argparse.Namespace) -> int:
    from lumbarview.services.segment import open_image, read_seeds, save_segmentation, segment

    out = Path(args.out)
    if out.exists():
        print(f"lumbarview: {out} exists; segment never overwrites a file: choose another --out or move it "
              f"away", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if out.resolve() == Path(args.image).resolve():
        print("lumbarview: --out is the image itself; the source is never written to", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if not out.name.lower().endswith((".nii.gz", ".nii", ".nrrd", ".mha")):
        print(f"lumbarview: --out {out.name}: the label map is written as .nii.gz, .nii, .nrrd or .mha",
              file=sys.stderr)
        return EXIT_NOTHING_OPENED
    seeds = read_seeds(args.seeds)
    image = open_image(args.image)
    result = segment(image, seeds)
    sidecar = save_segmentation(result, out)
    if args.json:
        for row in result.structures:
            print(json.dumps({k: v for k, v in row.items() if k != "provenance"}))
    else:
        for row in result.structures:
            extra = (f"  DSCA {row['dsca_mm2']:.1f} mm2, AP {row['ap_mm']:.1f} mm, transverse "
                     f"{row['transverse_mm']:.1f} mm ({row['plane']['kind']})" if row["structure"] == "canal" else "")
            print(f"{row['structure']:8s} {row['level']:8s} label {row['label']:3d}  {row['voxels']:7d} voxels  "
                  f"{row['volume_mm3']:10.1f} mm3{extra}")
        print(f"wrote {out} and {sidecar}")
    return EXIT_OK


def _cmd_export_measurements(args: argparse.Namespace) -> int:
    from lumbarview.services.measurement_export import export_session

    if not os.path.isfile(args.session):
        print(f"lumbarview: --session {args.session}: no such file; give a session file that lumbarview saved",
              file=sys.stderr)
        return EXIT_NOTHING_OPENED
    try:
        done = export_session(args.path, args.session, args.out, case_id=args.case, engine=args.engine)
    except ValueError as exc:
        print(f"lumbarview: export-measurements: {exc}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    for issue in done.issues:
        print(f"lumbarview: {issue.message}", file=sys.stderr)
    sources: dict[str, int] = {}
    for row in done.rows:
        sources[str(row.get("source"))] = sources.get(str(row.get("source")), 0) + 1
    print(f"{done.path}: {len(done.rows)} rows (" + ", ".join(f"{n} {s}" for s, n in sources.items()) + ")")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from lumbarview.services.lumbar_report import report_session

    if args.session is not None and not os.path.isfile(args.session):
        print(f"lumbarview: --session {args.session}: no such file; give a session file that lumbarview saved",
              file=sys.stderr)
        return EXIT_NOTHING_OPENED
    try:
        done = report_session(args.path, args.out, session_file=args.session, case_id=args.case, engine=args.engine)
    except ValueError as exc:
        print(f"lumbarview: report: {exc}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    for issue in done.issues:
        print(f"lumbarview: {issue.message}", file=sys.stderr)
    rep = done.report
    n_grades = sum(1 for lv in rep.levels for items in lv.parts.values() for it in items if it.is_grade)
    n_values = sum(1 for lv in rep.levels for items in lv.parts.values() for it in items if not it.is_grade)
    print(f"{done.path}: case {rep.case_id}, {n_grades} grades, {n_values} values, "
          f"{len(rep.pointers)} grade(s) a measured value contradicts")
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"lumbarview: --size must look like 1600x900, not {args.size!r}", file=sys.stderr)
            return EXIT_NOTHING_OPENED
        size = (w, h)
    cursor: tuple[float, float, float] | None = None
    if args.cursor:
        try:
            values = [float(v) for v in args.cursor.split(",")]
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ValueError
            cursor = (values[0], values[1], values[2])
        except ValueError:
            print(f"lumbarview: --cursor must be three finite numbers X,Y,Z in mm, not {args.cursor!r}",
                  file=sys.stderr)
            return EXIT_NOTHING_OPENED
    if args.plane and not re.fullmatch(r"L[1-5]-(L[2-5]|S1)", args.plane):
        print(f"lumbarview: --plane names a disc level such as L4-L5 or L5-S1, not {args.plane!r}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if args.session is not None and not os.path.isfile(args.session):
        print(f"lumbarview: --session {args.session}: no such file; give a session file that lumbarview saved",
              file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if args.study is not None:
        if args.path is not None or args.demo:
            print("lumbarview: --study opens a study of the study database; give it without PATH or --demo",
                  file=sys.stderr)
            return EXIT_NOTHING_OPENED
        from lumbarview.core.dataset import STUDY_PREFIX
        from lumbarview.services.study_db import StudyDatabase

        with StudyDatabase() as db:
            if db.study(args.study) is None:
                print(f"lumbarview: no study {args.study} in the study database ({db.folder}); see `lumbarview db "
                      "list`", file=sys.stderr)
                return EXIT_NOTHING_OPENED
        args.path = STUDY_PREFIX + args.study
    elif args.path:
        from lumbarview.services.open_dataset import check_openable

        check_openable(args.path)  # /dev/null or a FIFO: exit 2 and one line (never opened)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.prior is not None:
        if args.path is None:
            print("lumbarview: view --prior needs the current study as PATH", file=sys.stderr)
            return EXIT_NOTHING_OPENED
        from lumbarview.ui.compare_window import ask_confirm, run_compare

        return run_compare(args.path, args.prior, args.screenshot, size, level=args.plane, scroll=args.scroll,
                           confirm=None if args.screenshot else ask_confirm)
    from lumbarview.ui.app import ViewOptions, run

    # LUMBARVIEW_NO_DIALOGS=1 is the command line's way to say no modal dialog may open (scripts).
    options = ViewOptions(layout=args.layout, plane=args.plane, cursor_lps=cursor,
                          native_orientation=args.native_orientation, session=args.session,
                          interactive=not os.environ.get("LUMBARVIEW_NO_DIALOGS"))
    return run(args.path, screenshot=args.screenshot, size=size, demo=args.demo, options=options)


def _cmd_export(args: argparse.Namespace) -> int:
    from lumbarview.services.deidentify.export import ExportRequest, export, summary_for_terminal
    from lumbarview.services.deidentify.identity import read_or_create_key
    from lumbarview.services.deidentify.profile import ProfileOptions

    chosen = [flag for flag, on in (("--retain-dates-shifted", args.retain_dates_shifted),
                                    ("--retain-patient-characteristics", args.retain_patient_characteristics),
                                    ("--clean-descriptors", args.clean_descriptors),
                                    ("--key-file", args.key_file is not None)) if on]
    if chosen and not args.deidentify:
        print(f"lumbarview: {' '.join(chosen)} only make sense with --deidentify; add it, or leave them out "
              "to copy the data unchanged", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    key = None
    if args.key_file is not None:
        key, created = read_or_create_key(args.key_file)
        if created:
            print(f"lumbarview: a new project key was written to {args.key_file}; keep it secret and keep it "
                  "(later exports with it give the same identities)", file=sys.stderr)
    options = ProfileOptions(retain_longitudinal_modified_dates=args.retain_dates_shifted,
                             retain_patient_characteristics=args.retain_patient_characteristics,
                             clean_descriptors=args.clean_descriptors)
    request = ExportRequest(source=Path(args.path), out=Path(args.out), deidentify=args.deidentify,
                            options=options, key=key, layout=args.layout, cases=tuple(args.case))
    report = export(request)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(summary_for_terminal(report), end="")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from lumbarview.services import compare

    at = None
    if args.at is not None:
        try:
            at = [float(v) for v in args.at.split(",")]
        except ValueError:
            at = []
        if len(at) != 3 or not all(math.isfinite(v) for v in at):
            print(f"lumbarview: compare --at {args.at!r}: give three LPS numbers in mm, e.g. --at 10.5,-20,130",
                  file=sys.stderr)
            return EXIT_NOTHING_OPENED
    current = compare.load_study(args.current)
    prior = compare.load_study(args.prior)
    warning = compare.patients_differ(current, prior)
    if warning is not None:
        print(f"lumbarview: warning: {warning}", file=sys.stderr)
        if not args.different_patients:
            print("lumbarview: compare refused; add --different-patients to compare them anyway", file=sys.stderr)
            return EXIT_NOTHING_OPENED
    objects = compare.compare(current, prior, level=args.level, at_lps=at)
    if args.csv:
        out = compare.write_change_csv(args.csv, compare.change_rows(current.rows, prior.rows),
                                       sources=(args.current, args.prior))
        print(f"lumbarview: change table written to {out}", file=sys.stderr)
    for obj in objects:
        obj["patients"] = {"current": current.patient_id, "prior": prior.patient_id, "warning": warning}
        if args.json:
            print(json.dumps(obj, allow_nan=False))
        else:
            print(compare.format_level(obj))
    return EXIT_OK


def _cmd_labels(args: argparse.Namespace) -> int:
    from lumbarview.services import label_store as ls

    try:
        if args.labels_command == "apply":
            log = ls.read_log(args.log)
            source = ls.LabelSource.open(args.mask)
            if not log.get("source_sha256"):
                raise ls.LabelStoreError(f"{Path(args.log).name} has no 'source_sha256': add the sha256 of the "
                                         f"file it was made on ({Path(args.mask).name}: {source.sha256})")
            if log["source_sha256"] != source.sha256:
                raise ls.LabelStoreError(f"{Path(args.log).name} was made on another file (sha256 "
                                         f"{str(log['source_sha256'])[:12]}...), not on {Path(args.mask).name} "
                                         f"({source.sha256[:12]}...); apply it to the file it was made on")
            intensity = ls.intensities_for(args.image, source) if args.image else None
            array, records = ls.apply_log(source, log["operations"], intensity)
            out = ls.save_corrected(source, array, records, args.out, image=args.image)
            report = json.loads(ls.sidecar_of(out).read_text(encoding="utf-8"))["changes"]
            print(f"wrote {out} and {ls.sidecar_of(out).name}: {len(records)} operations")
            for label, counts in report.items():
                print(f"  label {label}: +{counts['added']} -{counts['removed']} voxels "
                      f"({counts['relabelled']} relabelled)")
            return EXIT_OK
        result = ls.replay(args.sidecar)
    except ls.LabelStoreError as exc:
        print(f"lumbarview: {exc}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    if result.identical:
        print(f"replayed: {result.output.name} is byte-identical to its log applied to its source")
        return EXIT_OK
    print(f"lumbarview: {result.output.name} differs from its log applied to its source in "
          f"{result.differing_voxels} voxels", file=sys.stderr)
    return 1


def _cmd_self_test(args: argparse.Namespace) -> int:
    from lumbarview.services import selftest

    selftest.prepare_environment()  # offscreen with no display: before Qt or VTK are imported

    def rendering_checks(phantom: dict[str, Path], work: Path) -> list[selftest.Check]:
        from lumbarview.ui.selftest import checks

        return checks(phantom, work)

    return selftest.run(rendering_checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code. ``view`` is the default command."""
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0] not in _COMMANDS
                         and arguments[0] not in ("-h", "--help", "--version", "--self-test")):
        arguments.insert(0, "view")
    args = parser.parse_args(arguments)
    if args.self_test and args.command is not None:
        print(f"lumbarview: --self-test runs alone, not with {args.command!r}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    handlers = {"info": _cmd_info, "demo": _cmd_demo, "view": _cmd_view, "measure": _cmd_measure,
                "export": _cmd_export, "export-measurements": _cmd_export_measurements, "report": _cmd_report,
                "db": _cmd_db, "pacs": _cmd_pacs, "segment": _cmd_segment, "compare": _cmd_compare,
                "labels": _cmd_labels, None: _cmd_self_test}
    try:
        return handlers[args.command](args)
    except LumbarviewError as exc:
        print(f"lumbarview: {safe_line(exc)}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    except KeyboardInterrupt:
        print("lumbarview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the last guard: no traceback in the user's face
        where = _log_crash()
        print(f"lumbarview: {safe_line(f'internal error ({type(exc).__name__}: {exc}); details in {where}')}",
              file=sys.stderr)
        return 1


def gui_main() -> int:
    """Entry point of the ``lumbarview-gui`` script."""
    return main()
