"""Every user edit is a :class:`Command` with do and undo, kept in one :class:`UndoStack`.

The session pushes commands (window/level, layer visibility and opacity, plane alignment,
measurements); the window binds Ctrl+Z / Ctrl+Shift+Z to :meth:`UndoStack.undo` /
:meth:`UndoStack.redo`. A run of edits of the same thing (a window/level drag, an opacity
slider) merges into one history entry through :meth:`Command.merge_with`, as Qt's QUndoStack
does with ``id``/``mergeWith``. No Qt here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lumbarview.core.events import Signal

T = TypeVar("T")


class Command(abc.ABC):
    """One undoable edit. ``do`` is called when pushed and on redo; ``undo`` reverts it."""

    text: str = "edit"

    @abc.abstractmethod
    def do(self) -> None: ...

    @abc.abstractmethod
    def undo(self) -> None: ...

    def merge_key(self) -> Any:
        """Commands with the same non-None key, pushed one after another, merge."""
        return None

    def merge_with(self, newer: Command) -> bool:
        """Absorb ``newer`` (already done) into this command; True when merged."""
        return False


class SetValue(Command, Generic[T]):
    """Set a value through a setter, remembering the old one: the common case.

    ``merge`` makes consecutive sets of the same target one entry (a drag, a slider)."""

    def __init__(self, text: str, getter: Callable[[], T], setter: Callable[[T], None], new: T,
                 key: Any = None, merge: bool = False) -> None:
        self.text = text
        self._setter = setter
        self._old = getter()
        self._new = new
        self._key = key
        self._merge = merge

    @property
    def old(self) -> T:
        return self._old

    @property
    def new(self) -> T:
        return self._new

    def do(self) -> None:
        self._setter(self._new)

    def undo(self) -> None:
        self._setter(self._old)

    def merge_key(self) -> Any:
        return self._key if self._merge else None

    def merge_with(self, newer: Command) -> bool:
        if not isinstance(newer, SetValue) or newer.merge_key() is None or newer.merge_key() != self.merge_key():
            return False
        self._new = newer._new
        return True


class Group(Command):
    """Several commands as one history entry (done in order, undone in reverse)."""

    def __init__(self, text: str, commands: list[Command]) -> None:
        self.text = text
        self.commands = list(commands)

    def do(self) -> None:
        for c in self.commands:
            c.do()

    def undo(self) -> None:
        for c in reversed(self.commands):
            c.undo()


class UndoStack:
    """One linear history. Pushing after an undo drops the undone tail (as every editor does)."""

    changed = Signal()  # can_undo / can_redo / texts may have changed

    def __init__(self, limit: int = 500) -> None:
        self._done: list[Command] = []
        self._undone: list[Command] = []
        self._limit = limit
        self._merge_open = True
        self._clean_index: int | None = 0

    # -- editing ---------------------------------------------------------------------------
    def push(self, command: Command) -> None:
        """Do ``command`` and record it (or merge it into the last entry)."""
        command.do()
        if self._undone:
            self._undone.clear()
            if self._clean_index is not None and self._clean_index > len(self._done):
                self._clean_index = None
        last = self._done[-1] if self._done else None
        if (self._merge_open and last is not None and command.merge_key() is not None
                and last.merge_key() == command.merge_key() and last.merge_with(command)):
            if self._clean_index == len(self._done):
                self._clean_index = None
            self.changed.emit()
            return
        self._done.append(command)
        self._merge_open = True
        if len(self._done) > self._limit:
            del self._done[0]
            if self._clean_index is not None:
                self._clean_index -= 1
                if self._clean_index < 0:
                    self._clean_index = None
        self.changed.emit()

    def end_merge(self) -> None:
        """The next push starts a new entry even if it could merge (a drag ended)."""
        self._merge_open = False

    def undo(self) -> bool:
        if not self._done:
            return False
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self._merge_open = False
        self.changed.emit()
        return True

    def redo(self) -> bool:
        if not self._undone:
            return False
        command = self._undone.pop()
        command.do()
        self._done.append(command)
        self._merge_open = False
        self.changed.emit()
        return True

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._clean_index = 0
        self.changed.emit()

    # -- state -----------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_text(self) -> str:
        return self._done[-1].text if self._done else ""

    @property
    def redo_text(self) -> str:
        return self._undone[-1].text if self._undone else ""

    def __len__(self) -> int:
        return len(self._done)

    def set_clean(self) -> None:
        """Mark the current state as saved."""
        self._clean_index = len(self._done)
        self.changed.emit()

    @property
    def is_clean(self) -> bool:
        return self._clean_index == len(self._done)
