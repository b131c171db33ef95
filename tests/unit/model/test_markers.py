"""Markers people can read: names from the files (kind, level, side), a colour per kind,
visible by default, show/hide all as one undo step, identical box sets shown once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.dataset import Box, BoxSet, Case, PointSet
from lumbarview.model.markers import kind_colour, parse_marker_name, point_label
from lumbarview.model.overlays import OverlayModel, unique_box_sets
from lumbarview.model.session import Session
from lumbarview.model.window_presets import default_window
from lumbarview.phantom.layouts import Sizes, write_all
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("markers-demo"), sizes=Sizes.small(), layouts=("bids", "aisslab"))


@pytest.mark.parametrize("name, kind, level, side, index, text", [
    ("sub-01_nerveroots_L4_L", "nerve roots", "L4", "left", None, "nerve roots L4 left"),
    ("sub-01_ganglions_L5_R", "ganglia", "L5", "right", None, "ganglia L5 right"),
    ("sub-01dura6", "dura", None, None, 6, "dura #6"),
    ("sub-01_dura_12", "dura", None, None, 12, "dura #12"),
    ("sub-02_nerveroots_L4_L:root", "nerve roots", "L4", "left", None, "nerve roots L4 left"),
    ("Spinal Canal Stenosis (Sagittal T2/STIR, 42)", "spinal canal stenosis", None, None, None,
     "Spinal Canal Stenosis (Sagittal T2/STIR, 42)"),
    ("my_points", "my points", None, None, None, "my points"),
])
def test_names_from_the_files(name: str, kind: str, level: str | None, side: str | None, index: int | None,
                              text: str) -> None:
    marker = parse_marker_name(name)
    assert (marker.kind, marker.level, marker.side, marker.index, marker.text) == (kind, level, side, index, text)


def test_a_colour_per_kind() -> None:
    assert kind_colour("nerve roots") == kind_colour("Nerve Roots")
    colours = {kind_colour(k) for k in ("nerve roots", "ganglia", "dura")}
    assert len(colours) == 3
    assert kind_colour("something new") == kind_colour("something new")  # stable for unknown kinds


def test_point_labels() -> None:
    roots = parse_marker_name("sub-01_nerveroots_L4_L")
    assert point_label(roots, "root-1", 0) == "nerve roots L4 L"  # a running number says nothing
    assert point_label(roots, "exit", 0) == "exit"
    assert point_label(parse_marker_name("x"), "", 2) == "x 3"


def test_bids_markers_are_named_coloured_and_visible(demo: dict[str, Path]) -> None:
    dataset = open_path(str(demo["bids"]), use_cache=False)
    case = dataset.cases[0]
    model = OverlayModel()
    model.set_case(case)
    points = [layer for layer in model.layers if layer.kind == "points"]
    assert len(points) == len(case.point_sets) > 12  # more than the old "start hidden" threshold
    assert all(layer.visible for layer in points)
    by_name = {layer.name: layer for layer in points}
    for point_set in case.point_sets:  # every title comes from its file's name
        stem = Path(point_set.source).name.removesuffix(".json")
        assert point_set.name.startswith(stem)
        assert by_name[point_set.name].title == parse_marker_name(stem).text
    roots = [layer for layer in points if layer.group == "nerve roots"]
    ganglia = [layer for layer in points if layer.group == "ganglia"]
    assert roots and ganglia
    assert {layer.colour for layer in roots} == {kind_colour("nerve roots")} != {layer.colour for layer in ganglia}
    assert any(layer.title == "nerve roots L4 left" for layer in roots)


def test_show_all_and_hide_all_is_one_undo_step(demo: dict[str, Path]) -> None:
    dataset = open_path(str(demo["bids"]), use_cache=False)
    session = Session(default_window)
    session.overlays.set_case(dataset.cases[0])
    markers = session.overlays.marker_layers()
    session.set_layer(markers[0], visible=False)
    session.set_layers(markers, "hide all markers", visible=False)
    assert not any(layer.visible for layer in markers)
    session.undo.undo()
    assert not markers[0].visible and all(layer.visible for layer in markers[1:])
    session.set_layers(markers, "show all markers", visible=True)
    assert all(layer.visible for layer in markers)
    depth = len(session.undo)
    session.set_layers(markers, "show all markers", visible=True)  # nothing changes: no history
    assert len(session.undo) == depth


def test_aisslab_boxes_from_one_source_are_shown_once(demo: dict[str, Path]) -> None:
    dataset = open_path(str(demo["aisslab"]), use_cache=False)
    case = dataset.cases[0]
    # The VOC files beside the slices and in Foramina_Detection are merged when the dataset opens.
    (box_set,) = case.box_sets
    assert box_set.boxes and all(len(b.copies) == 1 for b in box_set.boxes)
    model = OverlayModel()
    model.set_case(case)
    boxes = [layer for layer in model.layers if layer.kind == "boxes"]
    assert len(boxes) == 1 and boxes[0].duplicates == []
    assert boxes[0].source is box_set


def _box(level: str, severity: int, x: float) -> Box:
    return Box("foramen", "left", level, severity, x, 1.0, x + 5, 6.0, "s", 2, np.zeros((4, 3)), "a.xml")


def test_box_sets_that_differ_are_both_kept() -> None:
    a = BoxSet("a", "A", [_box("L4-L5", 2, 10.0), _box("L5-S1", 0, 20.0)])
    same = BoxSet("b", "B", [_box("L5-S1", 0, 20.0), _box("L4-L5", 2, 10.0)])  # order does not matter
    other_grade = BoxSet("c", "C", [_box("L4-L5", 1, 10.0), _box("L5-S1", 0, 20.0)])
    empty1, empty2 = BoxSet("e1", "E"), BoxSet("e2", "E")
    kept = unique_box_sets([a, same, other_grade, empty1, empty2])
    assert [(s.name, d) for s, d in kept] == [("a", ["b"]), ("c", []), ("e1", []), ("e2", [])]


def test_points_of_an_rsna_like_set_keep_their_labels() -> None:
    case = Case("1", point_sets=[PointSet("Spinal Canal Stenosis (Sagittal T2/STIR, 7)", "points",
                                          np.zeros((1, 3)), ["L4/L5"], "c.csv", "pixel")])
    model = OverlayModel()
    model.set_case(case)
    (layer,) = model.layers
    assert layer.group == "spinal canal stenosis" and layer.colour == kind_colour("spinal canal stenosis")
    assert point_label(parse_marker_name(layer.name), "L4/L5", 0) == "L4/L5"
