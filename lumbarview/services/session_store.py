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
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Dataset, storage_key
from lumbarview.core.errors import LoadError
from lumbarview.core.fs import move_aside, sweep_temporaries
from lumbarview.core.geometry import SlicePlane
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

__all__ = ["Opened", "SessionFile", "SessionStore", "apply", "default_session_file", "fingerprint", "grade_record",
           "locate_dataset", "open_session_file", "snapshot", "to_grade", "to_measurement", "to_record"]

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

    def save(self, session: Session) -> Path:
        """Write ``session`` (atomically: old file or new, never a part)."""
        if not self.saving_disabled:
            write_session(self.path, snapshot(session))
        return self.path

    autosave = save

    def write(self, doc: SessionFile) -> Path:
        """Write a snapshot taken earlier (:func:`snapshot`), atomically; see
        :mod:`lumbarview.services.session_writer` for writing off the GUI thread."""
        if not self.saving_disabled:
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


# -- file -> session ---------------------------------------------------------------------------
def apply(session: Session, doc: SessionFile, source: str = "session") -> list[LoadIssue]:
    """Restore ``doc`` into ``session`` (its dataset and case already shown): measurements,
    windows, planes, layers, cursor, layout. Returns what could not be restored. The history
    starts anew (a restored session is a fresh start)."""
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
    if doc.layout in LAYOUTS:
        session.layout = doc.layout
    elif doc.layout is not None:
        warn("session.entry-skipped", f"unknown layout {doc.layout!r}")
    for record in doc.views:
        view = session.views.get(record.name)
        if view is None:
            warn("session.entry-skipped", f"unknown view {record.name!r}")
            continue
        series = case_series.get(record.series) if record.series else None
        if record.series and series is None:
            warn("session.series-missing", f"The {record.name} view showed series {record.series}, which is gone; "
                 "the view keeps the case's default series.")
        if series is not None and series is not view.series:
            view.set_series(series)
        if record.custom and record.plane is not None and view.series is not None:
            if record.plane.shape_rc is None:
                warn("session.entry-skipped", f"the {record.name} view's plane has no size; the standard plane is "
                     "shown")
            else:
                view.set_custom_plane(_plane(record.plane).view_plane())
        if record.window is not None and view.series is not None and (series is not None or not record.series):
            window = WindowLevel(record.window.center, record.window.width, record.window.invert)
            session.windows[view.series.uid] = window
            view.set_window(window)
    layers = {layer.name: layer for layer in session.overlays.layers}
    for layer_record in doc.layers:
        layer = layers.get(layer_record.name)
        if layer is None:
            warn("session.layer-missing", f"The layer {layer_record.name!r} is not in this case any more.")
            continue
        session.overlays.update(layer, visible=layer_record.visible, opacity=layer_record.opacity,
                                outline=layer_record.mode == "outline")
    restored = []
    for measurement in doc.measurements:
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
    if doc.cursor_lps is not None:
        session.cursor.set_crosshair(np.asarray(doc.cursor_lps, dtype=np.float64))
    session.undo.clear()
    return issues
