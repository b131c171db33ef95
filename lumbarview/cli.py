"""Command line: ``lumbarview info``, ``lumbarview demo`` (and later ``view``, ``measure``).

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
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumbarview import __version__
from lumbarview.core.errors import LumbarviewError

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

    demo = sub.add_parser("demo", help="write the demo dataset (the lumbar phantom in the six "
                                       "dataset layouts) and print where")
    demo.add_argument("--out", help="folder to write to (default: the user cache folder)")
    demo.add_argument("--small", action="store_true", help="small images (fast; for trying things)")
    demo.add_argument("--info", action="store_true", help="also describe each layout as `info` does")
    return parser


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
        print(format_dataset_info(info))
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
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        return str(log)
    except OSError:
        return "(could not write a log)"


_COMMANDS = ("info", "demo", "view", "measure", "export", "export-measurements", "report")


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
    if args.geometry and not args.json:
        print("lumbarview: --geometry adds each value's lines to the JSON rows; use it with --json", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    dataset = open_path(args.path, use_cache=not args.no_cache)
    jobs, skipped = jobs_for(dataset, geometry=args.geometry)
    for note in skipped:
        print(f"lumbarview: skipped {note}", file=sys.stderr)
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
                failures.append(f"lumbarview: case {job.case}: {rows[0]['reason']}")
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
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
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
                None: _cmd_self_test}
    try:
        return handlers[args.command](args)
    except LumbarviewError as exc:
        print(f"lumbarview: {exc}", file=sys.stderr)
        return EXIT_NOTHING_OPENED
    except KeyboardInterrupt:
        print("lumbarview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the last guard: no traceback in the user's face
        where = _log_crash()
        print(f"lumbarview: internal error ({type(exc).__name__}: {exc}); details in {where}",
              file=sys.stderr)
        return 1


def gui_main() -> int:
    """Entry point of the ``lumbarview-gui`` script."""
    return main()
