"""Use case: sessions that survive. Save and autosave a :class:`Session` into the user's
workspace (never into the dataset), atomically; restore one.

- :func:`default_session_file`: where a dataset's last session lives
  (``$LUMBARVIEW_WORKSPACE`` or the user data folder, ``sessions/<name>-<hash>.json``).
- :class:`SessionStore`: saves atomically (a kill leaves the old file or the new one) and sweeps
  the temporaries of killed saves; opening an unreadable session file moves it aside (kept, never
  overwritten by the next save) and says so.
- :func:`locate_dataset`: the dataset a session names, found by its absolute path or, when the
  folder moved together with the session, by the path relative to the session file.
- :func:`snapshot` / :func:`apply`: session -> file -> session. What a session names that is gone
  (a case, a series, a layer) is reported as a :class:`LoadIssue`; the rest is restored.
- :func:`to_grade` / :func:`grade_record`: the same for the reader's grades (an unknown grading,
  level, side or value is a :class:`LoadIssue`).
- :func:`to_measurement` / :func:`to_record`: the file's measurement records (checked for shape
  only by io) become the model's measurements here: an unknown kind, source or side, or a wrong
  number of points, is a :class:`LoadIssue`; a plane whose vectors are not orthonormal is
  derived from the measurement's points (with a warning), never a reason to drop it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Dataset, storage_key
from lumbarview.core.errors import LoadError
from lumbarview.core.fs import keep_aside, move_aside, open_regular, sweep_temporaries
from lumbarview.core.geometry import SlicePlane
from lumbarview.core.limits import ResourceLimitError, limits
from lumbarview.core.text import safe_line
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.session_file import (
    GradeRecord,
    LayerRecord,
    MeasurementRecord,
    PlaneRecord,
    SessionFile,
    ViewRecord,
    WindowRecord,
    read_session,
    write_session,
)
from lumbarview.model.gradings import Grade
from lumbarview.model.kinds import plane_through
from lumbarview.model.measurements import Measurement, MeasurementPlane
from lumbarview.model.report_fields import check_field
from lumbarview.model.session import LAYOUTS, Session
from lumbarview.model.view_state import WindowLevel
from lumbarview.slicing.reformat import REFORMAT_BYTES_PER_PIXEL

__all__ = ["Opened", "SessionFile", "SessionStore", "apply", "default_session_file", "find_by_fingerprint",
           "fingerprint", "grade_record", "locate_dataset", "open_session_file", "restored_whole", "snapshot",
           "to_grade", "to_measurement", "to_record"]

#: Temporaries of a save younger than this are left alone (another lumbarview may be saving).
TEMPORARY_GRACE_S = 10.0
#: A stored plane's vectors are orthonormal within this.
ORTHONORMAL_TOLERANCE = 1e-3


# -- records <-> measurements --------------------------------------------------------------------
def plane_record(plane: SlicePlane | MeasurementPlane) -> PlaneRecord:
    """The stored form of a plane."""
    m = plane if isinstance(plane, MeasurementPlane) else MeasurementPlane.of(plane)
    return PlaneRecord(m.origin_lps, m.right_lps, m.down_lps, m.normal_lps, m.spacing_mm, m.shape_rc)


def to_record(m: Measurement) -> MeasurementRecord:
    return MeasurementRecord(m.id, m.kind, m.points_lps, None if m.plane is None else plane_record(m.plane), m.series,
                             m.level, m.side, m.note, m.source, m.case, m.label)


def grade_record(g: Grade) -> GradeRecord:
    return GradeRecord(g.grading, g.level, g.value, g.side, g.source, g.note, g.case)


def to_grade(record: GradeRecord, source: str = "session") -> tuple[Grade | None, list[LoadIssue]]:
    """The grade of a stored record, or None and why (an unknown grading, level, side, value or
    source)."""
    try:
        return Grade.create(record.grading, record.level, record.value, record.side, record.source, record.note,
                            record.case), []
    except ValueError as exc:
        where = f"grade {record.grading!r} at {record.level!r}"
        return None, [LoadIssue(Severity.WARNING, "session.entry-skipped", f"skipped: {where}: {exc}", source)]


def _v(a: npt.ArrayLike) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in np.asarray(a, dtype=np.float64).reshape(3))
    return (x, y, z)


def _plane(record: PlaneRecord) -> MeasurementPlane:
    return MeasurementPlane(record.origin_lps, record.right_lps, record.down_lps, record.normal_lps,
                            record.spacing_mm, record.shape_rc)


def _orthonormal(record: PlaneRecord) -> bool:
    right, down, normal = (np.asarray(v, dtype=np.float64) for v in (record.right_lps, record.down_lps,
                                                                      record.normal_lps))
    tol = ORTHONORMAL_TOLERANCE
    return bool(abs(np.linalg.norm(right) - 1) <= tol and abs(np.linalg.norm(down) - 1) <= tol
                and abs(float(right @ down)) <= tol and abs(abs(float(normal @ np.cross(right, down))) - 1) <= tol)


def measurement_plane(record: MeasurementRecord) -> tuple[MeasurementPlane | None, str | None]:
    """The plane of a stored measurement and, when the stored one could not be used as it is,
    why. A normal stored the other way round (``-(right x down)``) is the same plane; vectors
    that are not orthonormal give way to the plane through the points (none for fewer than
    three points or points on a line: the value is then measured in 3D)."""
    stored = record.plane
    if stored is None:
        return None, None
    if _orthonormal(stored):
        normal = np.cross(np.asarray(stored.right_lps, dtype=np.float64), np.asarray(stored.down_lps, dtype=np.float64))
        return dataclasses.replace(_plane(stored), normal_lps=_v(normal)), None
    fitted = plane_through(np.asarray(record.points_lps, dtype=np.float64))
    if fitted is None:
        return None, "its plane's vectors are not orthonormal; it is measured in 3D (its points span no plane)"
    origin, right, down = fitted
    return (MeasurementPlane(_v(origin), _v(right), _v(down), _v(np.cross(right, down)), stored.spacing_mm, None),
            "its plane's vectors are not orthonormal; the plane through its points is used")


def to_measurement(record: MeasurementRecord, source: str = "session") -> tuple[Measurement | None, list[LoadIssue]]:
    """The measurement of a stored record, and what to tell the user (None when it cannot be
    one: an unknown kind, source or side, a wrong number of points)."""
    where = f"measurement {record.id!r}"
    plane, problem = measurement_plane(record)
    issues = [] if problem is None else [LoadIssue(Severity.WARNING, "session.plane-derived", f"{where}: {problem}",
                                                   source)]
    try:
        m = Measurement.create(record.kind, record.points_lps, None, series=record.series, case=record.case,
                               source=record.source, level=record.level, side=record.side, note=record.note,
                               label=record.label, ident=record.id)
    except ValueError as exc:
        issues.append(LoadIssue(Severity.WARNING, "session.entry-skipped", f"skipped: {where}: {exc}", source))
        return None, issues
    return dataclasses.replace(m, plane=plane), issues


def workspace_dir(workspace: str | Path | None = None) -> Path:
    if workspace is None:
        workspace = os.environ.get("LUMBARVIEW_WORKSPACE")
    if workspace is None:
        import platformdirs

        workspace = platformdirs.user_data_dir("lumbarview", appauthor=False)
    return Path(workspace)


def default_session_file(dataset_path: str, workspace: str | Path | None = None) -> Path:
    """The autosaved session of the dataset at ``dataset_path`` (one per dataset root; a study
    of the study database, ``study:UID``, by its Study Instance UID)."""
    return workspace_dir(workspace) / "sessions" / f"{storage_key(dataset_path)}.json"


def fingerprint(dataset: Dataset) -> str:
    """A fingerprint of the dataset's content as opened: its cases, series, stacks and their
    grids (UIDs come from the files' content, not their paths: a moved copy keeps it)."""
    h = hashlib.sha1()
    for case in sorted(dataset.cases, key=lambda c: c.id):
        h.update(f"case {case.id}\n".encode())
        for series in sorted(case.series, key=lambda s: s.uid):
            h.update(f" series {series.uid}\n".encode())
            for stack in sorted(series.stacks, key=lambda k: k.uid):
                h.update(f"  stack {stack.uid} {stack.geometry.shape_kji}\n".encode())
    return "sha1:" + h.hexdigest()


# -- session -> file -----------------------------------------------------------------------------
def snapshot(session: Session) -> SessionFile:
    """What to save of ``session``."""
    dataset = session.dataset
    views = []
    for name, view in session.views.items():
        series = view.series
        window = view.window
        plane = view.custom_plane if view.custom_plane is not None else view.plane
        views.append(ViewRecord(name, None if plane is None else plane_record(plane), view.custom_plane is not None,
                                None if series is None else series.uid,
                                None if window is None else WindowRecord(window.center, window.width, window.invert)))
    layers = [LayerRecord(layer.name, layer.visible, float(layer.opacity), "outline" if layer.outline else "fill")
              for layer in session.overlays.layers]
    cursor = session.cursor.crosshair
    return SessionFile(
        dataset_path=None if dataset is None else os.path.abspath(dataset.path),
        fingerprint=None if dataset is None else fingerprint(dataset),
        case=None if session.case is None else session.case.id, layout=session.layout,
        cursor_lps=(float(cursor[0]), float(cursor[1]), float(cursor[2])), views=views, layers=layers,
        measurements=[to_record(m) for m in session.measurements],
        gradings=[grade_record(g) for g in session.gradings], report=session.report_fields.items())


class SessionStore:
    """One session file: save and autosave atomically, open without ever losing it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.removed_temporaries = sweep_temporaries(self.path, older_than_s=TEMPORARY_GRACE_S)
        self.saving_disabled = False
        #: The file on disk is this session's to overwrite: it was restored whole into it, or
        #: this store wrote it. Until then the first save keeps the file aside (see :meth:`save`).
        self.adopted = False
        #: Where files were kept aside by saves, the newest last (the window says where).
        self.kept_aside: list[Path] = []

    def adopt(self) -> None:
        """The file's content is now in the session (restored whole): saves may replace it."""
        self.adopted = True

    def save(self, session: Session) -> Path:
        """Write ``session`` (atomically: old file or new, never a part).

        A session is never overwritten by one that did not take it in: when the file exists
        and was not restored whole into this session (the user declined it, it was never
        offered, its restore skipped entries, another session file was opened), the first save
        keeps it aside as ``<name>.previous-<time>`` (listed in :attr:`kept_aside`) before
        writing."""
        if self.saving_disabled:
            return self.path
        self.keep_previous()
        write_session(self.path, snapshot(session))
        return self.path

    autosave = save

    def keep_previous(self) -> None:
        """Before the first write over a file this session did not take in whole: keep it aside
        (a hard link, so cheap enough for the GUI thread) and remember where."""
        if self.saving_disabled:
            return
        if not self.adopted and self.path.exists():
            self.kept_aside.append(keep_aside(self.path, "previous"))
        self.adopted = True

    def write(self, doc: SessionFile) -> Path:
        """Write a snapshot taken earlier (:func:`snapshot`), atomically, keeping a file this
        session did not take in aside first; see :mod:`lumbarview.services.session_writer` for
        writing off the GUI thread."""
        if not self.saving_disabled:
            self.keep_previous()
            write_session(self.path, doc)
        return self.path

    def exists(self) -> bool:
        return self.path.is_file()

    def open(self) -> Opened:
        """Read the file. An unreadable file is moved aside (kept as
        ``<name>.unreadable-<time>``) so that the next save cannot overwrite it; the result says
        where it went and why."""
        if not self.path.exists():
            return Opened(None, [], None)
        try:
            doc = read_session(self.path)
        except LoadError as exc:
            try:
                backup = move_aside(self.path, "unreadable")
            except OSError as move_error:
                self.saving_disabled = True
                message = (f"The session file {self.path} cannot be read ({exc.problem}) and could not be moved "
                           f"aside ({move_error.strerror or move_error}); it is left untouched and this session "
                           "is not saved. Move or repair the file.")
                return Opened(None, [LoadIssue(Severity.ERROR, "session.unreadable", message, str(self.path))], None)
            message = (f"The session file {self.path} could not be read ({exc.problem}). It was kept as {backup}; "
                       "the session starts anew and is saved to a new file.")
            return Opened(None, [LoadIssue(Severity.WARNING, "session.unreadable", message, str(self.path))], backup)
        return Opened(doc, list(doc.issues), None)


@dataclass
class Opened:
    """A session file as opened: the document (None when there was none or it was unreadable),
    what to tell the user, and where an unreadable file was kept."""

    doc: SessionFile | None
    issues: list[LoadIssue] = field(default_factory=list)
    backup: Path | None = None


def open_session_file(path: str | Path) -> Opened:
    """Open a session file named by the user (``view --session FILE``). Unlike the autosave,
    an unreadable file named by the user is left where it is (it is theirs)."""
    try:
        doc = read_session(path)
    except LoadError as exc:
        return Opened(None, [LoadIssue(Severity.ERROR, "session.unreadable",
                                       f"The session file {path} could not be read: {exc}", str(path))])
    return Opened(doc, list(doc.issues))


def locate_dataset(doc: SessionFile, session_path: str | Path) -> tuple[str | None, list[LoadIssue]]:
    """The dataset folder a session names: its absolute path, else the path relative to the
    session file (the two moved together); None with an issue when neither exists."""
    issues: list[LoadIssue] = []
    if doc.dataset_path and os.path.exists(doc.dataset_path):
        return doc.dataset_path, issues
    if doc.dataset_relative_path:
        candidate = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(session_path)),
                                                  doc.dataset_relative_path))
        if os.path.exists(candidate):
            if doc.dataset_path:
                issues.append(LoadIssue(Severity.INFO, "session.dataset-moved",
                                        f"The dataset is no longer at {doc.dataset_path}; found it at {candidate} "
                                        "through the session's relative path.", str(session_path)))
            return candidate, issues
    issues.append(LoadIssue(Severity.ERROR, "session.dataset-missing",
                            f"The session's dataset is neither at {doc.dataset_path!r} nor at "
                            f"{doc.dataset_relative_path!r} next to the session file. Open the dataset, then the "
                            "session, or move the dataset back.", str(session_path)))
    return None, issues


#: Session files read when looking for a copied dataset's session (the newest first).
MAX_FINGERPRINT_CANDIDATES = 200


def find_by_fingerprint(dataset: Dataset, workspace: str | Path | None = None) -> Path | None:
    """The newest session file in the workspace saved for a dataset with this one's content
    fingerprint (a copied or moved dataset is offered its session), or None. Unreadable files
    are passed over (never moved: they belong to other datasets)."""
    folder = workspace_dir(workspace) / "sessions"
    try:
        candidates = sorted((p for p in folder.glob("*.json") if p.is_file()), key=lambda p: p.stat().st_mtime,
                            reverse=True)[:MAX_FINGERPRINT_CANDIDATES]
    except OSError:
        return None
    wanted = fingerprint(dataset)
    for candidate in candidates:
        try:
            with open_regular(candidate) as fh:  # the fingerprint sits near the top: a cheap look first
                if wanted.encode() not in fh.read(8192):
                    continue
            doc = read_session(candidate)
        except (LoadError, OSError):
            continue
        if doc.fingerprint == wanted and doc.measurements:
            return candidate
    return None


def restored_whole(issues: list[LoadIssue]) -> bool:
    """Whether a restore with these issues took in the whole file (nothing skipped or lost)."""
    return not any(issue.severity >= Severity.WARNING for issue in issues)


# -- checks of what a session file asks for ----------------------------------------------------------
#: A coordinate farther than this from the scanner's origin is not a position in a patient (1 km).
MAX_COORDINATE_MM = 1_000_000.0
#: How far outside the case's images a restored cursor or plane may lie: this, or the images'
#: diagonal when larger.
MIN_REACH_MM = 500.0
#: The largest window centre or width taken from a file (intensities; anything larger makes the
#: display's arithmetic overflow).
MAX_WINDOW_VALUE = 1e9


@dataclass(frozen=True)
class _Region:
    """The box the case's images fill in LPS, and how far outside it a position is plausible."""

    low: np.ndarray
    high: np.ndarray
    finest_mm: float  # the finest voxel spacing of the case's images

    @property
    def reach(self) -> float:
        return max(MIN_REACH_MM, float(np.linalg.norm(self.high - self.low)))

    def distance(self, point: np.ndarray) -> float:
        outside = np.maximum(self.low - point, 0.0) + np.maximum(point - self.high, 0.0)
        return float(np.linalg.norm(outside))


def _case_region(session: Session) -> _Region | None:
    corners = []
    finest = math.inf
    for series in session.case.series if session.case is not None else []:
        for stack in series.stacks:
            k, j, i = stack.geometry.shape_kji
            box = np.array([[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)], dtype=np.float64)
            corners.append(stack.geometry.index_to_lps(box))
            finest = min(finest, *stack.geometry.spacing_mm)
    if not corners:
        return None
    points = np.concatenate(corners)
    return _Region(points.min(axis=0), points.max(axis=0), finest if math.isfinite(finest) and finest > 0 else 0.1)


def _position_problem(point: tuple[float, ...], region: _Region | None, what: str) -> str | None:
    """Why ``point`` cannot be restored (None when it can): not finite, beyond any patient, or
    farther from the case's images than is plausible."""
    p = np.asarray(point, dtype=np.float64)
    if not np.all(np.isfinite(p)) or float(np.abs(p).max()) > MAX_COORDINATE_MM:
        return f"the {what} ({', '.join(f'{v:.6g}' for v in point)}) is not a position in a patient"
    if region is not None and region.distance(p) > region.reach:
        return (f"the {what} ({', '.join(f'{v:.6g}' for v in point)}) lies {region.distance(p):,.0f} mm from the "
                f"case's images, farther than the {region.reach:,.0f} mm that is plausible")
    return None


def _plane_problem(record: PlaneRecord, region: _Region | None, what: str) -> str | None:
    """Why a view plane cannot be restored: its origin (see :func:`_position_problem`), its size
    over the budgets a reformat of it needs, or a size far beyond the case's images."""
    problem = _position_problem(record.origin_lps, region, f"{what}'s origin")
    if problem is not None or record.shape_rc is None:
        return problem
    rows, cols = record.shape_rc
    try:
        limits().check_plane(None, rows, cols, REFORMAT_BYTES_PER_PIXEL, f"{what} ({rows} x {cols} pixels)")
    except ResourceLimitError as exc:
        return f"{exc.problem}. {exc.action}"
    if region is None:
        return None
    sx, sy = record.spacing_mm or (1.0, 1.0)
    size = max(rows * sy, cols * sx)
    if size > 4 * region.reach:
        return f"the {what} spans {size:,.0f} mm, far more than the case's images ({region.reach:,.0f} mm)"
    # Twice the case's reach at its finest voxel size a side covers any view of it.
    most = math.ceil(2 * region.reach / region.finest_mm)
    if max(rows, cols) > most:
        return (f"the {what} has {rows} x {cols} pixels, more than the {most:,} a side that cover the case's "
                f"images at their finest voxel size ({region.finest_mm:g} mm)")
    return None


def _window_problem(record: WindowRecord, what: str) -> str | None:
    if abs(record.center) > MAX_WINDOW_VALUE or record.width > MAX_WINDOW_VALUE:
        return (f"the {what} (centre {record.center:.6g}, width {record.width:.6g}) is beyond "
                f"{MAX_WINDOW_VALUE:g}, more than any image's intensities")
    return None


def _measurement_problem(record: MeasurementRecord) -> str | None:
    """Why a measurement cannot be restored: a point that is not a position in a patient (its
    length or area would not be a finite number). Measurements far from the case on screen are
    kept (they may belong to another case)."""
    for n, point in enumerate(record.points_lps):
        problem = _position_problem(point, None, f"point {n + 1}")
        if problem is not None:
            return problem
    return None


def _guarded(warn: Callable[[str, str], None], what: str, action: Callable[[], None]) -> bool:
    """Run one step of a restore; a failure is one issue and the restore goes on."""
    try:
        action()
    except Exception as exc:  # a value the checks missed must not stop the rest of the restore
        warn("session.entry-skipped", f"the {what} could not be restored ({type(exc).__name__}: "
             f"{safe_line(exc, 300)}); the rest of the session was restored")
        return False
    return True


# -- file -> session ---------------------------------------------------------------------------
def apply(session: Session, doc: SessionFile, source: str = "session") -> list[LoadIssue]:
    """Restore ``doc`` into ``session`` (its dataset and case already shown): measurements
    first (they are the user's work), then layout, views, windows, planes, layers and cursor.
    Every value passes the checks a file's values pass (positions within a plausible distance
    of the case's images, planes within the budgets, values that stay finite); a bad entry, or
    one whose restore fails, is skipped with an issue and the rest is restored. Returns what
    could not be restored. The history starts anew (a restored session is a fresh start)."""
    issues: list[LoadIssue] = []

    def warn(code: str, message: str) -> None:
        issues.append(LoadIssue(Severity.WARNING, code, message, source))

    dataset = session.dataset
    if dataset is not None and doc.fingerprint and doc.fingerprint != fingerprint(dataset):
        warn("session.dataset-changed", "The dataset's content differs from when the session was saved (series "
             "added, removed or changed); what still matches is restored.")
    case = session.case
    if doc.case is not None and (case is None or case.id != doc.case):
        warn("session.case-missing", f"The session's case {doc.case!r} is not open; its measurements are kept "
             "but not shown.")
    all_series = {s.uid: s for c in (dataset.cases if dataset else []) for s in c.series}
    case_series = {s.uid: s for s in case.series} if case is not None else {}
    region = _case_region(session)
    restored = []
    for measurement in doc.measurements:
        problem = _measurement_problem(measurement)
        if problem is not None:
            warn("session.entry-skipped", f"The {measurement.kind} measurement {measurement.id} was skipped: "
                 f"{problem}.")
            continue
        found, problems = to_measurement(measurement, source)
        issues.extend(problems)
        if found is None:
            continue
        m = found
        if m.series and m.series not in all_series:
            warn("session.series-missing", f"The {m.kind} measurement {m.id} was drawn on series {m.series}, which "
                 "is gone; it is restored at its position (its region statistics cannot be computed).")
        restored.append(m)
    session.measurements.reset(restored)
    grades: dict[tuple[str | None, str, str, str | None], Grade] = {}
    for grade_record_ in doc.gradings:
        grade, problems = to_grade(grade_record_, source)
        issues.extend(problems)
        if grade is not None:
            if grade.slot in grades:
                warn("session.entry-skipped", f"skipped: a second grade {grade.grading} at {grade.level}"
                     f"{' ' + grade.side if grade.side else ''}")
                continue
            grades[grade.slot] = grade
    session.gradings.reset(grades.values())
    fields = []
    for case_id, key, text in doc.report:
        try:
            check_field(key, text)
        except ValueError as exc:
            warn("session.entry-skipped", f"skipped: {exc}")
            continue
        fields.append((case_id, key, text))
    session.report_fields.reset(fields)
    if doc.layout in LAYOUTS:
        session.layout = doc.layout
    elif doc.layout is not None:
        warn("session.entry-skipped", f"unknown layout {doc.layout!r}")
    for record in doc.views:
        _guarded(warn, f"{record.name} view", partial(_apply_view, session, record, case_series, region, warn))
    layers = {layer.name: layer for layer in session.overlays.layers}
    for layer_record in doc.layers:
        layer = layers.get(layer_record.name)
        if layer is None:
            warn("session.layer-missing", f"The layer {layer_record.name!r} is not in this case any more.")
            continue
        _guarded(warn, f"layer {layer_record.name!r}",
                 partial(session.overlays.update, layer, visible=layer_record.visible, opacity=layer_record.opacity,
                         outline=layer_record.mode == "outline"))
    if doc.cursor_lps is not None:
        problem = _position_problem(doc.cursor_lps, region, "cursor")
        if problem is not None:
            warn("session.entry-skipped", f"The cursor was not restored: {problem}.")
        else:
            cursor = np.asarray(doc.cursor_lps, dtype=np.float64)
            _guarded(warn, "cursor", partial(session.cursor.set_crosshair, cursor))
    session.undo.clear()
    return issues


def _apply_view(session: Session, record: ViewRecord, case_series: dict[str, Any], region: _Region | None,
                warn: Callable[[str, str], None]) -> None:
    """One view of a session file: its series, custom plane and window (each checked first)."""
    view = session.views.get(record.name)
    if view is None:
        warn("session.entry-skipped", f"unknown view {record.name!r}")
        return
    series = case_series.get(record.series) if record.series else None
    if record.series and series is None:
        warn("session.series-missing", f"The {record.name} view showed series {record.series}, which is gone; "
             "the view keeps the case's default series.")
    if series is not None and series is not view.series:
        view.set_series(series)
    if record.custom and record.plane is not None and view.series is not None:
        problem = _plane_problem(record.plane, region, f"{record.name} view's plane")
        if record.plane.shape_rc is None:
            warn("session.entry-skipped", f"the {record.name} view's plane has no size; the standard plane is "
                 "shown")
        elif problem is not None:
            warn("session.entry-skipped", f"The {record.name} view's plane was not restored: {problem}; the "
                 "standard plane is shown.")
        else:
            try:
                view.set_custom_plane(_plane(record.plane).view_plane())
            except Exception:
                view.set_custom_plane(None)  # back to the standard plane, then say why
                raise
    if record.window is not None and view.series is not None and (series is not None or not record.series):
        problem = _window_problem(record.window, f"{record.name} view's window")
        if problem is not None:
            warn("session.entry-skipped", f"The {record.name} view's window was not restored: {problem}.")
            return
        window = WindowLevel(record.window.center, record.window.width, record.window.invert)
        session.windows[view.series.uid] = window
        view.set_window(window)
