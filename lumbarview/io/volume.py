"""Volumes that are not DICOM (MetaImage ``.mha/.mhd``, NIfTI ``.nii/.nii.gz``, NRRD), in LPS:
one orientation convention everywhere.

Every header is read and checked by :mod:`lumbarview.io.volume_headers` (MetaImage by our own
parser, NRRD by pynrrd's, NIfTI by nibabel's), with bounded reads; the geometry is derived there
as ITK derives it, and the pixels are read there too (bounded inflate; NIfTI intensity scaling
applied as ITK applies it). No native image reader sees the file. The header is read first;
pixels on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.geometry import VolumeGeometry, classify_normal
from lumbarview.core.limits import limits
from lumbarview.core.types import ImageStack, LoadIssue, Severity
from lumbarview.io.volume_headers import (
    CheckedHeader,
    check_direction,
    check_spacing,
    read_metaimage_header,
    read_nifti_header,
    read_nrrd_header,
    read_voxels,
)

VOLUME_SUFFIXES = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd", ".nhdr")


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


def _affine(path: str, size: list[int], spacing: list[float], origin: list[float],
            direction: npt.NDArray[np.float64]) -> VolumeGeometry:
    """physical = origin + D . diag(spacing) . index (ITK's convention, in LPS), index (i, j, k);
    a 2D image becomes one slice."""
    if len(size) not in (2, 3):
        raise UnsupportedFormatError(path, f"a {len(size)}-dimensional image is not a 3D volume",
                                     "open a 3D image (or pick one volume of the series)")
    check_spacing(path, "the voxel spacing", spacing)
    if not np.all(np.isfinite(origin)):
        raise CorruptFileError(path, "the origin is not finite", "the header is damaged; re-export the volume")
    if len(size) == 2:
        size = [*size, 1]
        spacing = [*spacing, 1.0]
        origin = [*origin, 0.0]
        d = np.eye(3)
        d[:2, :2] = direction.reshape(2, 2)
        direction = d
    d3 = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    check_direction(path, "the direction matrix", d3)
    affine = np.eye(4)
    with np.errstate(all="ignore"):
        affine[:3, :3] = d3 @ np.diag(spacing)
    affine[:3, 3] = origin
    try:
        return VolumeGeometry((int(size[2]), int(size[1]), int(size[0])), affine)
    except ValueError as exc:  # e.g. spacings so small or large that the grid is singular or infinite
        raise CorruptFileError(path, f"the header describes no usable voxel grid ({exc})",
                               "the header is damaged; re-export the volume") from None


def _kind(path: str) -> str:
    name = path.lower()
    if name.endswith((".mha", ".mhd")):
        return "metaimage"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    raise UnsupportedFormatError(path, "the file name does not end in a volume suffix "
                                 f"({', '.join(VOLUME_SUFFIXES)})", "rename it to its format's suffix")


def check_volume_header(path: str | Path, root: str | Path | None = None) -> CheckedHeader:
    """The header of a volume file, checked by its format's rules and the budgets (no pixel read).
    ``root``: see :func:`read_volume_header`."""
    path = str(path)
    kind = _kind(path)
    try:
        if kind == "metaimage":
            return read_metaimage_header(path, root)
        return read_nrrd_header(path, root) if kind == "nrrd" else read_nifti_header(path)
    except OSError as exc:
        raise CorruptFileError(path, f"the file cannot be read ({exc.strerror or exc})",
                               "check that it exists and that you may read it") from None


def _header_and_geometry(path: str, root: str | Path | None) -> tuple[CheckedHeader, VolumeGeometry, str]:
    header = check_volume_header(path, root)
    n = len(header.size_ijk)
    geometry = _affine(path, list(header.size_ijk), list(header.spacing_mm), list(header.origin_lps),
                       np.asarray(header.direction, dtype=np.float64).reshape(n, n))
    return header, geometry, header.pixel_type


def read_volume_header(path: str | Path, root: str | Path | None = None) -> tuple[CheckedHeader, VolumeGeometry]:
    """Checked header and geometry of a volume file, without reading pixels.

    ``root`` is the dataset folder a data file named in the header must lie in (default: the
    header's own folder).

    Raises
    ------
    UnsupportedFormatError, CorruptFileError, ResourceLimitError
    """
    header, geometry, _pixel_type = _header_and_geometry(str(path), root)
    return header, geometry


def _header_issues(header: CheckedHeader) -> list[LoadIssue]:
    return [LoadIssue(Severity.WARNING, "volume.orientation-conflict", note, header.path) for note in header.notes]


def open_volume(path: str | Path, uid: str | None = None, description: str | None = None,
                *, root: str | Path | None = None) -> ImageStack:
    """An image volume as a lazily loaded :class:`ImageStack` (``root``: see
    :func:`read_volume_header`)."""
    path = str(path)
    header, geometry, pixel_type = _header_and_geometry(path, root)
    issues = _header_issues(header)
    spacing = geometry.spacing_mm
    meta: dict[str, Any] = {
        "series_uid": uid or path, "description": description or _stem(path),
        "modality": "MR", "patient_position": None, "slice_thickness_mm": spacing[2],
        "slice_spacing_mm": geometry.slice_spacing_mm, "slice_gap_mm": None, "window": None,
        "frame_of_reference_uid": None, "has_patient_geometry": True, "source": path,
        "pixel_type": pixel_type,
    }
    if classify_normal(geometry.slice_normal).value == "oblique":
        issues.append(LoadIssue(Severity.INFO, "volume.oblique", "the volume is oblique", path))

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return _load_checked(path, root), []

    return ImageStack(uid or path, uid or path, geometry, meta, load, issues)


def _load_checked(path: str, root: str | Path | None) -> npt.NDArray[Any]:
    """Pixels, with the header checked again (the file may have changed since it was opened)."""
    try:
        return read_voxels(check_volume_header(path, root))
    except OSError as exc:
        raise CorruptFileError(path, f"the voxel data cannot be read ({exc.strerror or exc})",
                               "check that the file still exists and is readable") from None


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


def open_label_volume(path: str | Path, uid: str | None = None, *, root: str | Path | None = None) -> ImageStack:
    """A label volume as an :class:`ImageStack` of int32 labels (checked on load; ``root``: see
    :func:`read_volume_header`)."""
    path = str(path)
    header, geometry = read_volume_header(path, root)

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return as_integer_labels(_load_checked(path, root), path)

    meta = {"series_uid": uid or path, "description": _stem(path), "kind": "labels",
            "source": path, "has_patient_geometry": True}
    return ImageStack(uid or f"labels:{path}", uid or path, geometry, meta, load, _header_issues(header))


#: Voxels resampled at a time: the working arrays (indices, positions: about 100 bytes a voxel)
#: stay near 100 MB whatever the grid, so only the output counts against the volume budget.
_RESAMPLE_SLAB_VOXELS = 1 << 20


def check_resample_budget(path: str | Path, reference: VolumeGeometry) -> bool:
    """Refuse (``ResourceLimitError``) label resampling whose output on ``reference``'s grid
    would be over the volume budget; True when it fits."""
    k, j, i = reference.shape_kji
    limits().check_volume(path, k * j * i, np.dtype(np.int32).itemsize, "label map resampled onto its image's grid")
    return True


def resample_labels_to(labels: ImageStack, reference: VolumeGeometry) -> npt.NDArray[np.int32]:
    """Labels resampled onto ``reference`` through patient space (nearest neighbour): each
    reference voxel centre is mapped to LPS, then into the label grid.

    The output is checked against the volume budget before anything is allocated (the grid
    comes from another file's header: a 1.3 kB image header may claim 1000^3 voxels), and the
    mapping is computed a slab of rows at a time, so the working memory stays bounded.

    Raises
    ------
    ResourceLimitError
        The resampled label map would be larger than the volume budget.
    """
    k, j, i = reference.shape_kji
    check_resample_budget(labels.uid.removeprefix("labels:"), reference)
    source = labels.pixels()
    sk, sj, si = source.shape
    to_index = labels.geometry.lps_to_index
    out = np.zeros(k * j * i, dtype=np.int32)
    for start in range(0, out.size, _RESAMPLE_SLAB_VOXELS):
        kk, rest = np.divmod(np.arange(start, min(out.size, start + _RESAMPLE_SLAB_VOXELS)), j * i)
        jj, ii = np.divmod(rest, i)
        ijk = np.stack([ii, jj, kk], axis=-1).astype(np.float64)
        src = np.rint(to_index(reference.index_to_lps(ijk))).astype(np.int64)
        inside = ((src[:, 0] >= 0) & (src[:, 0] < si) & (src[:, 1] >= 0) & (src[:, 1] < sj)
                  & (src[:, 2] >= 0) & (src[:, 2] < sk))
        block = out[start:start + len(kk)]
        block[inside] = source[src[inside, 2], src[inside, 1], src[inside, 0]]
    return out.reshape(k, j, i)


def same_grid(a: VolumeGeometry, b: VolumeGeometry, tolerance_mm: float = 1e-3) -> bool:
    """True when two grids have the same shape and voxel centres (within ``tolerance_mm``)."""
    if a.shape_kji != b.shape_kji:
        return False
    k, j, i = a.shape_kji
    corners = np.array([[0, 0, 0], [i - 1, 0, 0], [0, j - 1, 0], [0, 0, k - 1], [i - 1, j - 1, k - 1]],
                       dtype=np.float64)
    return bool(np.abs(a.index_to_lps(corners) - b.index_to_lps(corners)).max() <= tolerance_mm)
