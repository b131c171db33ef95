"""Every primitive against an analytic answer, on an oblique plane with pixels that are not
square: the geometry, not the pixel grid, decides the result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumbarview.core.geometry import SlicePlane
from lumbarview.measure.primitives import (
    angle,
    distance,
    ellipse_area,
    line_angle,
    mask_area,
    polygon_area,
    polyline_length,
    roi_stats,
)


def _oblique_plane(col_mm: float = 0.4, row_mm: float = 0.9) -> SlicePlane:
    a, b = np.radians(27.0), np.radians(-13.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    r = rz @ rx
    return SlicePlane((12.0, -40.0, 7.5), r @ (1, 0, 0), r @ (0, 1, 0), (col_mm, row_mm), (400, 300))


def test_distance_uses_both_pixel_spacings_on_an_oblique_plane() -> None:
    plane = _oblique_plane()
    # 30 columns right and 40 rows down: 12 mm and 36 mm along the plane's own axes.
    result = distance((10, 10), (40, 50), plane)
    assert result.ok and result.unit == "mm"
    assert result.value == pytest.approx(math.hypot(30 * 0.4, 40 * 0.9), abs=1e-9)
    assert distance((0, 0, 0), (3, 4, 12)).value == pytest.approx(13.0)
    assert not distance((0, 0, np.nan), (1, 1, 1)).ok


def test_polyline_and_degenerate_inputs_give_nan_with_a_reason() -> None:
    plane = _oblique_plane()
    assert polyline_length([(0, 0), (10, 0), (10, 10)], plane).value == pytest.approx(10 * 0.4 + 10 * 0.9)
    short = polyline_length([(0, 0)], plane)
    assert math.isnan(short.value) and "two points" in (short.reason or "")
    flat = polygon_area([(0, 0), (5, 0), (10, 0)], plane)
    assert math.isnan(flat.value) and flat.reason


def test_angle_and_cobb_on_an_oblique_anisotropic_plane() -> None:
    plane = _oblique_plane(0.5, 0.5)
    # A right angle drawn in pixels is a right angle on square pixels.
    assert angle((20, 10), (10, 10), (10, 30), plane).value == pytest.approx(90.0)
    # On anisotropic pixels, a 45-degree pixel diagonal is not 45 degrees in mm.
    aniso = _oblique_plane(0.4, 0.9)
    expected = math.degrees(math.atan2(10 * 0.9, 10 * 0.4))
    assert angle((20, 10), (10, 10), (20, 20), aniso).value == pytest.approx(expected)
    # Cobb: lines at 10 and 42 degrees in mm, drawn in opposite directions.
    def line(deg: float, flip: bool) -> list[tuple[float, float]]:
        d = np.array([math.cos(math.radians(deg)) / 0.4, math.sin(math.radians(deg)) / 0.9])
        a, b = np.array([50.0, 50.0]), np.array([50.0, 50.0]) + 20 * d
        return [tuple(b), tuple(a)] if flip else [tuple(a), tuple(b)]
    assert line_angle(line(10, False), line(42, True), aniso).value == pytest.approx(32.0, abs=1e-6)
    assert line_angle(line(0, False), line(120, False), aniso).value == pytest.approx(60.0, abs=1e-6)
    assert not line_angle([(1, 1), (1, 1)], line(3, False), aniso).ok


def test_polygon_and_ellipse_areas_in_mm2() -> None:
    plane = _oblique_plane(0.4, 0.9)
    rect = [(10, 10), (60, 10), (60, 30), (10, 30)]  # 50 x 20 pixels
    assert polygon_area(rect, plane).value == pytest.approx(50 * 0.4 * 20 * 0.9)
    # The same rectangle given in LPS is measured on its own plane.
    assert polygon_area(plane.pixel_to_lps(np.array(rect, float)), None).value == pytest.approx(360.0)
    # Ellipse with semi-axes of 8 mm (20 columns) and 4.5 mm (5 rows).
    assert ellipse_area((100, 100), (120, 100), (100, 105), plane).value == pytest.approx(math.pi * 8 * 4.5)
    skew = ellipse_area((100, 100), (120, 100), (110, 105), plane)
    assert not skew.ok and "perpendicular" in (skew.reason or "")


def test_mask_area_of_a_disk_at_anisotropic_spacing() -> None:
    plane = SlicePlane((0, 0, 0), (0, 1, 0), (0, 0, -1), (0.3, 0.7), (200, 200))
    rows, cols = np.mgrid[0:200, 0:200]
    radius = 20.0
    disk = ((rows - 100) * 0.7) ** 2 + ((cols - 100) * 0.3) ** 2 <= radius**2
    assert mask_area(disk, plane).value == pytest.approx(math.pi * radius**2, rel=0.01)
    assert not mask_area(np.zeros((4, 4)), plane).ok


def test_roi_statistics() -> None:
    plane = SlicePlane((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.5, 2.0), (4, 4))
    pixels = np.arange(16, dtype=float).reshape(4, 4)
    mask = pixels >= 10
    stats = roi_stats(pixels, mask, plane)
    assert stats.n_pixels == 6 and stats.area_mm2 == pytest.approx(6.0)
    assert (stats.mean, stats.minimum, stats.maximum) == (12.5, 10.0, 15.0)
    assert roi_stats(pixels, np.zeros((4, 4), bool), plane).reason
