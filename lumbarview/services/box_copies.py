"""One box, one row: annotation files shipped twice become one set of boxes.

LSS-MRI-AISSLab ships each slice's PASCAL VOC file twice: beside the slice
(``<patient>/Sagittal/<stem>.xml``) and in ``Foramina_Detection/Annotations/<patient>_<stem>.xml``.
Read as they are, every box would be listed, drawn and counted twice. Here the copies of one box
(same slice, side and level) are matched: where they agree (same grade, same corners to within
:data:`AGREE_PX`) they are one box that names the other files in ``copies``; where they disagree
both are kept, each marked with what differs, and an issue says so. A box found in one copy only
is kept as it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from lumbarview.core.dataset import Box, BoxSet
from lumbarview.core.types import LoadIssue, Severity

#: Two copies of a box agree when each edge is within this many pixels (VOC files hold integer
#: pixels; a re-export that rounds differently moves an edge by at most one half).
AGREE_PX = 0.5


def _key(box: Box) -> tuple[str, str, str]:
    return (box.slice_name or Path(box.source).stem, box.side or "?", box.level or "?")


def _differences(a: Box, b: Box) -> list[str]:
    found = []
    if a.severity != b.severity:
        found.append(f"grade {a.severity} against {b.severity}")
    edges = ((a.xmin, b.xmin), (a.ymin, b.ymin), (a.xmax, b.xmax), (a.ymax, b.ymax))
    if any(abs(p - q) > AGREE_PX for p, q in edges):
        found.append(f"box ({a.xmin:g}, {a.ymin:g})-({a.xmax:g}, {a.ymax:g}) against "
                     f"({b.xmin:g}, {b.ymin:g})-({b.xmax:g}, {b.ymax:g}) px")
    return found


def merge_box_copies(box_sets: list[BoxSet], name: str) -> tuple[BoxSet | None, list[LoadIssue]]:
    """The boxes of ``box_sets`` (copies of one annotation, in order of preference) as one set
    called ``name``, and the issues met (copies that disagree). None when there is no set."""
    if not box_sets:
        return None, []
    merged = BoxSet(name, "; ".join(dict.fromkeys(b.source for b in box_sets)))
    issues: list[LoadIssue] = []
    # One slot per box of the first copy to hold it: the box, then any copy that disagrees
    # (listed right after it). Per key, the slots in the order the key's boxes came.
    slots: list[list[Box]] = []
    kept: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for set_index, box_set in enumerate(box_sets):
        # The n-th box of a key in one file pairs with the n-th of that key in the others.
        seen_here: dict[tuple[str, str, str], int] = defaultdict(int)
        for box in box_set.boxes:
            key = _key(box)
            n = seen_here[key]
            seen_here[key] += 1
            group = kept[key]
            if set_index == 0 or n >= len(group):
                group.append(len(slots))
                slots.append([box])
                continue
            slot = slots[group[n]]
            first = slot[0]
            differences = _differences(first, box)
            if not differences:
                slot[0] = replace(first, copies=(*first.copies, box.source))
                continue
            what = "; ".join(differences)
            slot[0] = replace(first, disagreement=_note(first.disagreement, f"{what} in {box.source}"))
            slot.append(replace(box, disagreement=f"copy of the box in {first.source}, which says "
                                                   f"otherwise ({what})"))
            issues.append(LoadIssue(
                Severity.WARNING, "boxes.copies-disagree",
                f"two copies of the {box.side or '?'} {box.level or '?'} box on slice {key[0]} disagree "
                f"({what}); both are listed and drawn, marked. Check which file is right",
                box.source))
    merged.boxes = [box for slot in slots for box in slot]
    return merged, issues


def _note(previous: str | None, text: str) -> str:
    return text if not previous else f"{previous}; {text}"
