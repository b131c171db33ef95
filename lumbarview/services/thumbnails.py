"""Series thumbnails: one middle slice, small, 8-bit, kept on disk beside the header index so a
re-opened dataset shows them without decoding anything.

A thumbnail decodes one slice where the reader can (DICOM: one file); otherwise the stack is
decoded without being kept (unless it is already in memory: the current case's), so filling
the browser of a 500-case dataset never holds 500 volumes, and a thumbnail never releases a
volume the viewer is decoding at the same time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lumbarview.core.fs import atomic_write_bytes
from lumbarview.core.types import ImageStack, Series
from lumbarview.io.dicom.scan import default_cache_dir

THUMB_PX = 48


def _key(stack: ImageStack) -> str:
    source = stack.meta.get("source") or (stack.meta.get("files") or [None])[len(stack.meta.get("files") or [0]) // 2]
    stamp = ""
    if source:
        try:
            st = os.stat(source)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
    return hashlib.sha1(f"{stack.uid}|{source}|{stamp}|{THUMB_PX}".encode()).hexdigest()


def _folder(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir() / "thumbnails"


def _make(stack: ImageStack) -> npt.NDArray[np.uint8]:
    # One slice, without keeping the stack decoded (slice_pixels never caches what it decodes).
    image = np.asarray(stack.slice_pixels(stack.n_slices // 2), dtype=np.float32)
    step = max(1, max(image.shape) // THUMB_PX)
    small = image[::step, ::step]
    lo, hi = np.percentile(small, (1, 99)) if small.size else (0.0, 1.0)
    scaled: npt.NDArray[np.uint8] = np.clip((small - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)
    return scaled


def thumbnail(series: Series, cache_dir: str | Path | None = None) -> npt.NDArray[np.uint8]:
    """The thumbnail of ``series`` (its middle stack's middle slice), from the disk cache when
    it is there and its source file is unchanged."""
    stack = series.stacks[len(series.stacks) // 2]
    path = _folder(cache_dir) / f"{_key(stack)}.npy"
    try:
        cached: npt.NDArray[np.uint8] = np.load(path, allow_pickle=False)
        if cached.dtype == np.uint8 and cached.ndim == 2 and max(cached.shape) <= 4 * THUMB_PX:
            return cached
    except (OSError, ValueError, EOFError):
        pass
    image = _make(stack)
    try:
        import io

        buffer = io.BytesIO()
        np.save(buffer, image, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a read-only cache folder only costs the next decode
    return image
