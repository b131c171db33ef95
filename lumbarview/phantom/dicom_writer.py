"""Write synthetic MR slices as real DICOM files (used by the demo, the tests and benchmarks).

The writer takes a pixel block in ``[k, j, i]`` order and a :class:`VolumeGeometry` and emits one
single-frame MR Image Storage file per slice with correct (0020,0032)/(0020,0037)/(0028,0030).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from lumbarview.core.geometry import VolumeGeometry

#: A fixed UID root keeps generated files deterministic for a given seed name.
_UID_PREFIX = "1.2.826.0.1.3680043.10.1453."


def make_uid(*parts: object) -> str:
    """Deterministic UID from ``parts`` (same parts, same UID)."""
    return str(generate_uid(prefix=_UID_PREFIX, entropy_srcs=[str(p) for p in parts]))


@dataclass
class SeriesSpec:
    """What to write for one series (or one block of it)."""

    patient_id: str
    study_uid: str
    series_uid: str
    series_number: int
    description: str
    frame_of_reference_uid: str
    patient_name: str = "PHANTOM^LUMBAR"
    study_description: str = "L-SPINE"
    study_date: str = "20240101"
    patient_position: str = "HFS"
    slice_thickness_mm: float | None = None
    bits_stored: int = 12
    window: tuple[float, float] | None = None
    rescale: tuple[float, float] | None = None  # (slope, intercept)
    extra: dict[str, Any] = field(default_factory=dict)


def slice_dataset(
    pixels: npt.NDArray[Any],
    geometry: VolumeGeometry,
    k: int,
    spec: SeriesSpec,
    instance_number: int,
) -> Dataset:
    """One single-frame MR dataset for slice ``k`` of ``geometry``."""
    if pixels.ndim != 2:
        raise ValueError("pixels must be one 2D slice")
    rows, cols = pixels.shape
    sop_uid = UID(make_uid(spec.series_uid, "sop", instance_number))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientPosition = spec.patient_position
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDescription = spec.study_description
    ds.StudyDate = spec.study_date
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description
    ds.Modality = "MR"
    ds.Manufacturer = "lumbarview phantom"
    ds.FrameOfReferenceUID = spec.frame_of_reference_uid
    ds.InstanceNumber = instance_number
    ds.ContentDate = spec.study_date
    ds.ContentTime = _dt.time(12, 0, instance_number % 60).strftime("%H%M%S")
    row_dir = geometry.row_direction_lps
    col_dir = geometry.column_direction_lps
    ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row_dir, *col_dir)]
    ds.ImagePositionPatient = [round(float(v), 5) for v in geometry.index_to_lps((0, 0, k))]
    di, dj, _ = geometry.spacing_mm
    ds.PixelSpacing = [round(dj, 6), round(di, 6)]  # (row spacing, column spacing)
    ds.SliceThickness = round(spec.slice_thickness_mm or geometry.slice_spacing_mm, 4)
    ds.SpacingBetweenSlices = round(geometry.slice_spacing_mm, 4)
    normal = geometry.slice_normal
    ds.SliceLocation = round(float(geometry.index_to_lps((0, 0, k)) @ normal), 4)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 0
    if spec.window is not None:
        ds.WindowCenter = round(spec.window[0], 2)
        ds.WindowWidth = round(spec.window[1], 2)
    if spec.rescale is not None:
        ds.RescaleSlope = spec.rescale[0]
        ds.RescaleIntercept = spec.rescale[1]
        ds.RescaleType = "US"
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    limit = (1 << spec.bits_stored) - 1
    stored = np.clip(np.rint(pixels), 0, limit).astype("<u2")
    ds.PixelData = stored.tobytes()
    return ds


def write_block(
    folder: str | Path,
    pixels_kji: npt.NDArray[Any],
    geometry: VolumeGeometry,
    spec: SeriesSpec,
    first_instance: int = 1,
    name_pattern: str = "IM{instance:04d}.dcm",
    order: Sequence[int] | None = None,
) -> list[Path]:
    """Write every slice of ``pixels_kji`` (one block) into ``folder``.

    ``name_pattern`` receives ``instance`` and ``k``; ``order`` permutes the write order (to
    test that readers do not trust file order).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if pixels_kji.shape != geometry.shape_kji:
        raise ValueError(f"pixels {pixels_kji.shape} do not match geometry {geometry.shape_kji}")
    paths = []
    ks = list(range(pixels_kji.shape[0])) if order is None else list(order)
    for k in ks:
        instance = first_instance + k
        ds = slice_dataset(pixels_kji[k], geometry, k, spec, instance)
        path = folder / name_pattern.format(instance=instance, k=k)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
