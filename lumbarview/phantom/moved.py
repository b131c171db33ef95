"""A "prior" made from a volume by a known rigid motion, for tests and benchmarks of compare mode.

The anatomy at current-LPS point x lies at ``truth @ x`` in the moved copy's LPS space; the truth
is known exactly, so registrations and synchronised scrolling can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.measure.register import apply_matrix, rigid_matrix


@dataclass(frozen=True)
class MovedCopy:
    pixels: npt.NDArray[np.float32]
    geometry: VolumeGeometry
    #: current LPS -> prior LPS: where the same anatomy lies in the copy.
    truth: npt.NDArray[np.float64]


def moved_copy(pixels: npt.NDArray[Any], geometry: VolumeGeometry, *, rotation_deg: npt.ArrayLike,
               translation_mm: npt.ArrayLike, centre_lps: npt.ArrayLike, noise_sd: float = 0.0,
               frame_shift_mm: npt.ArrayLike = (0.0, 0.0, 0.0), seed: int = 0) -> MovedCopy:
    """Move the anatomy rigidly (rotation about ``centre_lps``, then translation) and resample it on
    the same voxel grid, add Gaussian noise of ``noise_sd`` (in pixel units), then optionally give
    the copy another frame of reference by shifting its whole grid by ``frame_shift_mm``."""
    motion = rigid_matrix(np.radians(np.asarray(rotation_deg, dtype=np.float64)), translation_mm, centre_lps)
    inverse = np.linalg.inv(motion)
    # Every grid voxel of the copy shows the current anatomy found at motion^-1 of its position.
    kji_to_ijk = np.eye(4)[[2, 1, 0, 3]]
    index_map = kji_to_ijk @ geometry.lps_to_ijk @ inverse @ geometry.ijk_to_lps @ kji_to_ijk
    moved = ndimage.affine_transform(np.asarray(pixels, dtype=np.float32), index_map, order=3, mode="constant",
                                     cval=0.0)
    if noise_sd > 0:
        moved = moved + np.random.default_rng(seed).normal(0.0, noise_sd, moved.shape).astype(np.float32)
    shift = np.eye(4)
    shift[:3, 3] = np.asarray(frame_shift_mm, dtype=np.float64).reshape(3)
    new_geometry = VolumeGeometry(geometry.shape_kji, shift @ geometry.ijk_to_lps)
    return MovedCopy(moved.astype(np.float32), new_geometry, shift @ motion)


def target_error_mm(found: npt.ArrayLike, truth: npt.ArrayLike, at_lps: npt.ArrayLike) -> float:
    """Distance (mm) between where the found and the true transform carry ``at_lps``."""
    return float(np.linalg.norm(apply_matrix(found, at_lps) - apply_matrix(truth, at_lps)))
