"""Use case: DICOM overlay planes (60xx) as label layers on their slice.

When a case is loaded, each DICOM slice file whose head holds overlay data is read for its
overlay planes (:mod:`lumbarview.io.dicom.overlays`); each plane becomes a one-slice
:class:`LabelMap` bound to its image stack, placed through the slice's geometry like a PNG mask,
so every view (native or reformatted) draws it where the file says.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case, LabelMap
from lumbarview.core.errors import LoadError
from lumbarview.core.labels import LabelEntry, LabelScheme, Role
from lumbarview.core.types import ImageStack, LoadIssue, Severity
from lumbarview.io.dicom.overlays import OverlayPlane, may_have_overlays, read_overlays
from lumbarview.services.binding import single_slice_geometry

#: The scheme name of overlay label maps (the overlay model draws them opaque).
OVERLAY_SCHEME = "DICOM overlay"
OVERLAY_COLOUR = (255, 214, 0)
#: Files looked at per stack at most (a quick sniff each); a longer series is looked at in full
#: only up to this count, and says so.
MAX_FILES_PER_STACK = 4000

_lock = threading.Lock()
_checked: weakref.WeakSet[ImageStack] = weakref.WeakSet()


def overlay_scheme(name: str) -> LabelScheme:
    return LabelScheme(OVERLAY_SCHEME, {1: LabelEntry(1, name, Role.OTHER, OVERLAY_COLOUR)})


def _label_map(stack: ImageStack, k: int, path: str, plane: OverlayPlane) -> LabelMap:
    geometry = single_slice_geometry(stack.geometry, k)
    array = plane.bits[np.newaxis].astype(np.uint8)

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return array.copy(), []

    uid = f"overlay{plane.group:04X}:{path}"
    label_stack = ImageStack(uid, stack.uid, geometry,
                             {"kind": "labels", "source": path, "slice_index": k, "overlay_group": plane.group},
                             load)
    return LabelMap(plane.name, label_stack, overlay_scheme(plane.name), path, stack.uid)


def bind_dicom_overlays(case: Case) -> int:
    """Add the overlay planes of the case's DICOM slices as label maps (once per stack; safe to
    call from several threads). Returns how many were added."""
    added = 0
    for stack in case.stacks():
        with _lock:
            if stack in _checked:
                continue
            _checked.add(stack)
        files = [str(p) if p else "" for p in (stack.meta.get("files") or [])]
        if not files:
            continue
        counts = Counter(files)
        rows, cols = stack.geometry.shape_kji[1:]
        seen: set[str] = set()
        maps: list[LabelMap] = []
        issues: list[LoadIssue] = []
        for k, path in enumerate(files[:MAX_FILES_PER_STACK]):
            if not path or path in seen or not may_have_overlays(path):
                continue
            seen.add(path)
            try:
                planes, found = read_overlays(path, rows, cols)
            except LoadError as exc:
                issues.append(LoadIssue(Severity.WARNING, "dicom.overlay-unreadable", str(exc), path))
                continue
            issues.extend(found)
            if planes and counts[path] > 1:
                issues.append(LoadIssue(Severity.INFO, "dicom.overlay-frames",
                                        "the overlay of this multi-frame file is shown on its first frame", path))
            maps.extend(_label_map(stack, k, path, plane) for plane in planes)
        if len(files) > MAX_FILES_PER_STACK:
            issues.append(LoadIssue(Severity.INFO, "dicom.overlay-not-searched",
                                    f"only the first {MAX_FILES_PER_STACK} of {len(files)} files of this series "
                                    "were searched for overlay planes", files[0]))
        with _lock:
            case.label_maps.extend(maps)
            case.issues.extend(issues)
        added += len(maps)
    return added
