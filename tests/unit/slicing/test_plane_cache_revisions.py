"""The edit-ready data seam: a stack's region replacement copies on write and bumps its revision;
the plane cache keys planes by (uid, revision, kind, plane), so an edited label map never shows
a stale plane, and ``invalidate`` frees an edited stack's planes; label planes come through the
same ``reformat(kind="labels")`` path as images and agree with the independent overlay cutter;
the label-value memo follows the revision; an edited map is never released."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lumbarview.core.dataset import LabelMap
from lumbarview.core.labels import spider_scheme
from lumbarview.core.types import ImageStack
from lumbarview.model.overlays import label_values_of
from lumbarview.slicing.cache import PlaneCache
from lumbarview.slicing.cut import cut_labels
from lumbarview.slicing.planes import ViewPlane
from tests.dicom_helpers import sagittal


def _labels() -> ImageStack:
    geometry = sagittal(n=10, rows=30, cols=24, spacing=3.0)
    data = np.zeros(geometry.shape_kji, dtype=np.uint16)
    data[2:8, 5:20, 4:18] = 201
    data[4:6, 10:14, 8:12] = 100
    return ImageStack("mask#1", "mask", geometry, {"source": None}, lambda: (data, []))


def _oblique(stack: ImageStack) -> ViewPlane:
    """A plane tilted 20 degrees off axial through the middle of the label 100, at 0.7 mm pixels."""
    t = np.deg2rad(20.0)
    centre = stack.geometry.index_to_lps((9.5, 11.5, 4.5))
    return ViewPlane.centred(centre, (1.0, 0.0, 0.0), (0.0, np.cos(t), np.sin(t)), (0.7, 0.7), (60, 60))


def test_a_region_replacement_copies_on_write_and_bumps_the_revision() -> None:
    stack = _labels()
    before = stack.pixels()
    assert stack.revision == 0
    assert stack.replace_region((slice(0, 2), slice(0, 3), slice(0, 3)), 7) == 1
    after = stack.pixels()
    assert after is not before and not after.flags.writeable
    assert int(before[0, 0, 0]) == 0  # a reader holding the old array sees it unchanged
    assert np.all(after[0:2, 0:3, 0:3] == 7) and int(after[5, 12, 10]) == 100
    changed = np.argwhere(after != before)
    assert len(changed) == 2 * 3 * 3


@pytest.mark.parametrize("values, why", [(np.full((2, 3, 3), 0.5), "float"), (np.full((2, 3, 3), 70000), "fit"),
                                         (np.ones((4, 4)), "region")])
def test_values_that_do_not_fit_change_nothing(values: np.ndarray, why: str) -> None:
    stack = _labels()
    before = stack.pixels()
    with pytest.raises(ValueError) as info:
        stack.replace_region((slice(0, 2), slice(0, 3), slice(0, 3)), values)
    assert stack.revision == 0 and stack.pixels() is before
    assert "fit" in str(info.value) or "unchanged" in str(info.value), why


def test_an_edited_map_is_never_released() -> None:
    stack = _labels()
    stack.pixels()
    stack.release()
    assert not stack.is_loaded  # unedited: released, decoded again on demand
    stack.replace_region((slice(0, 1), slice(0, 1), slice(0, 1)), 3)
    stack.release()
    assert stack.is_loaded and int(stack.pixels()[0, 0, 0]) == 3


def test_label_planes_agree_with_the_independent_cutter_on_an_oblique_plane() -> None:
    stack = _labels()
    plane = _oblique(stack)
    got = PlaneCache().get(stack, plane, kind="labels")
    reference = cut_labels(stack.pixels(), stack.geometry, plane)
    assert got.pixels.dtype == stack.pixels().dtype
    assert {100, 201} <= set(np.unique(got.pixels).tolist())
    # Nearest-label sampling by two codes: equal but where a pixel centre falls on a voxel edge.
    assert np.mean(got.pixels == reference) > 0.995


def test_an_edit_is_seen_through_the_cache_and_invalidate_frees_the_old_planes() -> None:
    stack = _labels()
    cache = PlaneCache()
    plane = _oblique(stack)
    first = cache.get(stack, plane, kind="labels").pixels
    assert cache.get(stack, plane, kind="labels").pixels is first and cache.hits == 1
    stack.replace_region((slice(None), slice(None), slice(None)), np.where(stack.pixels() == 100, 0, stack.pixels()))
    edited = cache.get(stack, plane, kind="labels").pixels
    assert 100 in first and 100 not in edited  # not the cached plane of revision 0
    assert len(cache) == 2
    other = ImageStack("other#1", "other", stack.geometry, {"source": None}, lambda: (np.ones(stack.geometry.shape_kji,
                                                                                              np.uint8), []))
    cache.get(other, plane, kind="labels")
    used = cache.used_bytes
    assert cache.invalidate("mask#1") == 2
    assert len(cache) == 1 and cache.used_bytes == used - 2 * (first.nbytes + first.size)  # labels + inside mask
    assert cache.get(other, plane, kind="labels").pixels.max() == 1 and cache.hits == 2


def test_prefetch_all_queues_images_and_labels_together() -> None:
    stack = _labels()
    image = ImageStack("img#1", "img", stack.geometry, {"source": None},
                       lambda: (np.arange(np.prod(stack.geometry.shape_kji), dtype=np.float32)
                                .reshape(stack.geometry.shape_kji), []))
    cache = PlaneCache()
    plane = _oblique(stack)
    assert cache.prefetch_all([(image, plane, "image"), (stack, plane, "labels")]) == 2
    while not cache.idle():
        time.sleep(0.005)
    assert cache.get(stack, plane, kind="labels").pixels.dtype == np.uint16
    assert cache.get(image, plane).pixels.dtype == np.float32
    assert cache.misses == 0


def test_the_label_value_memo_follows_the_revision() -> None:
    stack = _labels()
    label_map = LabelMap("mask", stack, spider_scheme(), "", None)
    assert label_values_of(label_map) == [0, 100, 201]
    stack.replace_region((slice(0, 1), slice(0, 1), slice(0, 1)), 5)
    assert label_values_of(label_map) == [0, 5, 100, 201]
