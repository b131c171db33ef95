"""Use case: the built-in demo dataset (the lumbar phantom written in the five layouts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lumbarview.phantom.layouts import LAYOUTS, Sizes, write_all
from lumbarview.phantom.spine import PhantomParams

_MARKER = ".lumbarview-demo-complete"
_DEMO_VERSION = 2


def ensure_demo(root: str | Path, small: bool = False) -> dict[str, Path]:
    """Write the demo under ``root`` unless a complete one of this version is there; returns
    the root of each layout. Written to a temporary folder first and moved into place, so an
    interrupted run never leaves a half demo that looks complete."""
    root = Path(root)
    marker = root / _MARKER
    expected = {"version": _DEMO_VERSION, "small": small}
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == expected:
                return {name: root / name for name in LAYOUTS}
        except (OSError, ValueError):
            pass
    staging = root.with_name(root.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    write_all(staging, PhantomParams(), Sizes.small() if small else Sizes())
    (staging / _MARKER).write_text(json.dumps(expected), encoding="utf-8")
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    return {name: root / name for name in LAYOUTS}
