"""Use case: hand a case's measurements on. One row contract for every source, one export for
the menu, the command line and the screenshot sidecar.

- :func:`measurement_row` / :func:`measurement_rows`: the session's measurements (manual, and
  the dataset's or engine's where they joined the document) as rows with the keys of
  ``lumbarview measure`` rows (:data:`~lumbarview.services.export.EXPORT_KEYS`): ``quantity`` is
  the kind (``distance``, ``angle``, ``polygon``...), ``source`` the measurement's, ``series`` the
  series' description, ``position_lps`` its centre, ``points_lps`` its points, ``note``; an area
  adds its ROI statistics (``roi_mean``, ``roi_sd``, ``roi_min``, ``roi_max``, ``roi_pixels``) on
  the image it was drawn on.
- :func:`case_rows`: those rows and, when the engine ran, the engine's rows of the case.
- :func:`export_case`: write rows by the file's suffix: ``.csv``, ``.json``, ``.dcm`` (DICOM SR
  TID 1500), ``.html`` (the report); refused inside the dataset (lumbarview never writes into a
  dataset). No engine run is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LoadError
from lumbarview.core.fs import refuse_inside
from lumbarview.core.types import LoadIssue
from lumbarview.model.measurements import Measurement, region_statistics
from lumbarview.services import export, report, sr
from lumbarview.services.engine_view import ENGINE_VERSION, EngineResult, run_engine
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import open_session_file, to_measurement

SUFFIXES = (".csv", ".json", ".dcm", ".html", ".htm")
MANUAL_METHOD = "drawn on the image (lumbarview {kind} tool), measured on its plane"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _series_name(m: Measurement, case: Case | None) -> str | None:
    found = next((s for s in case.series if s.uid == m.series), None) if case is not None and m.series else None
    return (found.description or found.uid) if found is not None else m.series


def measurement_row(m: Measurement, case: Case | None = None) -> dict[str, Any]:
    """The export row of one measurement (see the module); every key of
    :data:`~lumbarview.services.export.EXPORT_KEYS` is there."""
    q = m.value()
    row: dict[str, Any] = {key: None for key in export.EXPORT_KEYS}
    row.update({
        "id": m.id, "case": m.case if m.case is not None else (case.id if case is not None else None),
        "series": _series_name(m, case), "level": m.level, "side": m.side, "quantity": m.kind,
        "value": q.value if q.ok else None, "unit": q.unit or m.unit,
        "method": MANUAL_METHOD.format(kind=m.kind) if m.source == "manual" else m.source,
        "reason": None if q.ok or m.kind == "point" else q.reason,
        "position_lps": [float(v) for v in m.centre_lps()],
        "points_lps": [[float(v) for v in p] for p in m.points], "note": m.note or m.label,
        "source": m.source, "engine_version": ""})
    if m.is_area and case is not None:
        stats = region_statistics(m, case.series)
        if stats is not None and stats.reason is None:
            row.update({"roi_mean": _finite(stats.mean), "roi_sd": _finite(stats.std),
                        "roi_min": _finite(stats.minimum), "roi_max": _finite(stats.maximum),
                        "roi_pixels": stats.n_pixels})
    return row


def measurement_rows(measurements: Iterable[Measurement], case: Case | None = None) -> list[dict[str, Any]]:
    """The rows of ``measurements`` (those of ``case``, or naming no case, when ``case`` is given)."""
    return [measurement_row(m, case) for m in measurements
            if case is None or m.case is None or m.case == case.id]


def case_rows(measurements: Iterable[Measurement], case: Case | None,
              engine: EngineResult | None = None) -> list[dict[str, Any]]:
    """Everything measured on ``case``: the session's measurements, then the engine's rows when
    it ran (each row says its ``source``)."""
    rows = measurement_rows(measurements, case)
    if engine is not None:
        rows += export.export_rows(engine.rows, "engine", engine.engine_version)
    return rows


def export_case(path: str | Path, rows: Sequence[dict[str, Any]], case: Case | None, case_id: str, *,
                dataset_path: str | Path | None = None, engine: EngineResult | None = None) -> Path:
    """Write ``rows`` to ``path`` by its suffix (see the module); returns the file written.

    Raises
    ------
    ValueError
        An unknown suffix, or ``path`` inside the dataset.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot export to {suffix or 'a file without suffix'}: choose a .csv, .json, .dcm "
                         "(DICOM SR) or .html (report) file name")
    if dataset_path:
        refuse_inside(target, dataset_path, "the export")
    rows = export.export_rows(rows)
    if suffix in (".csv", ".json"):
        return export.write(target, rows, case_id)
    if suffix == ".dcm":
        version = engine.engine_version if engine is not None else ENGINE_VERSION
        return sr.write_sr(target, rows, case, case_id, version).path
    return report.write_report(target, case, engine, rows, str(dataset_path or ""), case_id=case_id)


@dataclass
class SessionExport:
    """What :func:`export_session` wrote: the file, its rows and what to tell the user."""

    path: Path
    rows: list[dict[str, Any]]
    issues: list[LoadIssue] = field(default_factory=list)


def export_session(dataset_path: str | Path, session_file: str | Path, out: str | Path, *,
                   case_id: str | None = None, engine: bool = False) -> SessionExport:
    """``lumbarview export-measurements``: the measurements of a saved session (and with
    ``engine`` the engine's rows) of one case of the dataset at ``dataset_path`` written to
    ``out`` by its suffix, as the menu's Export does.

    Raises
    ------
    LoadError
        The session file or the dataset cannot be read.
    ValueError
        No such case (the message lists the cases), an unknown suffix, ``out`` inside the dataset.
    """
    opened = open_session_file(session_file)
    if opened.doc is None:
        problem = "; ".join(issue.message for issue in opened.issues) or "it is not a session file"
        raise LoadError(session_file, problem, "give a session file that lumbarview saved")
    doc = opened.doc
    dataset = open_path(dataset_path)
    wanted = case_id or doc.case
    if wanted is None and len(dataset.cases) == 1:
        wanted = dataset.cases[0].id
    case = next((c for c in dataset.cases if c.id == wanted), None)
    if case is None:
        names = ", ".join(c.id for c in dataset.cases[:20]) + (" ..." if len(dataset.cases) > 20 else "")
        what = f"the dataset has no case {wanted!r}" if wanted is not None else (
            "the session names no case and the dataset has several")
        raise ValueError(f"{what}; give --case with one of: {names}")
    issues = list(opened.issues)
    measurements = []
    for record in doc.measurements:
        m, problems = to_measurement(record, str(session_file))
        issues.extend(problems)
        if m is not None and (m.case is None or m.case == case.id):
            measurements.append(m)
    result = run_engine(case) if engine else None
    rows = case_rows(measurements, case, result)
    written = export_case(out, rows, case, case.id, dataset_path=dataset_path, engine=result)
    return SessionExport(written, export.export_rows(rows), issues)
