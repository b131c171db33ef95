"""The text over a view is drawn once per change, not per frame: repainting an unchanged view
draws no text again; a slice step redraws only the corner text it changed (the slice number and
position), and what is shown is the new text."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.qt


def _corner(view) -> np.ndarray:  # type: ignore[no-untyped-def]
    image = view.graphics.grab().toImage()
    w = image.width()
    return np.array([[image.pixel(x, y) for x in range(w - 150, w - 4)] for y in range(4, 64)])


def test_corner_text_is_drawn_once_per_change(qtbot, opened) -> None:  # type: ignore[no-untyped-def]
    view = opened.views["sagittal"]
    view.graphics.viewport().repaint()
    before = view.hud.renders
    shown = _corner(view)
    for _ in range(3):
        view.graphics.viewport().repaint()
    assert view.hud.renders == before  # frames copy the drawn texts
    text = view.hud.text("tr")
    view.view_state.step(1)
    view.graphics.viewport().repaint()
    assert view.hud.text("tr") != text
    assert view.hud.renders == before + 1  # the top-right text alone changed
    assert not np.array_equal(_corner(view), shown)  # and the new words are on screen
