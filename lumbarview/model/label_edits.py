"""Label edits as sparse undo commands: changed voxels and their old and new values, never copies.

A :class:`LabelEdit` stores the flat indices (into the C-ordered ``[k, j, i]`` label array) of
the voxels it changed, with their old and new values, so 200 brush strokes on a 512 x 512 x 300
map cost a few megabytes of history where a copy per stroke would cost 150 MB each. It lives in
the session's one :class:`~lumbarview.model.commands.UndoStack`, beside the measurements and
window/level, so undo survives slice and view changes (nothing is tied to a view).

A :class:`LabelEditor` owns the editing of one label map: it turns a tool's selection
(:mod:`lumbarview.measure.label_tools`) into a command, gathers a brush stroke's stamps into one
command (one undo step per stroke), and keeps the edit log: the operations of the commands done,
in order, in patient coordinates (the sidecar's ``operations``). No Qt here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from lumbarview.core.types import ImageStack
from lumbarview.model.commands import Command, UndoStack

IntArray = npt.NDArray[np.integer[Any]]


class LabelTarget(Protocol):
    """Where a label edit is written: a map's voxels by flat index."""

    @property
    def array(self) -> npt.NDArray[Any]:
        """The current ``[k, j, i]`` labels (read-only use)."""
        ...

    def write(self, flat: IntArray, values: npt.NDArray[Any]) -> None: ...


class ArrayTarget:
    """A plain array edited in place (the command line's apply and replay)."""

    def __init__(self, array: npt.NDArray[Any]) -> None:
        if not array.flags.c_contiguous or not array.flags.writeable:
            array = np.array(array, copy=True, order="C")
        self._array = array

    @property
    def array(self) -> npt.NDArray[Any]:
        return self._array

    def write(self, flat: IntArray, values: npt.NDArray[Any]) -> None:
        self._array.reshape(-1)[flat] = values


class StackTarget:
    """A label :class:`ImageStack` of the open case: each write bumps its revision
    (:meth:`ImageStack.write_voxels`) and calls ``on_change(stack)`` so the caches keyed by it
    (plane cache, surfaces, disc planes) invalidate."""

    def __init__(self, stack: ImageStack, on_change: Callable[[ImageStack], None] | None = None) -> None:
        self.stack = stack
        self._on_change = on_change

    @property
    def array(self) -> npt.NDArray[Any]:
        return self.stack.pixels()

    def write(self, flat: IntArray, values: npt.NDArray[Any]) -> None:
        self.stack.write_voxels(flat, values)
        if self._on_change is not None:
            self._on_change(self.stack)


def _index_dtype(size: int) -> np.dtype[Any]:
    return np.dtype(np.uint32) if size <= np.iinfo(np.uint32).max else np.dtype(np.int64)


class LabelEdit(Command):
    """One undoable change of a label map: ``flat`` indices with ``old`` and ``new`` values
    (only voxels whose value changes), and the ``operation`` that made it (the log record)."""

    def __init__(self, target: LabelTarget, flat: IntArray, old: npt.NDArray[Any], new: npt.NDArray[Any],
                 operation: Mapping[str, Any], editor: LabelEditor | None = None) -> None:
        self.text = f"label {operation.get('op', 'edit')}"
        self.target = target
        self.flat = np.ascontiguousarray(flat, dtype=_index_dtype(target.array.size))
        self.old = np.ascontiguousarray(old)
        self.new = np.ascontiguousarray(new)
        self.operation: dict[str, Any] = dict(operation)
        self._editor = editor
        self._done_once = False

    @property
    def nbytes(self) -> int:
        """What this step holds in memory (indices and both value arrays)."""
        return int(self.flat.nbytes + self.old.nbytes + self.new.nbytes)

    @property
    def changed(self) -> int:
        return int(self.flat.size)

    def do(self) -> None:
        if self.flat.size:
            self.target.write(self.flat, self.new)
        if self._editor is not None:
            self._editor._applied.append(self)

    def undo(self) -> None:
        if self.flat.size:
            self.target.write(self.flat, self.old)
        if self._editor is not None and self._editor._applied and self._editor._applied[-1] is self:
            self._editor._applied.pop()


def make_edit(target: LabelTarget, flat: IntArray, new_values: npt.ArrayLike, operation: Mapping[str, Any],
              editor: LabelEditor | None = None) -> LabelEdit:
    """The command setting ``flat`` to ``new_values`` (one value or one per index), keeping only
    the voxels whose value changes (duplicate indices: the last value wins)."""
    array = target.array.reshape(-1)
    flat = np.asarray(flat, dtype=np.int64).ravel()
    new = np.broadcast_to(np.asarray(new_values), flat.shape)
    if flat.size:
        # the last occurrence of each index wins, as in a sequence of assignments
        reverse_unique, first = np.unique(flat[::-1], return_index=True)
        flat, new = reverse_unique, new[::-1][first]
    info_ok = new.astype(array.dtype)
    if not np.array_equal(info_ok.astype(new.dtype), new):
        raise ValueError(f"label values {np.unique(new)[:5].tolist()} do not fit the map's {array.dtype}")
    old = array[flat]
    keep = old != info_ok
    return LabelEdit(target, flat[keep], old[keep], info_ok[keep], operation, editor)


class LabelEditor:
    """The editing of one label map in a session: edits go on ``undo`` (the session's history),
    a brush stroke is gathered into one step, and :attr:`operations` is the edit log of what is
    done now (an undone edit leaves the log; redone, it comes back)."""

    def __init__(self, target: LabelTarget, undo: UndoStack) -> None:
        self.target = target
        self.undo = undo
        self._applied: list[LabelEdit] = []
        self._stroke: dict[str, Any] | None = None
        self._stroke_old: dict[int, Any] = {}
        self._stroke_new: dict[int, Any] = {}

    # -- one-shot operations ---------------------------------------------------------------
    def apply(self, flat: IntArray, new_values: npt.ArrayLike, operation: Mapping[str, Any]) -> LabelEdit:
        """Push one edit (an operation that is not a stroke: fill, polygon, islands...)."""
        if self._stroke is not None:
            self.end_stroke()
        edit = make_edit(self.target, flat, new_values, operation, self)
        self.undo.push(edit)
        self.undo.end_merge()
        return edit

    # -- strokes ---------------------------------------------------------------------------
    def begin_stroke(self, operation: Mapping[str, Any]) -> None:
        """Start a stroke; its stamps (:meth:`stamp`) show at once and become one undo step at
        :meth:`end_stroke`. ``operation`` holds the stroke's fixed keys (op, label, radius...);
        each stamp's centre is appended to its ``points_lps``."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = dict(operation)
        self._stroke.setdefault("points_lps", [])
        self._stroke_old = {}
        self._stroke_new = {}

    def stamp(self, flat: IntArray, new_values: npt.ArrayLike, point_lps: npt.ArrayLike | None = None) -> int:
        """Apply one batch of brush stamps (all the stamps of one mouse event: one write).
        Returns the number of voxels changed."""
        if self._stroke is None:
            raise RuntimeError("stamp() outside a stroke: call begin_stroke() first")
        if point_lps is not None:
            self._stroke["points_lps"].extend(np.asarray(point_lps, dtype=np.float64).reshape(-1, 3).tolist())
        edit = make_edit(self.target, flat, new_values, self._stroke)
        if not edit.changed:
            return 0
        for index, old in zip(edit.flat.tolist(), edit.old.tolist(), strict=True):
            self._stroke_old.setdefault(index, old)
        self._stroke_new.update(zip(edit.flat.tolist(), edit.new.tolist(), strict=True))
        edit.do()  # shown at once; the stroke's command is pushed at end_stroke
        return edit.changed

    def end_stroke(self) -> LabelEdit | None:
        """Close the stroke as one undo step (None when it changed nothing)."""
        if self._stroke is None:
            return None
        operation, self._stroke = self._stroke, None
        if not self._stroke_old:
            return None
        flat = np.fromiter(self._stroke_old.keys(), dtype=np.int64, count=len(self._stroke_old))
        order = np.argsort(flat)
        dtype = self.target.array.dtype
        old = np.fromiter(self._stroke_old.values(), dtype=dtype, count=flat.size)[order]
        new = np.array([self._stroke_new[i] for i in self._stroke_old], dtype=dtype)[order]
        flat = flat[order]
        keep = old != new
        edit = LabelEdit(self.target, flat[keep], old[keep], new[keep], operation, self)
        self._stroke_old, self._stroke_new = {}, {}
        self.undo.push(edit)  # writes the new values again (already there): harmless
        self.undo.end_merge()
        return edit

    # -- state -----------------------------------------------------------------------------
    @property
    def operations(self) -> list[dict[str, Any]]:
        """The edit log of the edits in effect, oldest first."""
        return [dict(edit.operation) for edit in self._applied]

    @property
    def edits(self) -> list[LabelEdit]:
        return list(self._applied)

    def history_bytes(self) -> int:
        """Memory held by the label edits in effect (the undone ones are counted by the stack)."""
        return sum(edit.nbytes for edit in self._applied)
