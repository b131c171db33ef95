"""Window/level presets for MR, where stored values have no fixed unit.

* ``auto``: the 1st to 99th percentile of the stack (computed once per stack, on a sample);
* ``dicom``: (0028,1050)/(0028,1051) *Window Center/Width* when the file has them;
* ``T1`` / ``T2``: the auto range stretched the way T1 (fat and marrow bright, CSF dark) and T2
  (CSF bright) images are usually read: T1 shows 0.5-95 %, T2 0-99.7 % of the range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.types import ImageStack
from lumbarview.model.view_state import WindowLevel

PRESETS = ("auto", "dicom", "T1", "T2")


def _percentiles(pixels: npt.NDArray[Any], q: tuple[float, ...]) -> list[float]:
    sample = pixels[:, ::2, ::2].ravel() if pixels.ndim == 3 else pixels.ravel()
    sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if sample.size == 0:
        return [0.0 for _ in q]
    return [float(v) for v in np.percentile(sample, q)]


def preset_window(stack: ImageStack, name: str) -> WindowLevel | None:
    """The preset ``name`` for ``stack`` (None when it does not apply, e.g. no DICOM window)."""
    if name == "dicom":
        window = stack.meta.get("window")
        if not window:
            return None
        center, width = window
        return WindowLevel(float(center), max(float(width), 1e-3))
    memo: dict[str, WindowLevel] = stack.__dict__.setdefault("_lv_windows", {})
    if name in memo and stack.is_loaded:
        return memo[name]  # percentiles of a real-size volume take a while: once per stack
    pixels = stack.pixels()
    lo_q, hi_q = {"auto": (1.0, 99.0), "T1": (0.5, 95.0), "T2": (0.0, 99.7)}.get(name, (1.0, 99.0))
    lo, hi = _percentiles(pixels, (lo_q, hi_q))
    if hi <= lo:
        hi = lo + 1.0
    memo[name] = WindowLevel((lo + hi) / 2, hi - lo)
    return memo[name]


def default_window(stack: ImageStack) -> WindowLevel:
    """What a series opens with: the DICOM window if present, else the automatic one."""
    return preset_window(stack, "dicom") or preset_window(stack, "auto") or WindowLevel(0.5, 1.0)
