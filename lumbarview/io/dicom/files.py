"""Whole DICOM files in and out (headers and pixel data), for copying instances: the export.

:func:`read_instance` reads a file completely (pixel data as stored: nothing is decoded or
re-encoded, so pixels are kept bit for bit) or says it is not DICOM; :func:`write_instance`
writes one atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.fs import atomic_write_bytes
from lumbarview.core.limits import limits


def read_instance(path: str | Path) -> Dataset | None:
    """The whole data set of ``path`` (None when the file is not DICOM).

    Raises
    ------
    CorruptFileError
        When the file says it is DICOM but cannot be read to its end.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptFileError(path, f"the file cannot be read ({exc.strerror})", "check its permissions") from exc
    if size > limits().max_volume_bytes:
        raise CorruptFileError(path, f"the file is larger ({size} bytes) than any DICOM instance lumbarview copies",
                               "leave it out of the export")
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError:
        return None
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptFileError(path, f"the DICOM file cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
                               "the file is damaged; re-copy it from its source") from exc
    problem = _truncation(ds)
    if problem is not None:
        raise CorruptFileError(path, problem, "the file is damaged or cut short; re-copy it from its source")
    return ds


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _truncation(ds: Dataset) -> str | None:
    """What shows an image file was cut short (pydicom stops quietly at the end of the bytes):
    no pixel data after the image's header, or fewer uncompressed bytes than the header declares."""
    meta = getattr(ds, "file_meta", None)
    sop_class = UID(str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "")))
    is_image = "Image Storage" in sop_class.name
    if "Rows" not in ds or "Columns" not in ds:
        return "an image without its rows and columns: the file ends early" if is_image else None
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return "the image's header is there but its pixel data is not: the file ends early"
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if keyword != "PixelData" or syntax is None or syntax.is_compressed:
        return None
    try:
        expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
                    * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.get("BitsAllocated", 8) or 8) + 7) // 8
    except (TypeError, ValueError):
        return None
    found = len(ds.PixelData)
    if found < expected:
        return f"the pixel data holds {found} bytes where the header declares {expected}: the file ends early"
    return None


def write_instance(path: str | Path, ds: Dataset) -> None:
    """``ds`` as a DICOM file (with its file meta: Part 10), written atomically."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())
