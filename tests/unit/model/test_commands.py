"""The undo stack: do/undo/redo, merging drags, the dropped tail, the limit, the clean mark."""

from __future__ import annotations

from lumbarview.model.commands import Command, Group, SetValue, UndoStack


class Box:
    def __init__(self) -> None:
        self.value = 0

    def set(self, v: int) -> None:
        self.value = v


def setter(box: Box, v: int, merge: bool = False, key: str = "k") -> SetValue[int]:
    return SetValue("set", lambda: box.value, box.set, v, key=key, merge=merge)


def test_push_does_undo_reverts_redo_redoes() -> None:
    box, stack = Box(), UndoStack()
    stack.push(setter(box, 1))
    stack.push(setter(box, 2))
    assert box.value == 2 and len(stack) == 2
    assert stack.undo() and box.value == 1
    assert stack.undo() and box.value == 0
    assert not stack.undo() and box.value == 0
    assert stack.redo() and box.value == 1
    assert stack.redo() and box.value == 2
    assert not stack.redo()


def test_push_after_undo_drops_the_undone_tail() -> None:
    box, stack = Box(), UndoStack()
    stack.push(setter(box, 1))
    stack.push(setter(box, 2))
    stack.undo()
    stack.push(setter(box, 5))
    assert not stack.can_redo and box.value == 5
    stack.undo()
    assert box.value == 1


def test_a_drag_merges_into_one_entry_until_it_ends() -> None:
    box, stack = Box(), UndoStack()
    for v in range(1, 20):
        stack.push(setter(box, v, merge=True))
    assert len(stack) == 1 and box.value == 19
    stack.end_merge()
    stack.push(setter(box, 30, merge=True))
    assert len(stack) == 2
    stack.undo()
    assert box.value == 19
    stack.undo()
    assert box.value == 0


def test_different_keys_never_merge() -> None:
    a, b, stack = Box(), Box(), UndoStack()
    stack.push(setter(a, 1, merge=True, key="a"))
    stack.push(setter(b, 1, merge=True, key="b"))
    assert len(stack) == 2


def test_group_undoes_in_reverse() -> None:
    log: list[str] = []

    class Rec(Command):
        def __init__(self, name: str) -> None:
            self.name = name

        def do(self) -> None:
            log.append(f"do {self.name}")

        def undo(self) -> None:
            log.append(f"undo {self.name}")

    stack = UndoStack()
    stack.push(Group("two", [Rec("a"), Rec("b")]))
    stack.undo()
    assert log == ["do a", "do b", "undo b", "undo a"]
    assert stack.redo_text == "two"


def test_limit_and_clean_mark() -> None:
    box, stack = Box(), UndoStack(limit=3)
    changes: list[int] = []
    stack.changed.connect(lambda: changes.append(1))
    assert stack.is_clean
    for v in range(1, 6):
        stack.push(setter(box, v))
    assert len(stack) == 3 and not stack.is_clean and changes
    stack.set_clean()
    assert stack.is_clean
    stack.undo()
    assert not stack.is_clean
    stack.redo()
    assert stack.is_clean
    while stack.undo():
        pass
    assert box.value == 2  # the two oldest edits fell off the history
