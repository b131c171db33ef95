"""Measurements: analytic values of every kind on native and oblique planes with anisotropic
pixels; ROI statistics on a reformatted plane; level and side tags; undo and redo of every
command of the document."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack
from lumbarview.measure import primitives as prim
from lumbarview.model.commands import UndoStack
from lumbarview.model.measurements import (
    Measurement,
    MeasurementDocument,
    nearest_level,
    roi_statistics,
    side_of,
    tagged,
)
from lumbarview.slicing.planes import ViewPlane

SPACING = (0.55, 1.7)  # anisotropic pixels: along screen right, along screen down


def _planes() -> dict[str, ViewPlane]:
    native = ViewPlane(np.array([-40.0, 12.0, 30.0]), (0, 1, 0), (0, 0, -1), SPACING, (300, 300))
    rot = Rotation.from_rotvec(np.radians(23.0) * np.array([0.6, -0.3, 0.74]) / np.linalg.norm([0.6, -0.3, 0.74]))
    right, down = rot.apply([1.0, 0.0, 0.0]), rot.apply([0.0, 1.0, 0.0])
    oblique = ViewPlane(np.array([5.0, -8.0, 14.0]), right, down, SPACING, (300, 300))
    return {"native": native, "oblique": oblique}


PLANES = _planes()


def _lps(plane: ViewPlane, col_row: list[tuple[float, float]]) -> np.ndarray:
    return plane.pixel_to_lps(np.asarray(col_row, dtype=float))


def _mm(col_row: list[tuple[float, float]]) -> np.ndarray:
    """The same pixel points in in-plane millimetres: the truth, computed without the plane."""
    return np.asarray(col_row, dtype=float) * np.asarray(SPACING)


def _rel(value: float, truth: float) -> float:
    return abs(value - truth) / abs(truth)


@pytest.fixture(params=sorted(PLANES))
def plane(request: pytest.FixtureRequest) -> ViewPlane:
    return PLANES[request.param]


def test_distance_on_the_true_plane(plane: ViewPlane) -> None:
    px = [(10.0, 20.0), (73.0, 41.0)]
    m = Measurement.create("distance", _lps(plane, px), plane)
    a, b = _mm(px)
    truth = math.hypot(*(b - a))  # 63 * 0.55 across, 21 * 1.7 down
    assert m.value().unit == "mm"
    assert _rel(m.value().value, truth) < 1e-3


def test_angle_on_the_true_plane(plane: ViewPlane) -> None:
    px = [(80.0, 10.0), (20.0, 50.0), (90.0, 95.0)]
    m = Measurement.create("angle", _lps(plane, px), plane)
    a, v, b = _mm(px)
    truth = abs(math.degrees(math.atan2(*(a - v)[::-1]) - math.atan2(*(b - v)[::-1])))
    truth = 360 - truth if truth > 180 else truth
    assert m.value().unit == "deg"
    assert _rel(m.value().value, truth) < 1e-3
    # Anisotropic pixels matter: the angle in pixel units is different.
    pa, pv, pb = (np.asarray(p) for p in px)
    in_pixels = math.degrees(math.acos((pa - pv) @ (pb - pv) / np.linalg.norm(pa - pv) / np.linalg.norm(pb - pv)))
    assert abs(in_pixels - truth) > 1.0


def test_cobb_angle_of_two_independent_lines(plane: ViewPlane) -> None:
    px = [(10.0, 10.0), (100.0, 30.0), (120.0, 160.0), (20.0, 170.0)]  # lines that do not meet on screen
    m = Measurement.create("cobb", _lps(plane, px), plane)
    p = _mm(px)
    t1 = math.atan2(*(p[1] - p[0])[::-1])
    t2 = math.atan2(*(p[3] - p[2])[::-1])
    truth = abs(math.degrees(t1 - t2)) % 180
    truth = min(truth, 180 - truth)
    assert _rel(m.value().value, truth) < 1e-3
    # The drawing direction of a line does not change a Cobb angle.
    flipped = Measurement.create("cobb", _lps(plane, [px[1], px[0], px[2], px[3]]), plane)
    assert flipped.value().value == pytest.approx(m.value().value, rel=1e-9)


def test_ellipse_area(plane: ViewPlane) -> None:
    centre = (100.0, 100.0)
    px = [centre, (100.0 + 40.0, 100.0), (100.0, 100.0 + 12.0)]  # semi-axes 22 mm and 20.4 mm
    m = Measurement.create("ellipse", _lps(plane, px), plane)
    truth = math.pi * (40 * SPACING[0]) * (12 * SPACING[1])
    assert m.value().unit == "mm2"
    assert _rel(m.value().value, truth) < 1e-3


@pytest.mark.parametrize("kind", ["polygon", "freehand"])
def test_polygon_and_freehand_areas(plane: ViewPlane, kind: str) -> None:
    px = [(10.0, 10.0), (80.0, 12.0), (95.0, 60.0), (40.0, 90.0), (5.0, 50.0)]
    m = Measurement.create(kind, _lps(plane, px), plane)
    xy = _mm(px)
    x, y = xy[:, 0], xy[:, 1]
    truth = 0.5 * abs(sum(x[i] * y[(i + 1) % 5] - x[(i + 1) % 5] * y[i] for i in range(5)))
    assert _rel(m.value().value, truth) < 1e-3


def test_point_has_a_position_and_no_value(plane: ViewPlane) -> None:
    m = Measurement.create("point", _lps(plane, [(5.0, 7.0)]), plane, label="P1")
    assert not m.value().ok and m.value_text() == "P1"
    np.testing.assert_allclose(m.centre_lps(), _lps(plane, [(5.0, 7.0)])[0], atol=1e-9)


def test_perpendicular_helper_for_disc_heights(plane: ViewPlane) -> None:
    line = _lps(plane, [(10.0, 50.0), (120.0, 50.0)])  # an endplate along screen right
    point = _lps(plane, [(60.0, 20.0)])[0]  # 30 pixels above it
    foot = prim.perpendicular_foot(point, line[0], line[1])
    np.testing.assert_allclose(foot, _lps(plane, [(60.0, 50.0)])[0], atol=1e-9)
    assert _rel(prim.point_line_distance(point, line[0], line[1]).value, 30 * SPACING[1]) < 1e-3
    assert not prim.point_line_distance(point, line[0], line[0]).ok


def test_points_off_the_plane_are_drawn_on_it(plane: ViewPlane) -> None:
    px = [(10.0, 20.0), (73.0, 41.0)]
    lps = _lps(plane, px) + np.array([[1.5], [-0.7]]) * plane.normal_lps
    m = Measurement.create("distance", lps, plane)
    np.testing.assert_allclose(plane.signed_distance_mm(m.points), 0.0, atol=1e-9)
    assert _rel(m.value().value, float(np.linalg.norm(np.diff(_mm(px), axis=0)))) < 1e-3


def test_bad_measurements_are_refused_with_a_reason() -> None:
    plane = PLANES["native"]
    with pytest.raises(ValueError, match="needs 2"):
        Measurement.create("distance", _lps(plane, [(1.0, 1.0)]), plane)
    with pytest.raises(ValueError, match="unknown measurement kind"):
        Measurement.create("volume", _lps(plane, [(1.0, 1.0)]), plane)
    with pytest.raises(ValueError, match="finite"):
        Measurement.create("distance", [[0, 0, 0], [np.nan, 0, 0]], plane)
    degenerate = Measurement.create("angle", _lps(plane, [(1.0, 1.0), (1.0, 1.0), (5.0, 5.0)]), plane)
    assert not degenerate.value().ok and "no length" in (degenerate.value().reason or "")


# -- ROI statistics on a reformatted oblique plane ----------------------------------------------
def _linear_stack() -> tuple[ImageStack, np.ndarray]:
    """A volume whose value is 3 x + 2 y - z + 100 (LPS mm), on an anisotropic grid."""
    geometry = VolumeGeometry.from_directions((40, 60, 50), (-30.0, -35.0, -40.0), (1, 0, 0), (0, 1, 0),
                                              (1.2, 1.1, 2.0))
    k, j, i = np.meshgrid(*(np.arange(n) for n in geometry.shape_kji), indexing="ij")
    lps = geometry.index_to_lps(np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float))
    coef = np.array([3.0, 2.0, -1.0])
    data = (lps @ coef + 100.0).reshape(geometry.shape_kji).astype(np.float32)
    return ImageStack("lin", "lin", geometry, {}, lambda: (data, [])), coef


def test_roi_statistics_on_an_oblique_plane() -> None:
    stack, coef = _linear_stack()
    plane = PLANES["oblique"]
    centre = np.array([2.0, 1.0, 0.0])
    centre = centre - plane.signed_distance_mm(centre) * plane.normal_lps
    a, b = 12.0, 7.0
    m = Measurement.create("ellipse", [centre, centre + a * plane.right_lps, centre + b * plane.down_lps], plane)
    stats = roi_statistics(m, stack, pixel_mm=0.25)
    # A linear field averages to its value at the centre over an ellipse; its extremes are at the
    # rim, at centre +/- the gradient's in-plane projection scaled by the semi-axes.
    g_r, g_d = float(coef @ plane.right_lps), float(coef @ plane.down_lps)
    reach = math.hypot(a * g_r, b * g_d)
    at_centre = float(coef @ centre + 100.0)
    assert stats.mean == pytest.approx(at_centre, abs=0.02 * reach)
    assert stats.maximum == pytest.approx(at_centre + reach, abs=0.05 * reach)
    assert stats.minimum == pytest.approx(at_centre - reach, abs=0.05 * reach)
    # SD of a linear field over an ellipse: reach / 2 (uniform disc: E[s^2] = 1/4 per axis).
    assert stats.std == pytest.approx(reach / 2, rel=0.03)
    assert stats.area_mm2 == pytest.approx(math.pi * a * b, rel=0.02)


def test_roi_statistics_of_a_polygon_in_stored_units() -> None:
    stack, coef = _linear_stack()
    plane = ViewPlane(np.array([-10.0, 12.0, 30.0]), (0, 1, 0), (0, 0, -1), SPACING, (300, 300))  # a sagittal
    square = _lps(plane, [(0.0, 0.0), (40.0, 0.0), (40.0, 10.0), (0.0, 10.0)])
    shift = np.array([-10.0, 0.0, 0.0]) - square.mean(axis=0)
    shift -= (shift @ plane.normal_lps) * plane.normal_lps
    m = Measurement.create("polygon", square + shift, plane)
    stats = roi_statistics(m, stack, pixel_mm=0.2)
    # Pixel centres on the square's edges: up to a pixel (0.2 mm, 2 per mm along y) of bias.
    assert stats.mean == pytest.approx(float(coef @ m.centre_lps() + 100.0), abs=0.6)
    assert stats.area_mm2 == pytest.approx(m.value().value, rel=0.03)
    point = Measurement.create("point", square[:1], plane)
    assert roi_statistics(point, stack).reason is not None
    outside = Measurement.create("polygon", square + shift + 200.0 * plane.right_lps, plane)
    assert roi_statistics(outside, stack).reason == "the region is empty"


# -- level and side --------------------------------------------------------------------------------
DISCS = {"L3-L4": (np.array([1.0, 10.0, 40.0]), np.array([0.0, 0.0, 1.0])),
         "L4-L5": (np.array([-1.0, 12.0, 5.0]), np.array([0.0, 0.2, 0.98])),
         "L5-S1": (np.array([0.0, 20.0, -30.0]), np.array([0.0, 0.5, 0.87]))}


def test_level_and_side_from_the_disc_planes() -> None:
    assert nearest_level([0.0, 15.0, 8.0], DISCS) == "L4-L5"
    assert nearest_level([0.0, 15.0, -25.0], DISCS) == "L5-S1"
    assert side_of([12.0, 0.0, 0.0], DISCS) == "left"  # LPS +x is the patient's left
    assert side_of([-12.0, 0.0, 0.0], DISCS) == "right"
    assert side_of([1.0, 0.0, 0.0], DISCS) == "midline"
    assert nearest_level([0, 0, 0], {}) is None and side_of([0, 0, 0], {}) is None
    plane = ViewPlane(np.array([14.0, 0.0, 60.0]), (0, 1, 0), (0, 0, -1), SPACING, (100, 100))  # 14 mm left
    m = Measurement.create("point", [[14.0, 12.0, 36.0]], plane)
    t = tagged(m, DISCS)
    assert (t.level, t.side) == ("L3-L4", "left")
    kept = tagged(Measurement.create("point", [[14.0, 12.0, 36.0]], plane, level="L5-S1", side="right"), DISCS)
    assert (kept.level, kept.side) == ("L5-S1", "right")  # a tag the user set is kept


# -- the document: undo and redo of every command -------------------------------------------------
def _doc() -> tuple[MeasurementDocument, UndoStack]:
    undo = UndoStack()
    return MeasurementDocument(undo), undo


def _dist(plane: ViewPlane, ident: str) -> Measurement:
    return Measurement.create("distance", _lps(plane, [(0.0, 0.0), (10.0, 0.0)]), plane, ident=ident)


def test_add_undo_redo() -> None:
    doc, undo = _doc()
    plane = PLANES["oblique"]
    changes: list[int] = []
    doc.changed.connect(lambda: changes.append(len(doc)))
    doc.add(_dist(plane, "a"))
    doc.add(_dist(plane, "b"))
    assert [m.id for m in doc] == ["a", "b"] and undo.undo_text == "add distance"
    undo.undo()
    assert [m.id for m in doc] == ["a"]
    undo.redo()
    assert [m.id for m in doc] == ["a", "b"]
    assert changes == [1, 2, 1, 2]
    with pytest.raises(ValueError, match="exists already"):
        doc.add(_dist(plane, "a"))


def test_edit_fields_undo_redo() -> None:
    doc, undo = _doc()
    plane = PLANES["native"]
    doc.add(_dist(plane, "a"))
    doc.edit("a", level="L4-L5", side="left", note="canal")
    m = doc.get("a")
    assert m is not None and (m.level, m.side, m.note) == ("L4-L5", "left", "canal")
    undo.undo()
    m = doc.get("a")
    assert m is not None and (m.level, m.side, m.note) == (None, None, "")
    undo.redo()
    assert doc.get("a") is not None and doc.get("a").note == "canal"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown side"):
        doc.edit("a", side="up")


def test_a_handle_drag_is_one_undo_step() -> None:
    doc, undo = _doc()
    plane = PLANES["oblique"]
    doc.add(_dist(plane, "a"))
    original = doc.get("a")
    assert original is not None
    for step in range(1, 6):
        pts = original.points.copy()
        pts[1] = _lps(plane, [(10.0 + step, float(step))])[0]
        doc.edit("a", merge=True, points_lps=pts)
    undo.end_merge()
    moved = doc.get("a")
    assert moved is not None
    expected = math.hypot(15 * SPACING[0], 5 * SPACING[1])
    assert _rel(moved.value().value, expected) < 1e-3
    undo.undo()  # the whole drag
    back = doc.get("a")
    assert back is not None and back.points_lps == original.points_lps
    undo.redo()
    assert doc.get("a") == moved


def test_delete_undo_redo_keeps_the_order() -> None:
    doc, undo = _doc()
    plane = PLANES["native"]
    for ident in "abc":
        doc.add(_dist(plane, ident))
    doc.select("b")
    doc.remove(["b"])
    assert [m.id for m in doc] == ["a", "c"] and doc.selected is None
    undo.undo()
    assert [m.id for m in doc] == ["a", "b", "c"]
    undo.redo()
    assert [m.id for m in doc] == ["a", "c"]
    doc.remove(["a", "c"])
    assert len(doc) == 0
    undo.undo()
    assert [m.id for m in doc] == ["a", "c"]


def test_engine_rows_are_never_moved() -> None:
    doc, _undo = _doc()
    plane = PLANES["native"]
    engine = Measurement.create("distance", _lps(plane, [(0.0, 0.0), (10.0, 0.0)]), plane, source="engine",
                                ident="e", level="L4-L5")
    doc.add(engine)
    with pytest.raises(ValueError, match="engine"):
        doc.edit("e", points_lps=engine.points * 2)
    assert doc.get("e") == engine
