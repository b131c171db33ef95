"""The layering rules of house-style §2, checked at run time (import-linter checks them
statically in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.dicom_helpers import sagittal, write_series

_QT = "{'PySide6', 'pyqtgraph', 'vtk', 'vtkmodules', 'superqt', 'shiboken6'}"


def test_core_packages_never_load_qt_or_vtk() -> None:
    """Every headless module (the whole package but ``lumbarview.ui`` and ``__main__``, found by
    walking it with pkgutil, not a hand-picked list) imports without loading Qt or VTK."""
    code = ("import importlib, os, pkgutil, sys, lumbarview\n"
            "def walk(path, prefix):\n"  # pkgutil.walk_packages would import lumbarview.ui's packages to list them
            "    for m in pkgutil.iter_modules(path, prefix):\n"
            "        if m.name in ('lumbarview.ui', 'lumbarview.__main__'):\n"
            "            continue\n"
            "        yield m.name\n"
            "        if m.ispkg:\n"
            "            yield from walk([os.path.join(path[0], m.name.rsplit('.', 1)[1])], m.name + '.')\n"
            "names = list(walk(lumbarview.__path__, 'lumbarview.'))\n"
            "[importlib.import_module(n) for n in names]\n"
            "assert len(names) > 90 and 'lumbarview.model.kinds' in sys.modules, len(names)\n"
            f"bad = {_QT} & set(sys.modules)\n"
            "sys.exit(', '.join(sorted(bad)) or None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_headless_info_run_never_loads_qt_or_vtk(tmp_path: Path) -> None:
    write_series(tmp_path, sagittal(n=3), "sag")
    code = ("import sys; from lumbarview.cli import main; rc = main(['info', sys.argv[1]]);"
            f"bad = {_QT} & set(sys.modules);"
            "sys.exit(', '.join(sorted(bad)) if bad else rc)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_volumes_are_written_and_read_without_simpleitk(tmp_path: Path) -> None:
    """SimpleITK is a test-only dependency (the app leaves it out): writing the MetaImage and
    NIfTI layouts and reading every volume back, voxels included, never loads it."""
    code = ("import sys; from pathlib import Path;"
            "from lumbarview.phantom.layouts import Sizes, write_spider, write_bids;"
            "from lumbarview.phantom.spine import LumbarPhantom;"
            "from lumbarview.services.open_dataset import open_path;"
            "root = Path(sys.argv[1]); p = LumbarPhantom();"
            "write_spider(root / 'spider', p, Sizes.small()); write_bids(root / 'bids', p, Sizes.small());"
            "n = sum(s.pixels().size > 0 for d in (open_path(root / 'spider', use_cache=False),"
            " open_path(root / 'bids', use_cache=False)) for c in d.cases for r in c.series for s in r.stacks);"
            "assert n >= 3, n;"
            "sys.exit('SimpleITK loaded' if 'SimpleITK' in sys.modules else None)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_the_package_imports_nothing_the_app_leaves_out() -> None:
    """Every import in ``lumbarview`` (at any depth of a module) is one the standalone app ships:
    nothing under packaging/lumbarview.spec's EXCLUDES, but ``distributed``, imported behind a
    clear message for `measure --scheduler`. (A module importing ``scipy.sparse`` once passed
    every test and failed only in the app's self-test.)"""
    import ast

    root = Path(__file__).resolve().parents[2]
    spec = ast.parse((root / "packaging" / "lumbarview.spec").read_text())
    excludes = next(ast.literal_eval(node.value) for node in ast.walk(spec) if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "EXCLUDES" for t in node.targets))
    allowed = {"distributed"}
    found = []
    for path in sorted((root / "lumbarview").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                for excluded in excludes:
                    if (name == excluded or name.startswith(excluded + ".")) and excluded not in allowed:
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    assert len(excludes) > 20 and not found, found
