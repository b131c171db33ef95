"""Volume headers checked before any pixel byte is read, and before SimpleITK sees the file.

A few hundred bytes of MetaImage or NRRD header (``NDims = -1``, ``dimension: 16``, a 200-digit
number, a garbled ``ElementDataFile``) crash or hang SimpleITK's native readers. So every header
is read here first, by its specification, with bounded reads, and refused with a typed
:class:`~lumbarview.core.errors.LoadError` when anything is out of range:

* MetaImage (``.mha``/``.mhd``): our own ``Key = Value`` parser; geometry and pixels are then
  read here too (SimpleITK never sees a MetaImage file).
* NRRD (``.nrrd``/``.nhdr``): pynrrd's header reader on a bounded copy of the header lines,
  plus our checks; pixels are read here (raw or gzip), geometry from SimpleITK once checked.
* NIfTI (``.nii``/``.nii.gz``): nibabel's header class on a bounded copy of the header bytes,
  plus our checks; SimpleITK reads it once checked (a ``.nii.gz`` stream is first checked to
  inflate to the declared size, as SimpleITK silently pads a truncated one with zeros).

Sizes are checked against :func:`lumbarview.core.limits.limits` before allocation, raw data must
fit the file, compressed data is inflated with a bound (declared size + 1 byte), and a data
file named in a header must resolve (symlinks followed) inside the dataset root.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.limits import limits

MAX_HEADER_BYTES = 65_536
"""A MetaImage or NRRD text header longer than this is refused (real ones are < 2 kB)."""

_CHUNK = 1 << 20
_FIX = "the header is damaged or was not written by an imaging program; re-export the volume"

# MetaImage element types (MetaIO's metaTypes.h sizes: MET_LONG is 4 bytes).
_MET_TYPES: dict[str, str] = {
    "MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}

# NRRD types (all spellings of the specification) -> numpy kind+size.
_NRRD_TYPES: dict[str, str] = {}
for _names, _code in (
    (("signed char", "int8", "int8_t"), "i1"),
    (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    (("int", "signed int", "int32", "int32_t"), "i4"),
    (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    (("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
      "int64_t"), "i8"),
    (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    (("float",), "f4"), (("double",), "f8"),
):
    for _name in _names:
        _NRRD_TYPES[_name] = _code


@dataclass(frozen=True)
class CheckedHeader:
    """A volume header that passed every check.

    ``size_ijk`` has the file's own axis order (fastest first) and only the axes that are kept
    (2 or 3); ``data_path`` is the file holding the voxels (resolved inside the root);
    ``data_offset`` is where the voxels start in it (for compressed data, where the compressed
    stream starts), ``-1`` meaning "the last bytes of the file". ``geometry`` (spacing, origin,
    direction) is filled for MetaImage only, where we read everything ourselves.
    """

    path: str
    kind: str  # "metaimage" | "nrrd" | "nifti"
    size_ijk: tuple[int, ...]
    dtype: np.dtype[Any]
    data_path: str
    data_offset: int
    encoding: str  # "raw" | "zlib" (MetaImage) | "gzip" (NRRD, .nii.gz)
    compressed_bytes: int | None = None
    byte_skip: int = 0  # NRRD: bytes to skip in the (inflated) data stream
    spacing_mm: tuple[float, ...] = ()
    origin_lps: tuple[float, ...] = ()
    direction: tuple[float, ...] = ()  # row-major n x n, columns are the axes' directions

    @property
    def n_voxels(self) -> int:
        return math.prod(self.size_ijk)

    @property
    def n_bytes(self) -> int:
        return self.n_voxels * self.dtype.itemsize


# -- small helpers ------------------------------------------------------------------------------
def _corrupt(path: str, problem: str, action: str = _FIX) -> CorruptFileError:
    return CorruptFileError(path, problem, action)


def _int(path: str, key: str, text: str, digits: int | None = None) -> int:
    """A whole number of at most ``digits`` digits (default: the budget in force)."""
    if digits is None:
        digits = limits().max_int_digits
    token = text.strip()
    if not re.fullmatch(r"[+-]?\d+", token) or len(token.lstrip("+-")) > digits:
        raise _corrupt(path, f"{key} = {token[:40]!r} is not a whole number of at most {digits} digits")
    return int(token)


def _float(path: str, key: str, text: str) -> float:
    token = text.strip()
    if len(token) > 64:
        raise _corrupt(path, f"{key} holds a number {len(token)} characters long")
    try:
        value = float(token)
    except ValueError:
        raise _corrupt(path, f"{key} holds {token[:40]!r}, which is not a number") from None
    if not math.isfinite(value):
        raise _corrupt(path, f"{key} holds {token!r}, which is not a finite number")
    return value


def _floats(path: str, key: str, text: str, count: int) -> list[float]:
    tokens = text.split()
    if len(tokens) != count:
        raise _corrupt(path, f"{key} has {len(tokens)} values; {count} expected")
    return [_float(path, key, t) for t in tokens]


def check_sizes(path: str, key: str, sizes: list[int]) -> None:
    """Every size a positive integer."""
    if any(s < 1 for s in sizes):
        raise _corrupt(path, f"{key} {' '.join(map(str, sizes))} declares an empty image (every size must be "
                       "at least 1)")


def check_spacing(path: str, key: str, spacing: list[float]) -> None:
    if any(not math.isfinite(s) or s <= 0 for s in spacing):
        raise _corrupt(path, f"{key} {' '.join(f'{s:g}' for s in spacing)} is not a finite positive voxel size")


def check_direction(path: str, key: str, matrix: npt.NDArray[np.float64]) -> None:
    """A finite direction matrix with unit-free, well-conditioned, invertible columns."""
    if not np.all(np.isfinite(matrix)):
        raise _corrupt(path, f"{key} holds non-finite values")
    norms = np.linalg.norm(matrix, axis=0)
    if np.any(norms < 1e-12):
        raise _corrupt(path, f"{key} has a zero axis direction (singular)")
    unit = matrix / norms
    if abs(float(np.linalg.det(unit))) < 1e-6:
        raise _corrupt(path, f"{key} is singular: its axes are parallel")


def _budget(path: str, voxels: int, dtype: np.dtype[Any]) -> None:
    limits().check_volume(path, voxels, dtype.itemsize)


def resolve_inside(path: str, name: str, root: str | Path | None, key: str) -> str:
    """The data file ``name`` named in the header ``path``, resolved (symlinks followed) from the
    header's folder; it must lie inside ``root`` (default: the header's own folder)."""
    header_dir = os.path.dirname(os.path.abspath(path))
    if root is None:
        root_dir = header_dir
    else:
        root_dir = os.path.abspath(str(root))
        if os.path.isfile(root_dir):
            root_dir = os.path.dirname(root_dir)
    if not name or "\x00" in name or len(name) > 4096:
        raise _corrupt(path, f"{key} names no usable data file")
    target = os.path.realpath(os.path.join(header_dir, name))
    real_root = os.path.realpath(root_dir)
    if os.path.commonpath([target, real_root]) != real_root:
        raise CorruptFileError(path, f"{key} {name[:120]!r} points outside the dataset folder {real_root}; "
                               "nothing was read from it",
                               "a volume's data file must sit beside its header inside the dataset; "
                               "move it there and fix the header")
    if not os.path.isfile(target):
        raise CorruptFileError(path, f"its data file {name[:120]!r} is missing",
                               "copy the data file beside the header (the two belong together)")
    return target


def _check_fits(path: str, data_path: str, offset: int, nbytes: int) -> int:
    """The voxel bytes fit the file; returns the (resolved) offset."""
    file_bytes = os.path.getsize(data_path)
    if offset == -1:
        offset = file_bytes - nbytes
    if offset < 0 or offset + nbytes > file_bytes:
        raise CorruptFileError(path, f"the header declares {nbytes:,} bytes of voxel data but the file holds "
                               f"{max(0, file_bytes - max(offset, 0)):,}",
                               "the file is truncated or its header is damaged; re-copy it from its source")
    return offset


def _read_text_header(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(MAX_HEADER_BYTES + 1)


# -- inflating ----------------------------------------------------------------------------------
def inflate_bounded(path: str, compressed: bytes, expected: int, wbits: int = zlib.MAX_WBITS | 32) -> bytes:
    """Inflate ``compressed`` to exactly ``expected`` bytes, never holding more than
    ``expected + 1`` of output (a zlib bomb stops there)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(compressed, expected + 1)
    except zlib.error as exc:
        raise CorruptFileError(path, f"the compressed voxel data is damaged ({exc})",
                               "re-copy the file from its source") from None
    if len(out) > expected:
        raise CorruptFileError(path, f"the compressed voxel data inflates to more than the {expected:,} bytes "
                               "its header declares", "the file is damaged (or hostile); re-copy it from its source")
    if len(out) < expected or not inflater.eof:
        raise CorruptFileError(path, f"the compressed voxel data inflates to {len(out):,} bytes, not the "
                               f"{expected:,} its header declares (the stream is truncated or damaged)",
                               "re-copy the file from its source")
    return out


def check_gzip_stream(path: str, expected_min: int) -> None:
    """Stream-inflate a gzip file, discarding the output, and check it yields at least
    ``expected_min`` bytes and is undamaged up to there (memory stays at one chunk)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    total = 0
    try:
        with open(path, "rb") as fh:
            while total < expected_min:
                chunk = inflater.unconsumed_tail or fh.read(_CHUNK)
                if not chunk:
                    break
                total += len(inflater.decompress(chunk, _CHUNK))
                if inflater.eof:
                    break
    except zlib.error as exc:
        raise CorruptFileError(path, f"the compressed data is damaged ({exc})",
                               "re-copy the file from its source") from None
    if total < expected_min:
        raise CorruptFileError(path, f"the compressed data inflates to {total:,} bytes, fewer than the "
                               f"{expected_min:,} its header declares (truncated or damaged)",
                               "re-copy the file from its source")


# -- MetaImage ----------------------------------------------------------------------------------
def read_metaimage_header(path: str, root: str | Path | None = None) -> CheckedHeader:
    """A MetaImage header (``.mha`` or ``.mhd``) parsed and checked by its specification."""
    head = _read_text_header(path)
    fields: dict[str, str] = {}
    data_start = -1
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        line = head[pos:end].decode("latin-1").strip()
        pos = end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise _corrupt(path, f"the header line {line[:60]!r} is not 'Key = Value'",
                           "this is not a MetaImage file, or its header is damaged")
        key = key.strip()
        fields[key] = value.strip()
        if key == "ElementDataFile":
            data_start = pos
            break
    if data_start < 0:
        raise _corrupt(path, "no ElementDataFile line ends the header within "
                       f"{MAX_HEADER_BYTES // 1024} kB", "this is not a complete MetaImage file")
    if fields.get("ObjectType", "Image").strip() != "Image":
        raise UnsupportedFormatError(path, f"a MetaImage {fields['ObjectType'][:40]!r} object is not an image",
                                     "open an image volume")
    if "NDims" not in fields:
        raise _corrupt(path, "the header has no NDims")
    digits = limits().max_int_digits
    ndims = _int(path, "NDims", fields["NDims"], digits)
    if not 2 <= ndims <= 4:
        raise _corrupt(path, f"NDims = {ndims} is outside 2-4 (a volume has 2 or 3 dimensions)")
    if "DimSize" not in fields:
        raise _corrupt(path, "the header has no DimSize")
    dims_text = fields["DimSize"].split()
    if len(dims_text) != ndims:
        raise _corrupt(path, f"DimSize has {len(dims_text)} values but NDims = {ndims}")
    dims = [_int(path, "DimSize", t, digits) for t in dims_text]
    check_sizes(path, "DimSize", dims)
    if any(d != 1 for d in dims[3:]):
        raise UnsupportedFormatError(path, f"a {ndims}-dimensional image (DimSize {fields['DimSize']}) is not a "
                                     "3D volume", "open one 3D volume of the series")
    kept = min(ndims, 3)
    channels = _int(path, "ElementNumberOfChannels", fields.get("ElementNumberOfChannels", "1"), digits)
    if channels != 1:
        raise UnsupportedFormatError(path, f"{channels}-channel (vector or colour) volumes are not supported",
                                     "convert it to greyscale")
    etype = fields.get("ElementType", "").strip()
    if etype not in _MET_TYPES:
        raise UnsupportedFormatError(path, f"ElementType {etype[:40]!r} is not a MetaImage scalar type lumbarview "
                                     "reads", "convert it to an integer or float scalar volume")
    if fields.get("BinaryData", "True").strip().lower() not in ("true", "1"):
        raise UnsupportedFormatError(path, "ASCII voxel data (BinaryData = False) is not supported",
                                     "save the volume with binary data")
    # Both names mean the same; MetaIO (as SimpleITK reads it) lets BinaryDataByteOrderMSB win.
    msb_text = fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).strip().lower()
    if msb_text not in ("true", "false", "1", "0"):
        raise _corrupt(path, f"the byte order {msb_text[:20]!r} is not True or False")
    dtype = np.dtype(_MET_TYPES[etype]).newbyteorder(">" if msb_text in ("true", "1") else "<")

    spacing = [1.0] * ndims
    for key in ("ElementSpacing", "ElementSize"):
        if key in fields:
            spacing = _floats(path, key, fields[key], ndims)
            check_spacing(path, key, spacing)
            break
    origin = [0.0] * ndims
    for key in ("Offset", "Position", "Origin"):
        if key in fields:
            origin = _floats(path, key, fields[key], ndims)
            break
    matrix = np.eye(ndims)
    for key in ("TransformMatrix", "Rotation", "Orientation"):
        if key in fields:
            # MetaIO lists each axis' direction in turn: they are the matrix's columns.
            matrix = np.asarray(_floats(path, key, fields[key], ndims * ndims)).reshape(ndims, ndims).T
            check_direction(path, key, matrix)
            break
    direction = matrix[:kept, :kept]
    check_direction(path, "the direction matrix", direction)

    compressed = fields.get("CompressedData", "False").strip().lower() in ("true", "1")
    size_ijk = tuple(dims[:kept])
    voxels = math.prod(size_ijk)
    _budget(path, voxels, dtype)
    nbytes = voxels * dtype.itemsize

    name = fields["ElementDataFile"]
    if name.split()[:1] == ["LIST"] or ("%" in name and len(name.split()) > 1):
        raise UnsupportedFormatError(path, f"ElementDataFile {name[:60]!r} lists several data files (slice files), "
                                     "which lumbarview does not read", "save the volume as a single .mha file")
    if name == "LOCAL":
        data_path = os.path.abspath(path)
        base = data_start
    else:
        data_path = resolve_inside(path, name, root, "ElementDataFile")
        base = 0
    header_size = _int(path, "HeaderSize", fields.get("HeaderSize", "0"), digits)
    if header_size < -1:
        raise _corrupt(path, f"HeaderSize = {header_size} is negative")
    offset = -1 if header_size == -1 else base + header_size

    compressed_bytes: int | None = None
    if compressed:
        file_bytes = os.path.getsize(data_path)
        if offset == -1:
            raise _corrupt(path, "HeaderSize = -1 cannot be used with compressed data")
        available = file_bytes - offset
        if "CompressedDataSize" in fields:
            compressed_bytes = _int(path, "CompressedDataSize", fields["CompressedDataSize"], digits)
            if compressed_bytes < 1 or compressed_bytes > available:
                raise CorruptFileError(path, f"the header declares {compressed_bytes:,} bytes of compressed data "
                                       f"but the file holds {max(available, 0):,}",
                                       "the file is truncated or its header is damaged; re-copy it")
        else:
            compressed_bytes = available
        if compressed_bytes < 1:
            raise _corrupt(path, "the file holds no compressed voxel data", "re-copy it from its source")
    else:
        offset = _check_fits(path, data_path, offset, nbytes)
    return CheckedHeader(path, "metaimage", size_ijk, dtype, data_path, offset,
                         "zlib" if compressed else "raw", compressed_bytes,
                         spacing_mm=tuple(spacing[:kept]), origin_lps=tuple(origin[:kept]),
                         direction=tuple(float(v) for v in direction.ravel()))


# -- NRRD ---------------------------------------------------------------------------------------
def read_nrrd_header(path: str, root: str | Path | None = None) -> CheckedHeader:
    """A NRRD header read by pynrrd (on a bounded copy of its lines) and checked."""
    import nrrd  # type: ignore[import-untyped]

    head = _read_text_header(path)
    if not head.startswith(b"NRRD000"):
        raise CorruptFileError(path, "the file does not start with a NRRD magic line",
                               "this is not a NRRD file; check its name")
    lines: list[bytes] = []
    pos = 0
    data_start = -1
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        line = head[pos:end + 1]
        pos = end + 1
        if not line.strip():
            data_start = pos
            break
        lines.append(line)
    if data_start < 0 and pos < len(head):
        raise _corrupt(path, f"the header does not end within {MAX_HEADER_BYTES // 1024} kB")
    if data_start < 0:
        data_start = len(head)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # pynrrd casting a hostile number warns; we refuse it below
            header: dict[str, Any] = dict(nrrd.read_header(lines))
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, IndexError... on bad text
        raise _corrupt(path, f"the NRRD header cannot be parsed ({type(exc).__name__}: {str(exc)[:120]})") from None
    try:
        dimension = int(header["dimension"])
        sizes = [int(s) for s in np.asarray(header["sizes"]).ravel()]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _corrupt(path, "the header lacks a valid dimension or sizes field") from None
    if not 2 <= dimension <= 3:
        raise UnsupportedFormatError(path, f"a {dimension}-dimensional NRRD is not a 2D or 3D volume",
                                     "open a 2D or 3D scalar NRRD")
    if len(sizes) != dimension:
        raise _corrupt(path, f"sizes has {len(sizes)} values but dimension is {dimension}")
    digits = limits().max_int_digits
    if any(len(str(abs(s))) > digits for s in sizes):
        raise _corrupt(path, f"a size has more than {digits} digits")
    check_sizes(path, "sizes", sizes)
    kinds = [str(k).lower() for k in header.get("kinds", [])]
    if any(k not in ("domain", "space", "time", "none", "???") for k in kinds):
        raise UnsupportedFormatError(path, f"axis kinds {' '.join(kinds)[:60]} (vector or colour data) are not "
                                     "supported", "convert it to a scalar volume")
    type_name = str(header.get("type", "")).strip().lower()
    if type_name not in _NRRD_TYPES:
        raise UnsupportedFormatError(path, f"type {type_name[:40]!r} is not a scalar type lumbarview reads",
                                     "convert it to an integer or float scalar volume")
    code = _NRRD_TYPES[type_name]
    endian = str(header.get("endian", "little")).strip().lower()
    if endian not in ("little", "big"):
        raise _corrupt(path, f"endian {endian[:20]!r} is neither little nor big")
    dtype = np.dtype(code).newbyteorder("<" if endian == "little" else ">")
    encoding = str(header.get("encoding", "")).strip().lower()
    if encoding not in ("raw", "gzip", "gz"):
        raise UnsupportedFormatError(path, f"encoding {encoding[:30]!r} is not supported (raw and gzip are)",
                                     "save the NRRD with raw or gzip encoding")
    if "space directions" in header:
        dirs = header["space directions"]
        try:
            matrix = np.asarray(dirs, dtype=np.float64)
        except (TypeError, ValueError):
            raise _corrupt(path, "space directions cannot be read as numbers") from None
        if matrix.ndim != 2 or matrix.shape[0] != dimension or not 2 <= matrix.shape[1] <= 3:
            raise _corrupt(path, f"space directions has shape {matrix.shape}, not one vector per axis")
        if matrix.shape[1] == dimension:
            check_direction(path, "space directions", matrix.T)
        elif not np.all(np.isfinite(matrix)):
            raise _corrupt(path, "space directions holds non-finite values")
    for key in ("spacings", "space origin", "thicknesses", "axis mins", "axis maxs"):
        if key in header:
            try:
                values = np.asarray(header[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise _corrupt(path, f"{key} cannot be read as numbers") from None
            if key == "space origin" and not np.all(np.isfinite(values)):
                raise _corrupt(path, "space origin holds non-finite values")
            if key == "spacings" and values.size and (not np.all(np.isfinite(values)) or np.any(values <= 0)):
                raise _corrupt(path, f"spacings {header[key]} is not a finite positive voxel size")
    voxels = math.prod(sizes)
    _budget(path, voxels, dtype)
    line_skip = int(header.get("line skip", 0) or 0)
    byte_skip = int(header.get("byte skip", 0) or 0)
    if not 0 <= line_skip <= 10_000:
        raise _corrupt(path, f"line skip {line_skip} is out of range")
    if byte_skip < -1 or len(str(byte_skip)) > digits:
        raise _corrupt(path, f"byte skip {byte_skip} is out of range")
    if byte_skip == -1 and encoding != "raw":
        raise _corrupt(path, "byte skip -1 is only valid for raw data")
    name = header.get("data file", header.get("datafile"))
    if name is not None:
        name = str(name).strip()
        if name.split()[:1] == ["LIST"] or (len(name.split()) > 1 and "%" in name):
            raise UnsupportedFormatError(path, f"data file {name[:60]!r} lists several files, which lumbarview "
                                         "does not read", "save the NRRD as a single file")
        data_path = resolve_inside(path, name, root, "data file")
        data_start = 0
    else:
        data_path = os.path.abspath(path)
    if line_skip:
        with open(data_path, "rb") as fh:
            fh.seek(data_start)
            for _ in range(line_skip):
                if not fh.readline(MAX_HEADER_BYTES):
                    raise _corrupt(path, f"line skip {line_skip} runs past the end of the data file")
            data_start = fh.tell()
    nbytes = voxels * dtype.itemsize
    size_ijk = tuple(sizes)
    spacing, origin, direction = _nrrd_geometry(path, header, dimension)
    if encoding == "raw":
        offset = _check_fits(path, data_path, -1 if byte_skip == -1 else data_start + byte_skip, nbytes)
        return CheckedHeader(path, "nrrd", size_ijk, dtype, data_path, offset, "raw", spacing_mm=spacing,
                             origin_lps=origin, direction=direction)
    available = os.path.getsize(data_path) - data_start
    if available < 1:
        raise _corrupt(path, "the file holds no compressed voxel data", "re-copy it from its source")
    return CheckedHeader(path, "nrrd", size_ijk, dtype, data_path, data_start, "gzip", available,
                         byte_skip=byte_skip, spacing_mm=spacing, origin_lps=origin, direction=direction)


#: NRRD spaces and the signs that take their first two axes to LPS (as ITK reads them).
_NRRD_SPACE_SIGNS = {
    "left-posterior-superior": (1, 1), "lps": (1, 1), "right-anterior-superior": (-1, -1), "ras": (-1, -1),
    "left-anterior-superior": (1, -1), "las": (1, -1), "right-posterior-superior": (-1, 1), "rps": (-1, 1),
}


def _nrrd_geometry(path: str, header: dict[str, Any], dimension: int
                   ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(spacing, origin, direction) in LPS from the parsed NRRD fields, computed here so that
    no native reader parses the raw header text (a fuzzed NRRD header once crashed
    SimpleITK after pynrrd had accepted it)."""
    space = str(header.get("space", "left-posterior-superior")).strip().lower()
    sx, sy = _NRRD_SPACE_SIGNS.get(space, (1, 1))
    flip = np.array([sx, sy, 1.0][:dimension] if dimension < 3 else [sx, sy, 1.0])
    if "space directions" in header:
        matrix = np.asarray(header["space directions"], dtype=np.float64)
        if matrix.shape[1] != dimension:
            raise UnsupportedFormatError(path, f"space directions of {matrix.shape[1]} components for a "
                                         f"{dimension}-dimensional image are not supported",
                                         "re-export the volume with one direction per axis")
        vectors = matrix * flip[np.newaxis, :]  # one row per axis, in LPS
        spacing = np.linalg.norm(vectors, axis=1)
        check_spacing(path, "space directions", [float(v) for v in spacing])
        direction = (vectors / spacing[:, np.newaxis]).T  # columns are the axes' directions
    else:
        values = np.asarray(header.get("spacings", [1.0] * dimension), dtype=np.float64).ravel()
        spacing = np.where(np.isfinite(values) & (values > 0), values, 1.0)[:dimension]
        if spacing.size != dimension:
            raise _corrupt(path, f"spacings has {spacing.size} values but dimension is {dimension}")
        direction = np.eye(dimension)
    check_direction(path, "space directions", direction)
    origin = np.asarray(header.get("space origin", [0.0] * dimension), dtype=np.float64).ravel()
    if origin.size != dimension or not np.all(np.isfinite(origin)):
        raise _corrupt(path, "space origin is not one finite coordinate per axis")
    origin = origin * flip
    return (tuple(float(v) for v in spacing), tuple(float(v) for v in origin),
            tuple(float(v) for v in direction.ravel()))


# -- NIfTI --------------------------------------------------------------------------------------
_NIFTI_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
                1024: "i8", 1280: "u8"}


def read_nifti_header(path: str) -> CheckedHeader:
    """A NIfTI-1 or NIfTI-2 header read by nibabel (on a bounded copy of its bytes) and checked."""
    import nibabel as nib

    gz = path.lower().endswith(".gz")
    with open(path, "rb") as fh:
        raw = fh.read(64 * 1024 if gz else 544)
    if gz:
        try:
            block = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, 544)
        except zlib.error as exc:
            raise CorruptFileError(path, f"the gzip stream is damaged ({exc})", "re-copy the file") from None
    else:
        block = raw
    if len(block) < 348:
        raise _corrupt(path, f"the file holds {len(block)} header bytes; a NIfTI header has 348",
                       "the file is truncated; re-copy it from its source")
    sizeof = int.from_bytes(block[:4], "little")
    swapped = int.from_bytes(block[:4], "big")
    header_class: Any = nib.Nifti2Header if 540 in (sizeof, swapped) else nib.Nifti1Header
    need = 540 if header_class is nib.Nifti2Header else 348
    if len(block) < need:
        raise _corrupt(path, "the NIfTI-2 header is truncated", "re-copy the file from its source")
    try:
        # check=False: nibabel's checks *fix* some fields (a zero pixdim becomes 1) in its copy
        # only, while SimpleITK reads the file as it is; our checks below refuse them instead.
        hdr = header_class(block[:need], check=False)
        magic = bytes(hdr["magic"]).rstrip(b"\x00")
        if magic not in (b"n+1", b"ni1", b"n+2", b"ni2"):
            raise _corrupt(path, f"the NIfTI magic {magic[:8]!r} is wrong", "this is not a NIfTI file")
        dims = [int(d) for d in hdr["dim"]]
        pixdim = [float(p) for p in hdr["pixdim"]]
        datatype = int(hdr["datatype"])
        vox_offset = float(hdr["vox_offset"])
        qform = np.asarray(hdr.get_qform(), dtype=np.float64) if int(hdr["qform_code"]) else None
        sform = np.asarray(hdr.get_sform(), dtype=np.float64) if int(hdr["sform_code"]) else None
        slope, inter = (float(v) if v is not None else 0.0 for v in hdr.get_slope_inter())
    except Exception as exc:  # nibabel raises HeaderDataError, ValueError... on a damaged header
        raise _corrupt(path, f"the NIfTI header is invalid ({type(exc).__name__}: {str(exc)[:120]})") from None
    ndim = dims[0]
    if not 2 <= ndim <= 7:
        raise _corrupt(path, f"dim[0] = {ndim} is outside 2-7")
    sizes = dims[1:ndim + 1]
    check_sizes(path, "dim", sizes)
    if any(s != 1 for s in sizes[3:]):
        raise UnsupportedFormatError(path, f"a {ndim}-dimensional image ({' x '.join(map(str, sizes))}) is not a "
                                     "3D volume", "open one 3D volume of the series")
    if datatype not in _NIFTI_TYPES:
        raise UnsupportedFormatError(path, f"NIfTI datatype {datatype} (complex, colour or unknown) is not "
                                     "supported", "convert it to an integer or float scalar volume")
    kept = min(ndim, 3)
    check_spacing(path, "pixdim", pixdim[1:kept + 1])
    for name, matrix in (("qform", qform), ("sform", sform)):
        if matrix is not None:
            if not np.all(np.isfinite(matrix)):
                raise _corrupt(path, f"the {name} holds non-finite values")
            check_direction(path, f"the {name}", matrix[:3, :3])
    if not (math.isfinite(slope) and math.isfinite(inter)):
        raise _corrupt(path, "the intensity scaling (scl_slope, scl_inter) is not finite")
    dtype = np.dtype(_NIFTI_TYPES[datatype]).newbyteorder(hdr.endianness)
    size_ijk = tuple(sizes[:kept])
    voxels = math.prod(size_ijk)
    _budget(path, voxels, dtype)
    if not math.isfinite(vox_offset) or vox_offset < need or vox_offset > 1 << 40:
        raise _corrupt(path, f"vox_offset {vox_offset:g} does not point past the header")
    offset = int(vox_offset)
    if gz:
        return CheckedHeader(path, "nifti", size_ijk, dtype, os.path.abspath(path), offset, "gzip",
                             os.path.getsize(path))
    offset = _check_fits(path, path, offset, voxels * dtype.itemsize)
    return CheckedHeader(path, "nifti", size_ijk, dtype, os.path.abspath(path), offset, "raw")


# -- pixels -------------------------------------------------------------------------------------
def read_voxels(header: CheckedHeader) -> npt.NDArray[Any]:
    """The voxels of a checked MetaImage or NRRD header as a native-endian ``[k, j, i]`` array
    (``[1, j, i]`` for a 2D image): the order SimpleITK's ``GetArrayFromImage`` gives."""
    path = header.path
    nbytes = header.n_bytes
    with open(header.data_path, "rb") as fh:
        fh.seek(header.data_offset)
        if header.encoding == "raw":
            data = fh.read(nbytes)
        else:
            compressed = fh.read(header.compressed_bytes or 0)
            wbits = zlib.MAX_WBITS | 32  # zlib or gzip, detected from the stream's header
            if header.encoding == "gzip":
                skip = header.byte_skip
                data = _inflate_prefix(path, compressed, nbytes + skip, wbits)[skip:]
            else:
                data = inflate_bounded(path, compressed, nbytes, wbits)
    if len(data) != nbytes:
        raise CorruptFileError(path, f"the file holds {len(data):,} bytes of voxel data, not the {nbytes:,} its "
                               "header declares", "the file is truncated; re-copy it from its source")
    array = np.frombuffer(data, dtype=header.dtype).reshape(header.size_ijk[::-1])
    if not header.dtype.isnative:
        array = array.astype(header.dtype.newbyteorder("="))
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def _inflate_prefix(path: str, compressed: bytes, expected: int, wbits: int) -> bytes:
    """NRRD gzip data: exactly ``expected`` bytes (the spec tolerates nothing after them, but we
    only refuse a stream that is damaged or too short, and never inflate past ``expected``)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(compressed, expected)
    except zlib.error as exc:
        raise CorruptFileError(path, f"the compressed voxel data is damaged ({exc})",
                               "re-copy the file from its source") from None
    if len(out) < expected:
        raise CorruptFileError(path, f"the compressed voxel data inflates to {len(out):,} bytes, not the "
                               f"{expected:,} its header declares (the stream is truncated or damaged)",
                               "re-copy the file from its source")
    return out
