"""Slice cache: immutable requests as keys, bounded by bytes, safe across threads, with
prefetching of neighbours off the GUI thread."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import SlicePlane
from lumbarview.core.types import ImageStack
from lumbarview.slicing.reformat import Kind, Reformatted, reformat


@dataclass(frozen=True)
class SliceRequest:
    """Everything needed to cut one native slice; hashable, so it is the cache key."""

    stack_uid: str
    k: int


class SliceCache:
    """Least-recently-used cache of read-only, C-contiguous 2D slices, at most ``max_bytes``."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._used = 0
        self._entries: OrderedDict[SliceRequest, npt.NDArray[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def used_bytes(self) -> int:
        return self._used

    def get(self, stack: ImageStack, k: int) -> npt.NDArray[Any]:
        request = SliceRequest(stack.uid, k)
        with self._lock:
            hit = self._entries.get(request)
            if hit is not None:
                self._entries.move_to_end(request)
                self.hits += 1
                return hit
            self.misses += 1
        pixels = np.ascontiguousarray(stack.pixels()[k])  # decoding may take long: no lock held
        pixels.setflags(write=False)
        with self._lock:
            raced = self._entries.get(request)
            if raced is not None:
                return raced
            self._entries[request] = pixels
            self._used += pixels.nbytes
            while self._used > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._used -= evicted.nbytes
        return pixels

    def contains(self, stack: ImageStack, k: int) -> bool:
        with self._lock:
            return SliceRequest(stack.uid, k) in self._entries

    def prefetch(self, stack: ImageStack, ks: Iterable[int], executor: Executor) -> list[Future[Any]]:
        """Warm slices ``ks`` of ``stack`` in ``executor`` (call after each slice change)."""
        futures = []
        n = stack.geometry.shape_kji[0]
        for k in ks:
            if 0 <= k < n and not self.contains(stack, k):
                futures.append(executor.submit(self.get, stack, k))
        return futures

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._used = 0


def plane_key(plane: SlicePlane) -> tuple[Any, ...]:
    """A hashable key for a plane (rounded to 1e-6 mm / 1e-9): equal planes, equal pixels."""
    return (tuple(np.round(plane.origin_lps, 6)), tuple(np.round(plane.row_direction_lps, 9)),
            tuple(np.round(plane.column_direction_lps, 9)), tuple(np.round(plane.spacing_mm, 9)), plane.shape_rc)


def _owned(array: npt.NDArray[Any], volume: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array`` as a C-contiguous array of its own: copied only when it is a view into the volume
    (a native slice) or not contiguous; a freshly computed reformat is kept as it is (one copy
    fewer per plane: less for the allocator to churn while scrolling)."""
    if array.flags.c_contiguous and not np.shares_memory(array, volume):
        return array
    return np.array(array, order="C", copy=True)


#: One plane-cache request: the pixels of ``stack`` on ``plane``, as an image or as labels.
Request = tuple[ImageStack, SlicePlane, Kind]


class PlaneCache:
    """The pixels of volumes on view planes (:func:`lumbarview.slicing.reformat.reformat`),
    images and label maps alike (``kind``), least recently used first out, bounded by the bytes
    it owns (entries are copies, never views into a decoded volume).

    Entries are keyed by ``(stack uid, stack revision, kind, plane)``: a stack edited through
    :meth:`~lumbarview.core.types.ImageStack.replace_region` has a new revision, so its old
    planes are never shown again; :meth:`invalidate` frees them at once.

    :meth:`prefetch` computes planes a view is likely to show next (the neighbours along its
    normal, the image's and its label maps') on a background thread, as a viewer scrolling
    through slices does: a request for a plane being prefetched waits for it instead of
    computing it twice. ``hits``, ``misses`` and ``waits`` (a request that met its plane in
    flight) count the requests."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._used = 0
        self._entries: OrderedDict[tuple[Any, ...], Reformatted] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], Future[Reformatted]] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.hits = self.misses = self.waits = 0

    @property
    def used_bytes(self) -> int:
        return self._used

    @staticmethod
    def _key(stack: ImageStack, plane: SlicePlane, kind: Kind, revision: int | None = None) -> tuple[Any, ...]:
        return (stack.uid, stack.revision if revision is None else revision, kind, plane_key(plane))

    def get(self, stack: ImageStack, plane: SlicePlane, kind: Kind = "image") -> Reformatted:
        key = self._key(stack, plane, kind)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit
            pending = self._inflight.get(key)
            if pending is None or not pending.cancel():
                if pending is not None:
                    self.waits += 1
            else:
                del self._inflight[key]
                pending = None
            if pending is None:
                self.misses += 1
        if pending is not None:
            return pending.result()
        return self._compute(stack, plane, kind)

    def _compute(self, stack: ImageStack, plane: SlicePlane, kind: Kind) -> Reformatted:
        revision, volume = stack.versioned_pixels()
        found = reformat(volume, stack.geometry, plane, kind=kind)
        pixels, inside = _owned(found.pixels, volume), _owned(found.inside, volume)
        pixels.setflags(write=False)
        inside.setflags(write=False)
        owned = Reformatted(pixels, inside, found.native_k, found.plane, found.method)
        size = pixels.nbytes + inside.nbytes
        key = self._key(stack, plane, kind, revision)  # the revision these pixels are of
        with self._lock:
            if key not in self._entries and revision == stack.revision:
                self._entries[key] = owned
                self._used += size
                while self._used > self.max_bytes and len(self._entries) > 1:
                    _, evicted = self._entries.popitem(last=False)
                    self._used -= evicted.pixels.nbytes + evicted.inside.nbytes
        return owned

    def prefetch(self, stack: ImageStack, planes: Iterable[SlicePlane], kind: Kind = "image") -> int:
        """:meth:`prefetch_all` of ``planes`` of one stack."""
        return self.prefetch_all([(stack, p, kind) for p in planes])

    def prefetch_all(self, requests: Iterable[Request]) -> int:
        """Compute ``requests`` (most wanted first) on the cache's background thread unless they
        are cached or in flight; prefetches asked before and not started yet are dropped (the
        view has moved on). Returns how many were queued."""
        wanted = [(self._key(stack, plane, kind), stack, plane, kind) for stack, plane, kind in requests]
        keys = {w[0] for w in wanted}
        queued = 0
        with self._lock:
            for key, future in list(self._inflight.items()):
                if key not in keys and future.cancel():
                    del self._inflight[key]
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumbarview-prefetch")
            for key, stack, plane, kind in wanted:
                if key in self._entries or key in self._inflight:
                    continue
                future = self._executor.submit(self._prefetched, key, stack, plane, kind)
                self._inflight[key] = future
                queued += 1
        return queued

    def _prefetched(self, key: tuple[Any, ...], stack: ImageStack, plane: SlicePlane, kind: Kind) -> Reformatted:
        try:
            return self._compute(stack, plane, kind)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def invalidate(self, uid: str) -> int:
        """Drop every plane of the stack ``uid`` (all revisions, queued prefetches too), as after
        an edit; returns how many cached planes were dropped."""
        with self._lock:
            for key, future in list(self._inflight.items()):
                if key[0] == uid and future.cancel():
                    del self._inflight[key]
            stale = [key for key in self._entries if key[0] == uid]
            for key in stale:
                evicted = self._entries.pop(key)
                self._used -= evicted.pixels.nbytes + evicted.inside.nbytes
            return len(stale)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def idle(self) -> bool:
        """True when no prefetch is queued or running."""
        with self._lock:
            return not self._inflight

    def clear(self) -> None:
        with self._lock:
            for future in self._inflight.values():
                future.cancel()
            self._inflight.clear()
            self._entries.clear()
            self._used = 0
