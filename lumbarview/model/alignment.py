"""Lumbar alignment from the endplate lines a reader draws (kind ``endplate``, labelled
``"L1 upper"``, ``"L4 lower"``, ``"S1 upper"``...). No Qt.

Each endplate's tilt is measured in the patient's sagittal plane (:func:`~lumbarview.model.kinds.
sagittal_tilt`: degrees by which its anterior end lies above its posterior end), so the angles
hold on any sagittal or oblique-sagittal image and need no image axis. Positive angles are
lordotic (the lines open anteriorly), negative kyphotic:

- lumbar lordosis: L1 upper endplate to S1 upper endplate, ``tilt(L1 upper) - tilt(S1 upper)``
  (the TPTBox target "43 [50-60]"; anchors-wave3.md §F3);
- segmental (disc) angle of a level Lx-Ly: the lower endplate of Lx to the upper endplate of Ly,
  ``tilt(Lx lower) - tilt(Ly upper)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lumbarview.model.gradings import LEVELS
from lumbarview.model.kinds import sagittal_tilt
from lumbarview.model.measurements import Measurement

_NAME = re.compile(r"^\s*(T1[12]|L[1-6]|S1)\s+(upper|lower)\b", re.IGNORECASE)


@dataclass(frozen=True)
class AlignmentValue:
    label: str
    value: float  # degrees, lordotic positive
    source: str
    note: str = ""


def endplate_name(m: Measurement) -> tuple[str, str] | None:
    """(vertebra, "upper" | "lower") of an endplate line, from its label (None when it names none)."""
    found = _NAME.match(m.label or m.note or "")
    return None if found is None else (found.group(1).upper(), found.group(2).lower())


def endplate_tilts(measurements: Iterable[Measurement]) -> dict[tuple[str, str], tuple[float, str]]:
    """Each named endplate's tilt (degrees) and source; the last drawn of a name wins."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for m in measurements:
        if m.kind != "endplate":
            continue
        name = endplate_name(m)
        q = sagittal_tilt(m.points[0], m.points[1])
        if name is not None and q.ok:
            out[name] = (q.value, m.source)
    return out


def alignment_values(measurements: Iterable[Measurement]) -> list[AlignmentValue]:
    """Lumbar lordosis and the segmental angles that the drawn endplates allow (see the module)."""
    tilts = endplate_tilts(measurements)
    out = []

    def angle(label: str, a: tuple[str, str], b: tuple[str, str], note: str) -> None:
        if a in tilts and b in tilts:
            sources = sorted({tilts[a][1], tilts[b][1]})
            out.append(AlignmentValue(label, tilts[a][0] - tilts[b][0], "+".join(sources), note))

    angle("lumbar lordosis (L1-S1)", ("L1", "upper"), ("S1", "upper"),
          "L1 upper to S1 upper endplate; positive is lordosis")
    for level in LEVELS:
        upper, lower = level.split("-")
        angle(f"segmental angle {level}", (upper, "lower"), (lower, "upper"),
              f"{upper} lower to {lower} upper endplate; positive is lordotic")
    return out
