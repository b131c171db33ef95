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
        return pydicom.dcmread(str(path))
    except InvalidDicomError:
        return None
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptFileError(path, f"the DICOM file cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
                               "the file is damaged; re-copy it from its source") from exc


def write_instance(path: str | Path, ds: Dataset) -> None:
    """``ds`` as a DICOM file (with its file meta: Part 10), written atomically."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())
