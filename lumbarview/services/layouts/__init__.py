"""One module per dataset layout, each with ``detect(root)`` and ``open_layout(ctx)``; the first
layout whose ``detect`` says yes opens the root (``folder`` takes anything)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from lumbarview.services.layouts import aisslab, bids, dicomdir, folder, rsna, spider, sudirman

LAYOUT_NAMES = {
    "sudirman": "Sudirman et al. Lumbar Spine MRI (DICOM .ima studies)",
    "dicomdir": "DICOMDIR export (UniData style)",
    "spider": "SPIDER (.mha images and masks)",
    "aisslab": "LSS-MRI-AISSLab (DICOM, PNG masks, VOC boxes)",
    "bids": "BIDS (Liu et al. lumbosacral)",
    "rsna": "RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle)",
    "folder": "a folder of files",
}
#: In the order they are tried. A DICOMDIR file given directly is a DICOMDIR export; a DICOMDIR
#: at a root is tried after the layouts that may hold one. RSNA needs a ``train_images`` or
#: ``test_images`` folder, which no other layout has.
_ORDER: tuple[tuple[str, ModuleType], ...] = (
    ("sudirman", sudirman), ("bids", bids), ("spider", spider), ("aisslab", aisslab),
    ("rsna", rsna), ("dicomdir", dicomdir), ("folder", folder))


def detect_layout(root: Path) -> str:
    """Name of the layout of ``root`` (see :data:`LAYOUT_NAMES`)."""
    if root.is_file():
        return "dicomdir" if dicomdir.detect(root) else "folder"
    return next(name for name, module in _ORDER if module.detect(root))


def opener(layout: str) -> Callable[..., None]:
    return dict(_ORDER)[layout].open_layout  # type: ignore[no-any-return]
