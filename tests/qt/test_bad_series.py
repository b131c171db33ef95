"""One damaged series never stops a case: the viewer shows what decodes and lists the rest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def test_a_damaged_series_is_an_issue_and_the_other_series_shows(qtbot, window, demo_small,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "spider"
    shutil.copytree(demo_small["spider"], root)
    damaged = root / "images" / "1_t2.mha"
    data = damaged.read_bytes()
    # Keep the header, cut the compressed voxel data in half: it cannot be decoded.
    damaged.write_bytes(data[: len(data) // 2])
    open_and_wait(qtbot, window, root)
    shown = window.views['sagittal'].view_state.series
    assert shown is not None and shown.description == "t1"
    messages = [i for i in window.dataset.all_issues() if i.path and Path(i.path).name == "1_t2.mha"]
    assert messages, "the damaged series must be named in the issues"
    assert any(i.severity.name == "ERROR" for i in messages)
