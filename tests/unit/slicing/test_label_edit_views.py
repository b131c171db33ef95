"""A brush on a disc-aligned oblique view and on the acquired sagittal of a sagittal-stored map
edits the map's own voxels, and the plane cache shows the edit at once (the revision moved)."""

from __future__ import annotations

import math

import numpy as np

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack
from lumbarview.measure import label_tools as lt
from lumbarview.model.commands import UndoStack
from lumbarview.model.label_edits import LabelEditor, StackTarget
from lumbarview.slicing.cache import PlaneCache
from lumbarview.slicing.planes import ViewPlane, disc_aligned_plane


def _sagittal_map() -> tuple[ImageStack, VolumeGeometry]:
    # stored sagittal like SPIDER: i along -z (inferior), j along +y (posterior), k along +x
    geometry = VolumeGeometry.from_directions((30, 120, 120), (-15.0, -60.0, 60.0), (0, 0, -1), (0, 1, 0),
                                              (1.0, 1.0, 1.0), slice_direction_lps=(1, 0, 0))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint16)
    labels[:, 20:60, 40:80] = 201  # a disc-like block, anterior
    return ImageStack("labels:x", "x", geometry, {"kind": "labels"}, lambda: (labels.copy(), [])), geometry


def test_a_brush_on_a_disc_aligned_oblique_view_shows_in_its_plane_at_once() -> None:
    stack, geometry = _sagittal_map()
    cache = PlaneCache()
    editor = LabelEditor(StackTarget(stack, on_change=lambda s: cache.invalidate(s.uid)), UndoStack())
    tilt = math.radians(15)
    plane = disc_aligned_plane((0.0, 20.0, 0.0), (0.0, -math.sin(tilt), math.cos(tilt)), 0.5, (160, 160))
    before = cache.get(stack, plane, "labels").pixels.copy()
    assert not (before == 100).any()
    centre = plane.pixel_to_lps(np.array([80.0, 80.0]))  # the view's centre pixel, where the mouse is
    flat = lt.disk_voxels(geometry, lt.EditPlane.of(plane), centre, 5.0)
    selection = lt.paint(stack.pixels(), flat, 100)
    editor.begin_stroke({"op": "paint", "label": 100, "shape": "disk", "radius_mm": 5.0})
    editor.stamp(selection.flat, selection.values, centre)
    editor.end_stroke()
    after = cache.get(stack, plane, "labels").pixels
    assert after[80, 80] == 100  # under the mouse, on the same view, no stale plane
    # the view shows a disk of about 5 mm radius (0.5 mm pixels, nearest voxel): area ~ 78.5 mm^2
    area = float((after == 100).sum()) * 0.25
    assert 0.75 * math.pi * 25 < area < 1.35 * math.pi * 25
    # only background voxels changed (preserve), and each within 5 mm of the centre in the plane
    k, j, i = np.unravel_index(editor.edits[0].flat.astype(np.int64), geometry.shape_kji)
    pts = geometry.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    rel = pts - centre
    n = plane.normal_lps
    assert np.all(np.linalg.norm(rel - np.outer(rel @ n, n), axis=1) <= 5.0 + 1e-9)
    editor.undo.undo()
    assert np.array_equal(cache.get(stack, plane, "labels").pixels, before)


def test_a_brush_on_the_acquired_sagittal_edits_exactly_that_slice() -> None:
    stack, geometry = _sagittal_map()
    cache = PlaneCache()
    editor = LabelEditor(StackTarget(stack, on_change=lambda s: cache.invalidate(s.uid)), UndoStack())
    plane = ViewPlane.from_slice_plane(geometry.slice_plane(12))
    centre = plane.pixel_to_lps(np.array([100.0, 95.0]))  # background, behind the disc
    selection = lt.paint(stack.pixels(), lt.disk_voxels(geometry, lt.EditPlane.of(plane), centre, 4.0), 100)
    editor.apply(selection.flat, selection.values, {"op": "paint"})
    k, _, _ = np.unravel_index(editor.edits[0].flat.astype(np.int64), geometry.shape_kji)
    assert set(k.tolist()) == {12}
    shown = cache.get(stack, plane, "labels").pixels
    assert shown[95, 100] == 100 and int((shown == 100).sum()) == editor.edits[0].changed
