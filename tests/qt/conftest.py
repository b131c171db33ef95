"""Qt tests: offscreen, settings in a temporary folder, no modal dialogs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="lumbarview-test-config-"))
os.environ["LUMBARVIEW_NO_DIALOGS"] = "1"
# Autosaved sessions and flags go to a temporary workspace, never the user's.
os.environ.setdefault("LUMBARVIEW_WORKSPACE", tempfile.mkdtemp(prefix="lumbarview-test-workspace-"))


@pytest.fixture(scope="session")
def qapp_cls():  # type: ignore[no-untyped-def]
    from PySide6 import QtWidgets

    return QtWidgets.QApplication


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(tmp_path_factory.mktemp("demo"), PhantomParams(), Sizes.small(),
                     layouts=("sudirman", "spider", "aisslab"))


@pytest.fixture
def window(qtbot, qapp):  # type: ignore[no-untyped-def]
    from lumbarview.ui.app import make_app
    from lumbarview.ui.main_window import MainWindow

    make_app()
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def open_and_wait(qtbot, window, path: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.views_ready, timeout=60_000):
        window.open(str(path))
    qtbot.wait(50)


@pytest.fixture
def opened(qtbot, window, demo_small) -> Iterator[object]:  # type: ignore[no-untyped-def]
    open_and_wait(qtbot, window, demo_small["sudirman"])
    yield window
