"""Measurement kinds (model/kinds.py), headless: what each tool's inputs make, how a handle
drag constrains a shape, values against analytic ones computed here with plain geometry (not
lumbarview's primitives), outlines, label anchors and region masks on an oblique plane with
anisotropic pixels; the registry is complete."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lumbarview.model import kinds
from lumbarview.model.kinds import AREA_KINDS, KINDS, TOOLS, kind, plane_through
from lumbarview.model.measurements import Measurement
from lumbarview.slicing.planes import ViewPlane

SPACING = (0.4, 1.3)


def _oblique() -> ViewPlane:
    rot = Rotation.from_rotvec(np.radians(31.0) * np.array([0.2, 0.9, -0.4]) / np.linalg.norm([0.2, 0.9, -0.4]))
    return ViewPlane(np.array([3.0, -7.0, 20.0]), rot.apply([1.0, 0.0, 0.0]), rot.apply([0.0, 1.0, 0.0]), SPACING,
                     (400, 300))


PLANE = _oblique()


def _at(u: float, v: float) -> np.ndarray:
    """The LPS point u mm along screen right and v mm along screen down from the plane's origin."""
    return np.asarray(PLANE.origin_lps + u * PLANE.right_lps + v * PLANE.down_lps, dtype=np.float64)


def test_the_registry_holds_every_tool_and_kind() -> None:
    assert list(TOOLS) == ["distance", "angle", "cobb", "endplate", "ellipse", "rectangle", "polygon", "freehand",
                           "point", "perpendicular"]
    assert "perpendicular" not in KINDS and set(KINDS) == set(TOOLS) - {"perpendicular"}
    assert AREA_KINDS == ("ellipse", "rectangle", "polygon", "freehand")
    with pytest.raises(ValueError, match="unknown measurement kind 'volume'; one of distance"):
        kind("volume")
    for name, k in TOOLS.items():
        assert k.name == name and k.hint, name
        fewest, most = k.points
        assert 1 <= fewest <= most


def test_a_rectangle_from_two_corners_and_its_value_outline_and_mask() -> None:
    drawn = TOOLS["rectangle"].from_input(np.array([_at(10.0, 20.0), _at(34.0, 5.0)]), PLANE)
    assert drawn.kind == "rectangle" and drawn.note == ""
    np.testing.assert_allclose(drawn.points, [_at(10, 20), _at(34, 20), _at(34, 5), _at(10, 5)], atol=1e-9)
    m = Measurement.create("rectangle", drawn.points, PLANE)
    assert m.value().value == pytest.approx(24.0 * 15.0, rel=1e-12) and m.unit == "mm2"
    outline = m.outline_lps()
    assert len(outline) == 1 and len(outline[0]) == 5
    np.testing.assert_allclose(outline[0][0], outline[0][-1])
    shifted = Measurement.create("rectangle", TOOLS["rectangle"].from_input(
        np.array([_at(10.1, 20.1), _at(34.1, 5.1)]), PLANE).points, PLANE)  # no pixel centre on an edge
    mask = shifted.region_mask(PLANE)
    # Pixel centres (c * 0.4, r * 1.3) inside 10.1 < u < 34.1, 5.1 < v < 20.1.
    cols = [c for c in range(300) if 10.1 < c * SPACING[0] < 34.1]
    rows = [r for r in range(400) if 5.1 < r * SPACING[1] < 20.1]
    assert int(mask.sum()) == len(cols) * len(rows) > 0
    with pytest.raises(ValueError, match="corner to the opposite"):
        TOOLS["rectangle"].from_input(np.array([_at(10.0, 20.0), _at(10.05, 5.0)]), PLANE)


def test_a_rectangle_corner_drag_keeps_the_opposite_corner_and_the_sides() -> None:
    pts = TOOLS["rectangle"].from_input(np.array([_at(10.0, 20.0), _at(34.0, 5.0)]), PLANE).points
    moved = KINDS["rectangle"].drag(pts, 2, _at(40.0, 2.0) + 3.0 * PLANE.normal_lps, PLANE)
    assert moved is not None
    np.testing.assert_allclose(moved[0], pts[0])  # the opposite corner stays
    m = Measurement.create("rectangle", pts, PLANE).with_points(moved)
    assert m.value().value == pytest.approx(30.0 * 18.0, rel=1e-9)
    p = m.points
    for a, b, c in ((p[0], p[1], p[2]), (p[1], p[2], p[3])):
        assert abs(float((b - a) @ (c - b))) < 1e-9  # right angles kept
    assert KINDS["rectangle"].drag(pts, 2, pts[0] + 0.01 * PLANE.right_lps, PLANE) is None  # no flat rectangle


def test_an_ellipse_from_its_box_corner_and_its_axis_drag() -> None:
    drawn = TOOLS["ellipse"].from_input(np.array([_at(50.0, 60.0), _at(42.0, 66.0)]), PLANE)
    np.testing.assert_allclose(drawn.points, [_at(50, 60), _at(58, 60), _at(50, 66)], atol=1e-9)
    m = Measurement.create("ellipse", drawn.points, PLANE)
    assert m.value().value == pytest.approx(math.pi * 8.0 * 6.0, rel=1e-12)
    np.testing.assert_allclose(m.centre_lps(), _at(50, 60))
    # Dragging the first axis' end to a new direction turns the second axis with it.
    moved = KINDS["ellipse"].drag(m.points, 1, _at(50.0, 60.0) + 10.0 * (PLANE.right_lps + PLANE.down_lps)
                                  / math.sqrt(2), PLANE)
    assert moved is not None
    assert float(np.linalg.norm(moved[1] - moved[0])) == pytest.approx(10.0)
    assert float(np.linalg.norm(moved[2] - moved[0])) == pytest.approx(6.0)
    assert abs(float((moved[1] - moved[0]) @ (moved[2] - moved[0]))) < 1e-9
    np.testing.assert_allclose(KINDS["ellipse"].drag(m.points, 0, _at(0.0, 0.0), PLANE),
                               m.points - _at(50.0, 60.0) + _at(0.0, 0.0))
    outline = m.outline_lps()[0]
    u = (outline - _at(50, 60)) @ PLANE.right_lps
    v = (outline - _at(50, 60)) @ PLANE.down_lps
    np.testing.assert_allclose((u / 8.0) ** 2 + (v / 6.0) ** 2, 1.0, atol=1e-9)


def test_the_perpendicular_tool_makes_a_distance_to_the_line() -> None:
    drawn = TOOLS["perpendicular"].from_input(np.array([_at(0, 10), _at(40, 10), _at(17, 3)]), PLANE)
    assert drawn.kind == "distance" and "perpendicular" in drawn.note
    np.testing.assert_allclose(drawn.points, [_at(17, 3), _at(17, 10)], atol=1e-9)


@pytest.mark.parametrize(("name", "uv", "truth"), [
    ("distance", [(0, 0), (3, 4)], 5.0),
    ("angle", [(10, 0), (0, 0), (0, 7)], 90.0),
    ("cobb", [(0, 0), (10, 0), (0, 5), (10, 5 + 10 * math.tan(math.radians(25)))], 25.0),
    ("polygon", [(0, 0), (6, 0), (6, 9), (0, 9)], 54.0),
    ("freehand", [(0, 0), (4, 0), (0, 3)], 6.0),
])
def test_values_on_an_oblique_plane(name: str, uv: list[tuple[float, float]], truth: float) -> None:
    m = Measurement.create(name, [_at(u, v) for u, v in uv], PLANE)
    assert m.value().value == pytest.approx(truth, rel=1e-9)
    assert m.unit == {"distance": "mm", "angle": "deg", "cobb": "deg"}.get(name, "mm2")


def test_label_anchors_sit_beside_the_drawing() -> None:
    d = Measurement.create("distance", [_at(0, 0), _at(3, 4)], PLANE)
    np.testing.assert_allclose(d.label_anchor_lps(), _at(3, 4))
    a = Measurement.create("angle", [_at(10, 0), _at(0, 0), _at(0, 7)], PLANE)
    np.testing.assert_allclose(a.label_anchor_lps(), _at(0, 0))
    p = Measurement.create("point", [_at(5, 5)], PLANE)
    assert p.outline_lps() == [] and not p.value().ok
    with pytest.raises(ValueError, match="a point has no region"):
        p.region_mask(PLANE)


def test_a_plane_through_points() -> None:
    fitted = plane_through(np.array([_at(0, 0), _at(10, 0), _at(0, 10)]))
    assert fitted is not None
    _origin, right, down = fitted
    np.testing.assert_allclose(right, PLANE.right_lps, atol=1e-9)
    assert abs(float(np.cross(right, down) @ PLANE.normal_lps)) == pytest.approx(1.0)
    assert plane_through(np.array([_at(0, 0), _at(10, 0), _at(20, 0)])) is None  # a line
    assert plane_through(np.array([_at(0, 0), _at(10, 0)])) is None
    assert kinds.MIN_EXTENT_MM > 0
