"""Volume headers read and checked before any pixel byte is read, then the voxels themselves.

A few hundred bytes of MetaImage or NRRD header (``NDims = -1``, ``dimension: 16``, a 200-digit
number, a garbled ``ElementDataFile``) crash or hang the native readers of ITK (SimpleITK).
So no native reader sees the file: every header is read here, by its specification, with
bounded reads, and refused with a typed :class:`~lumbarview.core.errors.LoadError` when anything
is out of range; the geometry is derived here as ITK derives it, and the voxels are read here:

* MetaImage (``.mha``/``.mhd``): our own ``Key = Value`` parser.
* NRRD (``.nrrd``/``.nhdr``): pynrrd's header reader on a bounded copy of the header lines,
  plus our checks; pixels raw or gzip.
* NIfTI (``.nii``/``.nii.gz``, NIfTI-1 and -2): nibabel's header class on a bounded copy of the
  header bytes, plus our checks; the orientation is ITK's (5.4) choice between qform and sform
  (see :func:`_nifti_transform`) and the intensity scaling ITK's; a ``.nii.gz`` is inflated as a
  stream, and one that is truncated or damaged is an error, never zeros.

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
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.fs import open_regular
from lumbarview.core.limits import limits

MAX_HEADER_BYTES = 65_536
"""A MetaImage or NRRD text header longer than this is refused (real ones are < 2 kB)."""

_CHUNK = 1 << 20
_GZIP_TAIL_CHECK = 1 << 16
_FIX = "the header is damaged or was not written by an imaging program; re-export the volume"

# MetaImage element types (MetaIO's metaTypes.h sizes: MET_LONG is 4 bytes).
_MET_TYPES: dict[str, str] = {
    "MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}

# SimpleITK's names of the pixel types, by numpy type.
_PIXEL_TYPE_NAMES = {
    "int8": "8-bit signed integer", "uint8": "8-bit unsigned integer",
    "int16": "16-bit signed integer", "uint16": "16-bit unsigned integer",
    "int32": "32-bit signed integer", "uint32": "32-bit unsigned integer",
    "int64": "64-bit signed integer", "uint64": "64-bit unsigned integer",
    "float32": "32-bit float", "float64": "64-bit float",
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
    stream starts; for a ``.nii.gz``, in the inflated stream), ``-1`` meaning "the last bytes of
    the file". The geometry (spacing, origin, direction) is in LPS, as ITK derives it from the
    format's fields. ``rescale`` is the (slope, intercept) a NIfTI header asks for (None: none);
    ``vector`` marks a NIfTI of intent VECTOR (one component), which ITK names a vector image.
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
    rescale: tuple[float, float] | None = None
    vector: bool = False
    notes: tuple[str, ...] = ()  # what the reader should know (e.g. a qform and sform that disagree)

    @property
    def pixel_dtype(self) -> np.dtype[Any]:
        """The native type of the voxels as read: a rescaled NIfTI integer volume becomes float32,
        a rescaled float one keeps its type (as ITK reads them)."""
        native = self.dtype.newbyteorder("=")
        if self.rescale is not None and native.kind in "iu":
            return np.dtype(np.float32)
        return native

    @property
    def pixel_type(self) -> str:
        """SimpleITK's name of the voxel type as read (e.g. ``"16-bit signed integer"``)."""
        name = _PIXEL_TYPE_NAMES.get(self.pixel_dtype.name, self.pixel_dtype.name)
        return f"vector of {name}" if self.vector else name

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
    with open_regular(path) as fh:
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


def inflate_gzip_file(path: str, expected: int, skip: int = 0) -> bytearray:
    """``expected`` bytes a gzip file inflates to after its first ``skip`` (see
    :func:`_inflate_gzip`); a damaged stream, or one that ends before ``skip + expected`` bytes,
    is an error (never zeros). The skipped bytes are inflated and dropped a chunk at a time,
    never held. The member holding the last byte is read on to its end (up to 64 kB more of
    output) so that its checksum is verified: damage inside deflate data often inflates without
    a complaint, and only the checksum catches it."""
    out, filled = _inflate_gzip(path, expected, _CHUNK, _GZIP_TAIL_CHECK, skip)
    if filled < expected:
        raise CorruptFileError(path, f"the compressed data inflates to {skip + filled:,} bytes, fewer than the "
                               f"{skip + expected:,} its header declares (truncated or damaged)",
                               "re-copy the file from its source")
    return out


def _inflate_gzip(path: str, expected: int, read_size: int, tail: int, skip: int = 0) -> tuple[bytearray, int]:
    """Up to ``expected`` bytes a gzip file inflates to after its first ``skip``, and how many
    there were, streamed from the file ``read_size`` bytes at a time (the output is allocated
    once, at ``expected`` bytes: a bomb stops there; skipped bytes are dropped a chunk at a
    time). Members follow one another as gzip and zlib's ``gzread`` read them; bytes after a
    member that do not start another are ignored, as they do. ``tail``: how many more bytes to
    inflate (and drop) past the last one wanted, towards the member's checksum."""
    out = bytearray(expected)
    filled = 0
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    pending = b""
    try:
        with open_regular(path) as fh:
            while filled < expected or (tail > 0 and not inflater.eof):
                if inflater.eof:  # one member ended: another may follow
                    if len(pending) < 2:
                        pending += fh.read(read_size)
                    if not pending.startswith(b"\x1f\x8b"):
                        break
                    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                if not pending:
                    pending = fh.read(read_size)
                    if not pending:
                        break
                if skip > 0:
                    skip -= len(inflater.decompress(pending, min(skip, _CHUNK)))
                elif filled < expected:
                    chunk = inflater.decompress(pending, expected - filled)
                    out[filled:filled + len(chunk)] = chunk
                    filled += len(chunk)
                else:
                    tail -= len(inflater.decompress(pending, tail))
                pending = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof else b"")
    except zlib.error as exc:
        raise CorruptFileError(path, f"the compressed data is damaged ({exc})",
                               "re-copy the file from its source") from None
    return out, filled


#: Deflate's largest ratio is about 1032:1 (a long run of one byte); a header that asks a
#: compressed file for more inflated bytes than that is refused before anything is inflated.
MAX_DEFLATE_RATIO = 1032


def check_inflatable(path: str, compressed_bytes: int, wanted: int, what: str) -> None:
    """Refuse a header asking a compressed stream of ``compressed_bytes`` for ``wanted``
    inflated bytes (skipped ones included) that it cannot hold: the skip of a 60-byte file
    claiming a 1 TiB offset, a ``byte skip`` of 2^63."""
    most = max(0, compressed_bytes) * MAX_DEFLATE_RATIO + 1024
    if wanted > most:
        raise CorruptFileError(path, f"its header asks for {wanted:,} bytes of inflated data ({what}), but "
                               f"{compressed_bytes:,} compressed bytes inflate to at most {most:,}",
                               "the header is damaged (or hostile); re-copy the file from its source")


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
    # Both names mean the same; MetaIO (as ITK reads it) lets BinaryDataByteOrderMSB win.
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
        with open_regular(data_path) as fh:
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
    check_inflatable(path, available, byte_skip + nbytes, f"byte skip {byte_skip:,} and the voxels")
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

# Intent codes ITK reads as something other than a scalar image (NIfTI-1 nifti1.h).
_INTENT_GENMATRIX, _INTENT_SYMMATRIX, _INTENT_DISPVECT, _INTENT_VECTOR = 1004, 1005, 1006, 1007
_XFORM_SCANNER_ANAT = 1
# The spatial unit of xyzt_units (bits 0-2) in mm, as ITK scales spacing and origin by it:
# metre, mm, micron; any other code (0 = unknown) counts as mm.
_NIFTI_UNIT_MM = {1: 1e3, 2: 1.0, 3: 1e-3}


@dataclass(frozen=True)
class _NiftiFields:
    """The header fields ITK's orientation rule reads, as niftilib holds them (NIfTI-1 in
    single precision, NIfTI-2 in double)."""

    real: type[np.floating[Any]]
    qform_code: int
    sform_code: int
    pixdim: tuple[float, ...]  # pixdim[0..7]; a zero or non-finite pixdim[1..dim0] reads as 1
    quatern: tuple[float, ...]  # b, c, d, then the offsets x, y, z (non-finite read as 0)
    srow: npt.NDArray[np.float64]  # 3 x 4
    xyz_unit_mm: float


def _finite_or_zero(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _quatern_to_affine(f: _NiftiFields) -> npt.NDArray[np.float64]:
    """The qform as a 4 x 4 matrix: the NIfTI-1 quaternion formula (``quatern_b/c/d``, the
    offsets, the voxel sizes and ``qfac = pixdim[0]``), as niftilib evaluates it."""
    b, c, d, qx, qy, qz = f.quatern
    a = 1.0 - (b * b + c * c + d * d)
    if a < 1e-7:  # a 180-degree rotation: (b, c, d) is normalised
        norm = 1.0 / math.sqrt(b * b + c * c + d * d)
        b, c, d, a = b * norm, c * norm, d * norm, 0.0
    else:
        a = math.sqrt(a)
    xd, yd, zd = (v if v > 0 else 1.0 for v in f.pixdim[1:4])
    if f.pixdim[0] < 0:
        zd = -zd
    m = np.array([
        [(a * a + b * b - c * c - d * d) * xd, 2 * (b * c - a * d) * yd, 2 * (b * d + a * c) * zd, qx],
        [2 * (b * c + a * d) * xd, (a * a + c * c - b * b - d * d) * yd, 2 * (c * d - a * b) * zd, qy],
        [2 * (b * d - a * c) * xd, 2 * (c * d + a * b) * yd, (a * a + d * d - c * c - b * b) * zd, qz],
        [0.0, 0.0, 0.0, 1.0]])
    return m.astype(f.real).astype(np.float64)


def _is_affine(m: npt.NDArray[np.float64]) -> bool:
    """ITK's test that a 4 x 4 matrix is an invertible affine map (bottom row 0 0 0 1; the
    inverse of the whole agrees with the one built from the 3 x 3 part)."""
    if abs(m[3, 3] - 1.0) + float(np.abs(m[3, :3]).sum()) > np.finfo(np.float32).eps:
        return False
    with np.errstate(all="ignore"):
        singular = np.linalg.svd(m, compute_uv=False)
        if not singular[0] > 0 or not singular[-1] / singular[0] > np.finfo(np.float64).eps:
            return False
        try:
            inverse = np.linalg.inv(m)
            top = np.linalg.inv(m[:3, :3])
        except np.linalg.LinAlgError:
            return False
        translation = -(top @ m[:3, 3])
        close = (float(np.abs(inverse[:3, :3] - top).sum()) <= 1e-2
                 and np.abs(inverse[:3, 3] - translation).sum() <= 1e-2)
    return bool(close)


def _sform_has_no_shear(sform: npt.NDArray[np.float64], real: type[np.floating[Any]]) -> bool:
    """ITK's "sform decomposable without skew": an invertible affine whose 3 x 3 part, its
    columns normalised, is orthonormal within 1e-4 (in single precision, as ITK computes it)."""
    if not _is_affine(sform):
        return False
    rotation = sform[:3, :3].astype(real)
    with np.errstate(all="ignore"):
        rotation = rotation / np.sqrt((rotation * rotation).sum(axis=0, dtype=real))
        product = (rotation @ rotation.T).astype(np.float64)
    return bool(np.all(np.abs(product - np.eye(3)) <= 1e-4))


def _forms_agree(sform: npt.NDArray[np.float64], qform: npt.NDArray[np.float64]) -> bool:
    """The sform and the qform describe the same grid: the same voxel sizes (column lengths),
    axis directions and offset, each within 1e-4 (the tolerance of ITK's own comparison)."""
    with np.errstate(all="ignore"):
        s_len = np.sqrt((sform[:3, :3] ** 2).sum(axis=0))
        q_len = np.sqrt((qform[:3, :3] ** 2).sum(axis=0))
        s_dir, q_dir = sform[:3, :3] / s_len, qform[:3, :3] / q_len
        return bool(np.all(np.abs(s_len - q_len) <= 1e-4) and np.all(np.abs(s_dir - q_dir) <= 1e-4)
                    and np.all(np.abs(sform[:3, 3] - qform[:3, 3]) <= 1e-4))


def _nifti_transform(path: str, f: _NiftiFields) -> tuple[npt.NDArray[np.float64] | None, str | None]:
    """The index-to-RAS matrix ITK (5.4, NiftiImageIO) takes from a header (None when it has
    neither a qform nor an sform code), and a note when the header holds a qform and an sform
    that disagree.

    ITK's rule: a qform and an sform equal element by element: the sform; otherwise the sform
    when it does not shear and there is no qform, or its code is SCANNER_ANAT, or it matches the
    qform closely; else the qform. "Matches closely" is where we differ on purpose: ITK compares
    the left singular vectors of the two matrices (LINPACK's SVD in single precision), whose
    signs are arbitrary, so that its pick between two matrices that differ (by a flip, even)
    or that are equal to 1e-7 comes out either way; here it is :func:`_forms_agree`, the same
    grid within 1e-4, so that two different grids always give the qform (ITK's stated intent)."""
    if f.qform_code <= 0 and f.sform_code <= 0:
        return None, None
    if f.qform_code > 0:
        qform = _quatern_to_affine(f)
    else:  # niftilib: the voxel sizes on the diagonal
        qform = np.diag([*f.pixdim[1:4], 1.0]).astype(f.real).astype(np.float64)
    sform = np.zeros((4, 4))
    if f.sform_code > 0:
        sform[:3] = f.srow
        sform[3, 3] = 1.0
    s32, q32 = sform.astype(f.real), qform.astype(f.real)  # ITK compares them in single precision
    similar = bool(np.all(np.abs(s32[:3, :3] - q32[:3, :3]).astype(np.float64) <= 1e-5)
                   and float(np.abs(s32[:, 3] - q32[:, 3]).sum(dtype=f.real)) <= 1e-7
                   and float(np.abs(s32[3] - q32[3]).sum(dtype=f.real)) <= 1e-7)
    use_sform = similar
    if (not similar or f.sform_code > 0) and _sform_has_no_shear(sform, f.real):
        use_sform = f.qform_code <= 0 or f.sform_code == _XFORM_SCANNER_ANAT or _forms_agree(sform, qform)
    note = None
    if f.qform_code > 0 and f.sform_code > 0 and not _forms_agree(sform, qform):
        used, other = ("sform", "qform") if use_sform else ("qform", "sform")
        note = (f"the NIfTI header's qform (code {f.qform_code}) and sform (code {f.sform_code}) place the "
                f"volume differently; the {used} was used, as ITK uses it (programs that prefer the "
                f"{other} show the volume elsewhere)")
    if use_sform:
        return sform, note
    if f.qform_code > 0:
        return qform, note
    raise UnsupportedFormatError(path, "its only orientation, the sform, shears the voxel grid (its axes are not "
                                 "perpendicular); like ITK, lumbarview reads only orthogonal grids",
                                 "resample the volume onto an orthogonal grid, or give it a qform")


def _nifti_geometry(path: str, f: _NiftiFields, n: int
                    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], str | None]:
    """(spacing, origin, direction, note) of the first ``n`` axes in LPS, as ITK derives them:
    the spacing from pixdim, the origin and the axes' directions (normalised columns) from the
    matrix :func:`_nifti_transform` picks, the first two coordinates negated (RAS to LPS);
    spacing and origin scaled to mm by the header's spatial unit. No orientation code: origin 0,
    identity directions."""
    spacing = tuple(float(v) * f.xyz_unit_mm for v in f.pixdim[1:n + 1])
    matrix, note = _nifti_transform(path, f)
    if matrix is None:
        return spacing, (0.0,) * n, tuple(float(v) for v in np.eye(n).ravel()), None
    flip = np.array([-1.0, -1.0, 1.0])[:n]
    origin = matrix[:n, 3] * flip * f.xyz_unit_mm
    columns = matrix[:n, :n] * flip[:, np.newaxis]
    norms = np.sqrt((columns * columns).sum(axis=0))
    direction = columns / np.where(norms == 0.0, 1.0, norms)
    return spacing, tuple(float(v) for v in origin), tuple(float(v) for v in direction.ravel()), note


def read_nifti_header(path: str) -> CheckedHeader:
    """A NIfTI-1 or NIfTI-2 header read by nibabel (on a bounded copy of its bytes), checked,
    and its geometry and intensity scaling derived as ITK derives them."""
    import nibabel as nib

    gz = path.lower().endswith(".gz")
    if gz:
        inflated, filled = _inflate_gzip(path, 544, 64 * 1024, 0)
        block = bytes(inflated[:filled])
    else:
        with open_regular(path) as fh:
            block = fh.read(544)
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
        # only, while a reader that takes the file as it is would not; our checks below refuse
        # them instead.
        hdr = header_class(block[:need], check=False)
        magic = bytes(hdr["magic"]).rstrip(b"\x00")
        if magic not in (b"n+1", b"ni1", b"n+2", b"ni2"):
            raise _corrupt(path, f"the NIfTI magic {magic[:8]!r} is wrong", "this is not a NIfTI file")
        dims = [int(d) for d in hdr["dim"]]
        pixdim = [float(p) for p in hdr["pixdim"]]
        datatype = int(hdr["datatype"])
        vox_offset = float(hdr["vox_offset"])
        intent = int(hdr["intent_code"])
        qform_code, sform_code = int(hdr["qform_code"]), int(hdr["sform_code"])
        # nibabel's own reading of both matrices and of the scaling is a check: a quaternion
        # too far from unit length, or a valid slope with a non-finite intercept, is refused.
        qform = np.asarray(hdr.get_qform(), dtype=np.float64) if qform_code else None
        sform = np.asarray(hdr.get_sform(), dtype=np.float64) if sform_code else None
        hdr.get_slope_inter()
        real: type[np.floating[Any]] = np.float64 if header_class is nib.Nifti2Header else np.float32
        quatern = tuple(_finite_or_zero(float(hdr[k])) for k in
                        ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"))
        srow = np.array([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]], dtype=np.float64)
        scl = (float(hdr["scl_slope"]), float(hdr["scl_inter"]))
        unit = int(hdr["xyzt_units"]) & 0x07
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
    if intent in (_INTENT_GENMATRIX, _INTENT_SYMMATRIX, _INTENT_DISPVECT):
        raise UnsupportedFormatError(path, f"NIfTI intent {intent} (a matrix or displacement field) is not an image",
                                     "open an image or label volume")
    if intent == _INTENT_VECTOR:
        # ITK counts the axes of a vector image up to the last one longer than 1.
        kept = next((n for n in (3, 2) if sizes[n - 1:n] and sizes[n - 1] > 1), 1)
        if kept < 2:
            raise UnsupportedFormatError(path, f"a {' x '.join(map(str, sizes))} vector image is not a 2D or 3D "
                                         "volume", "open an image or label volume")
    else:
        kept = min(ndim, 3)
    check_spacing(path, "pixdim", pixdim[1:kept + 1])
    for name, matrix in (("qform", qform), ("sform", sform)):
        if matrix is not None:
            if not np.all(np.isfinite(matrix)):
                raise _corrupt(path, f"the {name} holds non-finite values")
            check_direction(path, f"the {name}", matrix[:3, :3])
    # niftilib reads a zero or non-finite pixdim[1..dim0] as 1, a non-finite scaling as 0.
    pixdim = [v if (i == 0 or i > ndim or (v != 0.0 and math.isfinite(v))) else 1.0 for i, v in enumerate(pixdim)]
    fields = _NiftiFields(real, qform_code, sform_code, tuple(pixdim), quatern, srow, _NIFTI_UNIT_MM.get(unit, 1.0))
    spacing, origin, direction, note = _nifti_geometry(path, fields, kept)
    # ITK: a zero slope means 1; it rescales when the slope is not 1 or the intercept not 0.
    slope, inter = (_finite_or_zero(v) for v in scl)
    eps = np.finfo(np.float64).eps
    slope = 1.0 if abs(slope) < eps else slope
    rescale = (slope, inter) if abs(slope - 1.0) > eps or abs(inter) > eps else None
    dtype = np.dtype(_NIFTI_TYPES[datatype]).newbyteorder(hdr.endianness)
    size_ijk = tuple(sizes[:kept])
    voxels = math.prod(size_ijk)
    # Rescaled integers become float32 (CheckedHeader.pixel_dtype): the budget counts the larger.
    widened = rescale is not None and dtype.kind in "iu" and dtype.itemsize < 4
    _budget(path, voxels, np.dtype(np.float32) if widened else dtype)
    if not math.isfinite(vox_offset) or vox_offset < need or vox_offset > 1 << 40:
        raise _corrupt(path, f"vox_offset {vox_offset:g} does not point past the header")
    offset = int(vox_offset)
    geometry: dict[str, Any] = {"spacing_mm": spacing, "origin_lps": origin, "direction": direction,
                                "rescale": rescale, "vector": intent == _INTENT_VECTOR,
                                "notes": (note,) if note else ()}
    if gz:
        compressed = os.path.getsize(path)
        check_inflatable(path, compressed, offset + voxels * dtype.itemsize, f"vox_offset {offset:,} and the voxels")
        return CheckedHeader(path, "nifti", size_ijk, dtype, os.path.abspath(path), offset, "gzip",
                             compressed, **geometry)
    offset = _check_fits(path, path, offset, voxels * dtype.itemsize)
    return CheckedHeader(path, "nifti", size_ijk, dtype, os.path.abspath(path), offset, "raw", **geometry)


# -- pixels -------------------------------------------------------------------------------------
def read_voxels(header: CheckedHeader) -> npt.NDArray[Any]:
    """The voxels of a checked header as a native-endian ``[k, j, i]`` array (``[1, j, i]`` for
    a 2D image), the order SimpleITK's ``GetArrayFromImage`` gives; a NIfTI volume rescaled as
    ITK rescales it (see :func:`_rescaled`)."""
    path = header.path
    nbytes = header.n_bytes
    data: bytes | bytearray | memoryview
    if header.kind == "nifti" and header.encoding == "gzip":
        data = memoryview(inflate_gzip_file(path, nbytes, skip=header.data_offset))
    else:
        data = _read_stored(header)
    if len(data) != nbytes:
        raise CorruptFileError(path, f"the file holds {len(data):,} bytes of voxel data, not the {nbytes:,} its "
                               "header declares", "the file is truncated; re-copy it from its source")
    array = np.frombuffer(data, dtype=header.dtype).reshape(header.size_ijk[::-1])
    if not header.dtype.isnative:
        array = array.astype(header.dtype.newbyteorder("="))
    if array.ndim == 2:
        array = array[np.newaxis]
    if header.rescale is not None:
        array = _rescaled(array, *header.rescale)
    return array


def _rescaled(array: npt.NDArray[Any], slope: float, inter: float) -> npt.NDArray[Any]:
    """``value * slope + inter`` as ITK's NIfTI reader computes it: each voxel in double
    precision, from and back to float32 (integer volumes are promoted to float32 first), or
    float64 for a float64 volume. Computed a slab at a time, so that the double-precision
    working copy stays small."""
    out_type = np.float64 if array.dtype == np.float64 else np.float32
    flat = array.reshape(-1)
    out = np.empty(flat.size, dtype=out_type)
    step = 1 << 20
    for start in range(0, flat.size, step):
        work = flat[start:start + step].astype(out_type).astype(np.float64)
        work *= slope
        work += inter
        out[start:start + step] = work
    return out.reshape(array.shape)


def _read_stored(header: CheckedHeader) -> bytes | bytearray:
    """The voxel bytes of a raw or zlib/gzip-compressed (MetaImage, NRRD) header."""
    path = header.path
    nbytes = header.n_bytes
    with open_regular(header.data_path) as fh:
        fh.seek(header.data_offset)
        if header.encoding == "raw":
            return fh.read(nbytes)
        wbits = zlib.MAX_WBITS | 32  # zlib or gzip, detected from the stream's header
        if header.encoding == "gzip":
            return _inflate_stream(path, fh, header.compressed_bytes or 0, header.byte_skip, nbytes, wbits)
        compressed = fh.read(header.compressed_bytes or 0)
        return inflate_bounded(path, compressed, nbytes, wbits)


def _inflate_stream(path: str, fh: BinaryIO, compressed_bytes: int, skip: int, expected: int,
                    wbits: int) -> bytearray:
    """NRRD gzip data read from ``fh``: the first ``skip`` inflated bytes (``byte skip``)
    dropped a chunk at a time, then exactly ``expected`` bytes into one buffer allocated at
    that size (the spec tolerates nothing after them, but we only refuse a stream that is
    damaged or too short, and never inflate past what is wanted)."""
    inflater = zlib.decompressobj(wbits)
    out = bytearray(expected)
    filled = 0
    left = compressed_bytes
    pending = b""
    try:
        while filled < expected and not inflater.eof:
            if not pending:
                pending = fh.read(min(_CHUNK, left)) if left > 0 else b""
                left -= len(pending)
                if not pending:  # the input ended: what zlib still holds (at most its window)
                    rest = inflater.flush()
                    dropped = min(skip, len(rest))
                    skip -= dropped
                    rest = rest[dropped:dropped + expected - filled]
                    out[filled:filled + len(rest)] = rest
                    filled += len(rest)
                    break
            if skip > 0:
                skip -= len(inflater.decompress(pending, min(skip, _CHUNK)))
            else:
                chunk = inflater.decompress(pending, expected - filled)
                out[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise CorruptFileError(path, f"the compressed voxel data is damaged ({exc})",
                               "re-copy the file from its source") from None
    if filled < expected or skip > 0:
        raise CorruptFileError(path, f"the compressed voxel data inflates to fewer bytes than the "
                               f"{expected:,} its header declares after the byte skip (the stream is truncated "
                               "or damaged)", "re-copy the file from its source")
    return out
