"""Scrolling in step: the other stack lands within half a slice thickness of the same anatomy
(truth known from the transform that made the prior)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.measure.register import register_rigid
from lumbarview.phantom.moved import MovedCopy, moved_copy
from lumbarview.slicing.sync import StackSync, offset_alignment

STEP = 3  # the prior keeps every third slice: 3 mm slices against the current 1 mm


@pytest.fixture(scope="module")
def real_pair(shared_data: Path) -> tuple[np.ndarray, VolumeGeometry, MovedCopy, VolumeGeometry, np.ndarray]:
    from lumbarview.io.volume import open_label_volume, open_volume

    root = shared_data / "chu2015-vb2" / "VB2_05"
    img = open_volume(root / "VB2_05_t2_iso1mm.nii.gz")
    labels = open_label_volume(root / "VB2_05_t2_iso1mm_vertebrae_mask.nii.gz").pixels()
    pixels, g = np.asarray(img.pixels()), img.geometry
    disc = sum(g.index_to_lps(np.argwhere(labels == v).mean(axis=0)[::-1]) for v in (6, 7)) / 2
    # Moved 3 degrees and 11 mm, with noise, into another frame of reference (grid shifted 30 mm).
    copy = moved_copy(pixels, g, rotation_deg=(2.0, -1.5, 1.5), translation_mm=(4.0, -6.0, 8.0),
                      centre_lps=g.centre_lps(), noise_sd=float(np.percentile(pixels, 99)) * 0.03,
                      frame_shift_mm=(0.0, 30.0, -20.0))
    thick = copy.pixels[::STEP]
    aff = np.array(copy.geometry.ijk_to_lps)
    aff[:3, 2] *= STEP
    thick_geometry = VolumeGeometry(thick.shape, aff)
    return pixels, g, MovedCopy(thick, thick_geometry, copy.truth), thick_geometry, np.asarray(disc)


def _landing_errors(sync: StackSync, g: VolumeGeometry, truth: np.ndarray, disc: np.ndarray,
                    ks: range) -> list[float]:
    errors = []
    for k in ks:
        plane = g.slice_plane(k)
        anatomy = disc - plane.signed_distance_mm(disc) * plane.normal_lps  # the cursor on slice k
        k_prior = sync.target_slice(k, anatomy)
        assert k_prior is not None
        true_prior = truth[:3, :3] @ anatomy + truth[:3, 3]
        errors.append(abs(float(sync.target.slice_plane(k_prior).signed_distance_mm(true_prior))))
    return errors


def test_scroll_in_step_through_the_registration_lands_within_half_a_slice(
        real_pair: tuple[np.ndarray, VolumeGeometry, MovedCopy, VolumeGeometry, np.ndarray]) -> None:
    pixels, g, copy, pg, disc = real_pair
    result = register_rigid(pixels, g, copy.pixels, pg, disc, initial_matrix=offset_alignment((0, 0, 0),
                                                                                            (0.0, 30.0, -20.0)))
    assert result.converged, result.message
    sync = StackSync.build(g, pg, same_frame=False, alignment=result.matrix_lps)
    assert sync.reason is None
    k_disc = round(float(g.lps_to_index(disc)[2]))
    errors = _landing_errors(sync, g, copy.truth, disc, range(k_disc - 20, k_disc + 21, 2))
    half_slice = pg.slice_spacing_mm / 2
    assert max(errors) <= half_slice, errors
    # Back the other way: a prior slice brings the current one to the same anatomy (1 mm slices).
    back = sync.inverse()
    inv_truth = np.linalg.inv(copy.truth)
    for kp in range(5, pg.shape_kji[0] - 5, 17):
        plane = pg.slice_plane(kp)
        centre = plane.pixel_to_lps(((pg.shape_kji[2] - 1) / 2, (pg.shape_kji[1] - 1) / 2))
        k_cur = back.target_slice(kp, centre)
        if k_cur is None:
            continue
        true_cur = inv_truth[:3, :3] @ centre + inv_truth[:3, 3]
        assert abs(float(g.slice_plane(k_cur).signed_distance_mm(true_cur))) <= g.slice_spacing_mm / 2 + 0.05


def test_without_alignment_across_frames_it_says_so_and_patient_position_alone_misses(
        real_pair: tuple[np.ndarray, VolumeGeometry, MovedCopy, VolumeGeometry, np.ndarray]) -> None:
    _, g, copy, pg, disc = real_pair
    refused = StackSync.build(g, pg, same_frame=False)
    assert refused.reason is not None and "frames of reference" in refused.reason
    assert refused.target_slice(100) is None
    # Treated as one frame of reference (patient position only), the pair lands on other anatomy:
    # the check above can fail.
    naive = StackSync.build(g, pg, same_frame=True)
    k_disc = round(float(g.lps_to_index(disc)[2]))
    assert max(_landing_errors(naive, g, copy.truth, disc, range(k_disc - 10, k_disc + 11, 5))) > 5.0


def test_non_parallel_stacks_are_not_synchronised() -> None:
    g = VolumeGeometry.from_directions((20, 32, 32), (0, 0, 0), (0, 1, 0), (0, 0, -1), (1.0, 1.0, 3.0))
    axial = VolumeGeometry.from_directions((20, 32, 32), (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 3.0))
    sync = StackSync.build(g, axial, same_frame=True)
    assert sync.reason is not None and "not parallel" in sync.reason
    assert sync.target_slice(3) is None
    same = StackSync.build(g, g, same_frame=True)
    assert [same.target_slice(k) for k in (0, 7, 19)] == [0, 7, 19]
