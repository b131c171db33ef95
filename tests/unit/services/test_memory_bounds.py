"""Caches stay within the bytes they own; a released case's volumes are freed; thumbnails do not
keep volumes in memory and come from disk the second time."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lumbarview.core.dataset import Case
from lumbarview.core.geometry import PlaneOrientation
from lumbarview.core.types import ImageStack, Series
from lumbarview.services.case_loader import CaseMemory, case_bytes
from lumbarview.services.thumbnails import thumbnail
from lumbarview.slicing.cache import PlaneCache
from lumbarview.slicing.planes import standard_plane
from tests.dicom_helpers import sagittal


class Counting:
    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.calls = 0
        self.shape = shape

    def __call__(self) -> tuple[np.ndarray, list[object]]:
        self.calls += 1
        return np.ones(self.shape, dtype=np.int16), []


def _case(name: str, n: int = 10) -> tuple[Case, Counting]:
    geometry = sagittal(n=n, rows=64, cols=64)
    loader = Counting(geometry.shape_kji)
    stack = ImageStack(f"{name}#1", name, geometry, {"source": None}, loader)  # type: ignore[arg-type]
    return Case(id=name, series=[Series(name, "T2", "MR", 1, [stack])]), loader


def test_plane_cache_owns_its_bytes_and_stays_within_them() -> None:
    case, _ = _case("a", n=12)
    stack = case.series[0].stacks[0]
    cache = PlaneCache(max_bytes=3 * 64 * 64 * 4)
    for k in range(12):
        plane = stack.geometry.slice_plane(k)
        view = standard_plane(stack.geometry, PlaneOrientation.SAGITTAL, plane.origin_lps)
        got = cache.get(stack, view)
        assert not np.shares_memory(got.pixels, stack.pixels())  # a copy, not a view of the volume
        assert cache.used_bytes <= cache.max_bytes
    # Reformats too.
    for y in range(-20, 20, 4):
        point = stack.geometry.centre_lps() + np.array([0.0, 0.0, float(y)])
        view = standard_plane(stack.geometry, PlaneOrientation.AXIAL, point)
        cache.get(stack, view)
        assert cache.used_bytes <= cache.max_bytes


def test_case_memory_releases_the_oldest_cases_beyond_its_budget() -> None:
    cases = [_case(str(n)) for n in range(4)]
    one = cases[0][0].series[0].stacks[0]
    size = one.pixels().nbytes
    memory = CaseMemory(max_bytes=2 * size)
    for case, _ in cases:
        case.series[0].stacks[0].pixels()
        memory.touch(case)
        memory.trim(keep=(case,))
    loaded = [case.series[0].stacks[0].is_loaded for case, _ in cases]
    assert loaded == [False, False, True, True]
    assert sum(case_bytes(c) for c, _ in cases) <= 2 * size
    # The current case stays even when it alone is over the budget.
    tiny = CaseMemory(max_bytes=1)
    current = cases[3][0]
    tiny.touch(current)
    assert tiny.trim(keep=(current,)) == [] and current.series[0].stacks[0].is_loaded
    # A released case decodes again when shown.
    first, loader = cases[0]
    before = loader.calls
    first.series[0].stacks[0].pixels()
    assert loader.calls == before + 1


def test_thumbnails_do_not_keep_volumes_and_come_from_disk(tmp_path: Path) -> None:
    case, loader = _case("t")
    series = case.series[0]
    image = thumbnail(series, tmp_path)
    assert image.dtype == np.uint8 and image.ndim == 2 and max(image.shape) <= 64
    assert not series.stacks[0].is_loaded  # decoded for the thumbnail, then released
    calls = loader.calls
    again = thumbnail(series, tmp_path)
    assert np.array_equal(again, image) and loader.calls == calls  # from the disk cache
    # A stack that was already decoded (the current case's) stays decoded.
    series.stacks[0].pixels()
    thumbnail(series, tmp_path / "other")
    assert series.stacks[0].is_loaded


def test_a_thumbnail_never_releases_a_volume_the_viewer_is_decoding(tmp_path: Path) -> None:
    """The viewer decodes a case's series (to show it) while the browser makes the same
    series' thumbnail on the other worker thread: the volume stays decoded."""
    geometry = sagittal(n=6, rows=32, cols=32)
    gate = threading.Event()
    loading = threading.Event()

    def load() -> tuple[np.ndarray, list[object]]:
        loading.set()
        gate.wait(10)
        return np.ones(geometry.shape_kji, dtype=np.int16), []

    stack = ImageStack("race#1", "race", geometry, {"source": None}, load)  # type: ignore[arg-type]
    series = Series("race", "T2", "MR", 1, [stack])
    viewer = threading.Thread(target=stack.pixels)
    viewer.start()
    assert loading.wait(10)  # the viewer is decoding: the browser asks for the thumbnail now
    browser = threading.Thread(target=lambda: thumbnail(series, tmp_path))
    browser.start()
    browser.join(0.3)  # let the browser reach the stack while the decode is under way
    gate.set()
    for t in (viewer, browser):
        t.join(10)
    assert stack.is_loaded  # what the viewer decoded is still there to show
