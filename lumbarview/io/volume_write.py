"""Write a volume as MetaImage (``.mha``) or NIfTI (``.nii``/``.nii.gz``), as ITK writes them.

The MetaImage writer is ours: a ``Key = Value`` header in the keys and order ITK's MetaImageIO
writes (numbers to 17 significant digits, so that they read back to the same double), then the
voxels zlib-compressed (``CompressedData = True``, ``ElementDataFile = LOCAL``). NIfTI goes
through nibabel, with the qform and sform both set from the one LPS geometry flipped to RAS, code
SCANNER_ANAT, as ITK writes them. Either reads back (here, in ITK, in other tools) to the
geometry it was given.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.fs import atomic_write_with
from lumbarview.core.geometry import VolumeGeometry

# MetaIO's element types, by numpy type (MET_LONG is 4 bytes in MetaIO: 64-bit is MET_LONG_LONG).
_MET_TYPES = {
    "u1": "MET_UCHAR", "i1": "MET_CHAR", "u2": "MET_USHORT", "i2": "MET_SHORT", "u4": "MET_UINT", "i4": "MET_INT",
    "u8": "MET_ULONG_LONG", "i8": "MET_LONG_LONG", "f4": "MET_FLOAT", "f8": "MET_DOUBLE",
}

# ITK's AnatomicalOrientation letters: the side each axis starts from, by LPS coordinate and sign.
_ORIENTATION_LETTERS = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "I", (2, -1): "S"}


def _number(value: float) -> str:
    return f"{value + 0.0:.17g}"  # + 0.0: no "-0"


def _numbers(values: Any) -> str:
    return " ".join(_number(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())


def _grid(geometry: VolumeGeometry) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                              npt.NDArray[np.float64]]:
    """(spacing, origin, direction): the direction's columns are the axes' unit vectors in LPS."""
    spacing = np.asarray(geometry.spacing_mm, dtype=np.float64)
    origin = np.asarray(geometry.index_to_lps((0, 0, 0)), dtype=np.float64)
    direction = geometry.ijk_to_lps[:3, :3] / spacing
    return spacing, origin, direction


def anatomical_orientation(direction: npt.NDArray[np.float64]) -> str:
    """The three letters ITK writes as ``AnatomicalOrientation`` (e.g. ``RAI`` for the identity):
    for each axis, the side of the body it starts from, found as ITK finds it: the largest
    remaining direction component, in turn, claims its axis and its coordinate."""
    letters = [""] * 3
    rows: set[int] = set()
    columns: set[int] = set()
    for _ in range(3):
        _value, row, column = max((abs(float(direction[r, c])), r, c) for r in range(3) for c in range(3)
                                  if r not in rows and c not in columns)
        letters[column] = _ORIENTATION_LETTERS[(row, 1 if direction[row, column] > 0 else -1)]
        rows.add(row)
        columns.add(column)
    return "".join(letters)


def write_metaimage(path: Path, array_kji: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
    """A compressed single-file MetaImage of a ``[k, j, i]`` array on ``geometry``."""
    array = np.asarray(array_kji)
    if array.shape != geometry.shape_kji:
        raise ValueError(f"the array's shape {array.shape} is not the geometry's {geometry.shape_kji}")
    code = array.dtype.newbyteorder("=").str[1:]
    if code not in _MET_TYPES:
        raise ValueError(f"no MetaImage element type for {array.dtype}")
    spacing, origin, direction = _grid(geometry)
    data = zlib.compress(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes(), 6)
    header = "".join(f"{key} = {value}\n" for key, value in (
        ("ObjectType", "Image"),
        ("NDims", "3"),
        ("BinaryData", "True"),
        ("BinaryDataByteOrderMSB", "False"),
        ("CompressedData", "True"),
        ("CompressedDataSize", str(len(data))),
        ("TransformMatrix", _numbers(direction.T)),  # each axis' direction in turn
        ("Offset", _numbers(origin)),
        ("CenterOfRotation", "0 0 0"),
        ("AnatomicalOrientation", anatomical_orientation(direction)),
        ("ElementSpacing", _numbers(spacing)),
        ("DimSize", " ".join(str(n) for n in array.shape[::-1])),
        ("ElementType", _MET_TYPES[code]),
        ("ElementDataFile", "LOCAL"),
    ))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("ascii") + data)


def write_nifti(path: Path, array_kji: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
    """A NIfTI-1 file (gzipped for ``.nii.gz``) of a ``[k, j, i]`` array on ``geometry``."""
    import nibabel as nib

    array = np.asarray(array_kji)
    if array.shape != geometry.shape_kji:
        raise ValueError(f"the array's shape {array.shape} is not the geometry's {geometry.shape_kji}")
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(geometry.ijk_to_lps, dtype=np.float64)
    image_class: Any = nib.Nifti1Image  # nibabel is not annotated
    image = image_class(array.transpose(2, 1, 0), affine_ras)  # NIfTI's first axis is i
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    image.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def write_nrrd(path: Path, array_kji: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
    """A gzipped NRRD of a ``[k, j, i]`` array on ``geometry`` (``space`` left-posterior-superior,
    each axis' direction times its spacing, the origin): geometry and nothing else in the header."""
    import nrrd  # type: ignore[import-untyped]

    array = np.asarray(array_kji)
    if array.shape != geometry.shape_kji:
        raise ValueError(f"the array's shape {array.shape} is not the geometry's {geometry.shape_kji}")
    spacing, origin, direction = _grid(geometry)
    header = {"space": "left-posterior-superior", "space directions": (direction * spacing).T,
              "space origin": origin, "encoding": "gzip"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nrrd.write(str(path), np.ascontiguousarray(array.transpose(2, 1, 0)), header, index_order="F")


def write_volume(path: Path, array_kji: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
    """A volume in the format its name says (``.mha``, ``.nii``, ``.nii.gz``, ``.nrrd``), written
    whole to a temporary name beside it, then renamed (no reader sees a part)."""
    name = path.name.lower()
    writer = (write_metaimage if name.endswith(".mha") else write_nrrd if name.endswith(".nrrd")
              else write_nifti if name.endswith((".nii", ".nii.gz")) else None)
    if writer is None:
        raise ValueError(f"{path.name}: no volume writer for this suffix (.mha, .nii, .nii.gz, .nrrd)")
    atomic_write_with(path, lambda tmp: writer(tmp, array_kji, geometry),
                      ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix)
