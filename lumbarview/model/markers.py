"""Readable marker names and colours, from the names the files give. No Qt.

A BIDS marker file is named ``sub-01_nerveroots_L4_L.json`` or ``sub-01dura6.json``; an RSNA
coordinate set is named after its condition; a VOC box set after its folder. This module turns
such a name into what a person reads in the layer panel and beside the points ("nerve roots L4
left"), a *kind* that groups sets (all nerve-root sets share one colour), and that colour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Kind -> colour (hex). Kinds not listed get a colour from :data:`_SPARE` by a stable hash.
KIND_COLOURS: dict[str, str] = {
    "nerve roots": "#f2c14e",
    "ganglia": "#e36bae",
    "dura": "#5ad1e6",
    "cord": "#8be38b",
    "points": "#5ad1e6",
    "boxes": "#e8d44d",
    "spinal canal stenosis": "#ff7f50",
    "neural foraminal narrowing": "#b48cff",
    "subarticular stenosis": "#7fd4ff",
}
_SPARE = ("#ffa94d", "#94d82d", "#74c0fc", "#f783ac", "#ffd43b", "#63e6be", "#da77f2", "#ff8787")
_KIND_WORDS = {
    "nerveroots": "nerve roots", "nerveroot": "nerve roots", "roots": "nerve roots", "root": "nerve roots",
    "ganglions": "ganglia", "ganglion": "ganglia", "ganglia": "ganglia", "drg": "ganglia",
    "dura": "dura", "duras": "dura", "cord": "cord",
}
_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}
_LEVEL_RE = re.compile(r"^(?:[LTS][0-9]{1,2})(?:[-_]?(?:[LTS][0-9]{1,2}))?$", re.IGNORECASE)


@dataclass(frozen=True)
class MarkerName:
    """What a set of markers is: ``kind`` ("nerve roots"), ``level`` ("L4"), ``side`` ("left"),
    ``index`` (a number in the name, e.g. a dura slice) and the readable ``text``."""

    kind: str
    level: str | None
    side: str | None
    index: int | None
    text: str


def _level(token: str) -> str | None:
    if not _LEVEL_RE.match(token):
        return None
    parts = re.findall(r"[LTS][0-9]{1,2}", token.upper())
    return "-".join(parts)


def parse_marker_name(name: str) -> MarkerName:
    """The kind, level, side and readable text of a marker set named ``name``.

    >>> parse_marker_name("sub-01_nerveroots_L4_L").text
    'nerve roots L4 left'
    >>> parse_marker_name("sub-01dura6").text
    'dura #6'
    """
    if "(" in name and not name.startswith("("):  # "Spinal Canal Stenosis (Sagittal T2/STIR, 42)"
        condition = name.split("(", 1)[0].strip().lower()
        return MarkerName(condition, None, None, None, name.strip())
    stem = name.split(":", 1)[0]
    stem = re.sub(r"\.(mrk\.)?json$", "", stem, flags=re.IGNORECASE)
    # The subject is the case, not the marker: "sub-01_nerveroots_L4_L", or "sub-01dura6" (no
    # separator: the subject is taken as its digits).
    stem = re.sub(r"^sub-[A-Za-z0-9]+_", "", stem) if re.match(r"^sub-[A-Za-z0-9]+_", stem) else \
        re.sub(r"^sub-[0-9]+", "", stem)
    tokens = [t for t in re.split(r"[_\s]+", stem) if t]
    kind: str | None = None
    level: str | None = None
    side: str | None = None
    index: int | None = None
    rest: list[str] = []
    for token in tokens:
        word = re.match(r"^([A-Za-z]+?)-?([0-9]+)$", token)  # dura6, dura-6
        low = token.lower()
        if kind is None and low in _KIND_WORDS:
            kind = _KIND_WORDS[low]
        elif kind is None and word and word.group(1).lower() in _KIND_WORDS:
            kind, index = _KIND_WORDS[word.group(1).lower()], int(word.group(2))
        elif level is None and _level(token):
            level = _level(token)
        elif side is None and low in _SIDES:
            side = _SIDES[low]
        elif index is None and token.isdigit():
            index = int(token)
        else:
            rest.append(token)
    if kind is None:
        kind = " ".join(rest).lower() if rest else "points"
        rest = []
    parts = [kind, *(p for p in (level, side) if p), *rest]
    if index is not None:
        parts.append(f"#{index}")
    return MarkerName(kind, level, side, index, " ".join(parts))


def kind_colour(kind: str) -> str:
    """The colour of a marker kind (hex), the same for every set of that kind."""
    found = KIND_COLOURS.get(kind.lower())
    if found is not None:
        return found
    return _SPARE[sum(ord(c) for c in kind.lower()) % len(_SPARE)]


#: What the views write for a dataset's condition beside its point (the tables keep the full name).
_SHORT_CONDITIONS = {
    "Spinal Canal Stenosis": "canal",
    "Left Neural Foraminal Narrowing": "L foramen",
    "Right Neural Foraminal Narrowing": "R foramen",
    "Left Subarticular Stenosis": "L subarticular",
    "Right Subarticular Stenosis": "R subarticular",
}


def point_label(set_name: MarkerName, label: str, n: int, info: Mapping[str, Any] | None = None) -> str:
    """The text drawn beside point ``n`` of a set: the file's label when it says more than a
    running number ("ganglion-1" -> the set's level and side), else the set's own name; with
    the dataset's grade for the point when it has one (``info``; an RSNA point reads "L4-L5
    canal: Moderate")."""
    generic = re.fullmatch(r"[A-Za-z]*-?[0-9]+", label or "") is not None
    info = info or {}
    grade = info.get("grade")
    short = _SHORT_CONDITIONS.get(str(info.get("condition")))
    if short and info.get("level"):  # a graded point (RSNA): short, so that neighbours stay legible
        return f"{info['level']} {short}" + (f": {grade}" if grade else "")
    if label and not generic:
        return f"{label}: {grade}" if grade else label
    short = " ".join(p for p in (set_name.level, {"left": "L", "right": "R"}.get(set_name.side or "", "")) if p)
    return f"{set_name.kind} {short}".strip() if short else f"{set_name.kind} {n + 1}"
