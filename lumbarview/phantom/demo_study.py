"""A small synthetic lumbar MR study in the Sudirman layout: the built-in demo.

Anatomy is analytic (evaluated at each voxel centre in LPS mm): a lordotic column of vertebral
bodies and discs whose planes follow the curve, the canal behind them, pedicles and posterior
elements, in T2-like contrast with deterministic noise. The sagittal series is 320x320 at
0.9375 mm with 3.3 mm slices every 3.6 mm; the axial series is three 4-slice blocks, 4 mm thick
every 4.4 mm, each angled along one of the last three discs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, VolumeGeometry
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, write_block

#: Disc centres along z (LPS mm) from L1-L2 down to L5-S1.
DISC_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
_DISC_Z_MM = (53.0, 16.0, -21.0, -58.0, -95.0)
_DISC_HALF_HEIGHT_MM = 5.0
_BODY_HALF_AP_MM = 17.0
_BODY_HALF_LR_MM = 22.0


def centreline_y_mm(z_mm: npt.ArrayLike) -> FloatArray:
    """AP position of the vertebral-body centreline at height z (a lordotic curve, apex
    anterior at z = -40 mm)."""
    z = np.asarray(z_mm, dtype=np.float64)
    return -10.0 + 0.002 * (z + 40.0) ** 2


def centreline_tangent(z_mm: float) -> FloatArray:
    """Unit tangent of the centreline pointing superior."""
    dy_dz = 0.004 * (z_mm + 40.0)
    t = np.array([0.0, dy_dz, 1.0])
    return t / np.linalg.norm(t)


@dataclass(frozen=True)
class DiscPlane:
    level: str
    centre_lps: FloatArray
    normal_lps: FloatArray


def disc_planes() -> list[DiscPlane]:
    """Where the demo's discs are: centre and normal (LPS mm)."""
    out = []
    for level, z in zip(DISC_LEVELS, _DISC_Z_MM, strict=True):
        centre = np.array([0.0, float(centreline_y_mm(z)), z])
        out.append(DiscPlane(level, centre, centreline_tangent(z)))
    return out


def t2_intensity(points_lps: FloatArray, rng: np.random.Generator | None = None) -> FloatArray:
    """T2-like signal at LPS points of shape ``(..., 3)``."""
    x, y, z = points_lps[..., 0], points_lps[..., 1], points_lps[..., 2]
    dy = y - centreline_y_mm(z)
    out = np.full(x.shape, 30.0)
    body_region = ((x / 120.0) ** 2 + ((dy - 20.0) / 95.0) ** 2) < 1.0
    out[body_region] = 420.0  # muscle and fat
    planes = disc_planes()
    s = np.stack([(points_lps - p.centre_lps) @ p.normal_lps for p in planes], axis=-1)
    nearest = np.min(np.abs(s), axis=-1)
    above_top = s[..., 0] > 14.0  # above the L1 body
    below_sacrum = s[..., -1] < -40.0
    in_column = (np.abs(x) < _BODY_HALF_LR_MM) & (np.abs(dy) < _BODY_HALF_AP_MM)
    disc = in_column & (nearest < _DISC_HALF_HEIGHT_MM)
    body = in_column & ~disc & ~above_top & ~below_sacrum
    out[body] = 700.0
    out[disc] = 1400.0
    canal = (np.abs(x) < 9.0) & (dy > _BODY_HALF_AP_MM + 2.0) & (dy < _BODY_HALF_AP_MM + 16.0)
    pedicle = (np.abs(x) >= 9.0) & (np.abs(x) < 15.0) & (dy > _BODY_HALF_AP_MM) & (
        dy < _BODY_HALF_AP_MM + 10.0) & (nearest > _DISC_HALF_HEIGHT_MM + 3.0)
    posterior = (np.abs(x) < 26.0) & (dy >= _BODY_HALF_AP_MM + 16.0) & (
        dy < _BODY_HALF_AP_MM + 30.0) & (nearest > 3.0)
    out[pedicle | posterior] = 600.0
    out[canal] = 1800.0
    if rng is not None:
        out = out + rng.normal(0.0, 25.0, size=out.shape)
    return np.clip(out, 0.0, 4095.0)


def render(geometry: VolumeGeometry, seed: int) -> npt.NDArray[np.uint16]:
    """Sample the demo anatomy on a grid."""
    k, j, i = geometry.shape_kji
    kk, jj, ii = np.meshgrid(np.arange(k), np.arange(j), np.arange(i), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).astype(np.float64)
    return t2_intensity(geometry.index_to_lps(ijk), np.random.default_rng(seed)).astype(np.uint16)


def sagittal_geometry(n_slices: int = 15, size: int = 320, pixel_mm: float = 0.9375,
                      spacing_mm: float = 3.6) -> VolumeGeometry:
    """Sagittal stack: rows go head to feet, columns anterior to posterior, slices right to
    left, as a scanner writes a supine sagittal series."""
    fov = size * pixel_mm
    centre = np.array([0.0, 10.0, -20.0])
    row_dir = np.array([0.0, 1.0, 0.0])   # along a row: anterior -> posterior
    col_dir = np.array([0.0, 0.0, -1.0])  # down a column: superior -> inferior
    normal = np.cross(row_dir, col_dir)    # (-1, 0, 0): toward the patient's right
    origin = (centre - row_dir * (fov / 2 - pixel_mm / 2) - col_dir * (fov / 2 - pixel_mm / 2)
              - normal * (n_slices - 1) / 2 * spacing_mm)
    return VolumeGeometry.from_directions((n_slices, size, size), origin, row_dir, col_dir,
                                          (pixel_mm, pixel_mm, spacing_mm))


def axial_block_geometry(disc: DiscPlane, n_slices: int = 4, size: int = 320,
                         pixel_mm: float = 0.6875, spacing_mm: float = 4.4) -> VolumeGeometry:
    """An axial block centred on a disc, its slices parallel to the disc plane."""
    normal = disc.normal_lps            # points superior
    row_dir = np.array([1.0, 0.0, 0.0])  # patient right -> left across the image
    col_dir = np.cross(normal, row_dir)  # anterior -> posterior (tilted with the disc)
    col_dir /= np.linalg.norm(col_dir)
    # Slices ordered inferior to superior so that +k follows the normal.
    fov = size * pixel_mm
    centre = disc.centre_lps
    origin = (centre - row_dir * (fov / 2 - pixel_mm / 2) - col_dir * (fov / 2 - pixel_mm / 2)
              - normal * (n_slices - 1) / 2 * spacing_mm)
    slice_dir = np.cross(row_dir, col_dir)
    return VolumeGeometry.from_directions((n_slices, size, size), origin, row_dir, col_dir,
                                          (pixel_mm, pixel_mm, spacing_mm), slice_dir)


def write_demo_study(root: str | Path, seed: int = 7, patient: str = "0001") -> Path:
    """Write the demo study under ``root`` in the Sudirman layout and return the root.

    ``01_MRI_Data/<patient>/L-SPINE_DEMO_.../T2_TSE_SAG_384_0002/*.ima`` and
    ``.../T2_TSE_TRA_384_0004/*.ima``; one StudyInstanceUID, one FrameOfReferenceUID per
    series, as in that dataset.
    """
    root = Path(root)
    study_dir = root / "01_MRI_Data" / patient / "L-SPINE_DEMO_20240101_120000_000000"
    study_uid = make_uid("demo", seed, patient, "study")
    common = {"patient_id": patient, "study_uid": study_uid,
              "patient_name": f"DEMO^{patient}", "study_description": "L-SPINE DEMO"}
    sag = sagittal_geometry()
    sag_spec = SeriesSpec(series_uid=make_uid("demo", seed, patient, "sag"), series_number=2,
                          description="T2_TSE_SAG_384", slice_thickness_mm=3.3,
                          frame_of_reference_uid=make_uid("demo", seed, patient, "for-sag"),
                          window=(1000.0, 2000.0), **common)
    write_block(study_dir / "T2_TSE_SAG_384_0002", render(sag, seed), sag, sag_spec,
                name_pattern="T2_TSE_SAG__" + patient + "_{instance:03d}.ima")
    ax_spec = SeriesSpec(series_uid=make_uid("demo", seed, patient, "tra"), series_number=4,
                         description="T2_TSE_TRA_384", slice_thickness_mm=4.0,
                         frame_of_reference_uid=make_uid("demo", seed, patient, "for-tra"),
                         window=(1000.0, 2000.0), **common)
    instance = 1
    for n, disc in enumerate(disc_planes()[-3:]):
        block = axial_block_geometry(disc)
        write_block(study_dir / "T2_TSE_TRA_384_0004", render(block, seed + 1 + n), block,
                    ax_spec, first_instance=instance,
                    name_pattern="T2_TSE_TRA__" + patient + "_{instance:03d}.ima")
        instance += block.shape_kji[0]
    return root
