"""Use case: open a dataset root as downloaded, whatever its layout.

Recognises the Sudirman tree, a DICOMDIR export, SPIDER, LSS-MRI-AISSLab and BIDS (Liu et al.),
and falls back to "a folder of files", opening what it can (one module per layout in
``services.layouts``). Every overlay is bound to the image it belongs to, through patient space
(``services.binding``); every problem is an issue and the rest still opens.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from functools import partial
from pathlib import Path

from lumbarview.core.dataset import STUDY_PREFIX, Dataset
from lumbarview.core.errors import NothingToOpenError
from lumbarview.core.labels import load_scheme
from lumbarview.core.types import Severity
from lumbarview.io.dicom.scan import ProgressCallback
from lumbarview.services.layouts import LAYOUT_NAMES, detect_layout, opener
from lumbarview.services.layouts.context import USER_SCHEME_FILE, OpenContext

__all__ = ["LAYOUT_NAMES", "detect_layout", "open_path"]


def open_path(
    path: str | Path,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    scheme_path: str | Path | None = None,
    lazy: bool = False,
) -> Dataset:
    """Open a dataset root (or a single file) as downloaded, or ``study:UID``, a study of the
    study database.

    ``lazy``: a layout that can list its cases from file names alone (SPIDER, BIDS) leaves each case's
    files unread until :meth:`Case.ensure_open` (the viewer: the case it shows first, then the
    rest in the background); otherwise every case is read before this returns.

    Raises
    ------
    NothingToOpenError
        The path does not exist or nothing in it could be opened.
    """
    if str(path).startswith(STUDY_PREFIX):  # a study of the study database, by its UID
        from lumbarview.services.study_db import StudyDatabase

        with StudyDatabase() as db:
            return db.open_study(str(path)[len(STUDY_PREFIX):])
    root = Path(os.path.abspath(str(path)))
    if not root.exists():
        raise NothingToOpenError(root, "no such file or folder", "Check the path and try again")
    scheme = None
    scheme_file = Path(scheme_path) if scheme_path else (root / USER_SCHEME_FILE if root.is_dir() else None)
    ctx = OpenContext(root, cache_dir, use_cache, progress, cancel, None)
    if scheme_file is not None and scheme_file.is_file():
        scheme = ctx.guarded(None, partial(load_scheme, scheme_file))
        ctx.user_scheme = scheme
    layout = detect_layout(root)
    ctx.dataset.layout = layout
    # Each file is guarded where it is read; this is the last line for the layout's own logic,
    # so that a surprise in one place still leaves what opened before it.
    ctx.guarded(None, partial(opener(layout), ctx), root)
    dataset = ctx.dataset
    if not lazy:
        dataset.open_all(cancel, progress)
    if not dataset.cases:
        if ctx.dicom_error is not None and not dataset.issues:
            raise ctx.dicom_error
        problems = "; ".join(sorted({i.message for i in dataset.issues if i.severity >= Severity.WARNING})[:3])
        empty = root.is_dir() and not any(p.is_file() for p in root.rglob("*"))
        what = "the folder is empty" if empty else f"nothing could be opened (read as {LAYOUT_NAMES[layout]})"
        raise NothingToOpenError(root, what + (f" ({problems})" if problems else ""),
                                 "Point lumbarview at a dataset root, a DICOM folder, a DICOMDIR or an "
                                 "image file (.dcm, .ima, .mha, .nii.gz, .nrrd)")
    return replace(dataset)
