"""A dataset opened lazily in the viewer: the first case shows, every case is listed at once, and
the others' series and issues arrive in the browser and the issues panel as they are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.spider_helpers import damage, spider_cases

from .conftest import open_and_wait


@pytest.fixture(scope="module")
def spider_many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = spider_cases(tmp_path_factory.mktemp("lazy-source"), tmp_path_factory.mktemp("lazy-many"), 60)
    damage(root / "images" / "60_t1.mha")
    return root


def test_every_case_listed_and_read_in_the_background(qtbot, window, spider_many: Path) -> None:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, spider_many)
    tree = window.docks.tree
    assert tree.topLevelItemCount() == 60
    assert window.session.case is not None and window.session.case.id == "1"
    qtbot.waitUntil(lambda: not window.dataset.pending_cases and window.worker.idle, timeout=60_000)
    qtbot.waitUntil(lambda: all(tree.topLevelItem(i).childCount() > 0 for i in range(60)), timeout=10_000)
    assert [tree.topLevelItem(59).child(j).text(0) for j in range(tree.topLevelItem(59).childCount())] == ["t2"]
    issues = window.docks.issues_panel
    files = lambda: [issues.item(r, 3).text() for r in range(issues.rowCount())]  # noqa: E731
    qtbot.waitUntil(lambda: any(f.endswith("60_t1.mha") for f in files()), timeout=10_000)
    assert window.docks.issues_dock.isVisible()


def test_a_single_lazily_listed_case_gets_its_series_listed(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The case on screen is read by the viewer itself, so no case is left pending afterwards:
    # its series must still reach the browser.
    root = spider_cases(tmp_path / "source", tmp_path / "one", 1)
    open_and_wait(qtbot, window, root)
    case_item = window.docks.tree.topLevelItem(0)
    qtbot.waitUntil(lambda: case_item.childCount() == 2, timeout=10_000)
    assert sorted(case_item.child(j).text(0) for j in range(2)) == ["t1", "t2"]
