"""Use case: the DICOM tags of the slice a view shows, for the tag browser (the UI does not
import io).

:func:`slice_file` says which file holds the slice on screen (a native view: its stored slice;
a reformatted view: the source volume's stored slice nearest the cursor) or why there is none;
:func:`read_tags` reads that file's header elements (run it off the GUI thread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy.typing as npt

from lumbarview.io.dicom.tags import TagRow, read_tags
from lumbarview.model.view_state import ViewState

__all__ = ["SliceFile", "TagRow", "read_tags", "slice_file"]


@dataclass(frozen=True)
class SliceFile:
    """The DICOM file of the slice on screen (``path``; None when there is none) and a line
    saying which slice it is, or why there is no file."""

    path: str | None
    note: str


def slice_file(state: ViewState, cursor_lps: npt.ArrayLike) -> SliceFile:
    """The file that holds the slice ``state`` shows (see the module)."""
    series = state.series
    if series is None or state.mode == "empty":
        return SliceFile(None, f"the {state.name} view shows no series")
    name = series.description or "this series"
    current = state.current
    if current is not None:
        stack, k, how = current.stack, current.k, "slice"
    else:
        source = state.source
        if source is None:
            return SliceFile(None, f"the {state.name} view shows no slice")
        found = source.geometry.nearest_slice(cursor_lps)
        if found is None:
            return SliceFile(None, f"the cursor is outside {name}")
        stack, k, how = source, found, "reformatted view; the stored slice nearest the cursor:"
    files = stack.meta.get("files") or []
    if not files:
        return SliceFile(None, f"{name} is not a DICOM series: it has no DICOM tags")
    path = files[k] if 0 <= k < len(files) else None
    if not path:
        return SliceFile(None, f"{name}: slice {k + 1} has no file (a gap in the series)")
    return SliceFile(str(path), f"{name}, {how} {k + 1} of {len(files)}")
