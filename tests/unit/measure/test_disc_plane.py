"""The disc plane shared by the measurement engine and the viewer's "align to disc"."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from lumbarview.core.errors import MeasurementError
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import spider_scheme
from lumbarview.measure.measurer import LabelMapMeasurer, disc_plane
from lumbarview.phantom.layouts import level_roi_geometry, render_labels
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams
from lumbarview.slicing.planes import disc_aligned_plane, letters, plane_from_sagittal_line
from lumbarview.slicing.reformat import reformat

LEVEL, VALUE = "L4-L5", 202


@pytest.fixture(scope="module")
def case() -> tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]]:
    phantom = LumbarPhantom(PhantomParams(tilt_deg=12.0))
    # 0.6 mm voxels, as SPIDER's in-plane pixels (a 1 mm grid leaves 1.04 degrees at this tilt).
    g = level_roi_geometry(phantom, LEVEL, 0.6, 0.6)
    return phantom, g, render_labels(phantom, g)


def _angle_deg(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def test_disc_plane_matches_the_phantom_truth(case: tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]],
                                              ) -> None:
    phantom, g, labels = case
    truth = phantom.ground_truth()["levels"][LEVEL]
    centre, normal = disc_plane(labels, g, VALUE)
    assert _angle_deg(normal, truth["disc_normal_lps"]) < 1.0
    assert normal[2] > 0 and abs(np.linalg.norm(normal) - 1) < 1e-9
    assert np.linalg.norm(centre - np.asarray(truth["disc_centre_lps"])) < 1.0
    # The disc is tilted 2 degrees from axial here: a plain axial normal would fail the 1 degree check.
    assert _angle_deg((0, 0, 1), truth["disc_normal_lps"]) > 1.5


def test_the_engine_uses_the_same_plane(case: tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]]) -> None:
    _, g, labels = case
    frame = LabelMapMeasurer(labels, g, spider_scheme()).disc_frame(VALUE)
    assert not isinstance(frame, str)
    centre, normal = disc_plane(labels, g, VALUE)
    np.testing.assert_array_equal(frame[0], centre)
    np.testing.assert_array_equal(frame[1], normal)


def test_missing_disc_is_a_measurement_error(case: tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]],
                                             ) -> None:
    _, g, labels = case
    with pytest.raises(MeasurementError, match="fewer than 20 voxels"):
        disc_plane(labels, g, 255)
    assert "fewer than 20 voxels" in str(LabelMapMeasurer(labels, g, spider_scheme()).disc_frame(255))


def test_axial_view_aligned_to_the_disc(case: tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]]) -> None:
    phantom, g, labels = case
    truth = phantom.ground_truth()["levels"][LEVEL]
    centre, normal = disc_plane(labels, g, VALUE)
    plane = disc_aligned_plane(centre, -normal, 0.5, (121, 161))  # either sense: made superior
    assert _angle_deg(plane.normal_lps, truth["disc_normal_lps"]) < 1.0
    assert plane.right_lps[0] > 0.99 and plane.down_lps[1] > 0.9  # patient left right, posterior down
    e = letters(plane)
    assert e is not None and e.left == "R" and e.right == "L" and e.top.startswith("A")
    np.testing.assert_allclose(plane.centre_lps(), centre, atol=1e-9)
    out = reformat(labels, g, plane, kind="labels")
    assert out.pixels[60, 80] == VALUE  # the disc at the centre of the view
    # The disc's cross-section is on this plane: a wide area of disc pixels.
    assert np.count_nonzero(out.pixels == VALUE) * 0.25 > 600  # mm2


def test_plane_from_a_line_drawn_on_the_sagittal(case: tuple[LumbarPhantom, VolumeGeometry, npt.NDArray[np.int16]],
                                                 ) -> None:
    phantom, g, _ = case
    truth = phantom.ground_truth()["levels"][LEVEL]
    c = np.asarray(truth["disc_centre_lps"])
    n = np.asarray(truth["disc_normal_lps"])
    e_ap = np.cross(n, (1.0, 0.0, 0.0))
    e_ap /= np.linalg.norm(e_ap)
    sagittal = g.slice_plane(g.nearest_slice(c) or 0)
    p0, p1 = c + 25 * e_ap, c - 18 * e_ap  # drawn posterior to anterior, across the disc
    plane = plane_from_sagittal_line(p0, p1, sagittal, 0.5, (100, 100))
    assert _angle_deg(plane.normal_lps, n) < 0.5 and plane.normal_lps[2] > 0
    assert abs(float(plane.signed_distance_mm(p0))) < 1e-9 and abs(float(plane.signed_distance_mm(p1))) < 1e-9
    assert abs(float(plane.right_lps @ sagittal.normal_lps)) > 0.999 and plane.right_lps[0] > 0
    assert plane.down_lps[1] > 0  # posterior down
    moved = plane.stepped(3.3)
    assert abs(float(moved.signed_distance_mm(p0)) + 3.3) < 1e-9
    np.testing.assert_allclose(moved.origin_lps - plane.origin_lps, 3.3 * plane.normal_lps, atol=1e-12)
    with pytest.raises(ValueError, match="too short"):
        plane_from_sagittal_line(p0, p0 + 1e-9, sagittal, 0.5, (10, 10))
