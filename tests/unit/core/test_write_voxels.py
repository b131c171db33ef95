"""ImageStack.write_voxels: sparse in-place edits after one private copy, revision bumped."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack


def _stack(array: np.ndarray) -> ImageStack:
    geometry = VolumeGeometry.from_directions(array.shape, (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 1.0))
    return ImageStack("s", "s", geometry, {}, lambda: (array.copy(), []))


def test_write_voxels_keeps_what_readers_held_and_bumps_the_revision() -> None:
    stack = _stack(np.zeros((3, 4, 5), dtype=np.uint16))
    held = stack.pixels()
    assert stack.write_voxels(np.array([0, 59]), np.array([4, 9])) == 1
    assert held.sum() == 0
    now = stack.pixels()
    assert now[0, 0, 0] == 4 and now[2, 3, 4] == 9 and not now.flags.writeable
    assert stack.write_voxels(np.array([1]), 2) == 2
    stack.release()  # an edited stack keeps its pixels
    assert stack.pixels()[0, 0, 1] == 2 and stack.pixels()[2, 3, 4] == 9


@pytest.mark.parametrize(("flat", "values", "match"), [
    (np.array([60]), 1, "outside"), (np.array([-1]), 1, "outside"),
    (np.array([0]), 70000, "fit"), (np.array([0, 1]), np.array([1, 2, 3]), "3 values"),
])
def test_write_voxels_refuses_bad_input_and_changes_nothing(flat: np.ndarray, values: object, match: str) -> None:
    stack = _stack(np.zeros((3, 4, 5), dtype=np.uint16))
    with pytest.raises(ValueError, match=match):
        stack.write_voxels(flat, values)  # type: ignore[arg-type]
    assert stack.revision == 0 and stack.pixels().sum() == 0
