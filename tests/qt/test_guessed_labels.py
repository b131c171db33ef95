"""A volume taken for a label map by its values can be shown as an image from the Layers dock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path))


def test_show_a_guessed_label_map_as_an_image(qtbot, window, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    _write(tmp_path / "P07_t2.nii.gz", rng.integers(0, 800, (10, 24, 20)).astype(np.int16))
    cord = np.zeros((10, 24, 20), dtype=np.uint8)
    cord[3:7, 8:14, 6:12] = 1
    _write(tmp_path / "P07_t2_cord.nii.gz", cord)
    open_and_wait(qtbot, window, tmp_path)
    case = window.session.case
    labels = [layer for layer in window.session.overlays.layers if layer.kind == "labels"]
    assert [layer.name for layer in labels] == ["P07_t2_cord"]
    (action,) = window.layer_panel.layer_actions(labels[0])
    assert action[0] == "Show as an image"
    # Other layers offer nothing.
    assert all(not window.layer_panel.layer_actions(layer) for layer in window.session.overlays.layers[1:])
    with qtbot.waitSignal(window.views_ready, timeout=60_000):
        action[1]()
    assert window.session.case is case and not case.label_maps
    assert sorted(s.description for s in case.series) == ["P07_t2", "P07_t2_cord"]
    assert not [layer for layer in window.session.overlays.layers if layer.kind == "labels"]
    # The browser lists it as a series now.
    tree = window.docks.tree
    texts: list[str] = []
    stack = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        texts.append(item.text(0))
        stack.extend(item.child(i) for i in range(item.childCount()))
    assert any("P07_t2_cord" in t for t in texts), texts
