"""Label edits as sparse undo commands: memory, byte-identical undo, strokes as one step, the log."""

from __future__ import annotations

import numpy as np

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack
from lumbarview.model.commands import SetValue, UndoStack
from lumbarview.model.label_edits import ArrayTarget, LabelEditor, StackTarget


def _stack(array: np.ndarray) -> ImageStack:
    geometry = VolumeGeometry.from_directions(array.shape, (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 2.0))
    return ImageStack("labels:x", "x", geometry, {"kind": "labels"}, lambda: (array.copy(), []))


def test_a_stroke_is_one_undo_step_and_undo_restores_every_byte() -> None:
    rng = np.random.default_rng(3)
    original = rng.integers(0, 3, size=(6, 20, 20)).astype(np.uint16)
    target = ArrayTarget(original.copy())
    undo = UndoStack()
    editor = LabelEditor(target, undo)
    editor.begin_stroke({"op": "paint", "label": 7, "preserve": False})
    editor.stamp(np.arange(0, 50), 7, point_lps=(0, 0, 0))
    editor.stamp(np.arange(30, 90), 7, point_lps=(1, 0, 0))  # overlaps the first stamp
    edit = editor.end_stroke()
    assert edit is not None and len(undo) == 1
    assert np.all(target.array.reshape(-1)[:90] == 7)
    assert editor.operations[0]["points_lps"] == [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    undo.undo()
    assert target.array.tobytes() == original.tobytes()
    assert editor.operations == []
    undo.redo()
    assert np.all(target.array.reshape(-1)[:90] == 7) and len(editor.operations) == 1


def test_edits_store_only_changed_voxels_not_copies() -> None:
    array = np.zeros((30, 64, 64), dtype=np.uint16)
    array[:, :, :32] = 5
    editor = LabelEditor(ArrayTarget(array), UndoStack())
    edit = editor.apply(np.arange(0, 64 * 64), 5, {"op": "paint", "label": 5})  # half already 5
    assert edit.changed == 64 * 32
    # indices 4 bytes + old 2 + new 2 per changed voxel, nothing per untouched voxel
    assert edit.nbytes == 64 * 32 * 8


def test_undo_survives_other_commands_between_edits_and_bumps_the_revision() -> None:
    array = np.zeros((4, 8, 8), dtype=np.int32)
    stack = _stack(array)
    seen: list[int] = []
    undo = UndoStack()
    editor = LabelEditor(StackTarget(stack, on_change=lambda s: seen.append(s.revision)), undo)
    before = stack.pixels()
    editor.apply(np.array([5, 6, 7]), 3, {"op": "paint", "label": 3})
    assert stack.revision == 1 and seen == [1]
    assert before.sum() == 0  # the array a reader held before the edit is unchanged
    slice_k = {"k": 0}
    undo.push(SetValue("slice", lambda: slice_k["k"], lambda v: slice_k.__setitem__("k", v), 2))  # a view change
    undo.undo()
    undo.undo()
    assert stack.pixels().sum() == 0 and stack.revision == 2
    undo.redo()
    undo.redo()
    assert stack.pixels().reshape(-1)[[5, 6, 7]].tolist() == [3, 3, 3]


def test_a_value_the_map_cannot_hold_is_refused_unchanged() -> None:
    array = np.zeros((2, 4, 4), dtype=np.uint8)
    editor = LabelEditor(ArrayTarget(array), UndoStack())
    try:
        editor.apply(np.array([1]), 300, {"op": "paint", "label": 300})
    except ValueError as exc:
        assert "uint8" in str(exc)
    else:
        raise AssertionError("300 was written into a uint8 map")
    assert editor.target.array.sum() == 0
