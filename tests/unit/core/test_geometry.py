from __future__ import annotations

import numpy as np
import pytest

from lumbarview.core.geometry import (
    PlaneOrientation,
    SlicePlane,
    VolumeGeometry,
    classify_normal,
    direction_letters,
)


def _rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_index_and_patient_round_trip_with_anisotropic_sheared_grid() -> None:
    g = VolumeGeometry.from_directions((10, 20, 30), (5.0, -3.0, 7.0), (0, 1, 0), (0, 0, -1),
                                       (0.5, 0.7, 3.3), slice_direction_lps=(-1, 0.1, 0))
    ijk = np.array([[0, 0, 0], [29, 19, 9], [3.5, 2.25, 4.0]])
    assert np.allclose(g.lps_to_index(g.index_to_lps(ijk)), ijk)
    # (i, j, k) = (1, 0, 0) moves one column: 0.5 mm along the row direction.
    assert np.allclose(g.index_to_lps((1, 0, 0)) - g.index_to_lps((0, 0, 0)), (0, 0.5, 0))
    assert np.allclose(g.index_to_lps((0, 1, 0)) - g.index_to_lps((0, 0, 0)), (0, 0, -0.7))
    # The slice normal is perpendicular to the slices even though the k step is sheared.
    assert np.allclose(g.slice_normal, (-1, 0, 0))
    assert g.slice_spacing_mm == pytest.approx(3.3 / np.linalg.norm((-1, 0.1, 0)))


def test_nearest_slice_is_none_outside_the_stack() -> None:
    g = VolumeGeometry.from_directions((5, 4, 4), (0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 4))
    assert g.nearest_slice((0, 0, 0)) == 0
    assert g.nearest_slice((0, 0, 5.9)) == 1
    assert g.nearest_slice((0, 0, 16.0)) == 4
    assert g.nearest_slice((0, 0, 18.1)) is None
    assert g.nearest_slice((0, 0, -2.1)) is None


@pytest.mark.parametrize(
    ("normal", "expected"),
    [((1, 0, 0), PlaneOrientation.SAGITTAL), ((0, -1, 0), PlaneOrientation.CORONAL),
     ((0, 0, 1), PlaneOrientation.AXIAL),
     (tuple(_rot_x(25) @ (0, 0, 1)), PlaneOrientation.AXIAL),
     (tuple(_rot_x(45) @ (0, 0, 1)), PlaneOrientation.OBLIQUE),
     ((1, 1, 1), PlaneOrientation.OBLIQUE)],
)
def test_classify_normal(normal: tuple[float, float, float], expected: PlaneOrientation) -> None:
    assert classify_normal(normal) is expected


def test_direction_letters_main_and_oblique() -> None:
    assert direction_letters((0, 0, -1)) == "I"
    assert direction_letters((-1, 0, 0)) == "R"
    assert direction_letters((0, -1, 0)) == "A"
    tilted = _rot_x(-20) @ (0, 0, -1)  # inferior, tipped toward anterior (-y)
    assert direction_letters(tilted) == "IA"
    assert direction_letters(_rot_x(5) @ (0, 0, -1)) == "I"  # small obliquity stays one letter


def _plane(row: tuple[float, ...], col: tuple[float, ...]) -> SlicePlane:
    return SlicePlane((0, 0, 0), row, col, (1.0, 1.0), (100, 100))


def test_edge_letters_supine_prone_feet_first() -> None:
    # Supine (HFS) sagittal: columns run anterior->posterior, rows head->feet.
    supine = _plane((0, 1, 0), (0, 0, -1)).edge_letters()
    assert (supine.left, supine.right, supine.top, supine.bottom) == ("A", "P", "S", "I")
    # Prone (HFP) sagittal as a scanner writes it: the patient's back is up, so the first
    # triplet of (0020,0037) points anterior in patient terms when drawn the same way.
    prone = _plane((0, -1, 0), (0, 0, -1)).edge_letters()
    assert (prone.left, prone.right) == ("P", "A")
    assert (prone.left, prone.right) != (supine.left, supine.right)
    # Axial, supine head first: radiological convention, patient's right on screen left.
    axial = _plane((1, 0, 0), (0, 1, 0)).edge_letters()
    assert (axial.left, axial.right, axial.top, axial.bottom) == ("R", "L", "A", "P")
    # Feet-first supine axial: the scanner's x flips, so (0020,0037) row points to the right.
    ffs = _plane((-1, 0, 0), (0, 1, 0)).edge_letters()
    assert (ffs.left, ffs.right) == ("L", "R")


def test_oblique_axial_edge_letters_carry_a_second_letter() -> None:
    r = _rot_x(25)
    p = _plane(tuple(r @ (1, 0, 0)), tuple(r @ (0, 1, 0)))
    letters = p.edge_letters()
    assert letters.top == "AI" and letters.bottom == "PS"
    assert letters.left == "R" and letters.right == "L"


def _independent_intersection(a: SlicePlane, b: SlicePlane) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of plane b with slice a, by sampling a's pixel grid densely."""
    rows, cols = a.shape_rc
    cc, rr = np.meshgrid(np.linspace(-0.5, cols - 0.5, 801), np.linspace(-0.5, rows - 0.5, 801))
    pts = a.pixel_to_lps(np.stack([cc, rr], axis=-1))
    d = b.signed_distance_mm(pts)
    near = np.abs(d) < 0.3
    inside_b = b.lps_to_pixel(pts[near])
    rb, cb = b.shape_rc
    ok = ((inside_b[:, 0] >= -0.5) & (inside_b[:, 0] <= cb - 0.5) &
          (inside_b[:, 1] >= -0.5) & (inside_b[:, 1] <= rb - 0.5))
    return pts[near][ok], d


def test_reference_line_of_tilted_axial_on_sagittal_matches_dense_sampling() -> None:
    sag = SlicePlane((0, -100, 100), (0, 1, 0), (0, 0, -1), (1.0, 1.0), (200, 200))
    r = _rot_x(-18)
    ax = SlicePlane(r @ (-80, -80, 0) + (0, 0, 20), r @ (1, 0, 0), r @ (0, 1, 0), (0.8, 0.8),
                    (200, 200))
    seg = sag.intersection(ax)
    assert seg is not None
    samples, _ = _independent_intersection(sag, ax)
    # Both ends lie on both planes.
    for end in (seg.start_lps, seg.end_lps):
        assert abs(sag.signed_distance_mm(end)) < 1e-6
        assert abs(ax.signed_distance_mm(end)) < 1e-6
    # The segment spans what the sampling found (to the sampling resolution).
    direction = (seg.end_lps - seg.start_lps) / seg.length_mm
    t = (samples - seg.start_lps) @ direction
    assert t.min() == pytest.approx(0.0, abs=0.5)
    assert t.max() == pytest.approx(seg.length_mm, abs=0.5)
    # The line is tilted by the axial's angle on the sagittal image.
    px = sag.lps_to_pixel(np.stack([seg.start_lps, seg.end_lps]))
    angle = np.degrees(np.arctan2(abs(px[1, 1] - px[0, 1]), abs(px[1, 0] - px[0, 0])))
    assert angle == pytest.approx(18.0, abs=1e-6)


def test_parallel_or_distant_planes_give_no_line() -> None:
    a = SlicePlane((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (10, 10))
    b = SlicePlane((0, 0, 5), (1, 0, 0), (0, 1, 0), (1, 1), (10, 10))
    assert a.intersection(b) is None
    far = SlicePlane((500, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1), (10, 10))
    assert a.intersection(far) is None


def test_slice_plane_of_volume_matches_voxel_centres() -> None:
    g = VolumeGeometry.from_directions((6, 8, 10), (1, 2, 3), (0, 1, 0), (0, 0, -1), (0.5, 0.6, 4))
    plane = g.slice_plane(3)
    assert np.allclose(plane.pixel_to_lps((4, 5)), g.index_to_lps((4, 5, 3)))
    assert np.allclose(plane.normal_lps, g.slice_normal)
    with pytest.raises(IndexError):
        g.slice_plane(6)


def test_invalid_geometry_is_refused() -> None:
    with pytest.raises(ValueError, match="invertible"):
        VolumeGeometry((1, 1, 1), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="orthogonal"):
        SlicePlane((0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1), (2, 2))
