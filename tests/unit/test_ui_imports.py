"""The window's helpers talk to a narrow shell (``ui/shell.py``), not to the main window: no
module of ``lumbarview.ui`` but the entry points imports ``main_window``, and the ui modules'
imports (type-checking ones and those inside functions included) form no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import lumbarview.ui

UI = Path(lumbarview.ui.__file__).parent
#: Where a window is made: the app's entry point and the in-app self-test.
ENTRY_POINTS = {"lumbarview.ui.app", "lumbarview.ui.selftest"}


def _module(path: Path) -> str:
    parts = path.relative_to(UI.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``lumbarview.ui`` module ``path`` imports, wherever the import stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in UI.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_only_the_entry_points_import_the_main_window() -> None:
    graph = _graph()
    assert "lumbarview.ui.main_window" in graph  # the walk sees the window's module
    importers = {name for name, targets in graph.items() if "lumbarview.ui.main_window" in targets}
    assert importers <= ENTRY_POINTS, f"{sorted(importers - ENTRY_POINTS)} import the main window: give them the shell"


def test_the_ui_modules_form_no_import_circle() -> None:
    graph = _graph()
    assert len(graph) > 20
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circle = [*path[path.index(target):], target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
