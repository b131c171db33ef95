"""One guarded way to read a JSON file that lumbarview did not write itself (sidecars, Slicer
markups, label schemes, the flags file).

Before the bytes reach the parser the file must fit the text budget and its nesting must stay
within the depth budget (a cheap scan counting ``[`` and ``{`` outside strings), so a document
nested 10,000 deep never reaches Python's recursive decoder. Integers longer than the digit
budget are never converted (Python refuses beyond 4,300 digits, and the conversion is quadratic
before that); the error gives the JSON path of the value, like every type check made with
:func:`json_path` by the readers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.fs import read_regular_bytes
from lumbarview.core.limits import ResourceLimitError, limits


class _HugeInt:
    """Stands in for an integer literal that was too long to convert."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def json_path(parts: Sequence[str | int]) -> str:
    """``["markups", 0, "controlPoints"]`` -> ``$.markups[0].controlPoints``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_KEEP = b'"[]{}\n'
_DROP = bytes(b for b in range(256) if b not in _KEEP)


def nesting_depth_exceeds(data: bytes, max_depth: int) -> int | None:
    """The line (from 1) where the JSON ``data`` nests deeper than ``max_depth``, or None when
    it stays within it. Brackets inside strings do not count.

    Escapes are dropped first (``\\\\`` pairs, then ``\\"``, left to right as JSON reads them), so
    every quote left opens or closes a string; then only quotes, brackets and line ends are kept
    and counted with numpy. All of it runs at C speed, far faster than the parser itself.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return None  # cannot nest deeper than it has brackets
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    codes = np.frombuffer(structure, dtype=np.uint8)
    outside = np.cumsum(codes == 34, dtype=np.int64) % 2 == 0
    step = (((codes == 91) | (codes == 123)) & outside).astype(np.int64)
    step -= ((codes == 93) | (codes == 125)) & outside
    over = np.flatnonzero(np.cumsum(step) > max_depth)
    if over.size:
        return structure.count(b"\n", 0, int(over[0])) + 1
    return None


def _find_huge(value: Any, parts: list[str | int]) -> tuple[list[str | int], int] | None:
    # Recursion is bounded: the depth was checked before parsing.
    if isinstance(value, _HugeInt):
        return parts, value.digits
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_huge(item, [*parts, str(key)])
            if found is not None:
                return found
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found = _find_huge(item, [*parts, n])
            if found is not None:
                return found
    return None


def loads_guarded(text: str, source: str | Path, what: str = "JSON file") -> Any:
    """Parse JSON ``text`` within the depth and digit budgets.

    Raises
    ------
    ResourceLimitError
        Nested deeper than the depth budget.
    CorruptFileError
        Malformed JSON, or an integer with more digits than the budget (the message gives its
        JSON path).
    """
    budget = limits()
    line = nesting_depth_exceeds(text.encode("utf-8", "surrogatepass"), budget.max_json_depth)
    if line is not None:
        raise ResourceLimitError(source, f"the {what} nests lists/objects more than "
                                 f"{budget.max_json_depth} levels deep (line {line})",
                                 "LUMBARVIEW_MAX_JSON_DEPTH", str(budget.max_json_depth))
    max_digits = budget.max_int_digits
    huge_seen = False

    def parse_int(literal: str) -> int | _HugeInt:
        nonlocal huge_seen
        digits = len(literal) - (1 if literal.startswith("-") else 0)
        if digits > max_digits:
            huge_seen = True
            return _HugeInt(digits)
        return int(literal)

    try:
        doc = json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(source, f"the {what} is malformed (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})", "fix or re-export the file") from exc
    except (ValueError, RecursionError) as exc:  # the depth scan makes RecursionError unexpected
        raise CorruptFileError(source, f"the {what} cannot be parsed ({type(exc).__name__}: "
                               f"{str(exc)[:120]})", "fix or re-export the file") from exc
    if huge_seen:
        found = _find_huge(doc, [])
        if found is not None:
            parts, digits = found
            raise CorruptFileError(source, f"the {what} holds an integer of {digits:,} digits at "
                                   f"{json_path(parts)} (at most {max_digits} are read)",
                                   "fix the value; no measurement needs such a number")
    return doc


def read_json_guarded(path: str | Path, what: str = "JSON file") -> Any:
    """Read and parse a JSON file within the size, depth and digit budgets.

    Raises
    ------
    ResourceLimitError
        Larger than the text budget, or nested deeper than the depth budget.
    CorruptFileError
        Unreadable, not UTF-8, malformed, or an integer beyond the digit budget.
    """
    budget = limits()
    try:
        size = Path(path).stat().st_size
        budget.check_text_file(path, size)
        raw = read_regular_bytes(path)
    except ResourceLimitError:
        raise
    except OSError as exc:
        raise CorruptFileError(path, f"the {what} cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    budget.check_text_file(path, len(raw))  # it may have grown since stat
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, f"the {what} is not UTF-8 text (byte {exc.start:,})",
                               "re-save it as UTF-8 JSON") from exc
    return loads_guarded(text, path, what)
