"""Volumes that are not DICOM (MetaImage ``.mha/.mhd``, NIfTI ``.nii/.nii.gz``, NRRD) through
SimpleITK, which hands every format over in LPS: one orientation convention everywhere.

The header is read first (geometry, pixel type); pixels are read on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.geometry import VolumeGeometry, classify_normal
from lumbarview.core.types import ImageStack, LoadIssue, Severity

VOLUME_SUFFIXES = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd", ".nhdr")
_MAX_VOXELS = 2_000_000_000  # refuse absurd headers before allocating


def is_volume_file(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(VOLUME_SUFFIXES)


def _stem(path: str | Path) -> str:
    name = Path(path).name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def volume_stem(path: str | Path) -> str:
    """File name without the volume suffix (``1_t2.mha`` -> ``1_t2``)."""
    return _stem(path)


def _geometry(reader: sitk.ImageFileReader) -> VolumeGeometry:
    size = reader.GetSize()
    if len(size) not in (2, 3):
        raise UnsupportedFormatError(reader.GetFileName(),
                                     f"a {len(size)}-dimensional image is not a 3D volume",
                                     "open a 3D image (or pick one volume of the series)")
    spacing = list(reader.GetSpacing())
    origin = list(reader.GetOrigin())
    direction = np.asarray(reader.GetDirection(), dtype=np.float64)
    if len(size) == 2:
        size = (*size, 1)
        spacing.append(1.0)
        origin.append(0.0)
        d = np.eye(3)
        d[:2, :2] = direction.reshape(2, 2)
        direction = d.ravel()
    d3 = direction.reshape(3, 3)
    affine = np.eye(4)
    # SimpleITK: physical = origin + D . diag(spacing) . index, in LPS, index (i, j, k).
    affine[:3, :3] = d3 @ np.diag(spacing)
    affine[:3, 3] = origin
    return VolumeGeometry((int(size[2]), int(size[1]), int(size[0])), affine)


def read_volume_header(path: str | Path) -> tuple[sitk.ImageFileReader, VolumeGeometry]:
    """Geometry and reader of a volume file, without reading pixels.

    Raises
    ------
    UnsupportedFormatError, CorruptFileError
    """
    path = str(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        header_error: RuntimeError | None = exc
    else:
        header_error = None
    if header_error is not None:
        first = str(header_error).strip().splitlines()
        detail = next((line for line in first if "Description" in line or "ERROR" in line.upper()),
                      first[-1] if first else "")
        raise CorruptFileError(path, f"the volume header cannot be read ({detail.strip()[:200]})",
                               "check that the file is complete and in the format its name says")
    geometry = _geometry(reader)
    n = int(np.prod(geometry.shape_kji))
    if n > _MAX_VOXELS:
        raise CorruptFileError(path, f"the header claims {n:,} voxels", "the header is damaged")
    if reader.GetNumberOfComponents() != 1:
        raise UnsupportedFormatError(path, f"{reader.GetNumberOfComponents()}-component (vector or "
                                     "colour) volumes are not supported", "convert it to greyscale")
    return reader, geometry


def _read_array(path: str) -> npt.NDArray[Any]:
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        raise CorruptFileError(path, f"the voxel data cannot be read ({(lines[-1] if lines else '')[:200]})",
                               "the file may be truncated; re-copy it from its source") from exc
    array = sitk.GetArrayFromImage(image)
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def open_volume(path: str | Path, uid: str | None = None, description: str | None = None) -> ImageStack:
    """An image volume as a lazily loaded :class:`ImageStack`."""
    path = str(path)
    reader, geometry = read_volume_header(path)
    issues: list[LoadIssue] = []
    spacing = geometry.spacing_mm
    meta: dict[str, Any] = {
        "series_uid": uid or path, "description": description or _stem(path),
        "modality": "MR", "patient_position": None, "slice_thickness_mm": spacing[2],
        "slice_spacing_mm": geometry.slice_spacing_mm, "slice_gap_mm": None, "window": None,
        "frame_of_reference_uid": None, "has_patient_geometry": True, "source": path,
        "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
    }
    if classify_normal(geometry.slice_normal).value == "oblique":
        issues.append(LoadIssue(Severity.INFO, "volume.oblique", "the volume is oblique", path))

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return _read_array(path), []

    return ImageStack(uid or path, uid or path, geometry, meta, load, issues)


def as_integer_labels(array: npt.NDArray[Any], path: str) -> tuple[npt.NDArray[np.int32], list[LoadIssue]]:
    """Integer label values. A float-coded label map is converted only when every value is
    an integer (exactly); otherwise it is refused, never rounded silently.

    Raises
    ------
    CorruptFileError
        When a float label map holds non-integer values.
    """
    issues: list[LoadIssue] = []
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32, copy=False), issues
    finite = np.isfinite(array)
    if not finite.all() or not np.array_equal(array, np.round(array)):
        bad = array[~finite | (array != np.round(array))]
        raise CorruptFileError(path, f"the label map holds non-integer values (e.g. {bad.flat[0]!r})",
                               "it looks like an image or a probability map, not labels; open "
                               "it as an image")
    if array.size and (array.max() > np.iinfo(np.int32).max or array.min() < np.iinfo(np.int32).min):
        raise CorruptFileError(path, "label values exceed the 32-bit range", "check the file")
    issues.append(LoadIssue(Severity.INFO, "labels.float-converted",
                            f"the label map is stored as {array.dtype}; its values are whole "
                            "numbers and were converted exactly to integers", path))
    return array.astype(np.int32), issues


def open_label_volume(path: str | Path, uid: str | None = None) -> ImageStack:
    """A label volume as an :class:`ImageStack` of int32 labels (checked on load)."""
    path = str(path)
    _reader, geometry = read_volume_header(path)

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return as_integer_labels(_read_array(path), path)

    meta = {"series_uid": uid or path, "description": _stem(path), "kind": "labels",
            "source": path, "has_patient_geometry": True}
    return ImageStack(uid or f"labels:{path}", uid or path, geometry, meta, load)


def resample_labels_to(labels: ImageStack, reference: VolumeGeometry) -> npt.NDArray[np.int32]:
    """Labels resampled onto ``reference`` through patient space (nearest neighbour): each
    reference voxel centre is mapped to LPS, then into the label grid."""
    source = labels.pixels()
    k, j, i = reference.shape_kji
    kk, jj, ii = np.meshgrid(np.arange(k), np.arange(j), np.arange(i), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(np.float64)
    src = np.rint(labels.geometry.lps_to_index(reference.index_to_lps(ijk))).astype(np.int64)
    sk, sj, si = source.shape
    inside = ((src[:, 0] >= 0) & (src[:, 0] < si) & (src[:, 1] >= 0) & (src[:, 1] < sj)
              & (src[:, 2] >= 0) & (src[:, 2] < sk))
    out = np.zeros(k * j * i, dtype=np.int32)
    out[inside] = source[src[inside, 2], src[inside, 1], src[inside, 0]]
    return out.reshape(k, j, i)


def same_grid(a: VolumeGeometry, b: VolumeGeometry, tolerance_mm: float = 1e-3) -> bool:
    """True when two grids have the same shape and voxel centres (within ``tolerance_mm``)."""
    if a.shape_kji != b.shape_kji:
        return False
    k, j, i = a.shape_kji
    corners = np.array([[0, 0, 0], [i - 1, 0, 0], [0, j - 1, 0], [0, 0, k - 1], [i - 1, j - 1, k - 1]],
                       dtype=np.float64)
    return bool(np.abs(a.index_to_lps(corners) - b.index_to_lps(corners)).max() <= tolerance_mm)
