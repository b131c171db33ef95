"""Per-level rigid registration against motions whose truth is known (phantom and real T2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.measure.register import RegistrationInputError, apply_matrix, register_rigid, rigid_matrix
from lumbarview.phantom.layouts import level_roi_geometry
from lumbarview.phantom.moved import moved_copy, target_error_mm
from lumbarview.phantom.spine import LumbarPhantom, PhantomParams

LEVEL = "L4-L5"


def _phantom_pair(tilt_deg: float, origin_shift: tuple[float, float, float]) -> tuple[
        LumbarPhantom, LumbarPhantom, VolumeGeometry, np.ndarray, np.ndarray]:
    current = LumbarPhantom(PhantomParams(seed=1))
    moved_origin = tuple(float(a + b) for a, b in zip(current.params.origin_lps, origin_shift, strict=True))
    prior = LumbarPhantom(PhantomParams(seed=2, tilt_deg=tilt_deg, origin_lps=moved_origin))  # type: ignore[arg-type]
    g = level_roi_geometry(current, LEVEL, 1.0, 1.0)
    cur_img = current.render(g)[0]["T2"]
    pri_img = prior.render(g)[0]["T2"]
    return current, prior, g, cur_img, pri_img


def test_phantom_rendered_twice_in_two_poses_is_registered_within_1_mm() -> None:
    # The prior is the same analytic spine placed elsewhere (pitched 5 degrees, shifted), drawn
    # afresh with its own noise: no resampling of the current image is involved.
    current, prior, g, cur_img, pri_img = _phantom_pair(5.0, (3.0, -6.0, 8.0))
    disc = np.asarray(current.ground_truth()["levels"][LEVEL]["disc_centre_lps"])
    truth_at = prior.to_lps(current.to_spine(disc))
    result = register_rigid(cur_img, g, pri_img, g, disc)
    assert result.converged, result.message
    assert np.linalg.norm(result.apply(disc) - truth_at) <= 1.0
    # A point 15 mm away in the region is carried right too (the rotation is found, not just the shift).
    off = disc + np.array([0.0, 10.0, 11.0])
    assert np.linalg.norm(result.apply(off) - prior.to_lps(current.to_spine(off))) <= 1.0
    assert abs(result.total_rotation_deg - 5.0) < 1.0


@pytest.fixture(scope="module")
def chu_t2(shared_data: Path) -> tuple[np.ndarray, VolumeGeometry, np.ndarray]:
    from lumbarview.io.volume import open_label_volume, open_volume

    root = shared_data / "chu2015-vb2" / "VB2_05"
    img = open_volume(root / "VB2_05_t2_iso1mm.nii.gz")
    labels = open_label_volume(root / "VB2_05_t2_iso1mm_vertebrae_mask.nii.gz").pixels()
    g = img.geometry
    # The L4-L5 disc: midway between the L4 (6) and L5 (7) body centroids of the expert labels.
    l4, l5 = (g.index_to_lps(np.argwhere(labels == v).mean(axis=0)[::-1]) for v in (6, 7))
    return np.asarray(img.pixels()), g, (l4 + l5) / 2


@pytest.mark.parametrize(("rotation", "translation", "frame_shift"), [
    ((8.0, 0.0, 0.0), (0.0, 0.0, 15.0), (0.0, 0.0, 0.0)),
    ((-4.0, 6.0, -4.0), (10.0, -8.0, 9.0), (0.0, 0.0, 0.0)),
    ((0.0, 3.0, 2.0), (-5.0, 4.0, 0.0), (40.0, -25.0, 12.0)),  # another frame of reference: start offset
])
def test_real_t2_moved_copy_target_error_at_most_1_mm(
        chu_t2: tuple[np.ndarray, VolumeGeometry, np.ndarray], rotation: tuple[float, float, float],
        translation: tuple[float, float, float], frame_shift: tuple[float, float, float]) -> None:
    pixels, g, disc = chu_t2
    noise = float(np.percentile(pixels, 99)) * 0.04
    copy = moved_copy(pixels, g, rotation_deg=rotation, translation_mm=translation, centre_lps=g.centre_lps(),
                      noise_sd=noise, frame_shift_mm=frame_shift)
    start = np.eye(4)
    start[:3, 3] = frame_shift  # the manual offset a user aligns once across frames of reference
    result = register_rigid(pixels, g, copy.pixels, copy.geometry, disc, initial_matrix=start)
    assert result.converged, result.message
    assert target_error_mm(result.matrix_lps, copy.truth, disc) <= 1.0


def test_a_study_registered_to_itself_converges_on_the_identity(
        chu_t2: tuple[np.ndarray, VolumeGeometry, np.ndarray]) -> None:
    # Nothing to improve from the start: still a match (the similarity peaks there).
    pixels, g, disc = chu_t2
    result = register_rigid(pixels, g, pixels, g, disc)
    assert result.converged, result.message
    assert target_error_mm(result.matrix_lps, np.eye(4), disc) <= 0.1


def test_unrelated_prior_is_reported_as_not_converged_and_the_start_kept(
        chu_t2: tuple[np.ndarray, VolumeGeometry, np.ndarray]) -> None:
    pixels, g, disc = chu_t2
    noise_only = np.random.default_rng(3).normal(100.0, 20.0, pixels.shape).astype(np.float32)
    start = rigid_matrix((0.0, 0.0, 0.0), (1.0, 2.0, 3.0), disc)
    result = register_rigid(pixels, g, noise_only, g, disc, initial_matrix=start)
    assert not result.converged
    assert "did not converge" in result.message and "no clear match" in result.message
    np.testing.assert_array_equal(result.matrix_lps, start)


def test_bad_inputs_are_said() -> None:
    g = VolumeGeometry.from_directions((20, 20, 20), (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 1.0))
    vol = np.zeros((20, 20, 20), dtype=np.float32)
    with pytest.raises(RegistrationInputError, match="outside the current volume"):
        register_rigid(vol, g, vol, g, (500.0, 0.0, 0.0))
    with pytest.raises(RegistrationInputError, match="shape"):
        register_rigid(vol[:5], g, vol, g, (10.0, 10.0, 10.0))
    with pytest.raises(RegistrationInputError, match="finite"):
        register_rigid(vol, g, vol, g, (np.nan, 0.0, 0.0))


def test_rigid_matrix_rotates_about_the_centre() -> None:
    m = rigid_matrix(np.radians((0.0, 0.0, 90.0)), (1.0, 0.0, 0.0), (10.0, 0.0, 0.0))
    # The centre only moves by the translation; a point 1 mm left of it turns to 1 mm posterior.
    np.testing.assert_allclose(apply_matrix(m, (10.0, 0.0, 0.0)), (11.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(apply_matrix(m, (11.0, 0.0, 0.0)), (11.0, 1.0, 0.0), atol=1e-12)
