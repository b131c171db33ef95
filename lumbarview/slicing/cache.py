"""Slice cache: immutable requests as keys, bounded by bytes, safe across threads, with
prefetching of neighbours off the GUI thread."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Executor, Future
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


class PlaneCache:
    """The pixels of volumes on view planes (:func:`lumbarview.slicing.reformat.reformat`),
    least recently used first out, bounded by the bytes it owns (entries are copies, never views
    into a decoded volume)."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._used = 0
        self._entries: OrderedDict[tuple[Any, ...], Reformatted] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        return self._used

    def get(self, stack: ImageStack, plane: SlicePlane, kind: Kind = "image") -> Reformatted:
        key = (stack.uid, kind, plane_key(plane))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        found = reformat(stack.pixels(), stack.geometry, plane, kind=kind)
        pixels = np.array(found.pixels, order="C", copy=True)
        inside = np.array(found.inside, order="C", copy=True)
        pixels.setflags(write=False)
        inside.setflags(write=False)
        owned = Reformatted(pixels, inside, found.native_k, found.plane)
        size = pixels.nbytes + inside.nbytes
        with self._lock:
            if key not in self._entries:
                self._entries[key] = owned
                self._used += size
                while self._used > self.max_bytes and len(self._entries) > 1:
                    _, evicted = self._entries.popitem(last=False)
                    self._used -= evicted.pixels.nbytes + evicted.inside.nbytes
        return owned

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._used = 0
