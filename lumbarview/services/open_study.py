"""Use case: open a path (folder, DICOMDIR or file) as DICOM studies."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lumbarview.core.errors import NothingToOpenError
from lumbarview.core.types import LoadIssue, StudyCollection
from lumbarview.io.dicom.assemble import AssemblyCache
from lumbarview.io.dicom.dicomdir import is_dicomdir, read_dicomdir
from lumbarview.io.dicom.scan import FileStat, IndexCache, ProgressCallback, scan_paths


def open_dicom(
    path: str | Path,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    listed: Sequence[FileStat] | None = None,
) -> StudyCollection:
    """Scan and assemble every DICOM series under ``path``; pixels stay on disk until a stack's
    :meth:`~lumbarview.core.types.ImageStack.pixels` is called. ``listed`` is the folder's
    :func:`~lumbarview.io.dicom.scan.walk_files` when the caller has listed it already.

    Raises
    ------
    NothingToOpenError
        ``path`` does not exist or holds no DICOM image.
    """
    path = os.path.abspath(str(path))
    if not os.path.exists(path):
        raise NothingToOpenError(path, "no such file or folder", "Check the path and try again")
    cache = IndexCache(cache_dir) if use_cache else None
    pre_issues: list[LoadIssue] = []
    if os.path.isfile(path) and is_dicomdir(path):
        listing = read_dicomdir(path)
        pre_issues.extend(listing.issues)
        folder = os.path.dirname(path)
        if listing.files:
            # read_dicomdir keeps only references inside the DICOMDIR's folder.
            scan = scan_paths(folder, files=[f for f in listing.files if os.path.isfile(f)],
                              cache=cache, progress=progress, cancel=cancel)
        else:
            scan = scan_paths(folder, cache=cache, progress=progress, cancel=cancel)
    else:
        if os.path.isdir(path):
            for name in ("DICOMDIR", "dicomdir"):
                candidate = os.path.join(path, name)
                if os.path.isfile(candidate):
                    pre_issues.extend(read_dicomdir(candidate).issues)
                    break
        scan = scan_paths(path, cache=cache, progress=progress, cancel=cancel,
                          listing=listed if os.path.isdir(path) else None)
    assembly = AssemblyCache(scan, cache)
    collection = assembly.assemble(path, None, [*pre_issues, *scan.issues])
    assembly.save()
    if not collection.all_series():
        raise NothingToOpenError(path, _nothing_found_message(scan.n_files, collection,
                                                              os.path.isfile(path)),
                                 "Point lumbarview at a folder of DICOM files (.dcm, .ima or no "
                                 "extension), a DICOMDIR, or a single DICOM image")
    return collection


def _nothing_found_message(n_files: int, collection: StudyCollection, is_file: bool) -> str:
    if n_files == 0:
        return "the folder holds no files"
    if is_file and collection.issues:
        if collection.issues[0].code == "dicom.not-dicom":
            return ("the file is not DICOM: it has no 'DICM' prefix at byte 128 and does not "
                    "start with a DICOM element")
        return collection.issues[0].message.rstrip(".")
    counts = Counter(issue.code for issue in collection.issues)
    parts = ", ".join(f"{code} x{n}" for code, n in counts.most_common(4))
    first_error = next((i for i in collection.issues if i.severity.name == "ERROR"), None)
    detail = f" ({first_error.message})" if first_error is not None else ""
    return f"no DICOM image found in {n_files} file(s) [{parts}]{detail}"
