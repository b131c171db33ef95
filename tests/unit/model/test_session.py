"""The session without Qt: every edit is a command that undoes and redoes exactly."""

from __future__ import annotations

import numpy as np

from lumbarview.core.dataset import BoxSet, Case, LabelMap
from lumbarview.core.labels import sct_scheme
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.session import Session
from lumbarview.model.view_state import WindowLevel
from lumbarview.slicing.planes import disc_aligned_plane
from tests.dicom_helpers import sagittal


def _case() -> tuple[Case, Series]:
    geometry = sagittal(n=12, rows=40, cols=36)
    data = np.arange(np.prod(geometry.shape_kji), dtype=np.float32).reshape(geometry.shape_kji)
    stack = ImageStack("sag#1", "sag", geometry, {"has_patient_geometry": True}, lambda: (data.copy(), []))
    stack.pixels()  # the case loader decodes before showing
    series = Series("sag", "T2 SAG", "MR", 1, [stack])
    labels = ImageStack("lab", "sag", geometry, {"kind": "labels"},
                        lambda: (np.zeros(geometry.shape_kji, dtype=np.int32), []))
    case = Case(id="c1", series=[series], label_maps=[LabelMap("mask", labels, sct_scheme(), "mask.nii", "sag#1")],
                box_sets=[BoxSet("boxes", "x")])
    return case, series


def _session() -> tuple[Session, Series]:
    session = Session(default_window=lambda stack: WindowLevel(100.0, 200.0))
    case, series = _case()
    centre = series.stacks[0].geometry.centre_lps()
    session.show_case(case, {"sagittal": series, "axial": series, "coronal": series, "oblique": None}, centre)
    return session, series


def test_show_case_gives_native_and_reformatted_views() -> None:
    session, _ = _session()
    assert session.views["sagittal"].mode == "native"
    assert session.views["axial"].mode == "reformat" and session.views["coronal"].mode == "reformat"
    assert session.views["oblique"].mode == "empty"
    assert not session.undo.can_undo  # loading a case is not an edit


def test_window_drag_merges_and_undoes_for_every_view_of_the_series() -> None:
    session, series = _session()
    start = session.views["sagittal"].window
    assert start == WindowLevel(100.0, 200.0)
    for c in (110.0, 120.0, 130.0):
        session.set_window("sagittal", WindowLevel(c, 200.0), merge=True)
    session.undo.end_merge()
    session.set_window("sagittal", WindowLevel(130.0, 50.0))
    assert len(session.undo) == 2
    assert session.views["axial"].window == WindowLevel(130.0, 50.0)  # same series, same window
    session.undo.undo()
    assert session.views["sagittal"].window == WindowLevel(130.0, 200.0)
    session.undo.undo()
    assert session.views["sagittal"].window == start and session.views["axial"].window == start
    session.undo.redo()
    assert session.views["coronal"].window == WindowLevel(130.0, 200.0)
    assert session.windows[series.uid] == WindowLevel(130.0, 200.0)


def test_layer_edits_undo_and_redo() -> None:
    session, _ = _session()
    layer = session.overlays.layers[0]
    opacity, visible = layer.opacity, layer.visible
    seen: list[object] = []
    session.overlays.layer_changed.connect(seen.append)
    for value in (0.5, 0.6, 0.7):
        session.set_layer(layer, merge=True, opacity=value)
    session.set_layer(layer, visible=not visible)
    assert len(session.undo) == 2 and layer.opacity == 0.7 and seen
    session.undo.undo()
    assert layer.visible == visible and layer.opacity == 0.7
    session.undo.undo()
    assert layer.opacity == opacity
    session.undo.redo()
    session.undo.redo()
    assert layer.opacity == 0.7 and layer.visible == (not visible)
    session.set_layer(layer, visible=layer.visible)  # no change: no history entry
    assert len(session.undo) == 2


def test_plane_alignment_undoes_plane_series_and_cursor() -> None:
    session, series = _session()
    axial = session.views["axial"]
    before_plane, before_cursor = axial.plane, session.cursor.crosshair.copy()
    centre = before_cursor + np.array([0.0, 2.0, -3.0])
    tilted = disc_aligned_plane(centre, np.array([0.0, 0.3, 1.0]), 1.0, (32, 32))
    session.set_plane("axial", tilted, series, "align", cursor_lps=centre)
    assert axial.custom_plane is tilted
    assert np.allclose(axial.plane.normal_lps, tilted.normal_lps)
    assert abs(float(axial.plane.signed_distance_mm(centre))) < 1e-9
    session.undo.undo()
    assert axial.custom_plane is None
    assert np.allclose(axial.plane.normal_lps, before_plane.normal_lps)
    assert np.allclose(session.cursor.crosshair, before_cursor)
    session.undo.redo()
    assert axial.custom_plane is tilted and np.allclose(session.cursor.crosshair, centre)


def test_display_convention_is_an_undoable_edit() -> None:
    session, _ = _session()
    sag = session.views["sagittal"]
    conventional = sag.plane
    session.set_native_orientation(True)
    assert sag.native_orientation and session.native_orientation
    session.undo.undo()
    assert not sag.native_orientation
    assert np.allclose(sag.plane.row_direction_lps, conventional.row_direction_lps)
    session.undo.redo()
    assert sag.native_orientation


def test_reference_lines_come_from_the_session() -> None:
    session, _ = _session()
    lines = session.reference_lines("sagittal")
    sources = {line.source for line in lines}
    assert sources == {"axial", "coronal"}  # the visible views of 1x3 that cut the sagittal
    for line in lines:
        plane = session.views[line.source].plane
        for end in (line.segment.start_lps, line.segment.end_lps):
            assert abs(float(plane.signed_distance_mm(end))) < 1e-6
            assert abs(float(session.views["sagittal"].plane.signed_distance_mm(end))) < 1e-6


def _second_case() -> tuple[Case, Series]:
    """Another case whose sagittal volume lies elsewhere (shifted 30 mm right, other size)."""
    geometry = sagittal(n=10, rows=32, cols=30)
    geometry = type(geometry).from_directions(geometry.shape_kji, (-44.0, -30.0, 50.0), (0, 1, 0), (0, 0, -1),
                                              (0.8, 0.9, 4.0))
    data = np.ones(geometry.shape_kji, dtype=np.float32)
    stack = ImageStack("other#1", "other", geometry, {"has_patient_geometry": True}, lambda: (data.copy(), []))
    stack.pixels()
    series = Series("other", "T1 SAG", "MR", 1, [stack])
    return Case(id="c2", series=[series]), series


def test_a_case_switch_updates_each_view_once_with_the_new_series() -> None:
    session, _ = _session()
    case, series = _second_case()
    seen: list[tuple[str, object, object]] = []
    for name, view in session.views.items():
        view.plane_changed.connect(lambda plane, n=name, v=view: seen.append((n, plane, v.series)))
    centre = series.stacks[0].geometry.centre_lps()
    session.show_case(case, {"sagittal": series, "axial": series, "coronal": series, "oblique": None}, centre)
    # One emission per view (four views), none of them showing the previous case's series.
    assert sorted(name for name, _, _ in seen) == ["axial", "coronal", "oblique", "sagittal"]
    assert all(shown is series for name, _, shown in seen if name != "oblique")
    planes = {name: plane for name, plane, _ in seen}
    assert planes["oblique"] is None
    # The planes are the new case's: through the new centre, on the new volume's slices.
    sag = planes["sagittal"]
    assert sag is not None and abs(float(sag.signed_distance_mm(centre))) <= 2.0 + 1e-9
    for name in ("axial", "coronal"):
        plane = planes[name]
        assert plane is not None and abs(float(plane.signed_distance_mm(centre))) < 1e-6
    assert np.allclose(session.cursor.crosshair, centre)


def test_windows_changed_is_told_for_window_edits_only() -> None:
    session, series = _session()
    told: list[int] = []
    session.windows_changed.connect(lambda: told.append(1))
    session.set_plane("axial", None, text="standard plane")  # an undo step that is not a window
    layer = session.overlays.layers[0] if session.overlays.layers else None
    if layer is not None:
        session.set_layer(layer, opacity=0.3)
    assert told == []
    session.set_window("sagittal", WindowLevel(10.0, 20.0))
    assert len(told) == 1 and session.windows[series.uid] == WindowLevel(10.0, 20.0)
    session.undo.undo()
    assert len(told) == 2
