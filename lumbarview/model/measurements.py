"""The measurement document: every measurement of the session, each create, edit and delete an
undoable command in the session's one history. No Qt.

A :class:`Measurement` is points in patient space (LPS mm) on the plane it was drawn on; its
value is computed on that true plane by :mod:`lumbarview.measure.primitives` (oblique planes and
anisotropic pixels need nothing special: the points are millimetres already). Rows from the
engine or from the dataset's own tables join the same document with ``source`` ``engine`` or
``dataset``; the engine's rows are never edited, a manual measurement beside one keeps both.
:func:`table_rows` gives the flat rows a table, a CSV or a JSON export shows.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.events import Signal
from lumbarview.core.geometry import FloatArray, SlicePlane
from lumbarview.core.types import ImageStack
from lumbarview.io.session_file import KINDS, POINT_COUNTS, SIDES, SOURCES, MeasurementRecord, PlaneRecord
from lumbarview.measure import primitives as prim
from lumbarview.model.commands import Command, UndoStack
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reformat import reformat

#: A point this far or nearer the midline (mm along patient left) is tagged ``midline``.
MIDLINE_MARGIN_MM = 2.0
__all__ = ["KINDS", "SIDES", "SOURCES", "Measurement", "MeasurementDocument", "nearest_level", "roi_statistics",
           "side_of", "table_rows", "tagged"]
UNITS = {"distance": "mm", "angle": "deg", "cobb": "deg", "ellipse": "mm2", "polygon": "mm2", "freehand": "mm2",
         "point": ""}
AREA_KINDS = ("ellipse", "polygon", "freehand")
DiscPlanes = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def plane_record(plane: SlicePlane) -> PlaneRecord:
    """The stored form of a plane."""
    def v(a: FloatArray) -> tuple[float, float, float]:
        return (float(a[0]), float(a[1]), float(a[2]))

    return PlaneRecord(v(plane.origin_lps), v(plane.row_direction_lps), v(plane.column_direction_lps),
                       v(plane.normal_lps), (float(plane.spacing_mm[0]), float(plane.spacing_mm[1])),
                       (int(plane.shape_rc[0]), int(plane.shape_rc[1])))


def view_plane(record: PlaneRecord) -> ViewPlane:
    """A plane from its stored form (1 mm pixels and one pixel when the file does not say)."""
    return ViewPlane(np.asarray(record.origin_lps, dtype=np.float64), np.asarray(record.right_lps, dtype=np.float64),
                     np.asarray(record.down_lps, dtype=np.float64), record.spacing_mm or (1.0, 1.0),
                     record.shape_rc or (1, 1))


@dataclass(frozen=True)
class Measurement(MeasurementRecord):
    """One measurement (the fields are the session file's; see :mod:`lumbarview.io.session_file`)."""

    @classmethod
    def create(cls, kind: str, points_lps: npt.ArrayLike, plane: SlicePlane | None, *, series: str | None = None,
               case: str | None = None, source: str = "manual", level: str | None = None, side: str | None = None,
               note: str = "", label: str = "", ident: str | None = None) -> Measurement:
        """A new measurement; the points are projected onto ``plane`` (they are drawn on it).

        Raises
        ------
        ValueError
            Unknown kind or source, a wrong number of points, a point that is not finite.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown measurement kind {kind!r}; one of {', '.join(KINDS)}")
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        if side is not None and side not in SIDES:
            raise ValueError(f"unknown side {side!r}; one of {', '.join(SIDES)}")
        pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        fewest, most = POINT_COUNTS[kind]
        if not fewest <= len(pts) <= most:
            raise ValueError(f"a {kind} needs {fewest}" + ("" if fewest == most else f" to {most}")
                             + f" points, not {len(pts)}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("a point is not a finite position")
        if plane is not None:
            pts = pts - np.outer(plane.signed_distance_mm(pts), plane.normal_lps)
        return cls(id=ident or uuid.uuid4().hex[:12], kind=kind, points_lps=_tuples(pts),
                   plane=None if plane is None else plane_record(plane), series=series, level=level, side=side,
                   note=note, source=source, case=case, label=label)

    @classmethod
    def from_record(cls, record: MeasurementRecord) -> Measurement:
        return cls(**{f.name: getattr(record, f.name) for f in dataclasses.fields(MeasurementRecord)})

    def to_record(self) -> MeasurementRecord:
        return MeasurementRecord(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MeasurementRecord)})

    @property
    def points(self) -> FloatArray:
        return np.asarray(self.points_lps, dtype=np.float64).reshape(-1, 3)

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    def view_plane(self) -> ViewPlane | None:
        return None if self.plane is None else view_plane(self.plane)

    def centre_lps(self) -> FloatArray:
        pts = self.points
        centre: FloatArray = pts[0] if self.kind == "ellipse" else pts.mean(axis=0)
        return centre

    def with_points(self, points_lps: npt.ArrayLike) -> Measurement:
        """The same measurement with moved points (kept on its plane)."""
        pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        plane = self.view_plane()
        if plane is not None:
            pts = pts - np.outer(plane.signed_distance_mm(pts), plane.normal_lps)
        return dataclasses.replace(self, points_lps=_tuples(pts))

    def value(self) -> prim.Quantity:
        """The measured value on the true plane: mm, degrees or mm2 (NaN with a reason when it
        cannot be measured; a point has no value)."""
        p = self.points
        plane = self.view_plane()
        if plane is not None:  # on the plane itself: pixel coordinates of a 1 mm grid are mm
            px = plane.lps_to_pixel(p)

            def on(i: int | slice) -> Any:
                return px[i]
        else:
            def on(i: int | slice) -> Any:
                return p[i]
        kind = self.kind
        if kind == "distance":
            return prim.distance(on(0), on(1), plane)
        if kind == "angle":
            return prim.angle(on(0), on(1), on(2), plane)
        if kind == "cobb":
            return prim.cobb_angle((on(0), on(1)), (on(2), on(3)), plane)
        if kind == "ellipse":
            return prim.ellipse_area(on(0), on(1), on(2), plane)
        if kind in ("polygon", "freehand"):
            return prim.polygon_area(on(slice(None)), plane)
        return prim.Quantity.missing("", "a point has no value")

    def value_text(self) -> str:
        q = self.value()
        if self.kind == "point":
            return self.label or "point"
        if not q.ok:
            return f"— ({q.reason})"
        unit = {"deg": "°", "mm2": "mm²"}.get(q.unit, q.unit)
        return f"{q.value:.1f} {unit}" if q.unit != "mm" else f"{q.value:.2f} {unit}"

    def region_mask(self, plane: SlicePlane) -> npt.NDArray[np.bool_]:
        """The pixels of ``plane`` inside this area measurement."""
        if self.kind == "ellipse":
            p = self.points
            return prim.ellipse_mask(plane, p[0], p[1], p[2])
        if self.kind in ("polygon", "freehand"):
            return prim.polygon_mask(plane, self.points)
        raise ValueError(f"a {self.kind} has no region")


def _tuples(points: FloatArray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(x), float(y), float(z)) for x, y, z in points)


def roi_statistics(m: Measurement, stack: ImageStack, pixel_mm: float | None = None) -> prim.RoiStats:
    """Mean, SD, minimum and maximum (in the image's stored units) of ``stack`` inside an area
    measurement, sampled on the measurement's own plane (reformatted when it is oblique)."""
    plane = m.view_plane()
    if m.kind not in AREA_KINDS or plane is None:
        return prim.RoiStats(0, math.nan, math.nan, math.nan, math.nan, math.nan, "not an area on a plane")
    geometry = stack.geometry
    step = float(pixel_mm if pixel_mm is not None else min(min(geometry.spacing_mm), *plane.spacing_mm))
    p = m.points
    if m.kind == "ellipse":
        reach = max(float(np.linalg.norm(p[1] - p[0])), float(np.linalg.norm(p[2] - p[0])))
        p = np.array([p[0] + reach * (sr * plane.right_lps + sd * plane.down_lps)
                      for sr in (-1, 1) for sd in (-1, 1)])
    u = (p - plane.origin_lps) @ plane.right_lps
    v = (p - plane.origin_lps) @ plane.down_lps
    u0, v0 = float(u.min()) - step, float(v.min()) - step
    cols = math.ceil((float(u.max()) + step - u0) / step) + 1
    rows = math.ceil((float(v.max()) + step - v0) / step) + 1
    origin = plane.origin_lps + u0 * plane.right_lps + v0 * plane.down_lps
    grid = ViewPlane(origin, plane.right_lps, plane.down_lps, (step, step), (rows, cols))
    sampled = reformat(stack.pixels(), geometry, grid, fill=math.nan)
    mask = m.region_mask(grid) & sampled.inside
    return prim.roi_stats(np.asarray(sampled.pixels), mask, grid)


# -- level and side ----------------------------------------------------------------------------
def nearest_level(point_lps: npt.ArrayLike, disc_planes: DiscPlanes) -> str | None:
    """The disc level whose centre is nearest ``point_lps`` (None without labelled discs)."""
    if not disc_planes:
        return None
    p = np.asarray(point_lps, dtype=np.float64)
    return min(disc_planes, key=lambda level: float(np.linalg.norm(disc_planes[level][0] - p)))


def side_of(point_lps: npt.ArrayLike, disc_planes: DiscPlanes) -> str | None:
    """``left`` or ``right`` (the patient's) of a point relative to the midline through the disc
    centres (LPS x grows toward the patient's left), ``midline`` within
    :data:`MIDLINE_MARGIN_MM`; None without labelled discs."""
    if not disc_planes:
        return None
    midline_x = float(np.mean([centre[0] for centre, _normal in disc_planes.values()]))
    dx = float(np.asarray(point_lps, dtype=np.float64)[0]) - midline_x
    if abs(dx) <= MIDLINE_MARGIN_MM:
        return "midline"
    return "left" if dx > 0 else "right"


def tagged(m: Measurement, disc_planes: DiscPlanes, point_lps: npt.ArrayLike | None = None) -> Measurement:
    """``m`` with its level and side from the disc planes, where it has none yet; the side is
    taken at ``point_lps`` (the cursor) when given, else at the measurement's centre."""
    where = m.centre_lps() if point_lps is None else np.asarray(point_lps, dtype=np.float64)
    return dataclasses.replace(m, level=m.level or nearest_level(m.centre_lps(), disc_planes),
                               side=m.side or side_of(where, disc_planes))


# -- the document and its commands --------------------------------------------------------------
class MeasurementDocument:
    """The session's measurements in creation order; edits go through the undo stack."""

    changed = Signal()  # any add, edit, removal or reset
    selection_changed = Signal(object)  # id | None

    def __init__(self, undo: UndoStack) -> None:
        self.undo = undo
        self._items: dict[str, Measurement] = {}
        self.selected: str | None = None

    def __iter__(self) -> Iterator[Measurement]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, ident: object) -> bool:
        return ident in self._items

    def get(self, ident: str) -> Measurement | None:
        return self._items.get(ident)

    def of_case(self, case: str | None) -> list[Measurement]:
        """Measurements of ``case`` (and those that name no case)."""
        return [m for m in self._items.values() if m.case is None or case is None or m.case == case]

    # -- undoable edits ------------------------------------------------------------------------
    def add(self, m: Measurement) -> Measurement:
        if m.id in self._items:
            raise ValueError(f"a measurement with id {m.id!r} exists already")
        self.undo.push(AddMeasurement(self, m))
        return m

    def edit(self, ident: str, merge: bool = False, **changes: Any) -> Measurement:
        """Change fields (level, side, note, label...) or, with ``points_lps``, move points (a
        handle drag passes ``merge`` and ends with ``undo.end_merge()``: one undo step)."""
        old = self._items[ident]
        if old.source == "engine" and "points_lps" in changes:
            raise ValueError("the engine's measurements are not edited: draw a manual one beside it")
        if "side" in changes and changes["side"] not in (None, *SIDES):
            raise ValueError(f"unknown side {changes['side']!r}")
        if "points_lps" in changes:
            new = old.with_points(changes.pop("points_lps"))
            new = dataclasses.replace(new, **changes)
        else:
            new = dataclasses.replace(old, **changes)
        if new != old:
            self.undo.push(EditMeasurement(self, old, new, merge))
        return new

    def remove(self, idents: Iterable[str]) -> None:
        found = [i for i in idents if i in self._items]
        if found:
            self.undo.push(RemoveMeasurements(self, found))

    # -- not undoable: a new dataset, a restored session -----------------------------------------
    def reset(self, items: Sequence[Measurement]) -> None:
        self._items = {m.id: m for m in items}
        if self.selected not in self._items:
            self.selected = None
        self.changed.emit()

    def select(self, ident: str | None) -> None:
        if ident is not None and ident not in self._items:
            ident = None
        if ident != self.selected:
            self.selected = ident
            self.selection_changed.emit(ident)

    # -- what the commands call ------------------------------------------------------------------
    def _put(self, m: Measurement, index: int | None = None) -> None:
        items = list(self._items.items())
        items = [(k, v) for k, v in items if k != m.id]
        items.insert(len(items) if index is None else index, (m.id, m))
        self._items = dict(items)
        self.changed.emit()

    def _take(self, ident: str) -> tuple[Measurement, int]:
        index = list(self._items).index(ident)
        m = self._items.pop(ident)
        if self.selected == ident:
            self.select(None)
        self.changed.emit()
        return m, index

    def _replace(self, m: Measurement) -> None:
        self._items[m.id] = m
        self.changed.emit()


class AddMeasurement(Command):
    def __init__(self, doc: MeasurementDocument, m: Measurement) -> None:
        self.text = f"add {m.kind}"
        self.doc, self.m = doc, m

    def do(self) -> None:
        self.doc._put(self.m)

    def undo(self) -> None:
        self.doc._take(self.m.id)


class RemoveMeasurements(Command):
    def __init__(self, doc: MeasurementDocument, idents: list[str]) -> None:
        self.text = "delete " + (doc._items[idents[0]].kind if len(idents) == 1 else f"{len(idents)} measurements")
        self.doc, self.idents = doc, list(idents)
        self.taken: list[tuple[Measurement, int]] = []

    def do(self) -> None:
        self.taken = [self.doc._take(i) for i in self.idents]

    def undo(self) -> None:
        for m, index in reversed(self.taken):
            self.doc._put(m, index)


class EditMeasurement(Command):
    def __init__(self, doc: MeasurementDocument, old: Measurement, new: Measurement, merge: bool) -> None:
        changed = [f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]
        self.text = f"edit {old.kind} " + ", ".join("points" if c == "points_lps" else c for c in changed)
        self.doc, self.old, self.new, self.merge = doc, old, new, merge

    def do(self) -> None:
        self.doc._replace(self.new)

    def undo(self) -> None:
        self.doc._replace(self.old)

    def merge_key(self) -> Any:
        return ("measurement", self.old.id) if self.merge else None

    def merge_with(self, newer: Command) -> bool:
        if isinstance(newer, EditMeasurement) and newer.merge_key() == self.merge_key():
            self.new = newer.new
            return True
        return False


# -- rows for a table and an export ------------------------------------------------------------
ROW_KEYS = ("id", "case", "kind", "value", "unit", "level", "side", "series", "note", "source", "position_lps")


def table_row(m: Measurement) -> dict[str, Any]:
    """The flat row of one measurement (value None when it cannot be measured)."""
    q = m.value()
    return {"id": m.id, "case": m.case, "kind": m.kind, "value": q.value if q.ok else None, "unit": m.unit,
            "level": m.level, "side": m.side, "series": m.series, "note": m.note, "source": m.source,
            "position_lps": [float(v) for v in m.centre_lps()]}


def table_rows(items: Iterable[Measurement]) -> list[dict[str, Any]]:
    return [table_row(m) for m in items]
