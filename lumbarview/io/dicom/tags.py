"""All header elements of one DICOM file, as text rows for a tag browser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lumbarview.core.errors import CorruptFileError

_MAX_VALUE = 200


@dataclass(frozen=True)
class TagRow:
    depth: int
    tag: str  # "(0020,0032)"
    keyword: str
    vr: str
    value: str


def _rows(ds: Dataset, depth: int) -> list[TagRow]:
    out = []
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            out.append(TagRow(depth, tag, elem.keyword or "(private)", "SQ", f"{len(elem.value)} item(s)"))
            for n, item in enumerate(elem.value):
                out.append(TagRow(depth + 1, "", f"item {n + 1}", "", ""))
                out.extend(_rows(item, depth + 2))
            continue
        if elem.tag == 0x7FE00010:
            text = f"<{len(elem.value) if elem.value is not None else 0} bytes>"
        else:
            try:
                text = str(elem.value)
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                text = f"<unreadable: {exc}>"
        if len(text) > _MAX_VALUE:
            text = text[:_MAX_VALUE] + "…"
        out.append(TagRow(depth, tag, elem.keyword or "(private)", str(elem.VR), text))
    return out


def read_tags(path: str | Path) -> list[TagRow]:
    """File meta then dataset elements of ``path`` (pixel data not read).

    Raises
    ------
    CorruptFileError
    """
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(path, f"the header cannot be read ({exc})", "re-copy the file") from exc
    rows = _rows(ds.file_meta, 0) if getattr(ds, "file_meta", None) else []
    return rows + _rows(ds, 0)
