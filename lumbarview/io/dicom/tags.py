"""All header elements of one DICOM file, as text rows for a tag browser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lumbarview.core.errors import CorruptFileError, LoadError
from lumbarview.core.fs import open_regular
from lumbarview.core.limits import limits
from lumbarview.io.dicom.headers import DEFLATED_UID, read_deflated

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
        with open_regular(path) as fh:
            ds = read_deflated(fh, path, limits().max_volume_bytes, True) if _maybe_deflated(fh) else None
            if ds is None:
                fh.seek(0)
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        rows = _rows(ds.file_meta, 0) if getattr(ds, "file_meta", None) else []
        return rows + _rows(ds, 0)
    except LoadError:
        raise
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(path, f"the header cannot be read ({exc})", "re-copy the file") from exc
    except (Exception, RecursionError) as exc:  # a damaged header makes pydicom raise anything
        raise CorruptFileError(path, f"the header cannot be read ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:160]})", "re-copy the file") from exc


def _maybe_deflated(fh: BinaryIO) -> bool:
    head = fh.read(1024)
    fh.seek(0)
    return DEFLATED_UID.encode("ascii") in head
