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
from lumbarview.core.fs import special_file_error, special_kind
from lumbarview.core.labels import load_scheme
from lumbarview.core.types import Severity
from lumbarview.io.dicom.scan import ProgressCallback
from lumbarview.services.layouts import LAYOUT_NAMES, detect_layout, opener
from lumbarview.services.layouts.context import USER_SCHEME_FILE, OpenContext

__all__ = ["LAYOUT_NAMES", "check_openable", "detect_layout", "open_path"]


def check_openable(path: str | Path) -> Path:
    """``path`` as an absolute path when it is a folder or a regular file (never opened here).

    Raises
    ------
    NothingToOpenError
        It does not exist, or it is a FIFO, a device or a socket (``/dev/null``).
    """
    root = Path(os.path.abspath(str(path)))
    try:
        mode = os.stat(root).st_mode
    except OSError:
        raise NothingToOpenError(root, "no such file or folder", "Check the path and try again") from None
    kind = special_kind(mode)
    if kind is not None and kind != "a folder":
        raise NothingToOpenError(root, f"it is {kind}, neither a folder nor a regular file",
                                 "Point lumbarview at a dataset root, a DICOM folder, a DICOMDIR or an image file")
    return root


def _special_files(root: Path, ctx: OpenContext) -> None:
    """One issue per FIFO, device or socket in the dataset (the readers never open them; the
    walk names them, so that a FIFO a layout would have passed over is not silent). Uses the
    folder entries' types (no ``stat`` per file, nothing opened); links are not followed
    except to learn what a link to a special file points at. A layout that listed the whole
    tree (the folder layout) found them already: the tree is not listed again."""
    if ctx.specials is not None:
        for path, found in ctx.specials:
            ctx.special_file(special_file_error(path, found))
        return
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if entry.is_file(follow_symlinks=True) or entry.is_dir(follow_symlinks=True):
                    continue
                kind = special_kind(entry.stat(follow_symlinks=True).st_mode)
            except OSError:
                continue  # a dangling link: nothing to open
            if kind is not None:
                ctx.special_file(special_file_error(entry.path, kind))


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
        The path does not exist, is neither a folder nor a regular file, or nothing in it could
        be opened.
    """
    if str(path).startswith(STUDY_PREFIX):  # a study of the study database, by its UID
        from lumbarview.services.study_db import StudyDatabase

        with StudyDatabase() as db:
            return db.open_study(str(path)[len(STUDY_PREFIX):])
    root = check_openable(path)
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
    if root.is_dir():
        _special_files(root, ctx)
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
