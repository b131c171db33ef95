"""The Grading dock in the viewer: the SPIDER case's dataset grades marked, a reader's choice an
undoable command, a pointer where a measured value contradicts a grade, the report's text."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarview.model.measurements import Measurement, MeasurementPlane
from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


def test_grading_dock_prefills_sets_undoes_and_points_out(qtbot, window, demo_small):  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["spider"])
    panel = window.docks.grading_panel
    window.show_dock("grading")
    assert window.docks.grading_dock.isVisible()
    case = window.session.case.id
    panel.level.setCurrentText("L4-L5")
    pfirrmann = panel.combos[("pfirrmann", None)]
    dataset = window.session.gradings.get(case, "L4-L5", "pfirrmann")
    assert dataset is not None and dataset.source == "dataset"
    assert pfirrmann.currentText() == dataset.value and panel.marks[("pfirrmann", None)].text() == "dataset"
    assert "Pfirrmann" in pfirrmann.toolTip() and "Spine 2001" in pfirrmann.toolTip()
    undo_before = len(window.session.undo)
    pfirrmann.setCurrentIndex(pfirrmann.findData("5"))
    mine = window.session.gradings.get(case, "L4-L5", "pfirrmann")
    assert mine is not None and (mine.value, mine.source) == ("5", "reader")
    assert panel.marks[("pfirrmann", None)].text() == ""
    assert len(window.session.undo) == undo_before + 1
    window.session.undo.undo()
    assert pfirrmann.currentText() == dataset.value and panel.marks[("pfirrmann", None)].text() == "dataset"
    # A dural sac drawn at 6 x 6 mm (36 mm²) under a Schizas A1: pointed out, the grade kept.
    schizas = panel.combos[("schizas", None)]
    schizas.setCurrentIndex(schizas.findData("A1"))
    plane = MeasurementPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    square = np.array([[0, 0, 0], [6, 0, 0], [6, 6, 0], [0, 6, 0]], dtype=float)
    window.session.measurements.add(Measurement.create("polygon", square, plane, case=case, level="L4-L5",
                                                       note="dural sac"))
    assert "36 mm²" in panel.pointers.text() and "75 mm²" in panel.pointers.text()
    assert schizas.currentText() == "A1"
    assert "polygon" in panel.measured.text()
    panel.fields["impression"].setPlainText("Severe central stenosis")
    assert window.session.report_fields.get(case, "impression") == "Severe central stenosis"
    window.docks.grading_dock.hide()  # the window remembers its docks: leave the next test the default
