"""One home per measurement kind (no Qt): how the clicks of its tool become its points, how a
handle drag constrains them, its value and unit on its plane, the lines that draw it, where its
label goes and, for an area, its region on a plane.

Points are LPS millimetres on the plane the measurement was drawn on (``plane``: a
:class:`~lumbarview.core.geometry.SlicePlane`, None for a measurement without one). The tool
controller (``ui/views/tools.py``) turns mouse events into points only and the items
(``ui/items/measurement_items.py``) draw what the kind says, so a new kind is a class here and
its tool binding (shortcut and menu text) there.

:data:`KINDS` holds the kinds a measurement can be (the ``kind`` of the session file);
:data:`TOOLS` the drawing tools, in the Tools bar's order: a tool is a kind, or a recipe that
makes another kind (``perpendicular`` makes a ``distance`` from a reference line and a point).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, SlicePlane
from lumbarview.measure import primitives as prim

#: Fewest and most points of a polygon-like kind (a budget, not a clinical limit).
MAX_VERTICES = 10_000
#: An ellipse or rectangle side shorter than this (mm) is a slip of the mouse, not a shape.
MIN_EXTENT_MM = 0.2
#: Points along a drawn ellipse.
ELLIPSE_STEPS = 72
AREA_UNIT = "mm2"


@dataclass(frozen=True)
class Drawn:
    """What a tool's input makes: the kind stored, its points (LPS) and a note."""

    kind: str
    points: FloatArray
    note: str = ""


def _on(points: FloatArray, plane: SlicePlane | None) -> Callable[[int | slice], Any]:
    """Indexing into the points as the primitives take them: (column, row) pixels on the plane
    (pixels of a 1 mm grid are mm there, anisotropy included), else LPS."""
    px = plane.lps_to_pixel(points) if plane is not None else points

    def at(i: int | slice) -> Any:
        return px[i]
    return at


def _row(points: FloatArray, index: int) -> FloatArray:
    return np.asarray(points[index], dtype=np.float64)


def _axes(plane: SlicePlane | None, what: str) -> tuple[FloatArray, FloatArray]:
    if plane is None:
        raise ValueError(f"a {what} is drawn on a plane")
    return plane.row_direction_lps, plane.column_direction_lps


class MeasurementKind:
    """A kind of measurement (subclass one per kind; see the module)."""

    name: ClassVar[str]
    #: (fewest, most) points stored.
    points: ClassVar[tuple[int, int]]
    unit: ClassVar[str] = ""
    #: True for a region (it has a mask and ROI statistics).
    area: ClassVar[bool] = False
    #: Inputs (clicks or drag ends) that complete the tool; None: the user closes it.
    inputs: ClassVar[int | None] = None
    #: The tool draws a stroke (press, draw, release) rather than clicks.
    stroke: ClassVar[bool] = False
    #: The rubber band breaks after this many inputs (two separate lines), 0 for one line.
    break_after: ClassVar[int] = 0
    #: What the tool's status line asks for.
    hint: ClassVar[str] = ""
    #: The tool makes this kind (itself by default).
    makes: ClassVar[str | None] = None

    def check_count(self, n: int) -> None:
        fewest, most = self.points
        if not fewest <= n <= most:
            raise ValueError(f"a {self.name} needs {fewest}" + ("" if fewest == most else f" to {most}")
                             + f" points, not {n}")

    def from_input(self, points: FloatArray, plane: SlicePlane | None) -> Drawn:
        """The measurement the tool's inputs make (ValueError with what to do when they cannot)."""
        return Drawn(self.makes or self.name, np.asarray(points, dtype=np.float64))

    def drag(self, points: FloatArray, index: int, lps: FloatArray, plane: SlicePlane | None) -> FloatArray | None:
        """The points with handle ``index`` dragged to ``lps`` (None: the move is refused)."""
        out = np.array(points, dtype=np.float64)
        out[index] = lps
        return out

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        return prim.Quantity.missing(self.unit, f"a {self.name} has no value")

    def outline(self, points: FloatArray) -> list[FloatArray]:
        """The polylines (LPS) that draw it, one per stroke."""
        return [points]

    def centre(self, points: FloatArray) -> FloatArray:
        centre: FloatArray = points.mean(axis=0)
        return centre

    def label_anchor(self, points: FloatArray) -> FloatArray:
        """Where its label sits: beside the drawing, not across it."""
        return self.centre(points)

    def region_mask(self, points: FloatArray, plane: SlicePlane) -> npt.NDArray[np.bool_]:
        """The pixels of ``plane`` inside the region (areas only)."""
        raise ValueError(f"a {self.name} has no region")

    def bounding_points(self, points: FloatArray, plane: SlicePlane) -> FloatArray:
        """Points whose bounding box on ``plane`` holds the region."""
        return points


class Distance(MeasurementKind):
    name, points, unit, inputs = "distance", (2, 2), "mm", 2
    hint = "click (or drag) the two ends"

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        on = _on(points, plane)
        return prim.distance(on(0), on(1), plane)

    def label_anchor(self, points: FloatArray) -> FloatArray:
        return _row(points, -1)


class Angle(MeasurementKind):
    name, points, unit, inputs = "angle", (3, 3), "deg", 3
    hint = "click an arm's end, the vertex, the other arm's end"

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        on = _on(points, plane)
        return prim.angle(on(0), on(1), on(2), plane)

    def label_anchor(self, points: FloatArray) -> FloatArray:
        return _row(points, 1)


class Cobb(MeasurementKind):
    name, points, unit, inputs, break_after = "cobb", (4, 4), "deg", 4, 2
    hint = "draw one endplate line, then the other"

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        on = _on(points, plane)
        return prim.cobb_angle((on(0), on(1)), (on(2), on(3)), plane)

    def outline(self, points: FloatArray) -> list[FloatArray]:
        return [points[:2], points[2:]]

    def label_anchor(self, points: FloatArray) -> FloatArray:
        return _row(points, 1)


class Endplate(MeasurementKind):
    """A vertebral endplate line drawn on a sagittal image, its measurement ``label`` naming it
    (``"L1 upper"``, ``"L4 lower"``, ``"S1 upper"``): the alignment angles are measured between
    such lines (:mod:`lumbarview.model.alignment`). Its value is its tilt in the patient's sagittal
    plane: the angle (degrees) by which its anterior end lies above its posterior end."""

    name, points, unit, inputs = "endplate", (2, 2), "deg", 2
    hint = "click the endplate's posterior and anterior corners (then name it, e.g. L1 upper)"

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        return sagittal_tilt(_row(points, 0), _row(points, 1))

    def label_anchor(self, points: FloatArray) -> FloatArray:
        return _row(points, -1)


def sagittal_tilt(a: npt.ArrayLike, b: npt.ArrayLike) -> prim.Quantity:
    """The tilt of the line a-b in the patient's sagittal plane (LPS: y posterior, z superior): the
    angle by which its anterior end lies above its posterior end, -90..90 degrees (its left-right
    part ignored). NaN with a reason for a line with no sagittal extent."""
    d = np.asarray(b, dtype=np.float64).reshape(3) - np.asarray(a, dtype=np.float64).reshape(3)
    anterior, superior = -float(d[1]), float(d[2])
    if math.hypot(anterior, superior) < 1e-6:
        return prim.Quantity.missing("deg", "the line has no extent in the sagittal plane")
    if anterior < 0:  # drawn anterior to posterior: the same line
        anterior, superior = -anterior, -superior
    return prim.Quantity(math.degrees(math.atan2(superior, anterior)), "deg")


class Point(MeasurementKind):
    name, points, inputs = "point", (1, 1), 1
    hint = "click the point"

    def outline(self, points: FloatArray) -> list[FloatArray]:
        return []

    def label_anchor(self, points: FloatArray) -> FloatArray:
        return _row(points, -1)


class Perpendicular(MeasurementKind):
    """Not stored: a reference line and a point make the distance from the point to the line."""

    name, points, unit, inputs, makes = "perpendicular", (3, 3), "mm", 3, "distance"
    hint = "click the reference line's two ends, then the point"

    def from_input(self, points: FloatArray, plane: SlicePlane | None) -> Drawn:
        pts = np.asarray(points, dtype=np.float64)
        foot = prim.perpendicular_foot(pts[2], pts[0], pts[1])
        return Drawn("distance", np.array([pts[2], foot]), "perpendicular to a reference line")


class _Area(MeasurementKind):
    unit, area = AREA_UNIT, True

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        return prim.polygon_area(_on(points, plane)(slice(None)), plane)

    def outline(self, points: FloatArray) -> list[FloatArray]:
        return [np.vstack([points, points[:1]])]

    def region_mask(self, points: FloatArray, plane: SlicePlane) -> npt.NDArray[np.bool_]:
        return prim.polygon_mask(plane, points)


class Polygon(_Area):
    name, points = "polygon", (3, MAX_VERTICES)
    hint = "click the vertices; click the first again, double-click or Enter to close"


class Freehand(_Area):
    name, points, stroke = "freehand", (3, MAX_VERTICES), True
    hint = "press, draw around the region, release"


class Ellipse(_Area):
    """Centre, end of the first semi-axis, end of the second; drawn from the centre to a corner
    of its box (the box's sides along the plane's right and down)."""

    name, points, inputs = "ellipse", (3, 3), 2
    hint = "drag from the centre to a corner of its box"

    def from_input(self, points: FloatArray, plane: SlicePlane | None) -> Drawn:
        right, down = _axes(plane, "ellipse")
        centre, corner = points[0], points[1]
        a, b = abs(float((corner - centre) @ right)), abs(float((corner - centre) @ down))
        if a < MIN_EXTENT_MM or b < MIN_EXTENT_MM:
            raise ValueError("drag from the centre to a corner of its box")
        return Drawn(self.name, np.array([centre, centre + a * right, centre + b * down]))

    def drag(self, points: FloatArray, index: int, lps: FloatArray, plane: SlicePlane | None) -> FloatArray | None:
        c, u, v = points[0], points[1] - points[0], points[2] - points[0]
        if index == 0:  # the centre moves the whole ellipse
            return np.asarray(points + (lps - c), dtype=np.float64)
        if plane is None:
            return None
        axis = lps - c
        length = float(np.linalg.norm(axis))
        if length < MIN_EXTENT_MM:
            return None
        other = v if index == 1 else u
        perp = np.cross(plane.normal_lps, axis / length)
        perp = perp if float(perp @ other) >= 0 else -perp
        moved, kept = c + axis, c + float(np.linalg.norm(other)) * perp
        return np.array([c, moved, kept] if index == 1 else [c, kept, moved])

    def value(self, points: FloatArray, plane: SlicePlane | None) -> prim.Quantity:
        on = _on(points, plane)
        return prim.ellipse_area(on(0), on(1), on(2), plane)

    def outline(self, points: FloatArray) -> list[FloatArray]:
        t = np.linspace(0, 2 * np.pi, ELLIPSE_STEPS)
        c = points[0]
        return [c + np.outer(np.cos(t), points[1] - c) + np.outer(np.sin(t), points[2] - c)]

    def centre(self, points: FloatArray) -> FloatArray:
        centre: FloatArray = points[0]
        return centre

    def region_mask(self, points: FloatArray, plane: SlicePlane) -> npt.NDArray[np.bool_]:
        return prim.ellipse_mask(plane, points[0], points[1], points[2])

    def bounding_points(self, points: FloatArray, plane: SlicePlane) -> FloatArray:
        c = points[0]
        reach = max(float(np.linalg.norm(points[1] - c)), float(np.linalg.norm(points[2] - c)))
        right, down = plane.row_direction_lps, plane.column_direction_lps
        return np.array([c + reach * (sr * right + sd * down) for sr in (-1, 1) for sd in (-1, 1)])


class Rectangle(_Area):
    """Four corners in drawing order; drawn from one corner to the opposite one (sides along
    the plane's right and down). A corner dragged keeps the opposite corner and the sides'
    directions."""

    name, points, inputs = "rectangle", (4, 4), 2
    hint = "drag from one corner to the opposite one"

    def from_input(self, points: FloatArray, plane: SlicePlane | None) -> Drawn:
        right, down = _axes(plane, "rectangle")
        a, b = points[0], points[1]
        w, h = float((b - a) @ right), float((b - a) @ down)
        if abs(w) < MIN_EXTENT_MM or abs(h) < MIN_EXTENT_MM:
            raise ValueError("drag from one corner to the opposite one")
        return Drawn(self.name, np.array([a, a + w * right, a + w * right + h * down, a + h * down]))

    def drag(self, points: FloatArray, index: int, lps: FloatArray, plane: SlicePlane | None) -> FloatArray | None:
        fixed = points[(index + 2) % 4]
        side_a = points[(index + 1) % 4] - fixed  # the corner beside the dragged one, seen from the fixed one
        side_b = points[(index + 3) % 4] - fixed
        na, nb = float(np.linalg.norm(side_a)), float(np.linalg.norm(side_b))
        if na < 1e-9 or nb < 1e-9:
            return None
        ua, ub = side_a / na, side_b / nb
        ta, tb = float((lps - fixed) @ ua), float((lps - fixed) @ ub)
        if abs(ta) < MIN_EXTENT_MM or abs(tb) < MIN_EXTENT_MM:
            return None
        out = np.array(points, dtype=np.float64)
        out[index] = fixed + ta * ua + tb * ub
        out[(index + 1) % 4] = fixed + ta * ua
        out[(index + 3) % 4] = fixed + tb * ub
        return out


def _registry(*kinds: MeasurementKind) -> dict[str, MeasurementKind]:
    return {k.name: k for k in kinds}


#: The drawing tools, in the Tools bar's order.
TOOLS: dict[str, MeasurementKind] = _registry(Distance(), Angle(), Cobb(), Endplate(), Ellipse(), Rectangle(),
                                              Polygon(), Freehand(), Point(), Perpendicular())
#: The kinds a measurement can be.
KINDS: dict[str, MeasurementKind] = {name: k for name, k in TOOLS.items() if k.makes is None}
#: The kinds that are regions.
AREA_KINDS = tuple(name for name, k in KINDS.items() if k.area)


def kind(name: str) -> MeasurementKind:
    """The kind called ``name`` (ValueError naming the kinds there are)."""
    found = KINDS.get(name)
    if found is None:
        raise ValueError(f"unknown measurement kind {name!r}; one of {', '.join(KINDS)}")
    return found


def plane_through(points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """A plane through ``points`` when they span one: (a point on it, right, down) with right
    along the first two distinct points; None for fewer than three points or points on a line."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(p) < 3 or not np.all(np.isfinite(p)):
        return None
    centre = p.mean(axis=0)
    _, s, vt = np.linalg.svd(p - centre, full_matrices=False)
    if s[1] < 1e-6 * max(1.0, float(s[0])):
        return None
    normal = vt[2]
    first = p[1] - p[0]
    first = first - float(first @ normal) * normal
    length = float(np.linalg.norm(first))
    right = first / length if length > 1e-9 else vt[0]
    down = np.cross(normal, right)
    if not math.isfinite(float(down @ down)):
        return None
    return centre, right, down
