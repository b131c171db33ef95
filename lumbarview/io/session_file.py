"""The session file: versioned JSON, a contract other tools read and write.

Top level::

    format        "lumbarview-session"
    version       1
    saved_at      ISO 8601 UTC time of the save (optional)
    dataset       {path: absolute, relative_path: from the session file's folder,
                   fingerprint: content fingerprint of the opened dataset}
    case          the case on screen
    layout        "1x2" | "1x3" | "2x2"
    cursor_lps    [x, y, z] (optional)
    views         [{name, plane: {origin_lps, right_lps, down_lps, normal_lps, spacing_mm?, shape_rc?}
                    | null, custom: bool, series: uid | null, window: {center, width, invert} | null}]
    layers        [{name, visible, opacity, mode: "fill" | "outline"}]
    measurements  [{id, kind, points_lps, plane, series, level, side, note, source, case?, label?}]
    gradings      [{grading, level, value, side?, source?, note?, case?}] (per level; side "left" |
                   "right" for a sided grading, null otherwise; source "reader" | "dataset")
    report        [{case, key, text}] the structured report's free text (keys:
                   lumbarview.model.report_fields)

This module checks the file's shape only: a measurement's ``kind``, ``source`` and ``side`` are
strings and its points finite LPS triples. What the kinds are (``distance``, ``angle``, ``cobb``,
``ellipse``, ``rectangle``, ``polygon``, ``freehand``, ``point``: :mod:`lumbarview.model.kinds`),
how many points each takes and whether a measurement's plane is orthonormal is checked where
records become measurements (:mod:`lumbarview.services.session_store`); likewise a grade's
``grading``, ``level``, ``side`` and ``value`` are strings here and checked against
:mod:`lumbarview.model.gradings` there. A plane's ``normal_lps``
may be ``right_lps x down_lps`` or its opposite (the same plane). Every key but ``format`` and
``version`` is optional: a file missing them opens with defaults. An entry that is not valid is
skipped with a :class:`~lumbarview.core.types.LoadIssue` (the rest still opens); a file that is
not a session file at all raises a :class:`~lumbarview.core.errors.LoadError`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lumbarview.core.errors import UnsupportedFormatError
from lumbarview.core.fs import atomic_write_text
from lumbarview.core.safe_json import json_path, read_json_guarded, type_name
from lumbarview.core.types import LoadIssue, Severity

FORMAT = "lumbarview-session"
VERSION = 1
#: Cap on the points of one measurement (a budget, not a clinical limit).
MAX_POINTS = 10_000
#: Cap on the measurements read from one file (a budget, not a clinical limit).
MAX_MEASUREMENTS = 20_000

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class PlaneRecord:
    """A view plane as stored: unit vectors of screen right and down, and the normal."""

    origin_lps: Vec3
    right_lps: Vec3
    down_lps: Vec3
    normal_lps: Vec3
    spacing_mm: tuple[float, float] | None = None
    shape_rc: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"origin_lps": list(self.origin_lps), "right_lps": list(self.right_lps),
                               "down_lps": list(self.down_lps), "normal_lps": list(self.normal_lps)}
        if self.spacing_mm is not None:
            out["spacing_mm"] = list(self.spacing_mm)
        if self.shape_rc is not None:
            out["shape_rc"] = list(self.shape_rc)
        return out


@dataclass(frozen=True)
class MeasurementRecord:
    """One measurement as stored (see the module docstring)."""

    id: str
    kind: str
    points_lps: tuple[Vec3, ...]
    plane: PlaneRecord | None = None
    series: str | None = None
    level: str | None = None
    side: str | None = None
    note: str = ""
    source: str = "manual"
    case: str | None = None
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "points_lps": [list(p) for p in self.points_lps],
                "plane": None if self.plane is None else self.plane.to_json(), "series": self.series,
                "level": self.level, "side": self.side, "note": self.note, "source": self.source,
                "case": self.case, "label": self.label}


@dataclass(frozen=True)
class GradeRecord:
    """One grade as stored (see the module docstring)."""

    grading: str
    level: str
    value: str
    side: str | None = None
    source: str = "reader"
    note: str = ""
    case: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"grading": self.grading, "level": self.level, "value": self.value, "side": self.side,
                "source": self.source, "note": self.note, "case": self.case}


@dataclass(frozen=True)
class WindowRecord:
    center: float
    width: float
    invert: bool = False


@dataclass(frozen=True)
class ViewRecord:
    name: str
    plane: PlaneRecord | None = None
    custom: bool = False
    series: str | None = None
    window: WindowRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "plane": None if self.plane is None else self.plane.to_json(),
                "custom": self.custom, "series": self.series,
                "window": None if self.window is None else {"center": self.window.center, "width": self.window.width,
                                                            "invert": self.window.invert}}


@dataclass(frozen=True)
class LayerRecord:
    name: str
    visible: bool = True
    opacity: float = 1.0
    mode: str = "fill"  # "fill" | "outline"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "visible": self.visible, "opacity": self.opacity, "mode": self.mode}


@dataclass
class SessionFile:
    """A whole session file. ``issues`` lists what was skipped while reading it."""

    dataset_path: str | None = None
    dataset_relative_path: str | None = None
    fingerprint: str | None = None
    case: str | None = None
    layout: str | None = None
    cursor_lps: Vec3 | None = None
    views: list[ViewRecord] = field(default_factory=list)
    layers: list[LayerRecord] = field(default_factory=list)
    measurements: list[MeasurementRecord] = field(default_factory=list)
    gradings: list[GradeRecord] = field(default_factory=list)
    report: list[tuple[str | None, str, str]] = field(default_factory=list)
    saved_at: str | None = None
    issues: list[LoadIssue] = field(default_factory=list)

    def to_json(self, session_path: str | Path | None = None) -> dict[str, Any]:
        """The document; ``relative_path`` is computed from ``session_path``'s folder when given."""
        relative = self.dataset_relative_path
        if session_path is not None and self.dataset_path is not None:
            try:
                relative = os.path.relpath(os.path.abspath(self.dataset_path),
                                           os.path.dirname(os.path.abspath(session_path)))
            except ValueError:  # another drive (Windows)
                relative = None
        return {
            "format": FORMAT, "version": VERSION,
            "saved_at": self.saved_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dataset": {"path": None if self.dataset_path is None else os.path.abspath(self.dataset_path),
                        "relative_path": relative, "fingerprint": self.fingerprint},
            "case": self.case, "layout": self.layout,
            "cursor_lps": None if self.cursor_lps is None else list(self.cursor_lps),
            "views": [v.to_json() for v in self.views],
            "layers": [layer.to_json() for layer in self.layers],
            "measurements": [m.to_json() for m in self.measurements],
            "gradings": [g.to_json() for g in self.gradings],
            "report": [{"case": case, "key": key, "text": text} for case, key, text in self.report],
        }


def dumps(doc: SessionFile, session_path: str | Path | None = None) -> str:
    """The session as JSON text (no NaN or infinity: they are not JSON)."""
    return json.dumps(doc.to_json(session_path), indent=1, allow_nan=False) + "\n"


def write_session(path: str | Path, doc: SessionFile) -> None:
    """Write ``doc`` to ``path`` atomically (a reader sees the old file or the new one)."""
    atomic_write_text(path, dumps(doc, path))


# -- reading ----------------------------------------------------------------------------------
class _Bad(ValueError):
    def __init__(self, where: list[str | int], problem: str) -> None:
        super().__init__(f"{json_path(where)} {problem}")


def _number(value: Any, where: list[str | int]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(where, f"is {type_name(value)}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Bad(where, "is not a finite number")
    return number


def _vec3(value: Any, where: list[str | int]) -> Vec3:
    if not isinstance(value, list) or len(value) != 3:
        raise _Bad(where, f"is {type_name(value)}, not a list of three numbers")
    x, y, z = (_number(v, [*where, n]) for n, v in enumerate(value))
    return (x, y, z)


def _text(value: Any, where: list[str | int], optional: bool = True, max_chars: int = 10_000) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Bad(where, f"is {type_name(value)}, not a string")
    if len(value) > max_chars:
        raise _Bad(where, f"is a string of {len(value):,} characters (at most {max_chars:,})")
    return value


def _plane(value: Any, where: list[str | int], orthonormal: bool = True) -> PlaneRecord | None:
    """A plane; with ``orthonormal`` its vectors must be unit, perpendicular, and the normal
    ``right x down`` or its opposite (it is stored as ``right x down``); without, only their
    shape is checked (the reader of the record checks the rest)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(where, f"is {type_name(value)}, not an object")
    vectors = [_vec3(value.get(key), [*where, key]) for key in ("origin_lps", "right_lps", "down_lps")]
    origin, right, down = vectors
    cross = (right[1] * down[2] - right[2] * down[1], right[2] * down[0] - right[0] * down[2],
             right[0] * down[1] - right[1] * down[0])
    normal = _vec3(value["normal_lps"], [*where, "normal_lps"]) if "normal_lps" in value else cross
    if orthonormal:
        for vec, key in ((right, "right_lps"), (down, "down_lps")):
            if abs(math.hypot(*vec) - 1.0) > 1e-3:
                raise _Bad([*where, key], "is not a unit vector")
        if abs(sum(a * b for a, b in zip(right, down, strict=True))) > 1e-3:
            raise _Bad(where, "has right_lps and down_lps that are not perpendicular")
        if abs(sum(a * b for a, b in zip(normal, cross, strict=True))) < 1 - 1e-3:
            raise _Bad([*where, "normal_lps"], "is not right_lps x down_lps (or its opposite)")
        normal = cross
    spacing = value.get("spacing_mm")
    spacing_mm: tuple[float, float] | None = None
    if spacing is not None:
        if not isinstance(spacing, list) or len(spacing) != 2:
            raise _Bad([*where, "spacing_mm"], "is not a list of two numbers")
        sx, sy = (_number(v, [*where, "spacing_mm", n]) for n, v in enumerate(spacing))
        if not (0 < sx <= 1000 and 0 < sy <= 1000):
            raise _Bad([*where, "spacing_mm"], "is not a positive pixel size of at most 1000 mm")
        spacing_mm = (sx, sy)
    shape = value.get("shape_rc")
    shape_rc: tuple[int, int] | None = None
    if shape is not None:
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65_536 for v in shape)):
            raise _Bad([*where, "shape_rc"], "is not two image sizes between 1 and 65536")
        shape_rc = (int(shape[0]), int(shape[1]))
    return PlaneRecord(origin, right, down, normal, spacing_mm, shape_rc)


def _measurement(item: Any, where: list[str | int]) -> MeasurementRecord:
    if not isinstance(item, dict):
        raise _Bad(where, f"is {type_name(item)}, not an object")
    ident = _text(item.get("id"), [*where, "id"], optional=False, max_chars=200)
    kind = _text(item.get("kind"), [*where, "kind"], optional=False, max_chars=40)
    points = item.get("points_lps")
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        count = len(points) if isinstance(points, list) else type_name(points)
        raise _Bad([*where, "points_lps"], f"holds {count} points, not 1 to {MAX_POINTS:,}")
    pts = tuple(_vec3(p, [*where, "points_lps", n]) for n, p in enumerate(points))
    return MeasurementRecord(
        id=str(ident), kind=str(kind), points_lps=pts,
        plane=_plane(item.get("plane"), [*where, "plane"], orthonormal=False),
        series=_text(item.get("series"), [*where, "series"], max_chars=300),
        level=_text(item.get("level"), [*where, "level"], max_chars=40),
        side=_text(item.get("side"), [*where, "side"], max_chars=20),
        note=_text(item.get("note", ""), [*where, "note"]) or "",
        source=str(_text(item.get("source", "manual"), [*where, "source"], optional=False, max_chars=40)),
        case=_text(item.get("case"), [*where, "case"], max_chars=300),
        label=_text(item.get("label", ""), [*where, "label"], max_chars=200) or "")


def _grade(item: Any, where: list[str | int]) -> GradeRecord:
    if not isinstance(item, dict):
        raise _Bad(where, f"is {type_name(item)}, not an object")
    return GradeRecord(
        grading=str(_text(item.get("grading"), [*where, "grading"], optional=False, max_chars=40)),
        level=str(_text(item.get("level"), [*where, "level"], optional=False, max_chars=40)),
        value=str(_text(item.get("value"), [*where, "value"], optional=False, max_chars=40)),
        side=_text(item.get("side"), [*where, "side"], max_chars=20),
        source=str(_text(item.get("source", "reader"), [*where, "source"], optional=False, max_chars=40)),
        note=_text(item.get("note", ""), [*where, "note"]) or "",
        case=_text(item.get("case"), [*where, "case"], max_chars=300))


def _report_field(item: Any, where: list[str | int]) -> tuple[str | None, str, str]:
    if not isinstance(item, dict):
        raise _Bad(where, f"is {type_name(item)}, not an object")
    return (_text(item.get("case"), [*where, "case"], max_chars=300),
            str(_text(item.get("key"), [*where, "key"], optional=False, max_chars=60)),
            str(_text(item.get("text", ""), [*where, "text"], optional=False)))


def _view(item: Any, where: list[str | int]) -> ViewRecord:
    if not isinstance(item, dict):
        raise _Bad(where, f"is {type_name(item)}, not an object")
    window = item.get("window")
    record: WindowRecord | None = None
    if window is not None:
        if not isinstance(window, dict):
            raise _Bad([*where, "window"], f"is {type_name(window)}, not an object")
        width = _number(window.get("width"), [*where, "window", "width"])
        if width <= 0:
            raise _Bad([*where, "window", "width"], "is not positive")
        record = WindowRecord(_number(window.get("center"), [*where, "window", "center"]), width,
                              bool(window.get("invert", False)))
    custom = item.get("custom", False)
    return ViewRecord(str(_text(item.get("name"), [*where, "name"], optional=False, max_chars=40)),
                      _plane(item.get("plane"), [*where, "plane"]), custom is True,
                      _text(item.get("series"), [*where, "series"], max_chars=300), record)


def _layer(item: Any, where: list[str | int]) -> LayerRecord:
    if not isinstance(item, dict):
        raise _Bad(where, f"is {type_name(item)}, not an object")
    opacity = _number(item.get("opacity", 1.0), [*where, "opacity"])
    mode = item.get("mode", "fill")
    if mode not in ("fill", "outline"):
        raise _Bad([*where, "mode"], f"is {mode!r}, not fill or outline")
    return LayerRecord(str(_text(item.get("name"), [*where, "name"], optional=False, max_chars=500)),
                       item.get("visible", True) is not False, min(1.0, max(0.0, opacity)), str(mode))


R = TypeVar("R")


def _entries(doc: dict[str, Any], key: str, reader: Callable[[Any, list[str | int]], R],
             issue: Callable[[str], None]) -> list[R]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        issue(f"$.{key} is {type_name(items)}, not a list")
        return []
    if len(items) > MAX_MEASUREMENTS:
        issue(f"$.{key} holds {len(items):,} entries; the first {MAX_MEASUREMENTS:,} were read")
        items = items[:MAX_MEASUREMENTS]
    out: list[R] = []
    for n, item in enumerate(items):
        try:
            out.append(reader(item, [key, n]))
        except _Bad as exc:
            issue(str(exc))
    return out


def parse_session(doc: Any, source: str | Path) -> SessionFile:
    """A :class:`SessionFile` from a parsed document; see the module docstring.

    Raises
    ------
    UnsupportedFormatError
        Not a lumbarview session, or a newer version.
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type_name(doc)
        raise UnsupportedFormatError(source, f"it is not a lumbarview session file ($.format is {found!r})",
                                     "open a file that lumbarview saved as a session")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedFormatError(source, f"$.version is {version!r}, not a session version",
                                     "open a file that lumbarview saved as a session")
    if version > VERSION:
        raise UnsupportedFormatError(source, f"it is a session of version {version}; this lumbarview reads "
                                     f"version {VERSION}", "update lumbarview to open it")
    out = SessionFile()
    path = str(source)

    def issue(problem: str) -> None:
        out.issues.append(LoadIssue(Severity.WARNING, "session.entry-skipped", f"skipped: {problem}", path))

    def scalar(key: str, max_chars: int = 4096) -> str | None:
        try:
            return _text(doc.get(key), [key], max_chars=max_chars)
        except _Bad as exc:
            issue(str(exc))
            return None

    dataset = doc.get("dataset")
    if isinstance(dataset, dict):
        for key, attr in (("path", "dataset_path"), ("relative_path", "dataset_relative_path"),
                          ("fingerprint", "fingerprint")):
            try:
                setattr(out, attr, _text(dataset.get(key), ["dataset", key], max_chars=4096))
            except _Bad as exc:
                issue(str(exc))
    elif dataset is not None:
        issue(f"$.dataset is {type_name(dataset)}, not an object")
    out.case = scalar("case", 300)
    out.layout = scalar("layout", 10)
    out.saved_at = scalar("saved_at", 60)
    if doc.get("cursor_lps") is not None:
        try:
            out.cursor_lps = _vec3(doc["cursor_lps"], ["cursor_lps"])
        except _Bad as exc:
            issue(str(exc))
    out.views = _entries(doc, "views", _view, issue)
    out.layers = _entries(doc, "layers", _layer, issue)
    out.measurements = _entries(doc, "measurements", _measurement, issue)
    seen: set[str] = set()
    unique = []
    for m in out.measurements:
        if m.id in seen:
            issue(f"a second measurement with id {m.id!r}")
            continue
        seen.add(m.id)
        unique.append(m)
    out.measurements = unique
    out.gradings = _entries(doc, "gradings", _grade, issue)
    out.report = _entries(doc, "report", _report_field, issue)
    return out


def read_session(path: str | Path) -> SessionFile:
    """Read a session file within the text, depth and digit budgets.

    Raises
    ------
    CorruptFileError
        Unreadable, not UTF-8 or malformed JSON.
    ResourceLimitError
        Larger or deeper than the budgets.
    UnsupportedFormatError
        Not a session file, or a newer version.
    """
    doc = read_json_guarded(path, "session file")
    return parse_session(doc, path)

