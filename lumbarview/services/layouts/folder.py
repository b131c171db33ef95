"""Anything else: DICOM, volumes, label volumes bound to their image, STL, markups, CSV.

A folder of several subjects' files opens as one case per subject (:mod:`..subjects`); a label
volume is bound only to an image on its grid or one its name ties it to
(:func:`..binding.image_for_labels`); an integer volume with few values on an image's grid is a
label map even when its name does not say so (:mod:`..label_guess`)."""

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
from lumbarview.io.volume import is_volume_file, open_label_volume, open_volume, volume_stem
from lumbarview.services.binding import bind_label_volume, image_for_labels
from lumbarview.services.label_guess import bind_guessed_label_maps
from lumbarview.services.layouts.context import USER_SCHEME_FILE, OpenContext, natural_key
from lumbarview.services.open_study import open_dicom
from lumbarview.services.subjects import group_by_subject

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
    # The tree is listed once (os.scandir, hidden entries left out, linked files kept) and the
    # same listing goes to the DICOM scan, which would otherwise walk it again. Paths stay
    # strings (sorted as paths sort: by their parts) until a file is one read here: a DICOM
    # tree of 48,000 files makes no Path objects.
    specials: list[tuple[str, str]] = []
    listing = [] if root.is_file() else walk_files(os.path.abspath(root), include_links=True, specials=specials)
    if not root.is_file():
        ctx.specials = specials  # named by open_path without a second walk
    names = [str(root)] if root.is_file() else sorted((st.path for st in listing), key=_path_parts)
    volumes: list[Path] = []
    files: list[Path] = []  # the files read here (volumes, meshes, markups, tables, documents)
    dicom_like = False
    for name in names:  # one pass, one suffix test per file
        if is_volume_file(name):
            volumes.append(Path(name))
            files.append(volumes[-1])
            continue
        suffix = _suffix(name)
        if suffix in _READ_HERE:
            files.append(Path(name))
        elif suffix not in _NOT_DICOM:
            dicom_like = True
    cases: list[Case] = []
    if dicom_like:
        try:
            collection = open_dicom(root, use_cache=ctx.use_cache, cache_dir=ctx.cache_dir,
                                    progress=ctx.progress, cancel=ctx.cancel, listed=listing or None)
            cases = ctx.cases_from_collection(collection)
        except NothingToOpenError as exc:
            ctx.dicom_error = exc
    # Several subjects' files in one folder: one case per subject (services.subjects).
    groups = group_by_subject(root, files, volumes)
    for subject, group in sorted(groups.items(), key=lambda kv: (kv[0] is None, natural_key(kv[0] or ""))):
        case = Case(id=subject or (root.stem if root.is_file() else root.name))
        if subject is None and len(groups) > 1:
            _shared_files(ctx, case, group)
        _open_files(ctx, case, group)
        if case.series or case.meshes or case.point_sets or case.tables or case.label_maps:
            cases.append(case)
        else:
            ctx.dataset.issues.extend(case.issues)
    ctx.dataset.cases = cases


def _shared_files(ctx: OpenContext, case: Case, group: list[Path]) -> None:
    """Files that name no subject in a folder of several: tables and documents belong to the
    whole dataset; anything else stays in a case of its own, said so."""
    for path in list(group):
        if path.suffix.lower() in (".csv", ".tsv", ".pdf"):
            group.remove(path)
            if path.suffix.lower() == ".pdf":
                ctx.dataset.attachments.append(str(path))
                continue
            result = ctx.guarded(None, partial(read_table, path))
            if result is not None:
                ctx.dataset.tables.append(result[0])
                ctx.dataset.issues.extend(result[1])
    if any(is_volume_file(p) or p.suffix.lower() in (".stl", ".json") for p in group):
        ctx.issue(Severity.INFO, "folder.no-subject",
                  "these files name no subject (the folder holds several: S01_..., S02_...); they "
                  f"are shown together as case {case.id!r}. Name them after their subject to "
                  "open them with it", ctx.root, case)


def _open_files(ctx: OpenContext, case: Case, files: list[Path]) -> None:
    """One case's volumes (label maps bound to their image), meshes, markups and tables."""
    volumes = [p for p in files if is_volume_file(p)]
    label_like = [p for p in volumes if re.search(r"(seg|label|mask)", p.name, re.IGNORECASE)]
    image_vols = [p for p in volumes if p not in label_like]
    others = [p for p in files if p not in volumes]
    stacks: dict[Path, ImageStack] = {}
    for path in image_vols:
        stack = ctx.guarded(case, partial(open_volume, path, uid=f"file:{path}",
                                                   description=volume_stem(path), root=ctx.root))
        if stack is not None:
            stacks[path] = stack
    scheme = ctx.user_scheme or sct_scheme()
    # Masks not named as masks: integer volumes with few values on an image's grid.
    guessed = bind_guessed_label_maps(ctx, case, stacks, scheme)
    images = {p: s for p, s in stacks.items() if p not in guessed}
    for path, stack in images.items():
        case.series.append(Series(uid=stack.uid, description=volume_stem(path), modality="MR",
                                  number=None, stacks=[stack]))
    for path in label_like:
        labels = ctx.guarded(case, partial(open_label_volume, path, uid=f"labels:{path}", root=ctx.root))
        if labels is None:
            continue
        image = image_for_labels(labels, path, images)
        if image is None:
            ctx.issue(Severity.WARNING, "labels.no-image",
                      "a label volume with no image it could belong to: none of this case's images "
                      "is on its grid, and none is named as its image (S01_t2 for S01_t2_seg) and "
                      "overlaps it. It is not shown; put it beside its image, named after it", path, case)
            continue
        bind_label_volume(ctx, case, path, image, scheme, labels)
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


# -- binding overlays to images -------------------------------------------------------
