"""The one rule for putting an overlay on an image: label volumes, PNG masks and VOC boxes are
bound to the image they belong to through patient space (never by assuming that two grids match).
The dataset opener and the batch measurement use the same functions."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Box, BoxSet, Case, LabelMap
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import LabelScheme
from lumbarview.core.types import ImageStack, LoadIssue, Severity
from lumbarview.io.annotations import read_png_mask, read_voc
from lumbarview.io.volume import (
    check_resample_budget,
    open_label_volume,
    resample_labels_to,
    same_grid,
    volume_stem,
)

if TYPE_CHECKING:
    from lumbarview.services.layouts.context import OpenContext


def labels_on_image(labels: ImageStack, image: VolumeGeometry) -> tuple[npt.NDArray[Any], VolumeGeometry]:
    """The label pixels on the image's grid: as stored when the grids are the same, else
    resampled through patient space (nearest neighbour). The one resampling policy."""
    if same_grid(labels.geometry, image):
        return labels.pixels(), labels.geometry
    return resample_labels_to(labels, image), image


def bind_label_volume(ctx: OpenContext, case: Case, path: Path, image: ImageStack, scheme: LabelScheme,
                      labels: ImageStack | None = None) -> LabelMap | None:
    """Put the label volume at ``path`` (``labels`` when already opened) on ``image``: as it is
    on the same grid, else resampled through patient space. Returns the map, None when the
    file could not be read (an issue says why)."""
    if labels is None:
        labels = ctx.guarded(case, partial(open_label_volume, path, uid=f"labels:{path}", root=ctx.root))
    if labels is None:
        return None
    if same_grid(labels.geometry, image.geometry):
        label_map = LabelMap(volume_stem(path), labels, scheme, str(path), image.uid)
        case.label_maps.append(label_map)
        return label_map
    # Never assume alignment: resample through patient space onto the image's grid, within
    # the volume budget (the image's header, not the labels', sets the output's size).
    if not ctx.guarded(case, partial(check_resample_budget, path, image.geometry)):
        return None
    ctx.issue(Severity.WARNING, "labels.grid-mismatch",
               f"the labels' grid differs from the image {image.meta.get('description')}'s; "
               "they were resampled through patient space (nearest neighbour) onto the image "
               "grid", path, case)
    source = labels

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return labels_on_image(source, image.geometry)[0], []

    resampled = ImageStack(f"labels:{path}@{image.uid}", image.uid, image.geometry,
                           {**labels.meta, "resampled_from": str(path)}, load)
    label_map = LabelMap(volume_stem(path), resampled, scheme, str(path), image.uid, resampled_from=str(path))
    case.label_maps.append(label_map)
    return label_map


def _extent(geometry: VolumeGeometry) -> npt.NDArray[np.float64]:
    """The (2, 3) LPS bounding box of a grid's voxel centres."""
    k, j, i = geometry.shape_kji
    corners = np.array([[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)], dtype=np.float64)
    lps = geometry.index_to_lps(corners)
    return np.array([lps.min(axis=0), lps.max(axis=0)])


def _same_frame_allowed(a: ImageStack, b: ImageStack) -> bool:
    """False when both stacks name a frame of reference and the two differ."""
    fa, fb = a.meta.get("frame_of_reference_uid"), b.meta.get("frame_of_reference_uid")
    return not (fa and fb and fa != fb)


def image_for_labels(labels: ImageStack, label_path: Path, images: dict[Path, ImageStack]) -> ImageStack | None:
    """The image a label volume of a plain folder belongs to, or None: an image on the same grid
    (of the same frame of reference) first, the one whose name the label's name extends when
    several are; else the image the label's name extends (``S01_t2`` for ``S01_t2_seg``) whose
    volume overlaps the label's in patient space, to be resampled. Never an image of another
    grid that the name does not tie it to (another subject's, or another sequence's)."""
    same = [p for p, s in images.items() if same_grid(labels.geometry, s.geometry) and _same_frame_allowed(labels, s)]
    if same:
        chosen = best_image_for(label_path, same)
        return images[chosen] if chosen is not None else None
    stem = volume_stem(label_path).lower()
    box = _extent(labels.geometry)
    named = []
    for path, image in images.items():
        image_stem = volume_stem(path).lower()
        if not (stem.startswith(image_stem) and stem[len(image_stem):len(image_stem) + 1] in ("_", "-", ".")):
            continue
        other = _extent(image.geometry)
        if _same_frame_allowed(labels, image) and bool(np.all(box[0] <= other[1]) and np.all(other[0] <= box[1])):
            named.append((len(image_stem), path))
    return images[max(named)[1]] if named else None


def bind_png_mask(ctx: OpenContext, case: Case, path: Path, slices: dict[str, tuple[ImageStack, int]],
                  stem: str, scheme: LabelScheme) -> None:
    target = slices.get(stem)
    if target is None:
        ctx.issue(Severity.WARNING, "labels.unbound-mask",
                   f"no DICOM slice named {stem!r} in case {case.id}; the mask is not shown", path, case)
        return
    stack, k = target
    mask = ctx.guarded(case, partial(read_png_mask, path))
    if mask is None:
        return
    rows, cols = stack.geometry.shape_kji[1:]
    if mask.shape != (rows, cols):
        ctx.issue(Severity.ERROR, "labels.png-size-mismatch",
                   f"the mask is {mask.shape[1]}x{mask.shape[0]} pixels but its slice is "
                   f"{cols}x{rows}; it is not shown (it would land in the wrong place)", path, case)
        return
    geometry = single_slice_geometry(stack.geometry, k)
    array = mask[np.newaxis].astype(np.int32)

    def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
        return array.copy(), []

    label_stack = ImageStack(f"png:{path}", stack.uid, geometry,
                             {"kind": "labels", "source": str(path), "slice_index": k}, load)
    case.label_maps.append(LabelMap(path.stem, label_stack, scheme, str(path), stack.uid))


def bind_voc(ctx: OpenContext, case: Case, path: Path, slices: dict[str, tuple[ImageStack, int]], stem: str,
             set_name: str) -> None:
    voc = ctx.guarded(case, partial(read_voc, path))
    if voc is None:
        return
    case.issues.extend(voc.issues)
    target = slices.get(stem)
    if target is None:
        ctx.issue(Severity.WARNING, "voc.unbound",
                   f"no DICOM slice named {stem!r} in case {case.id}; the boxes are listed but not "
                   "placed", path, case)
    stack, k = target if target is not None else (None, None)
    if stack is not None and voc.width and voc.height:
        rows, cols = stack.geometry.shape_kji[1:]
        if (voc.width, voc.height) != (cols, rows):
            ctx.issue(Severity.ERROR, "voc.size-mismatch",
                       f"the annotation is for a {voc.width}x{voc.height} image but the slice is "
                       f"{cols}x{rows}; the boxes are listed but not placed", path, case)
            stack, k = None, None
    box_set = next((b for b in case.box_sets if b.name == set_name), None)
    if box_set is None:
        box_set = BoxSet(set_name, str(path.parent))
        case.box_sets.append(box_set)
    for obj in voc.objects:
        corners = None
        if stack is not None and k is not None:
            plane = stack.geometry.slice_plane(k)
            # VOC coordinates are image coordinates with the image's top-left corner at
            # (0, 0); pixel centres are at +0.5, lumbarview's pixel centres at integers.
            edge = np.array([[obj.xmin, obj.ymin], [obj.xmax, obj.ymin],
                             [obj.xmax, obj.ymax], [obj.xmin, obj.ymax]]) - 0.5
            corners = plane.pixel_to_lps(edge)
        box_set.boxes.append(Box(obj.name, obj.side, obj.level, obj.severity, obj.xmin, obj.ymin,
                                 obj.xmax, obj.ymax, None if stack is None else stack.uid, k,
                                 corners, str(path), slice_name=stem))


def single_slice_geometry(geometry: VolumeGeometry, k: int) -> VolumeGeometry:
    """The grid of slice ``k`` alone (a one-slice stack in the same place)."""
    affine = np.array(geometry.ijk_to_lps)
    affine[:3, 3] = geometry.index_to_lps((0.0, 0.0, float(k)))
    return VolumeGeometry((1, geometry.shape_kji[1], geometry.shape_kji[2]), affine)


def slice_index(case: Case) -> dict[str, tuple[ImageStack, int]]:
    """File stem -> (stack, slice index) for every DICOM slice of a case."""
    out: dict[str, tuple[ImageStack, int]] = {}
    for stack in case.stacks():
        for k, path in enumerate(stack.meta.get("files") or []):
            if path:
                out.setdefault(Path(path).stem, (stack, k))
    return out


def best_image_for(label_path: Path, images: list[Path]) -> Path | None:
    """The image a label volume belongs to: same folder, longest common name prefix."""
    candidates = [p for p in images if p.parent == label_path.parent] or images
    if not candidates:
        return None
    # A character-wise common prefix of the file names (t2 / t2_seg-manual), not of path components.
    return max(candidates, key=lambda p: (len(os.path.commonprefix([p.name, label_path.name])),  # noqa: RUF071
                                          -len(p.name)))
