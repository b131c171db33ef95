"""LSS-MRI-AISSLab: DICOM cases, PNG masks and VOC foraminal boxes placed on their slice.

The dataset ships each VOC file twice (beside the slices and in ``Foramina_Detection``): the two
copies of a box become one box (:mod:`lumbarview.services.box_copies`), one row, one count."""

from __future__ import annotations

import re
from pathlib import Path

from lumbarview.core.labels import aisslab_scheme
from lumbarview.core.types import Severity
from lumbarview.services.binding import bind_png_mask, bind_voc, slice_index
from lumbarview.services.box_copies import merge_box_copies
from lumbarview.services.layouts.context import OpenContext, natural_key

#: The one box set of a case (the VOC boxes of every copy, merged).
BOX_SET = "foraminal boxes"


def detect(root: Path) -> bool:
    if (root / "DICOM").is_dir() and ((root / "Segmentation").is_dir() or (root / "Foramina_Detection").is_dir()):
        return True
    return any(p.is_dir() and re.match(r"PATIENT\d+", p.name) for p in root.iterdir())


def open_layout(ctx: OpenContext) -> None:
    scheme = ctx.user_scheme or aisslab_scheme()
    if (ctx.root / "DICOM").is_dir():
        base = ctx.root / "DICOM"
        case_dirs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    else:
        base = ctx.root
        case_dirs = sorted((p for p in base.iterdir() if p.is_dir() and re.match(r"PATIENT\d+", p.name)),
                           key=lambda p: natural_key(p.name))
    cases = ctx.dicom_cases(base, case_dirs)
    for case, case_dir in zip(cases, case_dirs, strict=True):
        case.id = re.sub(r"^PATIENT", "", case.id)
        slices = slice_index(case)
        for xml in sorted(case_dir.rglob("*.xml")):
            bind_voc(ctx, case, xml, slices, xml.stem, "boxes beside the slices")
    # The renamed tree: PNG masks and detection annotations named <patient>_<stem>.
    by_id = {c.id: (c, slice_index(c)) for c in cases}
    for folder, kind in ((ctx.root / "Segmentation" / "Masks", "mask"),
                         (ctx.root / "Foramina_Detection" / "Annotations", "voc")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            case_id, _, stem = path.stem.partition("_")
            found = by_id.get(case_id)
            if found is None:
                ctx.issue(Severity.WARNING, "aisslab.unknown-case",
                           f"no DICOM case {case_id!r} for this file", path)
                continue
            case, slices = found
            if kind == "mask" and path.suffix.lower() == ".png":
                bind_png_mask(ctx, case, path, slices, stem, scheme)
            elif kind == "voc" and path.suffix.lower() == ".xml":
                bind_voc(ctx, case, path, slices, stem, "Foramina_Detection")
    for case in cases:
        merged, issues = merge_box_copies(case.box_sets, BOX_SET)
        case.box_sets = [merged] if merged is not None else []
        case.issues.extend(issues)
    ctx.dataset.cases = cases
