"""A DICOMDIR export (UniData style): series through the DICOMDIR, PDF and CSV beside it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from lumbarview.io.annotations import (
    read_table,
)
from lumbarview.services.layouts.context import OpenContext
from lumbarview.services.open_study import open_dicom


def detect(root: Path) -> bool:
    from lumbarview.io.dicom.dicomdir import is_dicomdir

    return is_dicomdir(root) if root.is_file() else (root / "DICOMDIR").is_file()


def open_layout(ctx: OpenContext) -> None:
    target = ctx.root if ctx.root.is_file() else ctx.root / "DICOMDIR"
    collection = open_dicom(target, use_cache=ctx.use_cache, cache_dir=ctx.cache_dir,
                            progress=ctx.progress, cancel=ctx.cancel)
    ctx.dataset.cases = ctx.cases_from_collection(collection)
    folder = target.parent
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".csv", ".tsv"):
            table = ctx.guarded(None, partial(read_table, path, "export"))
            if table is not None:
                ctx.dataset.tables.append(table[0])
                ctx.dataset.issues.extend(table[1])
        elif path.suffix.lower() == ".pdf":
            ctx.dataset.attachments.append(str(path))
