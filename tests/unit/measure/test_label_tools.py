"""Label tools against constructed truths, on the map's own grid (anisotropic, oblique planes)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.measure import label_tools as lt
from lumbarview.model.commands import UndoStack
from lumbarview.model.label_edits import ArrayTarget, LabelEditor


def _geometry(shape=(40, 60, 50), spacing=(0.7, 0.9, 3.3), origin=(-20.0, -30.0, 10.0)) -> VolumeGeometry:
    return VolumeGeometry.from_directions(shape, origin, (1, 0, 0), (0, 1, 0), spacing)


def _spider_style(shape=(40, 60, 50)) -> np.ndarray:
    """Vertebrae 1-3 as slabs, discs 201-202 between them, the canal 100 as a column behind."""
    labels = np.zeros(shape, dtype=np.uint16)
    labels[2:10, 10:40, 10:40] = 1
    labels[10:13, 10:40, 10:40] = 201
    labels[13:22, 10:40, 10:40] = 2
    labels[22:25, 10:40, 10:40] = 202
    labels[25:35, 10:40, 10:40] = 3
    labels[:, 42:50, 20:30] = 100
    return labels


def test_painting_the_canal_with_preserve_on_changes_no_other_label() -> None:
    geometry, labels = _geometry(), _spider_style()
    centre = geometry.index_to_lps(np.array([[25.0, 40.0, 11.0]]))[0]  # on a disc, beside the canal
    flat = lt.sphere_voxels(geometry, centre, 12.0)
    selection = lt.paint(labels, flat, 100, preserve=True)
    after = labels.copy()
    after.reshape(-1)[selection.flat] = selection.values
    others = (labels != 0) & (labels != 100)
    assert np.array_equal(after[others], labels[others])
    assert (after == 100).sum() > (labels == 100).sum()  # it did paint (background)
    unpreserved = lt.paint(labels, flat, 100, preserve=False)
    assert np.any(labels.reshape(-1)[unpreserved.flat] == 201)  # the test can fail: the brush reaches the disc


@pytest.mark.parametrize("radius", [5.0, 8.0, 11.0])
def test_a_sphere_covers_its_analytic_volume_on_anisotropic_voxels(radius: float) -> None:
    geometry = _geometry(spacing=(0.6, 0.8, 1.7))
    centre = geometry.index_to_lps(np.array([[25.3, 30.6, 20.2]]))[0]
    flat = lt.sphere_voxels(geometry, centre, radius)
    volume = flat.size * 0.6 * 0.8 * 1.7
    truth = 4.0 / 3.0 * math.pi * radius**3
    assert abs(volume - truth) / truth < 0.03
    # every selected centre is within the radius, and the distinct voxels were each counted once
    k, j, i = np.unravel_index(flat, geometry.shape_kji)
    pts = geometry.index_to_lps(np.stack([i, j, k], axis=1).astype(float))
    assert np.all(np.linalg.norm(pts - centre, axis=1) <= radius + 1e-9)
    assert np.unique(flat).size == flat.size


def test_a_disk_on_an_acquired_plane_is_one_slice_and_on_an_oblique_plane_one_voxel_per_line() -> None:
    geometry = _geometry(spacing=(1.0, 1.0, 1.0))
    axial = lt.EditPlane.of(geometry.slice_plane(12))
    centre = geometry.index_to_lps(np.array([[25.0, 30.0, 12.0]]))[0]
    flat = lt.disk_voxels(geometry, axial, centre, 6.0)
    k, j, i = np.unravel_index(flat, geometry.shape_kji)
    assert set(k.tolist()) == {12}
    assert abs(flat.size - math.pi * 36) / (math.pi * 36) < 0.06
    c = math.cos(math.radians(30))
    oblique = lt.EditPlane(centre, np.array([1.0, 0, 0]), np.array([0, c, math.sin(math.radians(30))]))
    flat = lt.disk_voxels(geometry, oblique, centre, 8.0)
    k, j, i = np.unravel_index(flat, geometry.shape_kji)
    # the plane is nearest to axial: each (i, j) line along k is crossed exactly once
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == flat.size
    # its area projected along k is the disk's area times cos(30)
    assert abs(flat.size - math.pi * 64 * c) / (math.pi * 64 * c) < 0.06


def test_threshold_limits_painting_to_the_intensity_range() -> None:
    geometry = _geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint16)
    image = np.zeros(geometry.shape_kji, dtype=np.int16)
    image[:, :, 25:] = 500
    flat = lt.sphere_voxels(geometry, geometry.index_to_lps(np.array([[25.0, 30.0, 20.0]]))[0], 6.0)
    selection = lt.paint(labels, flat, 4, intensity=image, threshold=(400, 600))
    _, _, i = np.unravel_index(selection.flat, geometry.shape_kji)
    assert selection.size > 0 and i.min() >= 25
    with pytest.raises(lt.ToolError, match="image"):
        lt.paint(labels, flat, 4, threshold=(400, 600))


def test_contiguous_and_global_fill() -> None:
    geometry = _geometry(shape=(5, 20, 20), spacing=(1, 1, 1))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[:, 5, :] = 9  # a wall splitting each slice into two regions
    seed = geometry.index_to_lps(np.array([[3.0, 2.0, 2.0]]))[0]
    plane = lt.EditPlane.of(geometry.slice_plane(2))
    contiguous = lt.fill(labels, geometry, seed, 4, plane=plane)
    k, j, _ = np.unravel_index(contiguous.flat, geometry.shape_kji)
    assert set(k.tolist()) == {2} and j.max() == 4 and contiguous.size == 5 * 20
    in_plane = lt.fill(labels, geometry, seed, 4, plane=plane, contiguous=False)
    assert in_plane.size == 19 * 20
    volume = lt.fill(labels, geometry, seed, 4)
    assert volume.size == 5 * 5 * 20
    on_other = lt.fill(labels, geometry, geometry.index_to_lps(np.array([[3.0, 5.0, 2.0]]))[0], 4)
    assert on_other.size == 0  # preserve: a seed on label 9 fills nothing
    with pytest.raises(lt.ToolError, match="outside"):
        lt.fill(labels, geometry, (500.0, 0.0, 0.0), 4)


def test_polygon_fills_a_square_on_an_oblique_plane() -> None:
    geometry = _geometry(shape=(40, 40, 40), spacing=(1, 1, 1), origin=(0, 0, 0))
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    plane = lt.EditPlane(np.array([20.0, 20, 20]), np.array([1.0, 0, 0]), np.array([0, c, s]))
    square = [plane.origin_lps + a * plane.right_lps + b * plane.down_lps
              for a, b in ((-5, -5), (5, -5), (5, 5), (-5, 5))]
    flat = lt.polygon_voxels(geometry, plane, square)
    k, j, i = np.unravel_index(flat, geometry.shape_kji)
    pts = np.stack([i, j, k], axis=1).astype(float)
    rel = pts - plane.origin_lps
    assert np.all(np.abs(rel @ plane.right_lps) <= 5 + 1e-9) and np.all(np.abs(rel @ plane.down_lps) <= 5 + 1e-9)
    # 10 x 10 mm of plane seen along k: about 100 cos(20) voxels (one per line)
    assert abs(flat.size - 100 * c) / (100 * c) < 0.15
    with pytest.raises(lt.ToolError, match="3 points"):
        lt.polygon_voxels(geometry, plane, square[:2])


def test_islands_keep_largest_and_remove_small() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.int32)
    labels[1:4, 1:4, 1:4] = 3  # 27 voxels
    labels[6, 6, 6] = 3  # 1 voxel
    labels[6:8, 1:3, 6] = 3  # 4 voxels
    labels[8, 8, 8] = 5  # another label, untouched
    assert lt.islands(labels, 3, keep_largest=True).size == 5
    small = lt.islands(labels, 3, min_voxels=2)
    assert small.flat.tolist() == [666]
    assert lt.islands(labels, 3, min_voxels=5).size == 5


def test_interpolation_between_key_slices_is_recorded_and_follows_the_shapes() -> None:
    geometry = _geometry(shape=(11, 40, 40), spacing=(1, 1, 2), origin=(0, 0, 0))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint16)
    yy, xx = np.mgrid[0:40, 0:40]
    labels[0][(yy - 20) ** 2 + (xx - 20) ** 2 <= 4**2] = 100
    labels[10][(yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2] = 100
    labels[5, 0, 0] = 2  # another label inside the range: preserved
    selection, interpolated = lt.interpolate(labels, geometry, 100, (0, 0, 1))
    assert interpolated == list(range(1, 10))
    out = labels.copy()
    out.reshape(-1)[selection.flat] = selection.values
    areas = [(out[k] == 100).sum() for k in range(11)]
    radii = [math.sqrt(a / math.pi) for a in areas]
    for k in range(1, 10):  # the radius grows linearly from the first key's to the last's
        assert abs(radii[k] - (radii[0] + (radii[10] - radii[0]) * k / 10)) < 0.5
    assert out[5, 0, 0] == 2
    with pytest.raises(lt.ToolError, match="degrees"):
        lt.interpolate(labels, geometry, 100, (0, 0.5, 1))


def test_undo_and_redo_of_every_tool() -> None:
    geometry, labels = _geometry(), _spider_style()
    editor = LabelEditor(ArrayTarget(labels.copy()), UndoStack())
    centre = geometry.index_to_lps(np.array([[25.0, 45.0, 20.0]]))[0]
    plane = lt.EditPlane.of(geometry.slice_plane(20))
    states = [editor.target.array.copy()]

    def run(selection: lt.Selection, op: str) -> None:
        editor.apply(selection.flat, selection.values, {"op": op})
        states.append(editor.target.array.copy())

    arr = editor.target.array
    run(lt.paint(arr, lt.disk_voxels(geometry, plane, centre, 6.0), 100), "paint")
    run(lt.paint(arr, lt.sphere_voxels(geometry, centre, 4.0), 100, erase=True), "erase")
    run(lt.fill(arr, geometry, geometry.index_to_lps(np.array([[2.0, 2.0, 20.0]]))[0], 7, plane=plane), "fill")
    square = [centre + a * plane.right_lps + b * plane.down_lps for a, b in ((-3, -3), (3, -3), (3, 3), (-3, 3))]
    run(lt.paint(arr, lt.polygon_voxels(geometry, plane, square), 9), "polygon")
    run(lt.islands(arr, 9, min_voxels=1000), "islands")
    run(lt.relabel(arr, 3, 4), "relabel")
    run(lt.interpolate(arr, geometry, 100, (0, 0, 1), key_slices=[17, 23])[0], "interpolate")  # over the erased hole
    changed = [not np.array_equal(a, b) for a, b in itertools.pairwise(states)]
    assert changed == [True] * 7
    for expected in reversed(states[:-1]):
        assert editor.undo.undo()
        assert np.array_equal(editor.target.array, expected)
    for expected in states[1:]:
        assert editor.undo.redo()
        assert np.array_equal(editor.target.array, expected)
