"""RSNA's graded points in the viewer: listed in the Annotations dock with level, condition,
side and grade (filters, jump), their grade written beside them on the views, and a row of the
Tables dock's grades table taking the views to its point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.phantom.layouts import TRUTH_FILE
from tests.qt.conftest import open_and_wait

pytestmark = pytest.mark.qt


@pytest.fixture(scope="module")
def rsna_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(tmp_path_factory.mktemp("rsna-demo"), PhantomParams(), Sizes.small(), layouts=("rsna",))["rsna"]


def test_graded_points_in_the_annotations_dock(qtbot, window, rsna_root) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, rsna_root)
    panel = window.annotation_panel
    assert window.docks.annotation_dock.isVisible()
    assert panel.table.rowCount() == len(panel.shown) == 25  # 25 graded points, one row each
    headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert headers[:5] == ["Kind", "Level", "Side", "Condition", "Grade"]
    assert not panel.condition.isHidden() and panel.condition.count() == 6  # "any" + 5 conditions
    grades = [panel.severity.itemText(i) for i in range(panel.severity.count())]
    assert grades == ["any grade", "Normal/Mild", "Moderate", "Severe"]
    panel.condition.setCurrentText("Spinal Canal Stenosis")
    assert len(panel.shown) == 5 and all(a.condition == "Spinal Canal Stenosis" for a in panel.shown)
    panel.severity.setCurrentText("Moderate")
    truth = json.loads((rsna_root / TRUTH_FILE).read_text())["levels"]
    # The phantom's canal grades (the writer's rule): moderate from 7 to 10 mm AP (L4-L5, 7.5 mm).
    expected = [lv for lv, t in truth.items() if 7.0 <= t["canal_ap_mm"] < 10.0]
    assert expected and [a.level for a in panel.shown] == expected
    panel.severity.setCurrentIndex(0)
    panel.level.setCurrentText("L4-L5")
    (row,) = panel.shown
    panel.table.selectRow(0)
    qtbot.wait(20)
    assert np.allclose(window.session.cursor.crosshair, row.position_lps)
    # The point's grade is written beside it on the sagittal view.
    view = window.views["sagittal"]
    texts = [" / ".join(p[3]) for p in view.overlay._placed]
    assert row.grade and any(t == f"L4-L5 canal: {row.grade}" for t in texts), texts


def test_a_row_of_the_grades_table_jumps_to_its_point(qtbot, window, rsna_root) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, rsna_root)
    tables = window.tables_panel
    assert tables.select("train.csv")
    case = window.session.case
    points = {(i["condition"], i["level"]): p for ps in case.point_sets
              for i, p in zip(ps.info, ps.points_lps, strict=True)}
    tables.filter.setText("condition: right neural")
    assert len(tables.shown) == 5
    for n in (3, 1):
        tables.view.selectRow(n)
        qtbot.wait(20)
        row = tables.shown[n]
        assert np.allclose(window.session.cursor.crosshair, points[(row["condition"], row["level"])])
