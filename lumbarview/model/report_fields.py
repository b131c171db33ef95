"""The reader's words in the structured report: free-text fields, each edit an undoable command
in the session's one history (a run of typing in one field is one step). No Qt, no file format.

:data:`REPORT_FIELDS` are the report-wide fields; :func:`level_field` names a level's comment.
"""

from __future__ import annotations

from lumbarview.core.events import Signal
from lumbarview.model.commands import SetValue, UndoStack
from lumbarview.model.gradings import LEVELS

#: Report-wide free text: key -> heading.
REPORT_FIELDS = {"reader": "Reader", "technique": "Technique and series", "alignment": "Alignment",
                 "conus_cauda": "Conus and cauda equina", "other": "Other findings", "impression": "Impression"}
#: The most characters a field holds (a budget, not a clinical limit).
MAX_FIELD_CHARS = 10_000


def level_field(level: str) -> str:
    """The key of a level's comment."""
    return f"level {level}"


def field_keys() -> tuple[str, ...]:
    return (*REPORT_FIELDS, *(level_field(level) for level in LEVELS))


def check_field(key: str, text: str) -> None:
    if key not in field_keys():
        raise ValueError(f"unknown report field {key!r}; one of {', '.join(field_keys())}")
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"the {key} field holds {len(text):,} characters (at most {MAX_FIELD_CHARS:,})")


class ReportFields:
    """The report's free text of each case (empty: not written)."""

    changed = Signal(object)  # (case, key)

    def __init__(self, undo: UndoStack) -> None:
        self.undo = undo
        self._text: dict[tuple[str | None, str], str] = {}

    def get(self, case: str | None, key: str) -> str:
        return self._text.get((case, key), "")

    def items(self) -> list[tuple[str | None, str, str]]:
        return [(case, key, text) for (case, key), text in self._text.items() if text]

    def set(self, case: str | None, key: str, text: str, merge: bool = True) -> None:
        """The reader writes ``text`` into a field (one undo step per run of typing)."""
        check_field(key, text)
        if self.get(case, key) == text:
            return
        self.undo.push(SetValue(f"report: {key}", lambda: self.get(case, key),
                                lambda t: self._put(case, key, t), text, key=("report", case, key), merge=merge))

    def reset(self, items: list[tuple[str | None, str, str]]) -> None:
        self._text = {(case, key): text for case, key, text in items if text}
        self.changed.emit(None)

    def _put(self, case: str | None, key: str, text: str) -> None:
        if text:
            self._text[(case, key)] = text
        else:
            self._text.pop((case, key), None)
        self.changed.emit((case, key))
