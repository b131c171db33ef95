"""Compare mode in the viewer: the phantom pair hung facing (sagittal with sagittal, axial with
axial), registered off the GUI thread, scrolled in step onto the same anatomy (truth known from
the two poses), and the sidecar saying which study each view shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services import compare
from lumbarview.ui.compare_window import CompareWindow
from lumbarview.ui.threading import Worker
from tests.compare_helpers import LEVEL, phantom_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, LumbarPhantom, LumbarPhantom]:
    return phantom_pair(tmp_path_factory.mktemp("compare-ui"))


def test_pair_scrolls_in_step_onto_the_same_anatomy(qtbot: Any, pair: tuple[Path, Path, LumbarPhantom,
                                                                             LumbarPhantom]) -> None:
    cur_dir, pri_dir, current, prior = pair
    worker = Worker(max_workers=1)
    try:
        window = CompareWindow(compare.load_study(cur_dir), compare.load_study(pri_dir), worker, LEVEL)
        qtbot.addWidget(window)
        # ready comes through the GUI event loop (the registration runs on the worker), not before.
        with qtbot.waitSignal(window.ready, timeout=120_000):
            pass
        assert [(a.role, b.role) for a, b in window.pairs] == [("sagittal", "sagittal"), ("axial", "axial")]
        assert window.alignment["matrix_lps"] is not None, window.alignment
        for left, right in window.panes:
            for step in (3, -7, 5):
                left.step(step)
                plane = left.view.geometry.slice_plane(left.k)
                _, rows, cols = left.view.geometry.shape_kji
                point = plane.pixel_to_lps(((cols - 1) / 2.0, (rows - 1) / 2.0))
                truth = prior.to_lps(current.to_spine(point))
                landed = right.view.geometry.slice_plane(right.k)
                # Half a 1 mm slice, plus the registration's error at the view's centre (tenths of a mm).
                assert abs(float(landed.signed_distance_mm(truth))) <= 0.5 + 0.3
        doc = window.sidecar()
        assert [(v["study"], v["role"]) for v in doc["views"]] == [
            ("current", "sagittal"), ("prior", "sagittal"), ("current", "axial"), ("prior", "axial")]
        assert doc["patients"]["different"] is False
        assert doc["sync"] == {"sagittal": None, "axial": None}
        flagged = [c for c in doc["changes"] if c["level"] == LEVEL and c["quantity"] == "canal_area"]
        assert flagged and flagged[0]["flagged"] is True
    finally:
        worker.shutdown()

