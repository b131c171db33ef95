"""Anything else: DICOM, volumes, label volumes bound to their image, STL, markups, CSV."""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path

from lumbarview.core.dataset import Case
from lumbarview.core.errors import NothingToOpenError
from lumbarview.core.labels import sct_scheme
from lumbarview.core.types import ImageStack, Series, Severity
from lumbarview.io.annotations import (
    is_markups,
    read_json,
    read_markups,
    read_table,
)
from lumbarview.io.dicom.scan import walk_files
from lumbarview.io.mesh import read_stl
from lumbarview.io.volume import is_volume_file, open_volume, volume_stem
from lumbarview.services.binding import best_image_for, bind_label_volume
from lumbarview.services.layouts.context import USER_SCHEME_FILE, OpenContext
from lumbarview.services.open_study import open_dicom

#: Files this layout reads itself; with the other non-DICOM suffixes, those that never make it
#: look for DICOM files.
_READ_HERE = (".stl", ".json", ".csv", ".tsv", ".pdf")
_NOT_DICOM = (*_READ_HERE, ".xml", ".png", ".txt", ".md")


def _path_parts(path: str) -> list[str]:
    """The sort key that orders path strings as ``Path`` objects order (part by part)."""
    return path.split(os.sep)


def _suffix(path: str) -> str:
    """``Path(path).suffix.lower()`` without making the Path."""
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def detect(root: Path) -> bool:
    return True


def open_layout(ctx: OpenContext) -> None:
    root = ctx.root
    case = Case(id=root.stem if root.is_file() else root.name)
    # The tree is listed once (os.scandir, hidden entries left out, linked files kept) and the
    # same listing goes to the DICOM scan, which would otherwise walk it again. Paths stay
    # strings (sorted as paths sort: by their parts) until a file is one read here: a DICOM
    # tree of 48,000 files makes no Path objects.
    listing = [] if root.is_file() else walk_files(os.path.abspath(root), include_links=True)
    names = [str(root)] if root.is_file() else sorted((st.path for st in listing), key=_path_parts)
    volumes: list[Path] = []
    others: list[Path] = []
    dicom_like = False
    for name in names:  # one pass, one suffix test per file
        if is_volume_file(name):
            volumes.append(Path(name))
            continue
        suffix = _suffix(name)
        if suffix in _READ_HERE:
            others.append(Path(name))
        elif suffix not in _NOT_DICOM:
            dicom_like = True
    label_like = [p for p in volumes if re.search(r"(seg|label|mask)", p.name, re.IGNORECASE)]
    image_vols = [p for p in volumes if p not in label_like]
    cases: list[Case] = []
    if dicom_like:
        try:
            collection = open_dicom(root, use_cache=ctx.use_cache, cache_dir=ctx.cache_dir,
                                    progress=ctx.progress, cancel=ctx.cancel, listed=listing or None)
            cases = ctx.cases_from_collection(collection)
        except NothingToOpenError as exc:
            ctx.dicom_error = exc
    stacks: dict[Path, ImageStack] = {}
    for path in image_vols:
        stack = ctx.guarded(case, partial(open_volume, path, uid=f"file:{path}",
                                                   description=volume_stem(path), root=ctx.root))
        if stack is not None:
            stacks[path] = stack
            case.series.append(Series(uid=stack.uid, description=volume_stem(path), modality="MR",
                                      number=None, stacks=[stack]))
    scheme = ctx.user_scheme or sct_scheme()
    for path in label_like:
        image_path = best_image_for(path, list(stacks))
        image = stacks.get(image_path) if image_path else None
        if image is None:
            ctx.issue(Severity.WARNING, "labels.no-image",
                       "a label volume with no image it could belong to", path, case)
            continue
        bind_label_volume(ctx, case, path, image, scheme)
    for path in others:
        suffix = path.suffix.lower()
        if suffix == ".stl":
            result = ctx.guarded(case, partial(read_stl, path))
            if result is not None:
                case.meshes.append(result[0])
                case.issues.extend(result[1])
        elif suffix == ".json" and path.name != USER_SCHEME_FILE:
            doc = ctx.guarded(case, partial(read_json, path))
            if is_markups(doc):
                result = ctx.guarded(case, partial(read_markups, path))
                if result is not None:
                    case.point_sets.extend(result[0])
                    case.issues.extend(result[1])
        elif suffix in (".csv", ".tsv"):
            result = ctx.guarded(case, partial(read_table, path))
            if result is not None:
                case.tables.append(result[0])
                case.issues.extend(result[1])
        elif suffix == ".pdf":
            case.attachments.append(str(path))
    if case.series or case.meshes or case.point_sets or case.tables or case.label_maps:
        cases.append(case)
    else:
        ctx.dataset.issues.extend(case.issues)
    ctx.dataset.cases = cases

# -- binding overlays to images -------------------------------------------------------
