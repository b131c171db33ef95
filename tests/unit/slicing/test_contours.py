"""Mesh-plane contours against the analytic intersection."""

from __future__ import annotations

import numpy as np

from lumbarview.slicing.contours import plane_contour, segments_to_pixels, slab_projection
from lumbarview.slicing.planes import ViewPlane


def _box(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], float)
    # Two triangles per face of the box (vertex index = 4x + 2y + z).
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int64)
    return v, f


def _tube(radius: float, z0: float, z1: float, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    v = np.concatenate([np.c_[ring, np.full(n, z0)], np.c_[ring, np.full(n, z1)]])
    f = []
    for a in range(n):
        b = (a + 1) % n
        f += [(a, b, n + b), (a, n + b, n + a)]
    return v, np.array(f, dtype=np.int64)


def test_box_cut_by_an_oblique_plane_is_the_analytic_polygon() -> None:
    v, f = _box(np.array([-10.0, -5.0, -20.0]), np.array([10.0, 5.0, 20.0]))
    # A plane tilted 30 degrees about the x axis through (0, 0, 3): the box cut is a rectangle
    # 20 wide and 10 / cos(30) tall.
    angle = np.radians(30)
    right = np.array([1.0, 0.0, 0.0])
    down = np.array([0.0, np.cos(angle), np.sin(angle)])
    plane = ViewPlane.centred((0.0, 0.0, 3.0), right, down, (0.5, 0.5), (200, 200))
    seg = plane_contour(v, f, plane)
    assert len(seg) == 8  # two triangles of each of the four side faces it crosses
    pts = seg.reshape(-1, 3)
    np.testing.assert_allclose(plane.signed_distance_mm(pts), 0.0, atol=1e-9)
    px = segments_to_pixels(seg, plane).reshape(-1, 2) * 0.5  # mm in the plane from the origin
    centre = plane.lps_to_pixel(np.array([0.0, 0.0, 3.0])) * 0.5
    u, w = (px - centre).T
    tall = 5.0 / np.cos(angle)
    on_side = np.isclose(np.abs(u), 10.0, atol=1e-9) | np.isclose(np.abs(w), tall, atol=1e-9)
    assert on_side.all() and np.all(np.abs(u) <= 10 + 1e-9) and np.all(np.abs(w) <= tall + 1e-9)
    length = float(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum())
    assert abs(length - 2 * (20.0 + 2 * tall)) < 1e-9


def test_tube_cut_is_a_circle_at_the_plane() -> None:
    v, f = _tube(4.0, -30.0, 30.0)
    plane = ViewPlane.centred((0.0, 0.0, 7.25), (1, 0, 0), (0, 1, 0), (0.4, 0.4), (100, 100))
    seg = plane_contour(v, f, plane)
    pts = seg.reshape(-1, 3)
    assert len(seg) == 128  # both triangles of each of the 64 side quads
    np.testing.assert_allclose(pts[:, 2], 7.25, atol=1e-9)
    # The tube is a 64-gon prism: the cut is that polygon (points on its chords, perimeter exact).
    radius = np.linalg.norm(pts[:, :2], axis=1)
    assert np.all(radius <= 4.0 + 1e-9) and np.all(radius >= 4.0 * np.cos(np.pi / 64) - 1e-9)
    length = float(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum())
    assert abs(length - 64 * 2 * 4.0 * np.sin(np.pi / 64)) < 1e-9
    # A plane that misses the tube gives nothing; a plane through its end cap edge gives nothing extra.
    assert len(plane_contour(v, f, plane.stepped(40.0))) == 0


def test_slab_projection_keeps_only_the_part_within_the_slab() -> None:
    # A thin root (radius 1) lying across an axial slice along x, tilted (z = 0.2 x): only its
    # stretch |0.2 x| <= half + 1 can reach into the slab.
    v, f = _tube(1.0, -20.0, 20.0, n=8)
    v = v[:, [2, 1, 0]]  # along x now
    v[:, 2] += 0.2 * v[:, 0]
    plane = ViewPlane.centred((0.0, 0.0, 0.0), (1, 0, 0), (0, 1, 0), (0.5, 0.5), (100, 100))
    for half in (1.0, 2.0):
        edges = slab_projection(v, f, plane, half)
        pts = edges.reshape(-1, 3)
        np.testing.assert_allclose(pts[:, 2], 0.0, atol=1e-9)  # projected onto the plane
        reach = (half + 1.0) / 0.2
        assert np.all(np.abs(pts[:, 0]) <= reach + 1e-9)
        assert np.abs(pts[:, 0]).max() >= (half - 1.0) / 0.2 + 2.0  # clipped edges, not whole triangles
    assert len(slab_projection(v, f, plane.stepped(30.0), 1.0)) == 0
