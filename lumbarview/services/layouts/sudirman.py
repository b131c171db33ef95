"""Sudirman et al.: ``01_MRI_Data/<NNNN>/<study>/<series>/*.ima``, one case per patient folder."""

from __future__ import annotations

from pathlib import Path

from lumbarview.services.layouts.context import OpenContext


def detect(root: Path) -> bool:
    return (root / "01_MRI_Data").is_dir() or root.name == "01_MRI_Data"


def open_layout(ctx: OpenContext) -> None:
    data = ctx.root if ctx.root.name == "01_MRI_Data" else ctx.root / "01_MRI_Data"
    case_dirs = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    ctx.dataset.cases = ctx.dicom_cases(data, case_dirs)
    ctx.attachments(ctx.root, exclude={data})
