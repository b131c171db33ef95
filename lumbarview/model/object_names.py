"""Readable names and default colours of a case's 3D objects, from their file names.

``sub-01_nerveroots_L4_L`` reads "L4 left root", ``sub-01_ganglions_S1_R`` "S1 right ganglion",
``sub-01_Dura`` "Dura", ``sub-01dura12`` "dura 12". Anything else keeps its name.
"""

from __future__ import annotations

import re

_SIDES = {"L": "left", "R": "right"}
_KINDS = {"nerveroots": "root", "nerveroot": "root", "roots": "root", "ganglions": "ganglion",
          "ganglion": "ganglion", "ganglia": "ganglion"}
_SUBJECT = re.compile(r"^sub-(\d+_?|[A-Za-z0-9]+_)")
_LEVELLED = re.compile(r"^(?P<kind>[A-Za-z]+)_(?P<level>[CTLS]\d{1,2})_(?P<side>[LR])$")

#: Default colours (RGB) of meshes by what their name says, else a palette by order.
MESH_COLOURS = {"dura": (236, 214, 120), "cord": (240, 240, 235), "root": (247, 143, 62), "nerve": (247, 143, 62)}
PALETTE = [(90, 209, 230), (236, 112, 99), (130, 224, 170), (187, 143, 206), (248, 196, 113), (93, 173, 226),
           (245, 183, 177), (171, 235, 198), (215, 189, 226), (250, 215, 160), (174, 214, 241), (210, 180, 140)]


def readable_name(name: str) -> str:
    stem = _SUBJECT.sub("", name)
    found = _LEVELLED.match(stem)
    if found is not None and found["kind"].lower() in _KINDS:
        return f"{found['level']} {_SIDES[found['side']]} {_KINDS[found['kind'].lower()]}"
    numbered = re.match(r"^([A-Za-z]+)_?(\d+)$", stem)
    if numbered is not None:
        return f"{numbered[1]} {numbered[2]}"
    return stem or name


def default_colour(name: str, index: int) -> tuple[int, int, int]:
    low = name.lower()
    for word, colour in MESH_COLOURS.items():
        if word in low:
            return colour
    return PALETTE[index % len(PALETTE)]


def marker_colour(name: str, index: int) -> tuple[int, int, int]:
    """Markers: roots by side (left warm, right cool) so the pairs read apart; else the palette."""
    found = _LEVELLED.match(_SUBJECT.sub("", name))
    if found is not None:
        levels = ["L1", "L2", "L3", "L4", "L5", "S1", "S2"]
        shade = levels.index(found["level"]) if found["level"] in levels else 0
        if found["side"] == "L":
            return (255, 120 + 18 * shade, 60)
        return (60, 140 + 15 * shade, 255)
    return PALETTE[index % len(PALETTE)]
