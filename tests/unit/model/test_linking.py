"""Linking through one cursor, headless: views derive their slice from the shared crosshair."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.cursor import CursorModel
from lumbarview.core.geometry import PlaneOrientation
from lumbarview.model.view_state import ViewState
from lumbarview.slicing.cache import SliceCache
from tests.dicom_helpers import axial_block, sagittal


def _stack(uid: str, geometry) -> ImageStack:  # type: ignore[no-untyped-def]
    shape = geometry.shape_kji
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return ImageStack(uid, uid, geometry, {}, lambda: (data.copy(), []))


def _axial_series() -> Series:
    blocks = [axial_block(-60, 18), axial_block(-20, 5), axial_block(20, -8)]
    return Series("ax", "axial", "MR", 4, [_stack(f"ax#{n}", b) for n, b in enumerate(blocks)])


def _view(name: str, series: Series, cursor: CursorModel) -> ViewState:
    view = ViewState(name, PlaneOrientation(name), cursor)
    view.set_series(series)
    return view


def test_click_in_sagittal_moves_axial_to_the_block_and_slice() -> None:
    cursor = CursorModel()
    axial = _view("axial", _axial_series(), cursor)
    sag_geometry = VolumeGeometry.from_directions((9, 80, 80), (16.0, -40.0, 40.0), (0, 1, 0), (0, 0, -1),
                                                  (1.0, 1.0, 4.0))
    sag = _view("sagittal", Series("sag", "sag", "MR", 2, [_stack("sag#1", sag_geometry)]), cursor)
    block = axial.series.stacks[1]
    target = block.geometry.index_to_lps((8.0, 8.0, 2.0))
    cursor.set_crosshair(target)
    assert axial.current is not None and axial.current.stack is block and axial.current.k == 2
    assert sag.current is not None and sag.current.k == sag.series.stacks[0].geometry.nearest_slice(target)
    cursor.set_crosshair((0.0, 0.0, 100.0))  # far above every block
    assert axial.current is None


def test_scrolling_walks_through_angled_blocks_in_order() -> None:
    cursor = CursorModel()
    axial = _view("axial", _axial_series(), cursor)
    refs = axial.slices()
    z = [r.plane.origin_lps[2] for r in refs]
    assert z == sorted(z)  # inferior to superior, block by block
    axial.go_to(0)
    seen = []
    for _ in range(len(refs) + 3):
        assert axial.current is not None
        seen.append((axial.current.stack.uid, axial.current.k))
        axial.step(1)
    assert seen[: len(refs)] == [(r.stack.uid, r.k) for r in refs]
    assert seen[-1] == seen[len(refs) - 1]  # clamped at the last slice
    # Each step put the shared crosshair exactly on the slice shown.
    assert abs(axial.current.plane.signed_distance_mm(cursor.crosshair)) < 1e-9


def test_a_no_op_move_emits_nothing() -> None:
    cursor = CursorModel((1.0, 2.0, 3.0))
    calls: list[object] = []
    cursor.crosshair_changed.connect(calls.append)
    cursor.set_crosshair((1.0, 2.0, 3.0))
    assert calls == []
    cursor.step((0, 0, 1), 2.0)
    assert np.allclose(calls[0], (1, 2, 5))
    with pytest.raises(ValueError):
        cursor.set_crosshair((np.nan, 0, 0))


def test_slice_cache_is_bounded_by_bytes() -> None:
    stack = _stack("s", sagittal(n=10, rows=32, cols=32))
    per_slice = 32 * 32 * 4
    cache = SliceCache(max_bytes=3 * per_slice)
    for k in range(10):
        assert np.array_equal(cache.get(stack, k), stack.pixels()[k])
    assert cache.used_bytes <= 3 * per_slice
    assert cache.contains(stack, 9) and not cache.contains(stack, 0)
    cache.get(stack, 9)
    assert cache.hits == 1
