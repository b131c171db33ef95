"""The plane cache computes the planes a reformatted view shows next on a background thread:
a prefetched plane is the same pixels as one computed on request, a request for a plane in
flight waits for it instead of computing it again, stale prefetches are dropped, and the view
state's neighbour planes are exactly the planes a step shows."""

from __future__ import annotations

import threading

import numpy as np

from lumbarview.core.geometry import PlaneOrientation
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.cursor import CursorModel
from lumbarview.model.view_state import ViewState
from lumbarview.slicing.cache import PlaneCache, plane_key
from lumbarview.slicing.reformat import reformat
from tests.dicom_helpers import ramp, sagittal


def _stack(loader_gate: threading.Event | None = None) -> ImageStack:
    geometry = sagittal(n=12, rows=40, cols=36, spacing=3.0)
    data = ramp(geometry.shape_kji).astype(np.int16)

    def load() -> tuple[np.ndarray, list[object]]:
        if loader_gate is not None:
            loader_gate.wait(10)
        return data, []

    return ImageStack("s#1", "s", geometry, {"source": None}, load)  # type: ignore[arg-type]


def _axial_view(stack: ImageStack) -> tuple[ViewState, CursorModel]:
    cursor = CursorModel()
    cursor.set_crosshair(stack.geometry.centre_lps())
    view = ViewState("axial", PlaneOrientation.AXIAL, cursor)
    view.set_series(Series("s", "T2", "MR", 1, [stack]))
    return view, cursor


def test_neighbour_planes_are_the_planes_a_step_shows() -> None:
    stack = _stack()
    view, _cursor = _axial_view(stack)
    assert view.mode == "reformat" and view.plane is not None
    up, down = view.neighbour_planes(direction=1)
    view.step(1)
    assert view.plane is not None and plane_key(view.plane) == plane_key(up)
    view.step(-2)
    assert view.plane is not None and plane_key(view.plane) == plane_key(down)
    sagittal_view = ViewState("sagittal", PlaneOrientation.SAGITTAL, _cursor)
    sagittal_view.set_series(view.series)
    assert sagittal_view.mode == "native" and sagittal_view.neighbour_planes() == []


def test_a_prefetched_plane_is_a_hit_with_the_same_pixels() -> None:
    stack = _stack()
    view, _cursor = _axial_view(stack)
    cache = PlaneCache()
    planes = view.neighbour_planes()
    assert cache.prefetch(stack, planes) == 2
    assert cache.prefetch(stack, planes) == 0  # in flight or cached: not queued twice
    for plane in planes:
        got = cache.get(stack, plane)
        direct = reformat(stack.pixels(), stack.geometry, plane)
        assert np.array_equal(got.pixels, direct.pixels) and np.array_equal(got.inside, direct.inside)
        assert got.method == direct.method != "native"
    assert cache.misses == 0 and cache.hits + cache.waits == 2


def test_a_request_meeting_its_plane_in_flight_waits_for_it() -> None:
    gate = threading.Event()
    stack = _stack(gate)
    view, _cursor = _axial_view(stack)
    cache = PlaneCache()
    first, second = view.neighbour_planes()
    cache.prefetch(stack, [first, second])
    done: list[object] = []
    asker = threading.Thread(target=lambda: done.append(cache.get(stack, first)))
    asker.start()
    asker.join(0.2)
    assert asker.is_alive() and not done  # waiting for the prefetch, not computing its own
    gate.set()
    asker.join(10)
    assert done and cache.waits == 1 and cache.misses == 0


def test_stale_prefetches_are_dropped() -> None:
    gate = threading.Event()
    stack = _stack(gate)
    view, _cursor = _axial_view(stack)
    cache = PlaneCache()
    cache.prefetch(stack, view.neighbour_planes())  # the first starts (and blocks), the second waits
    view.step(5)
    cache.prefetch(stack, view.neighbour_planes())
    gate.set()
    deadline = threading.Event()
    while not cache.idle():
        deadline.wait(0.01)
    # The waiting prefetch of the old neighbourhood was cancelled: 1 old + 2 new computed.
    assert len(cache) == 3


def test_a_cursor_moving_within_a_reformatted_plane_keeps_the_plane() -> None:
    """The reformatted plane depends on the cursor only along its normal: moving the crosshair
    within the plane (another view stepping) emits nothing and keeps the plane, which is the
    plane computed afresh; a move along the normal gives the fresh plane there."""
    from lumbarview.slicing.planes import standard_plane

    stack = _stack()
    view, cursor = _axial_view(stack)
    shown = view.plane
    assert shown is not None
    emitted: list[object] = []
    view.plane_changed.connect(emitted.append)
    in_plane = cursor.crosshair + 7.0 * shown.right_lps - 5.0 * shown.down_lps
    cursor.set_crosshair(in_plane)
    assert emitted == [] and view.plane is shown
    fresh = standard_plane(stack.geometry, view.orientation, in_plane, snap_to_slice=False)
    assert plane_key(fresh) == plane_key(shown)
    moved = in_plane + 4.5 * shown.normal_lps
    cursor.set_crosshair(moved)
    assert len(emitted) == 1 and view.plane is not None
    assert plane_key(view.plane) == plane_key(standard_plane(stack.geometry, view.orientation, moved,
                                                             snap_to_slice=False)) != plane_key(shown)
