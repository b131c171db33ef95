"""Test set-up shared by every test.

Headless by default: offscreen Qt, and VTK through OSMesa (EGL cannot draw into an offscreen
Qt window). The header index cache goes to a per-session temporary folder, never to the
user's cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ["QT_QPA_PLATFORM"] == "offscreen":
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
os.environ["LUMBARVIEW_CACHE_DIR"] = tempfile.mkdtemp(prefix="lumbarview-test-cache-")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or ``$LUMBARVIEW_SHARED_DATA``)."""
    override = os.environ.get("LUMBARVIEW_SHARED_DATA")
    candidates = [Path(override)] if override else []
    candidates += [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    for c in candidates:
        if (c / "MANIFEST.md").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    found = shared_data_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing on CI; the real-file tests cannot run")
        pytest.skip(reason="../shared/data is not beside this checkout (set LUMBARVIEW_SHARED_DATA)")
    return found
