"""Overlay layers of a case: what is shown over the slice views, and how. No Qt.

A layer refers to one label map, box set or point set of the case (by index); its display
state (visible, opacity, fill or outline, hidden labels, per-label opacity, order) lives here
and is observed by every view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import BoxSet, Case, LabelMap, Mesh, PointSet
from lumbarview.core.events import Signal
from lumbarview.model.markers import kind_colour, parse_marker_name
from lumbarview.model.object_names import default_colour, readable_name


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def label_values_of(label_map: LabelMap) -> list[int]:
    """The values present in a label map (memoised on its stack for its revision: ``np.unique``
    of a real-size map takes a good fraction of a second, so the case loader warms it off the
    GUI thread; an edit of the map bumps the revision and the values are found again)."""
    stack = label_map.stack
    memo: tuple[int, list[int]] | None = stack.__dict__.get("_lv_label_values")
    if memo is None or memo[0] != stack.revision or not stack.is_loaded:
        revision, pixels = stack.versioned_pixels()
        memo = (revision, [int(v) for v in np.unique(pixels)])
        stack.__dict__["_lv_label_values"] = memo
    return memo[1]


@dataclass
class Layer:
    name: str
    kind: str  # "labels" | "boxes" | "points" | "mesh"
    source: LabelMap | BoxSet | PointSet | Mesh
    visible: bool = True
    opacity: float = 0.45
    outline: bool = False
    hidden_labels: set[int] = field(default_factory=set)
    label_opacity: dict[int, float] = field(default_factory=dict)
    colour_rgb: tuple[int, int, int] | None = None  # points and meshes (the 3D pane and the contours)
    #: What a person reads (from the file's name: kind, level, side), the kind that groups
    #: sets, and the kind's colour (hex) for points and curves.
    title: str = ""
    group: str = ""
    colour: str = "#5ad1e6"
    #: Names of identical sets from the same annotations that this layer stands for.
    duplicates: list[str] = field(default_factory=list)

    def colour_table(self) -> npt.NDArray[np.uint8]:
        """RGBA per label value (index = value) for a label layer, with visibility and opacity
        applied; value 0 is transparent."""
        assert isinstance(self.source, LabelMap)
        values = self._values()
        size = max([*values, 0]) + 1
        table = np.zeros((size, 4), dtype=np.uint8)
        for v in values:
            if v == 0 or v in self.hidden_labels:
                continue
            r, g, b = self.source.scheme.entry(v).color_rgb
            alpha = self.opacity * self.label_opacity.get(v, 1.0)
            table[v] = (r, g, b, round(255 * max(0.0, min(1.0, alpha))))
        return table

    def _values(self) -> list[int]:
        assert isinstance(self.source, LabelMap)
        return label_values_of(self.source)

    def label_values(self) -> list[int]:
        return [v for v in self._values() if v != 0]


class OverlayModel:
    """The layers of the case on screen, in drawing order (first drawn first)."""

    layers_changed = Signal()  # the list changed
    layer_changed = Signal(object)  # Layer whose display state changed

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.case: Case | None = None

    def set_case(self, case: Case | None, shown_stacks: set[str] | None = None) -> None:
        """Layers of ``case``. Label maps bound to an image that is not on screen start hidden
        (they are placed correctly anyway, but two masks of one anatomy would overlap)."""
        self.case = case
        self.layers = []
        if case is not None:
            for m in case.label_maps:
                visible = shown_stacks is None or m.bound_to is None or m.bound_to in shown_stacks
                opaque = m.scheme.name == "DICOM overlay"  # one-bit graphics: drawn opaque
                self.layers.append(Layer(m.name, "labels", m, visible=visible, opacity=1.0 if opaque else 0.45))
            for b, copies in unique_box_sets(case.box_sets):
                self.layers.append(Layer(b.name, "boxes", b, opacity=1.0, title=b.name, group="boxes",
                                         colour=kind_colour("boxes"), duplicates=copies))
            for p in case.point_sets:
                marker = parse_marker_name(p.name)
                colour = kind_colour(marker.kind)
                self.layers.append(Layer(p.name, "points", p, opacity=1.0, title=marker.text, group=marker.kind,
                                         colour=colour, colour_rgb=_hex_rgb(colour)))
            for n, mesh in enumerate(case.meshes):
                self.layers.append(Layer(readable_name(mesh.name), "mesh", mesh, opacity=1.0,
                                         colour_rgb=default_colour(mesh.name, n)))
        self.layers_changed.emit()

    def marker_layers(self) -> list[Layer]:
        """The box and point layers (the ones show-all / hide-all act on)."""
        return [layer for layer in self.layers if layer.kind in ("boxes", "points")]

    def update(self, layer: Layer, **changes: Any) -> None:
        for key, value in changes.items():
            if not hasattr(layer, key):
                raise AttributeError(f"a layer has no {key!r}")
            setattr(layer, key, value)
        self.layer_changed.emit(layer)

    def move(self, layer: Layer, delta: int) -> None:
        i = self.layers.index(layer)
        j = int(np.clip(i + delta, 0, len(self.layers) - 1))
        if i != j:
            self.layers.insert(j, self.layers.pop(i))
            self.layers_changed.emit()


def _box_signature(box_set: BoxSet) -> tuple[tuple[Any, ...], ...]:
    """What a box set shows, without where it was read from: its boxes' names, grades and
    places (sorted, so the order of the files does not matter)."""
    return tuple(sorted(
        (b.name, b.side or "", b.level or "", -1 if b.severity is None else b.severity,
         round(b.xmin, 3), round(b.ymin, 3), round(b.xmax, 3), round(b.ymax, 3), b.stack_uid or "",
         -1 if b.slice_index is None else b.slice_index) for b in box_set.boxes))


def unique_box_sets(box_sets: list[BoxSet]) -> list[tuple[BoxSet, list[str]]]:
    """Box sets with identical content kept once (the first), each with the names of the sets
    it stands for: one annotation source found twice (AISSLab ships its VOC files both beside
    the slices and in Foramina_Detection) is drawn once, not twice on top of itself."""
    out: list[tuple[BoxSet, list[str]]] = []
    by_signature: dict[tuple[tuple[Any, ...], ...], list[str]] = {}
    for box_set in box_sets:
        signature = _box_signature(box_set)
        copies = by_signature.get(signature) if box_set.boxes else None
        if copies is not None:
            copies.append(box_set.name)
            continue
        entry: tuple[BoxSet, list[str]] = (box_set, [])
        by_signature.setdefault(signature, entry[1])
        out.append(entry)
    return out
