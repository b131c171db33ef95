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
