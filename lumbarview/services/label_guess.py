"""A mask whose name does not say so: an integer volume with few distinct values, on the grid of
another image of the same subject, is a label map over that image.

Only volumes that could be masks are read here: integer voxels, and an image of the same subject
on exactly the same grid. The guess is announced (an INFO issue naming the values found and the
image it was put on) and can be undone: :meth:`lumbarview.core.dataset.Case.treat_as_image`
shows the volume as an image instead (Layers dock: "Show as an image").
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lumbarview.core.dataset import Case
from lumbarview.core.labels import LabelScheme
from lumbarview.core.types import ImageStack, Severity
from lumbarview.io.volume import same_grid, volume_stem
from lumbarview.services.binding import best_image_for, bind_label_volume

if TYPE_CHECKING:
    from lumbarview.services.layouts.context import OpenContext

#: At most this many distinct values (0 included) make an integer volume a label map. A scanner
#: image has hundreds to thousands; the largest lumbar label schemes (SPIDER, TotalSegmentator's
#: spine subset) use a few dozen.
MAX_LABEL_VALUES = 64


def _integer(stack: ImageStack) -> bool:
    text = str(stack.meta.get("pixel_type") or "")
    return "integer" in text and not text.startswith("vector")


def distinct_values(stack: ImageStack, limit: int = MAX_LABEL_VALUES) -> list[int] | None:
    """The values of an integer volume when there are at most ``limit`` of them and none is
    negative, else None. Reads the pixels and lets them go again (LoadError when they cannot be
    read)."""
    was_loaded = stack.is_loaded
    pixels = stack.pixels()
    try:
        # A strided sample first: an image shows more than ``limit`` values there already.
        flat = pixels.reshape(-1)
        if len(np.unique(flat[:: max(1, flat.size // 100_000)])) > limit:
            return None
        values = np.unique(flat)
    finally:
        if not was_loaded:
            stack.release()
    if len(values) > limit or (len(values) and int(values[0]) < 0):
        return None
    return [int(v) for v in values]


def label_candidates(stacks: dict[Path, ImageStack]) -> dict[Path, Path]:
    """The volumes that may be masks (integer voxels, another volume on the same grid) -> the
    volumes on their grid, best named first. No pixel is read."""
    out: dict[Path, Path] = {}
    for path, stack in stacks.items():
        if not _integer(stack):
            continue
        partners = [p for p, s in stacks.items() if p != path and same_grid(stack.geometry, s.geometry)]
        chosen = best_image_for(path, partners)
        if chosen is not None:
            out[path] = chosen
    return out


def why_labels(values: list[int], image_name: str) -> str:
    """The notice for a volume taken for a label map."""
    shown = ", ".join(str(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
    return (f"this volume's name does not say it is a mask, but it holds only {len(values)} whole-number "
            f"values ({shown}) on the grid of {image_name}: it is shown as a label map over that image. "
            "If it is an image, choose 'Show as an image' on its layer in the Layers dock")


def bind_guessed_label_maps(ctx: OpenContext, case: Case, stacks: dict[Path, ImageStack],
                            scheme: LabelScheme) -> set[Path]:
    """Bind each volume of ``stacks`` that is a label map by its values to the image on its grid
    (one that is not a label map itself), with the notice; returns their paths (the rest are
    images)."""
    few: dict[Path, list[int]] = {}
    for path in label_candidates(stacks):
        values = ctx.guarded(case, partial(distinct_values, stacks[path]), path)
        if values is not None:
            few[path] = values
    bound: set[Path] = set()
    for path, values in few.items():
        images = [p for p, s in stacks.items() if p not in few and same_grid(s.geometry, stacks[path].geometry)]
        image = best_image_for(path, images)
        if image is None:
            continue
        label_map = bind_label_volume(ctx, case, path, stacks[image], scheme)
        if label_map is not None:
            label_map.guessed = why_labels(values, volume_stem(image))
            label_map.as_image = stacks[path]
            ctx.issue(Severity.INFO, "labels.guessed", label_map.guessed, path, case)
            bound.add(path)
    return bound
