"""Phase two of DICOM loading: decode the pixels of one stack, in parallel.

Native little-endian pixel data is read straight from the offset found by the scan
(``numpy.fromfile`` releases the GIL, so threads overlap the reads); everything else
(compressed, big endian, deflated, multi-frame) goes through pydicom's decoders, which use
pylibjpeg and python-gdcm when installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

from lumbarview.core import executors
from lumbarview.core.errors import CorruptFileError, LoadError, MissingDecoderError
from lumbarview.core.fs import check_regular, open_regular
from lumbarview.core.limits import limits
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.dicom.headers import (
    DEFLATED_UID,
    DicomFileHeader,
    check_pixel_budget,
    read_deflated,
    transfer_syntax_name,
)

#: Room for the non-pixel elements of a deflated file when bounding its inflated size.
_DEFLATE_HEADER_ALLOWANCE = 16 << 20

_COMPRESSION_HINT = (
    "install a decoder for it: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
    "python-gdcm (lumbarview's own install includes them; a 12-bit lossy JPEG needs python-gdcm)"
)


@dataclass(frozen=True)
class SliceSource:
    """Where the pixels of one slice come from: a file, and a frame within it."""

    header: DicomFileHeader
    frame: int = 0


def _native_dtype(h: DicomFileHeader) -> np.dtype[Any] | None:
    if h.bits_allocated not in (8, 16, 32) or h.samples_per_pixel != 1:
        return None
    kind = "i" if h.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{h.bits_allocated // 8}")


def _fix_stored_bits(array: npt.NDArray[Any], h: DicomFileHeader) -> npt.NDArray[Any]:
    """Keep only (0028,0101) *Bits Stored* bits, sign-extending signed data, as pydicom does:
    12-bit data stored in 16-bit words may carry overlay or garbage bits above bit 11."""
    stored, allocated = h.bits_stored, h.bits_allocated
    if not 0 < stored < allocated:
        return array
    if h.pixel_representation == 1:
        shift = allocated - stored
        np.left_shift(array, shift, out=array)
        np.right_shift(array, shift, out=array)  # arithmetic shift restores the sign
        return array
    np.bitwise_and(array, np.array((1 << stored) - 1, dtype=array.dtype), out=array)
    return array


def _read_native(source: SliceSource) -> npt.NDArray[Any]:
    h = source.header
    dtype = _native_dtype(h)
    assert dtype is not None and h.pixel_offset is not None and h.pixel_length is not None
    per_frame = h.rows * h.cols * dtype.itemsize
    offset = h.pixel_offset + source.frame * per_frame
    available = os.path.getsize(h.path) - offset
    if available < per_frame or h.pixel_length < per_frame * (source.frame + 1):
        raise CorruptFileError(
            h.path,
            f"pixel data is truncated: frame {source.frame + 1} needs {per_frame} bytes, "
            f"{max(0, min(available, h.pixel_length - source.frame * per_frame))} are present",
            "re-copy the file from its source; the other slices are shown",
        )
    with open_regular(h.path) as fh:
        fh.seek(offset)
        pixels = np.fromfile(fh, dtype=dtype, count=h.rows * h.cols)
    return _fix_stored_bits(pixels.reshape(h.rows, h.cols), h)


def _to_grey(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Luminance (ITU-R BT.601) of an RGB array ``[..., 3]``."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (array.astype(np.float32) @ weights).astype(np.float32)


def decode_file(header: DicomFileHeader) -> npt.NDArray[Any]:
    """All frames of one file as ``[frame, row, col]`` through pydicom.

    Raises
    ------
    MissingDecoderError
        Compressed pixel data that no installed plugin can decode.
    CorruptFileError
        Truncated or damaged pixel data.
    """
    path = header.path
    check_pixel_budget(path, header.rows, header.cols, header.n_frames, header.samples_per_pixel,
                       header.bits_allocated)
    try:
        if header.transfer_syntax == DEFLATED_UID:
            # Stop inflating at the declared size: the pixels plus room for the other elements.
            declared = (header.rows * header.cols * max(1, header.n_frames)
                        * max(1, header.samples_per_pixel) * max(1, (header.bits_allocated + 7) // 8))
            bound = min(declared + _DEFLATE_HEADER_ALLOWANCE, limits().max_volume_bytes)
            with open_regular(path) as fh:
                found = read_deflated(fh, path, bound, stop_before_pixels=False)
                if found is None:
                    fh.seek(0)
                    found = pydicom.dcmread(fh, force=True)
            ds = found
        else:
            with open_regular(path) as fh:
                ds = pydicom.dcmread(fh, force=True)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise CorruptFileError(path, "the file has no pixel data",
                                   "it is not an image; open the image series instead")
        if header.photometric == "PALETTE COLOR":
            from pydicom.pixels.processing import apply_color_lut

            array = _to_grey(apply_color_lut(ds.pixel_array, ds))
        else:
            array = ds.pixel_array
            if header.samples_per_pixel == 3:
                array = _to_grey(array)
    except (MissingDecoderError, CorruptFileError):
        raise
    except NotImplementedError as exc:
        raise MissingDecoderError(
            path, f"no decoder for {transfer_syntax_name(header.transfer_syntax)} "
            f"pixel data ({exc})", _COMPRESSION_HINT) from exc
    except RuntimeError as exc:
        text = str(exc)
        if "plugin" in text.lower() or "decod" in text.lower():
            # pydicom's GDCM plugin refuses 12-bit lossy JPEG (JPEG Extended) although GDCM's
            # own reader decodes it; try that before giving up.
            fallback = _decode_with_gdcm(header)
            if fallback is not None:
                return fallback
            reasons = "; ".join(line.strip() for line in text.splitlines()[1:] if line.strip())
            raise MissingDecoderError(
                path, f"no installed decoder could read its {transfer_syntax_name(header.transfer_syntax)}"
                f" pixel data ({reasons or text.splitlines()[0]})", _COMPRESSION_HINT) from exc
        raise CorruptFileError(path, f"pixel data cannot be read: {text.splitlines()[0]}",
                               "re-copy the file from its source") from exc
    except (ValueError, EOFError, InvalidDicomError, AttributeError, TypeError, KeyError,
            IndexError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFileError(path, f"pixel data cannot be read ({first})",
                               "the file may be truncated or damaged; re-copy it from "
                               "its source") from exc
    except MemoryError as exc:
        raise LoadError(path, "there is not enough memory to decode this image",
                        "close other cases or programs, or open a smaller series") from exc
    except (Exception, RecursionError) as exc:  # a decoder met a damaged file
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CorruptFileError(path, f"pixel data cannot be decoded ({type(exc).__name__}: {first})",
                               "the file is damaged or in a variant lumbarview does not read; "
                               "re-copy it from its source") from exc
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def _decode_with_gdcm(header: DicomFileHeader) -> npt.NDArray[Any] | None:
    """Decode with python-gdcm's own ImageReader, or None when it is missing or fails."""
    try:
        import gdcm
    except ImportError:
        return None
    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    reader = gdcm.ImageReader()
    check_regular(header.path)  # gdcm opens by name
    reader.SetFileName(header.path)
    if not reader.Read():
        return None
    image = reader.GetImage()
    dtypes = {"UINT8": "u1", "INT8": "i1", "UINT16": "<u2", "INT16": "<i2", "UINT32": "<u4",
              "INT32": "<i4"}
    kind = dtypes.get(image.GetPixelFormat().GetScalarTypeAsString())
    if kind is None or image.GetPixelFormat().GetSamplesPerPixel() != 1:
        return None
    raw = image.GetBuffer().encode("utf-8", "surrogateescape")
    frames = header.n_frames
    expected = frames * header.rows * header.cols * np.dtype(kind).itemsize
    if len(raw) != expected:
        return None
    return np.frombuffer(raw, dtype=kind).reshape(frames, header.rows, header.cols).copy()


def _rescale_needed(sources: Sequence[SliceSource | None]) -> bool:
    return any(s is not None and (s.header.rescale_slope != 1.0 or s.header.rescale_intercept != 0.0)
               for s in sources)


def _output_dtype(sources: Sequence[SliceSource | None], raw: np.dtype[Any]) -> np.dtype[Any]:
    """int dtype when every (0028,1053) *Rescale Slope* and (0028,1052) *Rescale Intercept*
    is integral, else float32."""
    if raw.kind == "f":
        return np.dtype(np.float32)
    if not _rescale_needed(sources):
        return raw
    present = [s.header for s in sources if s is not None]
    if all(float(h.rescale_slope).is_integer() and float(h.rescale_intercept).is_integer()
           for h in present):
        return np.dtype(np.int32)
    return np.dtype(np.float32)


def _decode_native_stack(
    sources: Sequence[SliceSource | None], shape_rc: tuple[int, int], workers: int | None
) -> tuple[npt.NDArray[Any], list[LoadIssue]] | None:
    """The common case, fast: every slice is single-frame native little-endian data of one
    type without rescale. Threads read each slice straight into its place in the output
    (``readinto`` releases the GIL). Returns None when the case does not apply or any slice
    fails, so that the general path handles and reports it."""
    present = [s for s in sources if s is not None]
    if not present or _rescale_needed(sources):
        return None
    first = present[0].header
    dtype = _native_dtype(first)
    if dtype is None:
        return None
    for s in present:
        h = s.header
        if (h.pixel_offset is None or h.pixel_length is None or h.n_frames != 1
                or _native_dtype(h) != dtype or (h.rows, h.cols) != shape_rc
                or h.bits_stored != first.bits_stored
                or h.pixel_length < shape_rc[0] * shape_rc[1] * dtype.itemsize):
            return None
    out = np.zeros((len(sources), *shape_rc), dtype=dtype)
    n_bytes = shape_rc[0] * shape_rc[1] * dtype.itemsize

    def _read_into(k: int) -> bool:
        source = sources[k]
        if source is None:
            return True
        h = source.header
        assert h.pixel_offset is not None
        try:
            with open_regular(h.path) as fh:
                fh.seek(h.pixel_offset)
                return fh.readinto(memoryview(out[k]).cast("B")) == n_bytes
        except OSError:
            return False

    n_workers = workers or min(8, (os.cpu_count() or 1) * 2)
    if n_workers > 1 and len(sources) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            ok = all(pool.map(_read_into, range(len(sources))))
    else:
        ok = all(_read_into(k) for k in range(len(sources)))
    if not ok:
        return None
    if 0 < first.bits_stored < first.bits_allocated:
        fixed = _fix_stored_bits(out, first)
        if fixed is not out:
            out = fixed
    return out, []


def decode_stack(
    sources: Sequence[SliceSource | None],
    shape_rc: tuple[int, int],
    workers: int | None = None,
) -> tuple[npt.NDArray[Any], list[LoadIssue]]:
    """Decode the slices of one stack into a ``[k, j, i]`` array, rescaled to stored units.

    ``None`` entries are missing slices (filled with zeros; the assembler already reported
    them). A slice that cannot be decoded is zero-filled and reported; if none can be decoded,
    the first error is raised.

    Raises
    ------
    LoadError
        When not a single slice could be decoded.
    """
    rows, cols = shape_rc
    present = [s.header for s in sources if s is not None]
    bits = max((h.bits_allocated for h in present), default=16)
    # Budget before allocation: the output is at most 4 bytes a voxel (int32/float32).
    check_pixel_budget(present[0].path if present else None, rows, cols, len(sources), 1,
                       max(bits, 32 if _rescale_needed(sources) else bits))
    fast = _decode_native_stack(sources, shape_rc, workers)
    if fast is not None:
        return fast
    issues: list[LoadIssue] = []
    file_cache: dict[str, npt.NDArray[Any] | LoadError] = {}

    def _one(source: SliceSource | None) -> npt.NDArray[Any] | LoadError | None:
        if source is None:
            return None
        h = source.header
        try:
            if (h.pixel_offset is not None and _native_dtype(h) is not None):
                return _read_native(source)
            cached = file_cache.get(h.path)
            if cached is None:
                try:
                    cached = decode_file_isolated(h)
                except LoadError as exc:
                    cached = exc
                file_cache[h.path] = cached
            if isinstance(cached, LoadError):
                return cached
            if source.frame >= cached.shape[0]:
                return CorruptFileError(h.path, f"frame {source.frame + 1} is missing",
                                        "the file is truncated")
            frame: npt.NDArray[Any] = cached[source.frame]
            return frame
        except LoadError as exc:
            return exc
        except (Exception, RecursionError) as exc:  # one slice's problem, not the stack's
            return CorruptFileError(h.path, f"pixel data cannot be read ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())[:160]})",
                                    "re-copy the file from its source")

    # Multi-frame files are decoded once: group by file so threads don't decode twice.
    has_multiframe = any(s is not None and s.header.n_frames > 1 for s in sources)
    n_workers = 1 if has_multiframe else (workers or min(8, (os.cpu_count() or 1) * 2))
    if n_workers > 1 and len(sources) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(_one, sources))
    else:
        results = [_one(s) for s in sources]

    arrays = [r for r in results if isinstance(r, np.ndarray)]
    errors = [r for r in results if isinstance(r, LoadError)]
    if not arrays:
        if errors:
            raise errors[0]
        raise CorruptFileError(None, "the stack has no decodable slice", "")
    raw_dtype = np.result_type(*{a.dtype for a in arrays})
    out_dtype = _output_dtype(sources, raw_dtype)
    out = np.zeros((len(sources), rows, cols), dtype=out_dtype)
    reported: set[str] = set()
    rescale = _rescale_needed(sources)
    for k, (source, result) in enumerate(zip(sources, results, strict=True)):
        if isinstance(result, LoadError):
            if result.path not in reported:
                reported.add(result.path or "")
                code = ("dicom.missing-decoder" if isinstance(result, MissingDecoderError)
                        else "dicom.truncated-pixels" if "truncated" in result.problem
                        else "dicom.corrupt-pixels")
                issues.append(LoadIssue(Severity.ERROR, code,
                                        f"slice {k + 1} is shown black: {result.problem}. "
                                        f"{result.action}", result.path))
            continue
        if result is None or source is None:
            continue
        if result.shape != (rows, cols):
            issues.append(LoadIssue(
                Severity.ERROR, "dicom.matrix-mismatch",
                f"slice {k + 1} is {result.shape[0]}x{result.shape[1]} but the stack is "
                f"{rows}x{cols}; it is shown black", source.header.path))
            continue
        if rescale:
            h = source.header
            out[k] = (result.astype(np.float64) * h.rescale_slope + h.rescale_intercept).astype(
                out_dtype)
        else:
            out[k] = result
    return out, issues


# -- compressed pixel data in a child process ---------------------------------------------------
# The native decoders behind pydicom (GDCM, libjpeg, openjpeg) can abort or crash the process on
# a damaged compressed stream (a fuzzed JPEG-LS file aborts inside GDCM). Such data is decoded in
# a small pool of child processes: a crash there is one file's error, never the viewer's end.
_ISOLATED_SYNTAXES_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", DEFLATED_UID}


def _decoder_pool() -> ProcessPoolExecutor:
    """The shared ``decode`` process pool (:mod:`lumbarview.core.executors`)."""
    return executors.process_pool("decode")


def _reset_pool(broken: ProcessPoolExecutor) -> None:
    executors.reset_process_pool("decode", broken)


def decode_file_isolated(header: DicomFileHeader) -> npt.NDArray[Any]:
    """:func:`decode_file`, in a child process for compressed pixel data (see above); native
    and deflated data are decoded here (numpy and zlib do not crash on bad bytes).

    Raises
    ------
    CorruptFileError
        When the decoder died on the file (as well as what :func:`decode_file` raises).
    """
    if header.transfer_syntax in _ISOLATED_SYNTAXES_NATIVE or os.environ.get("LUMBARVIEW_DECODE_IN_PROCESS"):
        return decode_file(header)
    check_pixel_budget(header.path, header.rows, header.cols, header.n_frames, header.samples_per_pixel,
                       header.bits_allocated)
    pool = _decoder_pool()
    try:
        return pool.submit(decode_file, header).result()
    except BrokenProcessPool as exc:
        _reset_pool(pool)
        raise CorruptFileError(header.path, f"the {transfer_syntax_name(header.transfer_syntax)} decoder "
                               "crashed on this file's pixel data", "the compressed data is damaged; re-copy "
                               "the file from its source") from exc
