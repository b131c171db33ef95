"""The measurement document: every measurement of the session, each create, edit and delete an
undoable command in the session's one history. No Qt, no file format.

A :class:`Measurement` is points in patient space (LPS mm) on the plane it was drawn on; what
its kind means (its value on that true plane, outline, region...) lives in
:mod:`lumbarview.model.kinds` (oblique planes and anisotropic pixels need nothing special: the
points are millimetres already). Rows from the engine or from the dataset's own tables join the
same document with ``source`` ``engine`` or ``dataset``; the engine's rows are never edited, a
manual measurement beside one keeps both. The session store turns the session file's records
into measurements and back; the export service turns them into rows.
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
from lumbarview.core.types import ImageStack, Series
from lumbarview.measure import primitives as prim
from lumbarview.model.commands import Command, UndoStack
from lumbarview.model.kinds import KINDS, MeasurementKind, kind
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reformat import reformat

#: A point this far or nearer the midline (mm along patient left) is tagged ``midline``.
MIDLINE_MARGIN_MM = 2.0
SOURCES = ("manual", "engine", "dataset")
SIDES = ("left", "right", "midline")
__all__ = ["KINDS", "SIDES", "SOURCES", "Measurement", "MeasurementDocument", "MeasurementPlane", "nearest_level",
           "roi_statistics", "side_of", "tagged"]
DiscPlanes = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
Vec3 = tuple[float, float, float]


def _vec(a: npt.ArrayLike) -> Vec3:
    x, y, z = (float(v) for v in np.asarray(a, dtype=np.float64).reshape(3))
    return (x, y, z)


@dataclass(frozen=True)
class MeasurementPlane:
    """The plane a measurement was drawn on (unit vectors of screen right and down, the normal
    right x down; the pixel grid of the view it was drawn in)."""

    origin_lps: Vec3
    right_lps: Vec3
    down_lps: Vec3
    normal_lps: Vec3
    spacing_mm: tuple[float, float] | None = None
    shape_rc: tuple[int, int] | None = None

    @classmethod
    def of(cls, plane: SlicePlane) -> MeasurementPlane:
        return cls(_vec(plane.origin_lps), _vec(plane.row_direction_lps), _vec(plane.column_direction_lps),
                   _vec(plane.normal_lps), (float(plane.spacing_mm[0]), float(plane.spacing_mm[1])),
                   (int(plane.shape_rc[0]), int(plane.shape_rc[1])))

    def view_plane(self) -> ViewPlane:
        """The plane (1 mm pixels and one pixel when it does not say)."""
        return ViewPlane(np.asarray(self.origin_lps, dtype=np.float64), np.asarray(self.right_lps, dtype=np.float64),
                         np.asarray(self.down_lps, dtype=np.float64), self.spacing_mm or (1.0, 1.0),
                         self.shape_rc or (1, 1))


def check_side(side: str | None) -> None:
    if side is not None and side not in SIDES:
        raise ValueError(f"unknown side {side!r}; one of {', '.join(SIDES)}")


@dataclass(frozen=True)
class Measurement:
    """One measurement: its kind (a name of :data:`~lumbarview.model.kinds.KINDS`), its points
    (LPS mm, on ``plane`` when it has one), where it was drawn and what it is tagged with."""

    id: str
    kind: str
    points_lps: tuple[Vec3, ...]
    plane: MeasurementPlane | None = None
    series: str | None = None
    level: str | None = None
    side: str | None = None
    note: str = ""
    source: str = "manual"
    case: str | None = None
    label: str = ""

    @classmethod
    def create(cls, kind_name: str, points_lps: npt.ArrayLike, plane: SlicePlane | MeasurementPlane | None, *,
               series: str | None = None, case: str | None = None, source: str = "manual",
               level: str | None = None, side: str | None = None, note: str = "", label: str = "",
               ident: str | None = None) -> Measurement:
        """A new measurement; the points are projected onto ``plane`` (they are drawn on it).

        Raises
        ------
        ValueError
            Unknown kind, source or side, a wrong number of points, a point that is not finite.
        """
        k = kind(kind_name)
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        check_side(side)
        pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        k.check_count(len(pts))
        if not np.all(np.isfinite(pts)):
            raise ValueError("a point is not a finite position")
        stored = plane if isinstance(plane, MeasurementPlane) or plane is None else MeasurementPlane.of(plane)
        if stored is not None:
            on = stored.view_plane()
            pts = pts - np.outer(on.signed_distance_mm(pts), on.normal_lps)
        return cls(id=ident or uuid.uuid4().hex[:12], kind=kind_name, points_lps=_tuples(pts), plane=stored,
                   series=series, level=level, side=side, note=note, source=source, case=case, label=label)

    @property
    def kind_of(self) -> MeasurementKind:
        return kind(self.kind)

    @property
    def points(self) -> FloatArray:
        return np.asarray(self.points_lps, dtype=np.float64).reshape(-1, 3)

    @property
    def unit(self) -> str:
        return self.kind_of.unit

    @property
    def is_area(self) -> bool:
        return self.kind_of.area

    def view_plane(self) -> ViewPlane | None:
        return None if self.plane is None else self.plane.view_plane()

    def centre_lps(self) -> FloatArray:
        return self.kind_of.centre(self.points)

    def outline_lps(self) -> list[FloatArray]:
        return self.kind_of.outline(self.points)

    def label_anchor_lps(self) -> FloatArray:
        return self.kind_of.label_anchor(self.points)

    def with_points(self, points_lps: npt.ArrayLike) -> Measurement:
        """The same measurement with moved points (kept on its plane)."""
        pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        plane = self.view_plane()
        if plane is not None:
            pts = pts - np.outer(plane.signed_distance_mm(pts), plane.normal_lps)
        return dataclasses.replace(self, points_lps=_tuples(pts))

    def dragged(self, index: int, lps: npt.ArrayLike) -> Measurement | None:
        """The measurement with handle ``index`` dragged to ``lps`` as its kind constrains it
        (None when the kind refuses the move)."""
        pts = self.kind_of.drag(self.points, index, np.asarray(lps, dtype=np.float64), self.view_plane())
        return None if pts is None else self.with_points(pts)

    def value(self) -> prim.Quantity:
        """The measured value on the true plane: mm, degrees or mm2 (NaN with a reason when it
        cannot be measured; a point has no value)."""
        return self.kind_of.value(self.points, self.view_plane())

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
        return self.kind_of.region_mask(self.points, plane)


def _tuples(points: FloatArray) -> tuple[Vec3, ...]:
    return tuple((float(x), float(y), float(z)) for x, y, z in points)


def roi_statistics(m: Measurement, stack: ImageStack, pixel_mm: float | None = None) -> prim.RoiStats:
    """Mean, SD, minimum and maximum (in the image's stored units) of ``stack`` inside an area
    measurement, sampled on the measurement's own plane (reformatted when it is oblique)."""
    plane = m.view_plane()
    if not m.is_area or plane is None:
        return prim.RoiStats(0, math.nan, math.nan, math.nan, math.nan, math.nan, "not an area on a plane")
    geometry = stack.geometry
    step = float(pixel_mm if pixel_mm is not None else min(min(geometry.spacing_mm), *plane.spacing_mm))
    p = m.kind_of.bounding_points(m.points, plane)
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


_ROI_CACHE: dict[tuple[Measurement, str, float | None], prim.RoiStats] = {}
_ROI_CACHE_SIZE = 512


def source_stack(m: Measurement, series: Iterable[Series]) -> ImageStack | None:
    """The image a measurement was drawn on: its series' stack holding its centre (the first
    of the series else); None when the series is not there."""
    found = next((s for s in series if s.uid == m.series), None)
    if found is None or not found.stacks:
        return None
    centre = m.centre_lps()
    for stack in found.stacks:
        ijk = stack.geometry.lps_to_index(centre)
        if all(-0.5 <= float(c) <= n - 0.5 for c, n in zip(ijk, stack.geometry.shape_kji[::-1], strict=True)):
            return stack
    return found.stacks[0]


def region_statistics(m: Measurement, series: Iterable[Series]) -> prim.RoiStats | None:
    """:func:`roi_statistics` of an area on the image it was drawn on (remembered per
    measurement and image: a redraw does not resample); None for a measurement that is not an
    area or whose image is not there."""
    if not m.is_area or m.plane is None:
        return None
    stack = source_stack(m, series)
    if stack is None:
        return None
    key = (m, stack.uid, None)
    found = _ROI_CACHE.get(key)
    if found is None:
        found = roi_statistics(m, stack)
        if len(_ROI_CACHE) >= _ROI_CACHE_SIZE:
            _ROI_CACHE.pop(next(iter(_ROI_CACHE)))
        _ROI_CACHE[key] = found
    return found


def roi_text(stats: prim.RoiStats | None, short: bool = False) -> str:
    """The statistics as a table cell shows them, or ``short`` as a label does (two lines)."""
    if stats is None:
        return ""
    if stats.reason is not None:
        return f"no statistics ({stats.reason})"
    if short:
        return (f"mean {stats.mean:.1f} ± {stats.std:.1f}\n"
                f"{stats.minimum:.0f}–{stats.maximum:.0f}, {stats.n_pixels:,} px")
    return (f"mean {stats.mean:.1f} ± {stats.std:.1f} (SD), min {stats.minimum:.0f}, max {stats.maximum:.0f}, "
            f"{stats.n_pixels:,} px")


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
    #: Before :attr:`changed`: the ids added, edited or removed (a tuple), or None after a reset.
    items_changed = Signal(object)
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
        if "side" in changes:
            check_side(changes["side"])
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
        self._emit(None)

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
        self._emit((m.id,))

    def _take(self, ident: str) -> tuple[Measurement, int]:
        index = list(self._items).index(ident)
        m = self._items.pop(ident)
        if self.selected == ident:
            self.select(None)
        self._emit((ident,))
        return m, index

    def _replace(self, m: Measurement) -> None:
        self._items[m.id] = m
        self._emit((m.id,))

    def _emit(self, idents: tuple[str, ...] | None) -> None:
        self.items_changed.emit(idents)
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
