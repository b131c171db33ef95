"""Series written by the tests themselves (pydicom), each with a known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, write_block


def spec(name: str, number: int = 1, **kw: object) -> SeriesSpec:
    return SeriesSpec(patient_id=kw.pop("patient_id", "P1"),  # type: ignore[arg-type]
                      study_uid=make_uid("study", kw.pop("study", "S")),
                      series_uid=make_uid("series", name), series_number=number,
                      description=name, frame_of_reference_uid=make_uid("for", name),
                      **kw)  # type: ignore[arg-type]


def ramp(shape_kji: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Pixels that identify their slice: slice k holds values 100*(k+1) + a small pattern."""
    k, j, i = shape_kji
    rng = np.random.default_rng(seed)
    base = (np.arange(k)[:, None, None] + 1) * 100
    return (base + rng.integers(0, 50, size=(k, j, i))).astype(np.uint16)


def sagittal(n: int = 8, rows: int = 24, cols: int = 20, spacing: float = 4.0,
             row_dir: tuple[float, float, float] = (0, 1, 0),
             col_dir: tuple[float, float, float] = (0, 0, -1)) -> VolumeGeometry:
    return VolumeGeometry.from_directions((n, rows, cols), (-14.0, -40.0, 60.0), row_dir, col_dir,
                                          (0.8, 0.9, spacing))


def axial_block(z_mm: float, tilt_deg: float, n: int = 4, size: int = 16,
                spacing: float = 4.4) -> VolumeGeometry:
    a = np.radians(tilt_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    row, col = rot @ (1, 0, 0), rot @ (0, 1, 0)
    normal = np.cross(row, col)
    centre = np.array([0.0, 0.0, z_mm])
    origin = centre - row * size / 2 - col * size / 2 - normal * (n - 1) / 2 * spacing
    return VolumeGeometry.from_directions((n, size, size), origin, row, col, (1.0, 1.0, spacing))


def write_series(folder: Path, geometry: VolumeGeometry, name: str, number: int = 1,
                 pixels: np.ndarray | None = None, **kw: object) -> list[Path]:
    pix = ramp(geometry.shape_kji) if pixels is None else pixels
    order = kw.pop("order", None)
    pattern = kw.pop("name_pattern", "IM{instance:04d}.dcm")
    first = kw.pop("first_instance", 1)
    return write_block(folder, pix, geometry, spec(name, number, **kw), first_instance=first,  # type: ignore[arg-type]
                       name_pattern=pattern, order=order)  # type: ignore[arg-type]
