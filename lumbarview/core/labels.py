"""Label schemes: what each value of a label map means (name, colour, anatomical role).

Each dataset numbers its labels its own way; a scheme maps them onto the roles lumbarview
understands, so that overlays are named and coloured and the measurement engine finds the
canal, the discs and the vertebrae whatever the source.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.safe_json import json_path, read_json_guarded, type_name


class Role(enum.Enum):
    """Anatomical role of a label."""

    VERTEBRA = "vertebra"
    PARTIAL_VERTEBRA = "partial-vertebra"
    DISC = "disc"
    CANAL = "canal"  # spinal canal / thecal sac
    POSTERIOR_ELEMENT = "posterior-element"
    SACRUM = "sacrum"
    CORD = "cord"
    NERVE_ROOT = "nerve-root"
    FORAMEN = "foramen"
    BACKGROUND = "background"
    OTHER = "other"


#: Lumbar levels from the top; discs are named by the two vertebrae they separate.
VERTEBRAE_TOP_DOWN = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
DISC_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True)
class LabelEntry:
    value: int
    name: str
    role: Role
    color_rgb: tuple[int, int, int]
    level: str | None = None  # "L4" for a vertebra, "L4-L5" for a disc


@dataclass(frozen=True)
class LabelScheme:
    """Value -> entry. Values not listed fall back to ``default_role`` with a generated name."""

    name: str
    entries: Mapping[int, LabelEntry] = field(default_factory=dict)
    default_role: Role = Role.OTHER

    def entry(self, value: int) -> LabelEntry:
        found = self.entries.get(int(value))
        if found is not None:
            return found
        return LabelEntry(int(value), f"label {int(value)}", self.default_role, _palette(int(value)))

    def values_with_role(self, role: Role) -> list[int]:
        return sorted(v for v, e in self.entries.items() if e.role is role)

    def disc_value(self, level: str) -> int | None:
        for value, e in self.entries.items():
            if e.role is Role.DISC and e.level == level:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "default_role": self.default_role.value, "labels": [
            {"value": e.value, "name": e.name, "role": e.role.value, "level": e.level,
             "color": "#{:02x}{:02x}{:02x}".format(*e.color_rgb)} for e in self.entries.values()]}


def _palette(value: int) -> tuple[int, int, int]:
    """A stable, distinguishable colour for any label value (golden-angle hue walk)."""
    import colorsys

    hue = (value * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


_ROLE_COLOURS = {
    Role.CANAL: (80, 170, 255), Role.CORD: (255, 240, 120), Role.NERVE_ROOT: (255, 170, 60),
    Role.SACRUM: (200, 120, 220), Role.POSTERIOR_ELEMENT: (120, 220, 160),
    Role.FORAMEN: (255, 90, 90),
}


def _entry(value: int, name: str, role: Role, level: str | None = None) -> LabelEntry:
    return LabelEntry(value, name, role, _ROLE_COLOURS.get(role, _palette(value)), level)


#: The sacrum in SPIDER-numbered masks that label it (lumbarview's phantom does; SPIDER does not).
SPIDER_SACRUM = 153


def spider_scheme() -> LabelScheme:
    """SPIDER masks: vertebrae 1..99 counted from the bottom (1 = L5), canal 100, partially
    visible vertebrae 101-125, discs 201-225 where disc ``200 + v`` lies below vertebra ``v``
    (201 = L5-S1). Source: the SPIDER baseline's data checker (see docs/datasets.md)."""
    entries: dict[int, LabelEntry] = {}
    bottom_up = list(reversed(VERTEBRAE_TOP_DOWN[:-1]))  # L5, L4, ..., T10
    for v in range(1, 100):
        name = bottom_up[v - 1] if v <= len(bottom_up) else f"vertebra {v}"
        entries[v] = _entry(v, name, Role.VERTEBRA, name if v <= len(bottom_up) else None)
    entries[100] = _entry(100, "spinal canal", Role.CANAL)
    for v in range(101, 126):
        entries[v] = _entry(v, f"partial vertebra {v - 100}", Role.PARTIAL_VERTEBRA)
    for v in range(1, 26):
        upper = bottom_up[v - 1] if v <= len(bottom_up) else None
        lower = "S1" if v == 1 else (bottom_up[v - 2] if v - 2 < len(bottom_up) else None)
        level = f"{upper}-{lower}" if upper and lower else None
        entries[200 + v] = _entry(200 + v, f"disc {level}" if level else f"disc {v}",
                                  Role.DISC, level)
    # Not a SPIDER value (SPIDER leaves the sacrum out): lumbarview's phantom writes its sacrum
    # as 153 in SPIDER-numbered masks, and the engine measures L5-S1 against it.
    entries[SPIDER_SACRUM] = _entry(SPIDER_SACRUM, "sacrum (S1)", Role.SACRUM, "S1")
    return LabelScheme("SPIDER", entries, Role.OTHER)


def aisslab_scheme() -> LabelScheme:
    """LSS-MRI-AISSLab mid-sagittal PNG masks, class index per pixel (0..5)."""
    return LabelScheme("LSS-MRI-AISSLab", {
        0: _entry(0, "background / anterior", Role.BACKGROUND),
        1: _entry(1, "vertebral body", Role.VERTEBRA),
        2: _entry(2, "intervertebral disc", Role.DISC),
        3: _entry(3, "sacrum", Role.SACRUM),
        4: _entry(4, "posterior element A", Role.POSTERIOR_ELEMENT),
        5: _entry(5, "posterior element B", Role.POSTERIOR_ELEMENT),
    }, Role.OTHER)


def sudirman_axial_scheme() -> LabelScheme:
    """Sudirman et al. axial label images (companion dataset zbf6b4pttk): IVD, posterior
    element, thecal sac, and the area between anterior and posterior."""
    return LabelScheme("Sudirman axial", {
        0: _entry(0, "background", Role.BACKGROUND),
        1: _entry(1, "intervertebral disc", Role.DISC),
        2: _entry(2, "posterior element", Role.POSTERIOR_ELEMENT),
        3: _entry(3, "thecal sac", Role.CANAL),
        4: _entry(4, "area between anterior and posterior", Role.OTHER),
    }, Role.OTHER)


def sct_scheme() -> LabelScheme:
    """Spinal Cord Toolbox test labels: a cord mask (1); cord labelled by vertebral level
    (2 = C2 ...); disc/vertebra point labels; rootlets labelled by spinal level."""
    entries = {1: _entry(1, "spinal cord", Role.CORD)}
    for v in range(2, 8):
        entries[v] = _entry(v, f"C{v} level", Role.CORD, f"C{v}")
    return LabelScheme("SCT", entries, Role.OTHER)


def lumbarview_phantom_scheme() -> LabelScheme:
    """The lumbar phantom's own labels (SPIDER-compatible numbering, plus extra roles)."""
    base = dict(spider_scheme().entries)
    base[150] = _entry(150, "posterior elements", Role.POSTERIOR_ELEMENT)
    base[151] = _entry(151, "spinal cord", Role.CORD)
    base[152] = _entry(152, "nerve roots", Role.NERVE_ROOT)
    base[153] = _entry(153, "sacrum", Role.SACRUM)
    return LabelScheme("lumbarview phantom", base, Role.OTHER)


#: The semi-automatic segmentation's scheme (``lumbarview segment``; README "Label map of a
#: segmentation"): vertebral bodies 1-10 from T10 to S1 (L6 for a lumbarised S1), the canal 100,
#: discs 201-210 by level.
SEMI_AUTO_SCHEME_NAME = "lumbarview semi-automatic"
SEMI_AUTO_VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")
SEMI_AUTO_DISCS = ("T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "L5-L6",
                   "L6-S1")
CANAL_VALUE = 100


def vertebra_value(level: str, where: str = "level") -> int:
    """The semi-automatic scheme's value of a vertebral body (ValueError naming the known levels)."""
    if level not in SEMI_AUTO_VERTEBRAE:
        raise ValueError(f"{where}: unknown vertebra {level!r} (known: {', '.join(SEMI_AUTO_VERTEBRAE)})")
    return 1 + SEMI_AUTO_VERTEBRAE.index(level)


def disc_value(level: str, where: str = "level") -> int:
    """The semi-automatic scheme's value of a disc level (ValueError naming the known levels)."""
    if level not in SEMI_AUTO_DISCS:
        raise ValueError(f"{where}: unknown disc level {level!r} (known: {', '.join(SEMI_AUTO_DISCS)})")
    return 201 + SEMI_AUTO_DISCS.index(level)


def semi_auto_scheme() -> LabelScheme:
    """The scheme of the label maps ``lumbarview segment`` writes (see :data:`SEMI_AUTO_SCHEME_NAME`)."""
    entries = {vertebra_value(v): _entry(vertebra_value(v), f"{v} body", Role.VERTEBRA, v)
               for v in SEMI_AUTO_VERTEBRAE}
    entries[CANAL_VALUE] = _entry(CANAL_VALUE, "dural sac", Role.CANAL)
    for d in SEMI_AUTO_DISCS:
        entries[disc_value(d)] = _entry(disc_value(d), f"{d} disc", Role.DISC, d)
    return LabelScheme(SEMI_AUTO_SCHEME_NAME, entries, Role.OTHER)


BUILT_IN_SCHEMES = {
    "spider": spider_scheme, "aisslab": aisslab_scheme, "sudirman-axial": sudirman_axial_scheme,
    "sct": sct_scheme, "phantom": lumbarview_phantom_scheme,
}


_MAX_LABEL_VALUE = 2**31 - 1  # label maps are int32


def _parse_colour(text: Any, value: int) -> tuple[int, int, int]:
    if isinstance(text, str) and len(text) == 7 and text.startswith("#"):
        try:
            return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
        except ValueError:
            pass
    if (isinstance(text, list | tuple) and len(text) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in text)):
        return int(text[0]), int(text[1]), int(text[2])
    return _palette(value)


def scheme_from_json(data: Any, source: str = "label scheme") -> LabelScheme:
    """Build a scheme from a user's JSON document::

        {"name": "my dataset", "labels": [{"value": 1, "name": "L5", "role": "vertebra",
                                          "level": "L5", "color": "#ff8800"}, ...]}

    Raises
    ------
    CorruptFileError
        When the document does not have that shape (the message names the bad entry and its
        JSON path).
    """
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        found = type_name(data.get("labels")) if isinstance(data, dict) and "labels" in data else "missing"
        raise CorruptFileError(source, f"a label scheme must be an object with a \"labels\" list ($.labels is "
                               f"{found})", "see the README for the format")
    roles = {r.value: r for r in Role}
    entries: dict[int, LabelEntry] = {}
    for n, item in enumerate(data["labels"]):
        where = json_path(["labels", n])
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            what = type_name(value) if isinstance(item, dict) else f"the entry is {type_name(item)}"
            raise CorruptFileError(source, f"label #{n + 1} has no integer \"value\" ({where}.value: {what})",
                                   "give every label an integer value")
        if not 0 <= value <= _MAX_LABEL_VALUE:
            raise CorruptFileError(source, f"label #{n + 1} has value {value} ({where}.value), outside "
                                   f"0-{_MAX_LABEL_VALUE}", "label values are the whole numbers stored in masks")
        role_value = item.get("role", "other")
        role_text = role_value.lower() if isinstance(role_value, str) else repr(role_value)[:40]
        if role_text not in roles:
            raise CorruptFileError(source, f"label {value} has unknown role {role_text!r} ({where}.role)",
                                   f"use one of: {', '.join(sorted(roles))}")
        name = item.get("name")
        level = item.get("level")
        entries[value] = LabelEntry(value, name[:200] if isinstance(name, str) else f"label {value}",
                                    roles[role_text], _parse_colour(item.get("color"), value),
                                    level[:40] if isinstance(level, str) else None)
    name = data.get("name")
    return LabelScheme(name[:200] if isinstance(name, str) else str(source), entries, Role.OTHER)


def load_scheme(path: str | Path) -> LabelScheme:
    """Read a scheme JSON file (see :func:`scheme_from_json`) within the JSON budgets.

    Raises
    ------
    CorruptFileError, ResourceLimitError
    """
    return scheme_from_json(read_json_guarded(path, "label scheme"), str(path))
