"""DICOM overlay planes (repeating group 60xx, PS3.3 C.9.2): one-bit graphics or regions of
interest stored beside the image, such as a lesion marked on the scanner.

An overlay has ``Overlay Rows`` x ``Overlay Columns`` (60xx,0010/0011) bits in ``Overlay Data``
(60xx,3000), packed little-endian (the first pixel in the least significant bit), its top-left
pixel at ``Overlay Origin`` (60xx,0050; 1-based row, column of the image). Overlays embedded in
unused bits of the pixel data (retired since 2004) are not read; they are reported.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from lumbarview.core.errors import CorruptFileError, LoadError
from lumbarview.core.fs import open_regular
from lumbarview.core.limits import limits
from lumbarview.core.types import LoadIssue, Severity

#: Bytes read to decide whether a file may hold overlay data: the 60xx groups precede the
#: pixel data, so a prefix of the file holds their tags.
SNIFF_BYTES = 512 * 1024
# (60xx,3000) Overlay Data in little-endian byte order: group 0x6000..0x601E (even), element 0x3000.
_OVERLAY_DATA_TAG = re.compile(rb"[\x00-\x1e]\x60\x00\x30")


@dataclass(frozen=True)
class OverlayPlane:
    """One overlay plane of one file, placed on the image's pixel grid.

    ``bits`` is an image-sized ``(rows, cols)`` boolean array (the overlay shifted by its
    origin and clipped to the image); ``group`` is 0x6000..0x601E.
    """

    group: int
    description: str
    kind: str  # "G" graphics | "R" region of interest
    label: str
    bits: npt.NDArray[np.bool_]

    @property
    def name(self) -> str:
        words = self.label or self.description or ("region of interest" if self.kind == "R" else "graphics")
        return f"DICOM overlay {self.group:04X}: {words}"


def may_have_overlays(path: str | Path) -> bool:
    """A quick look: does the file's head hold an (60xx,3000) tag? False for unreadable files."""
    try:
        with open_regular(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return _OVERLAY_DATA_TAG.search(head) is not None


def _int(ds: Any, group: int, element: int) -> int | None:
    elem = ds.get((group, element))
    value: Any = None if elem is None else elem.value
    if not isinstance(value, str | bytes | int | float) and value is not None:
        try:
            value = next(iter(value), None)  # a multi-valued element: its first value
        except TypeError:
            value = None
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _text(ds: Any, group: int, element: int) -> str:
    elem = ds.get((group, element))
    value = "" if elem is None or elem.value is None else elem.value
    return str(value).strip()[:200]


def read_overlays(path: str | Path, image_rows: int, image_cols: int) -> tuple[list[OverlayPlane], list[LoadIssue]]:
    """The overlay planes of the file at ``path`` on an ``image_rows`` x ``image_cols`` image.

    A plane that is damaged (too little data, sizes that do not fit the budget, bits in the
    pixel data) is skipped with an issue; the others are returned.

    Raises
    ------
    CorruptFileError
        The file's header cannot be read.
    """
    path = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_regular(path) as handle:
                ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
    except LoadError:
        raise
    except Exception as exc:  # pydicom raises many kinds on a damaged header
        raise CorruptFileError(path, f"the header cannot be read for its overlays ({type(exc).__name__})",
                               "the file is damaged; re-copy it from its source") from exc
    planes: list[OverlayPlane] = []
    issues: list[LoadIssue] = []
    budget = limits()
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x0010) not in ds and (group, 0x3000) not in ds:
            continue
        where = f"overlay group {group:04X}"
        rows, cols = _int(ds, group, 0x0010), _int(ds, group, 0x0011)
        elem = ds.get((group, 0x3000))
        data = elem.value if elem is not None else None
        if not isinstance(data, bytes | bytearray) or not data:
            bits_allocated = _int(ds, group, 0x0100)
            detail = " (its bits are in the pixel data, a retired encoding lumbarview does not read)" \
                if bits_allocated and bits_allocated > 1 else " (it has no Overlay Data)"
            issues.append(LoadIssue(Severity.INFO, "dicom.overlay-not-read", f"{where} is not shown{detail}", path))
            continue
        if not rows or not cols or rows < 1 or cols < 1:
            issues.append(LoadIssue(Severity.WARNING, "dicom.overlay-bad-size",
                                    f"{where} gives no valid Overlay Rows/Columns; it is not shown", path))
            continue
        frames = max(1, _int(ds, group, 0x0015) or 1)
        try:
            budget.check_image(path, rows * cols * frames, f"{where}")
        except LoadError as exc:
            issues.append(LoadIssue(Severity.WARNING, "dicom.overlay-too-large", str(exc), path))
            continue
        needed = (rows * cols + 7) // 8
        if len(data) < needed:
            issues.append(LoadIssue(Severity.WARNING, "dicom.overlay-truncated",
                                    f"{where} declares {rows}x{cols} bits but holds {len(data)} bytes "
                                    f"(needs {needed}); it is not shown. Re-copy the file from its source",
                                    path))
            continue
        if frames > 1:
            issues.append(LoadIssue(Severity.INFO, "dicom.overlay-frames",
                                    f"{where} has {frames} frames; only its first is shown", path))
        packed = np.frombuffer(bytes(data[:needed]), dtype=np.uint8)
        plane = np.unpackbits(packed, bitorder="little")[: rows * cols].reshape(rows, cols).astype(bool)
        origin = ds.get((group, 0x0050))
        values = list(origin.value) if origin is not None and isinstance(origin.value, list | tuple) else []
        try:
            r0, c0 = (int(values[0]) - 1, int(values[1]) - 1) if len(values) >= 2 else (0, 0)
        except (TypeError, ValueError):
            r0, c0 = 0, 0
        bits = np.zeros((image_rows, image_cols), dtype=bool)
        # The part of the overlay that lies on the image.
        top, left = max(0, r0), max(0, c0)
        bottom, right = min(image_rows, r0 + rows), min(image_cols, c0 + cols)
        if bottom <= top or right <= left:
            issues.append(LoadIssue(Severity.WARNING, "dicom.overlay-outside",
                                    f"{where} lies outside the image (origin {r0 + 1}, {c0 + 1}); it is not shown",
                                    path))
            continue
        bits[top:bottom, left:right] = plane[top - r0:bottom - r0, left - c0:right - c0]
        if not bits.any():
            issues.append(LoadIssue(Severity.INFO, "dicom.overlay-empty", f"{where} has no pixel set", path))
            continue
        planes.append(OverlayPlane(group, _text(ds, group, 0x0022), _text(ds, group, 0x0040).upper(),
                                   _text(ds, group, 0x1500), bits))
    return planes, issues
