"""Custom view planes without Qt: the axial aligned to each phantom disc lies within a degree
of the disc's true plane; the oblique axial planned by a line on the sagittal contains the line
and the sagittal normal; custom planes sample the finest volume; a picked series goes to the
view of its orientation; the standard planes come back as undoable steps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumbarview.core.dataset import Case
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.session import Session
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_all
from lumbarview.phantom.spine import PhantomParams
from lumbarview.services.case_loader import load_case
from lumbarview.services.open_dataset import open_path
from lumbarview.services.view_planes import (
    best_volume,
    disc_aligned,
    plan_go_to,
    planned_from_line,
    reset_planes,
    view_for_series,
)

LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def _angle_deg(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    cos = abs(float(a @ b)) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(min(1.0, cos))))


@pytest.fixture(scope="module")
def spider(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, dict[str, Any]]:
    """The phantom's SPIDER case (sagittal T1 and T2 volumes, a 3D label map) on screen, with
    the truth; 1.5 mm pixels and 2.2 mm slices keep the label map's disc planes within a
    fraction of a degree of the truth."""
    sizes = replace(Sizes.small(), spider_matrix=160, spider_pixel_mm=1.5, spider_slices=15, spider_spacing_mm=2.2)
    root = write_all(tmp_path_factory.mktemp("spider"), PhantomParams(), sizes, layouts=("spider",))["spider"]
    dataset = open_path(str(root))
    view = load_case(dataset.cases[0])
    session = Session()
    session.set_dataset(dataset)
    session.show_case(view.case, view.series, view.cursor_lps, view.disc_planes, view.shown_stacks)
    truth = json.loads((Path(root) / TRUTH_FILE).read_text())["levels"]
    return session, truth


@pytest.mark.parametrize("level", LEVELS)
def test_the_disc_aligned_axial_lies_within_a_degree_of_the_disc(spider: tuple[Session, dict[str, Any]],
                                                                 level: str) -> None:
    session, truth = spider
    normal_truth = np.asarray(truth[level]["disc_normal_lps"])
    centre_truth = np.asarray(truth[level]["disc_centre_lps"])
    planned = disc_aligned(session.case, session.disc_planes, level)
    assert planned is not None
    plane = planned.plane
    assert _angle_deg(plane.normal_lps, normal_truth) < 1.0
    assert abs(float(plane.signed_distance_mm(centre_truth))) < 1.0
    assert planned.view == "axial" and planned.source is best_volume(session.case)
    # The radiological axial: seen from the feet, patient left on the right, posterior down.
    assert plane.normal_lps[2] > 0.9 and plane.right_lps[0] > 0.9 and plane.down_lps[1] > 0.9
    # Square pixels of the volume's finest spacing, covering the whole volume.
    geometry = planned.source.stacks[0].geometry
    assert plane.spacing_mm == (min(geometry.spacing_mm),) * 2
    n_k, n_j, n_i = geometry.shape_kji
    corners = geometry.index_to_lps(np.array([[i, j, k] for i in (0, n_i - 1) for j in (0, n_j - 1)
                                              for k in (0, n_k - 1)], dtype=float))
    col_row = plane.lps_to_pixel(corners)
    rows, cols = plane.shape_rc
    assert np.all(col_row >= -0.5) and np.all(col_row[:, 0] <= cols - 0.5) and np.all(col_row[:, 1] <= rows - 0.5)


def test_the_tilted_discs_are_not_the_standard_axial(spider: tuple[Session, dict[str, Any]]) -> None:
    """The test above can fail: the lowest discs tilt well beyond a degree from the scanner's axial."""
    _session, truth = spider
    assert _angle_deg(truth["L5-S1"]["disc_normal_lps"], (0.0, 0.0, 1.0)) > 10.0


def test_aligning_moves_the_axial_and_the_cursor_as_one_undo_step(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    axial = session.views["axial"]
    before_plane, before_cursor = axial.plane, session.cursor.crosshair.copy()
    planned = disc_aligned(session.case, session.disc_planes, "L4-L5")
    assert planned is not None
    planned.apply(session)
    assert axial.custom_plane is planned.plane
    assert np.allclose(session.cursor.crosshair, planned.cursor_lps)
    assert session.undo.undo_text == "align axial to L4-L5"
    session.undo.undo()
    assert axial.custom_plane is None and np.allclose(session.cursor.crosshair, before_cursor)
    assert before_plane is not None and axial.plane is not None
    assert np.allclose(axial.plane.normal_lps, before_plane.normal_lps)


def test_no_disc_or_no_volume_plans_nothing(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    assert disc_aligned(session.case, session.disc_planes, "L6-S1") is None
    assert disc_aligned(session.case, {}, "L4-L5") is None
    assert disc_aligned(None, session.disc_planes, "L4-L5") is None


def _sagittal_line(session: Session, a: tuple[float, float], b: tuple[float, float]) -> tuple[Any, Any]:
    plane = session.views["sagittal"].plane
    assert plane is not None
    centre = session.cursor.crosshair
    return tuple(centre + x * plane.right_lps + y * plane.down_lps for x, y in (a, b))  # type: ignore[return-value]


def test_a_line_on_the_sagittal_plans_the_oblique_axial_through_it(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    sagittal = session.views["sagittal"].plane
    assert sagittal is not None
    start, end = _sagittal_line(session, (-25.0, -6.0), (25.0, 8.0))
    planned = planned_from_line(session.case, sagittal, start, end)
    assert planned is not None
    normal = planned.plane.normal_lps
    line = (end - start) / np.linalg.norm(end - start)
    assert abs(float(normal @ line)) < 1e-9  # perpendicular to the drawn line
    assert abs(float(normal @ sagittal.normal_lps)) < 1e-9  # and lying in the sagittal plane
    assert _angle_deg(normal, (0.0, 0.0, 1.0)) > 10.0  # oblique: the line is tilted 15.6 degrees
    assert normal[2] > 0  # seen from the feet, as an axial
    for point in (start, end):
        assert abs(float(planned.plane.signed_distance_mm(point))) < 1e-6
    assert np.allclose(planned.cursor_lps, (start + end) / 2)
    assert planned.view == "axial" and planned.text == "plan oblique axial"


def test_a_line_leaving_the_sagittal_plane_is_projected_onto_it(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    sagittal = session.views["sagittal"].plane
    assert sagittal is not None
    start, end = _sagittal_line(session, (-25.0, -6.0), (25.0, 8.0))
    planned = planned_from_line(session.case, sagittal, start, end + 7.0 * sagittal.normal_lps)
    assert planned is not None
    assert abs(float(planned.plane.normal_lps @ sagittal.normal_lps)) < 1e-9


def test_a_dot_plans_nothing_and_says_why(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    sagittal = session.views["sagittal"].plane
    point = session.cursor.crosshair
    with pytest.raises(ValueError, match="too short"):
        planned_from_line(session.case, sagittal, point, point)
    assert planned_from_line(session.case, None, point, point + 10.0) is None


def test_reset_planes_brings_back_every_standard_plane(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    planned = disc_aligned(session.case, session.disc_planes, "L3-L4")
    assert planned is not None
    planned.apply(session)
    reset_planes(session)
    assert all(view.custom_plane is None for view in session.views.values())
    session.undo.undo()
    assert session.views["axial"].custom_plane is planned.plane
    session.undo.undo()


def _series(uid: str, description: str, spacing_mm: tuple[float, float, float], shape_kji: tuple[int, int, int],
            row: tuple[float, float, float] = (0.0, 1.0, 0.0), col: tuple[float, float, float] = (0.0, 0.0, -1.0),
            blocks: int = 1) -> Series:
    geometry = VolumeGeometry.from_directions(shape_kji, (0.0, 0.0, 0.0), row, col, spacing_mm)
    stacks = [ImageStack(f"{uid}#{n}", uid, geometry, {}, lambda: (np.zeros(shape_kji), [])) for n in range(blocks)]
    return Series(uid, description, "MR", None, stacks)


def test_custom_planes_sample_the_finest_volume_then_t2() -> None:
    sagittal_t1 = _series("sag-t1", "T1 sag", (0.6, 0.6, 3.3), (15, 448, 448))
    sagittal_t2 = _series("sag-t2", "T2 sag", (0.6, 0.6, 3.3), (15, 448, 448))
    iso = _series("iso", "T1 3D", (1.0, 1.0, 1.0), (160, 256, 256))
    blocks = _series("ax", "T2 ax", (0.5, 0.5, 0.5), (4, 320, 320), row=(1, 0, 0), col=(0, 1, 0), blocks=3)
    single = _series("loc", "localizer", (0.5, 0.5, 0.5), (1, 256, 256))
    assert best_volume(Case("1", [sagittal_t1, sagittal_t2, iso, blocks, single])) is iso
    assert best_volume(Case("2", [sagittal_t1, sagittal_t2, blocks])) is sagittal_t2
    assert best_volume(Case("3", [blocks, single])) is None
    assert best_volume(None) is None


def test_a_picked_series_goes_to_the_view_of_its_orientation() -> None:
    assert view_for_series(_series("sag", "T2", (0.6, 0.6, 3.3), (15, 64, 64))) == "sagittal"
    assert view_for_series(_series("ax", "T2", (0.6, 0.6, 4.0), (4, 64, 64), row=(1, 0, 0), col=(0, 1, 0))) == "axial"
    coronal = _series("cor", "T2", (0.6, 0.6, 4.0), (4, 64, 64), row=(1, 0, 0), col=(0, 0, -1))
    assert view_for_series(coronal) == "coronal"
    assert view_for_series(coronal, ("sagittal", "axial")) == "sagittal"  # no coronal view: the sagittal


# -- "go to this": one policy for the measurement table, the levels panel, the annotations --------

def _tilted_axes(sagittal: Any, degrees: float) -> tuple[Any, Any]:
    """The sagittal's in-plane axes turned ``degrees`` about its down axis (out of its plane)."""
    a = np.radians(degrees)
    right = np.cos(a) * sagittal.right_lps + np.sin(a) * sagittal.normal_lps
    return right, sagittal.down_lps


def test_go_to_a_point_moves_the_cursor_and_centres_every_visible_view(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    point = session.cursor.crosshair + np.array([3.0, -4.0, 5.0])
    go = plan_go_to(session, point, field_mm=40.0)
    assert go.planned is None and np.allclose(go.cursor_lps, point) and go.field_mm == 40.0
    assert go.zoom == tuple(v.name for v in session.visible_views()) == ("sagittal", "axial", "coronal")


def test_go_to_a_thing_on_a_shown_plane_keeps_the_planes(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    sagittal = session.views["sagittal"]
    plane = sagittal.plane
    assert plane is not None and sagittal.mode == "native"
    # Two points on the stored sagittal slice on screen: the sagittal shows them as they are.
    points = np.array([plane.origin_lps + 20 * plane.right_lps + 30 * plane.down_lps,
                       plane.origin_lps + 45 * plane.right_lps + 60 * plane.down_lps])
    centre = points.mean(axis=0)
    go = plan_go_to(session, centre, right_lps=plane.right_lps, down_lps=plane.down_lps, points_lps=points)
    assert go.planned is None and go.zoom == ("sagittal",)
    undo_before = len(session.undo)
    go.apply(session)
    assert np.allclose(session.cursor.crosshair, centre) and len(session.undo) == undo_before
    # Half a slice off the stored slices (drawn on a reformat): the sagittal cannot show it as
    # it is, so a view gets a plane through the points.
    off = points + 0.5 * sagittal.source.geometry.slice_spacing_mm * plane.normal_lps  # type: ignore[union-attr]
    go = plan_go_to(session, off.mean(axis=0), right_lps=plane.right_lps, down_lps=plane.down_lps, points_lps=off)
    assert go.planned is not None and go.planned.view == "sagittal"
    assert np.max(np.abs(go.planned.plane.signed_distance_mm(off))) < 1e-6


def test_go_to_an_oblique_thing_gives_one_view_its_plane(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    sagittal = session.views["sagittal"].plane
    assert sagittal is not None
    right, down = _tilted_axes(sagittal, 20.0)
    centre = session.cursor.crosshair.copy()
    points = np.array([centre - 10 * right, centre + 10 * right + 5 * down])
    go = plan_go_to(session, centre, right_lps=right, down_lps=down, points_lps=points, text="go to distance")
    planned = go.planned
    assert planned is not None
    # The most parallel visible view (the sagittal: 20 degrees off; the axial and coronal: 70 and 90).
    assert planned.view == "sagittal" and go.zoom == ("sagittal",)
    normal = np.cross(right, down)
    assert abs(abs(float(planned.plane.normal_lps @ normal)) - 1.0) < 1e-9
    assert np.max(np.abs(planned.plane.signed_distance_mm(points))) < 1e-6
    assert planned.source is best_volume(session.case) and planned.text == "go to distance"
    # A view the caller prefers takes it when visible; a hidden one does not.
    assert plan_go_to(session, centre, right_lps=right, down_lps=down, prefer="coronal").planned.view == "coronal"  # type: ignore[union-attr]
    assert plan_go_to(session, centre, right_lps=right, down_lps=down, prefer="oblique").planned.view == "sagittal"  # type: ignore[union-attr]
    # In the 2x2 layout the oblique view takes custom planes.
    session.layout = "2x2"
    try:
        assert plan_go_to(session, centre, right_lps=right, down_lps=down).planned.view == "oblique"  # type: ignore[union-attr]
    finally:
        session.layout = "1x3"
    go.apply(session)
    assert session.views["sagittal"].custom_plane is planned.plane and session.undo.undo_text == "go to distance"
    session.undo.undo()
    assert session.views["sagittal"].custom_plane is None


def test_go_to_needs_a_plane_of_two_directions(spider: tuple[Session, dict[str, Any]]) -> None:
    session, _truth = spider
    with pytest.raises(ValueError, match="two independent directions"):
        plan_go_to(session, session.cursor.crosshair, right_lps=(1.0, 0.0, 0.0), down_lps=(2.0, 0.0, 0.0))
