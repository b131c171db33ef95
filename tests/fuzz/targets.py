"""One fuzz target per loader: how an input file is put on disk and read through lumbarview.

A target's ``run(path, ctx)`` reads the input the way the program does and touches the lazily
decoded pixels. What counts as a failure is decided by the harness (see ``harness.classify``):
returning, or raising a :class:`~lumbarview.core.errors.LoadError`, is fine.

Some targets need files around the input (a series' other slices, the files a DICOMDIR
references, the folder an index cache describes, a whole demo layout): those come from
``corpus/<target>/_base/`` (copied once into the worker's scratch folder) or, for layouts, from
the small phantom layouts the harness writes once per run. Inputs for the series and layout
targets carry an envelope, a first line ``LVFUZZ <key>`` naming the file they replace.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumbarview.core.errors import LoadError

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ENVELOPE = b"LVFUZZ "
ROOT_PLACEHOLDER = "@@ROOT@@"
FIXED_MTIME_NS = 1_600_000_000_000_000_000


@dataclass
class Ctx:
    """Per-worker scratch state (a folder per target, prepared once)."""

    scratch: Path
    layouts: Path | None = None
    prepared: dict[str, Path] = field(default_factory=dict)
    guarded: list[BaseException] = field(default_factory=list)

    def folder(self, target: str) -> Path:
        found = self.prepared.get(target)
        if found is not None:
            return found
        folder = self.scratch / target
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        base = CORPUS / target / "_base"
        if base.is_dir():
            shutil.copytree(base, folder, dirs_exist_ok=True)
            for p in folder.rglob("*"):
                if p.is_file():
                    os.utime(p, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        self.prepared[target] = folder
        return folder


def split_envelope(data: bytes) -> tuple[str | None, bytes]:
    if data.startswith(ENVELOPE):
        line, _, body = data.partition(b"\n")
        return line[len(ENVELOPE):].decode("utf-8", "replace").strip(), body
    return None, data


def touch(stack: Any, ctx: Ctx) -> None:
    """Decode a stack's pixels. A LoadError is fine; one that wraps a bare exception (the
    last-line guard in ImageStack caught a reader bug) is remembered for the report."""
    try:
        stack.pixels()
    except LoadError as exc:
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, LoadError):
            ctx.guarded.append(cause)


# -- DICOM --------------------------------------------------------------------------------------
def _dicom_folder(folder: Path, ctx: Ctx) -> None:
    from lumbarview.io.dicom.assemble import assemble
    from lumbarview.io.dicom.scan import scan_paths

    scan = scan_paths(folder, cache=None, workers=1)
    collection = assemble(scan.headers, str(folder), scan.issues)
    for stack in collection.all_stacks():
        touch(stack, ctx)


def run_dicom_file(path: Path, ctx: Ctx) -> None:
    _dicom_folder(path.parent, ctx)


def run_dicom_series(path: Path, ctx: Ctx) -> None:
    _dicom_folder(path.parent, ctx)


def run_dicomdir(path: Path, ctx: Ctx) -> None:
    from lumbarview.services.open_study import open_dicom

    collection = open_dicom(path, use_cache=False)
    for stack in collection.all_stacks():
        touch(stack, ctx)


def run_index_cache(path: Path, ctx: Ctx) -> None:
    """``path`` is the cache file (placeholder root already replaced); the DICOM folder it
    describes is ``<folder>/root``."""
    from lumbarview.io.dicom.assemble import assemble
    from lumbarview.io.dicom.scan import IndexCache, scan_paths

    root = path.parent / "root"
    cache = IndexCache(path.parent / "cache")
    scan = scan_paths(root, cache=cache, workers=1)
    collection = assemble(scan.headers, str(root), scan.issues)
    for stack in collection.all_stacks():
        touch(stack, ctx)


# -- volumes ------------------------------------------------------------------------------------
def run_volume(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.volume import open_label_volume, open_volume

    try:
        touch(open_volume(path), ctx)
    finally:
        touch(open_label_volume(path), ctx)


# -- annotations and tables ---------------------------------------------------------------------
def run_voc(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.annotations import read_voc

    read_voc(path)


def run_png_mask(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.annotations import read_png_mask

    read_png_mask(path)


def run_markups(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.annotations import read_markups

    read_markups(path)


def run_csv(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.annotations import SPIDER_GRADING_COLUMNS, SPIDER_OVERVIEW_COLUMNS, read_table

    name = path.name.lower()
    if name.startswith("gradings"):
        read_table(path, "spider-gradings", SPIDER_GRADING_COLUMNS)
    elif name.startswith("overview"):
        read_table(path, "spider-overview", SPIDER_OVERVIEW_COLUMNS)
    else:
        read_table(path, "table")


def run_stl(path: Path, ctx: Ctx) -> None:
    from lumbarview.io.mesh import read_stl

    read_stl(path)


def run_label_scheme(path: Path, ctx: Ctx) -> None:
    from lumbarview.core.labels import load_scheme

    load_scheme(path)


def run_flags(path: Path, ctx: Ctx) -> None:
    """Open the flags, then add one (the save that must not lose the old file), and reopen."""
    from lumbarview.model.flags import FlagStore

    store = FlagStore(path, "dataset")
    store.flags()
    store.flag("case|kind|source|details", "case", "note")
    again = FlagStore(path, "dataset")
    again.flags()


# -- whole layouts ------------------------------------------------------------------------------
def run_layout(path: Path, ctx: Ctx) -> None:
    """``path`` is the mutated file already in place inside a copy of the layout; the layout root
    is the first folder under the target's scratch folder."""
    from lumbarview.services.open_dataset import open_path

    folder = ctx.folder("layout")
    rel = path.relative_to(folder)
    dataset = open_path(folder / rel.parts[0], use_cache=False)
    for case in dataset.cases:
        for stack in case.stacks():
            touch(stack, ctx)
        for label_map in case.label_maps:
            touch(label_map.stack, ctx)
    _no_memory_issue(dataset)


def _no_memory_issue(dataset: Any) -> None:
    """A file that ran a reader out of memory is one a budget should have refused first."""
    short = [i for i in dataset.all_issues() if i.code == "load.memory"]
    if short:
        raise MemoryError(f"{short[0].path}: {short[0].message}")


# -- special files ------------------------------------------------------------------------------
#: What a special-file input puts into a dataset, and under which name (the input's first two
#: bytes choose; a mutated input always maps onto one of them).
SPECIAL_KINDS = ("fifo", "socket", "link to /dev/zero", "link to /dev/urandom", "link to /dev/null",
                 "link to a fifo", "a folder with a file's name")
SPECIAL_NAMES = ("x.mha", "x.mhd", "x.nrrd", "x.nhdr", "x.nii", "x.nii.gz", "x.json", "x.mrk.json", "x.stl",
                 "x.dcm", "x.csv", "x.tsv", "x.xml", "x.png", "x.pdf", "DICOMDIR", "x.ima", "x",
                 "sub/deeper/y.nrrd", "1_t2.mha")


def special_choice(data: bytes) -> tuple[str, str]:
    kind = SPECIAL_KINDS[data[0] % len(SPECIAL_KINDS)] if data else SPECIAL_KINDS[0]
    name = SPECIAL_NAMES[data[1] % len(SPECIAL_NAMES)] if len(data) > 1 else SPECIAL_NAMES[0]
    return kind, name


def make_special(path: Path, kind: str) -> None:
    """A FIFO, a socket, a link to a device or a folder at ``path`` (never a regular file)."""
    import socket

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(str(path))
        finally:
            server.close()
    elif kind.startswith("link to /dev/"):
        path.symlink_to(kind.removeprefix("link to "))
    elif kind == "link to a fifo":
        real = path.parent / f".pipe-{path.name.replace('/', '_')}"
        os.mkfifo(real)
        path.symlink_to(real.name)
    else:
        path.mkdir()


def run_special(path: Path, ctx: Ctx) -> None:
    """A dataset holding a good volume and one special file: it opens (a hang is the harness's
    timeout), the good volume is read and one issue names the special file."""
    from lumbarview.services.open_dataset import open_path

    folder = ctx.folder("special")
    kind = (folder / ".kind").read_text()
    dataset = open_path(folder, use_cache=False)
    for case in dataset.cases:
        for stack in case.stacks():
            touch(stack, ctx)
    _no_memory_issue(dataset)
    if kind == "a folder with a file's name":
        return
    named = [i for i in dataset.all_issues() if i.code == "load.special-file" and i.path == str(path)]
    if len(named) != 1:
        raise AssertionError(f"{len(named)} issues name the {kind} {path.name} (one expected)")


# -- session restore in the real viewer ----------------------------------------------------------------
_VIEWER: dict[str, Any] = {}


def _viewer(ctx: Ctx) -> dict[str, Any]:
    """The main window (offscreen) showing the phantom's Sudirman layout, made once per batch
    (each batch runs in a child forked for it)."""
    if not _VIEWER:
        import time

        from lumbarview.ui.app import make_app
        from lumbarview.ui.main_window import MainWindow

        if ctx.layouts is None:
            raise RuntimeError("the session target needs the phantom layouts")
        app = make_app()
        window = MainWindow()
        window.resize(1000, 700)
        window.show()
        shown: list[bool] = []
        window.views_ready.connect(lambda: shown.append(True))
        window.open(str(ctx.layouts / "sudirman"))
        deadline = time.monotonic() + 120
        while not shown and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)
        if not shown:
            raise RuntimeError("the viewer did not show the phantom within 120 s")
        _VIEWER.update(app=app, window=window)
    return _VIEWER


def run_session(path: Path, ctx: Ctx) -> None:
    """A session file restored into the real viewer (offscreen): the restore returns, every
    measurement comes back or is named as skipped, nothing it did raised (an exception a
    restore step caught is a failure here), and what the window shows and would save is
    valid JSON (no NaN or infinity made by arithmetic)."""
    import json

    from lumbarview.services.session_store import apply, open_session_file, snapshot
    from lumbarview.ui.screenshot import sidecar

    viewer = _viewer(ctx)
    app, window = viewer["app"], viewer["window"]
    opened = open_session_file(path)
    if opened.doc is None:
        raise LoadError(path, "not a session file")
    issues = apply(window.session, opened.doc, str(path))
    window.set_layout(window.session.layout)
    for _ in range(3):
        app.processEvents()
    caught = [i.message for i in issues if "could not be restored (" in i.message]
    if caught:
        raise AssertionError(caught[0])
    skipped = sum(1 for i in issues if " measurement " in i.message and "was skipped" in i.message)
    if len(window.session.measurements) + skipped != len(opened.doc.measurements):
        raise AssertionError(f"{len(window.session.measurements)} of {len(opened.doc.measurements)} measurements "
                             f"restored and {skipped} said skipped")
    json.dumps(sidecar(window), allow_nan=False)
    json.dumps(snapshot(window.session).to_json(), allow_nan=False)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[Path, Ctx], None]
    kind: str | None  # mutator family; None: from each seed's file name
    envelope: bool = False
    fixed_name: str | None = None  # the input is always written under this name
    setup: Callable[[Ctx], Any] | None = None  # once per batch, before its inputs (not measured)


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("dicom_file", run_dicom_file, "dicom"),
    Target("dicom_series", run_dicom_series, "dicom", envelope=True),
    Target("dicomdir", run_dicomdir, "dicom", fixed_name="DICOMDIR"),
    Target("mha", run_volume, "keyvalue"),
    Target("nifti", run_volume, "nifti"),
    Target("nrrd", run_volume, "keyvalue"),
    Target("voc", run_voc, "xml"),
    Target("png_mask", run_png_mask, "png"),
    Target("markups", run_markups, "json"),
    Target("csv", run_csv, "csv"),
    Target("stl", run_stl, "stl"),
    Target("label_scheme", run_label_scheme, "json"),
    Target("flags", run_flags, "json"),
    Target("index_cache", run_index_cache, "json"),
    Target("layout", run_layout, None, envelope=True),
    Target("special", run_special, "bytes"),
    Target("session", run_session, "json", setup=_viewer),
]}


def suffix_of(name: str) -> str:
    low = name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if low.endswith(double):
            return name[-len(double):]
    return Path(name).suffix


def place_input(target: Target, data: bytes, name: str, ctx: Ctx) -> Path | None:
    """Put one input on disk where its target reads it; None when the input cannot be placed
    (an envelope naming no known file)."""
    folder = ctx.folder(target.name)
    key, body = split_envelope(data) if target.envelope else (None, data)
    if target.name == "layout":
        if ctx.layouts is None or key is None:
            return None
        return _place_layout(ctx, folder, key, body)
    if target.name == "dicom_series":
        if key is None or "/" in key or key.startswith("."):
            return None
        path = folder / key
        if not path.exists():
            return None
        _restore_base(target.name, folder)
        path.write_bytes(body)
        return path
    if target.name == "special":
        base = CORPUS / target.name / "_base"
        keep = {p.name for p in base.iterdir()} if base.is_dir() else set()
        for p in folder.iterdir():
            if p.name not in keep:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        kind, name = special_choice(body)
        path = folder / name
        make_special(path, kind)
        folder.joinpath(".kind").write_text(kind)
        return path
    if target.name == "index_cache":
        from lumbarview.io.dicom.scan import IndexCache

        root = folder / "root"
        cache = IndexCache(folder / "cache")
        target_file = cache._file_for(str(root))
        target_file.parent.mkdir(parents=True, exist_ok=True)
        target_file.write_bytes(body.replace(ROOT_PLACEHOLDER.encode(), str(root).encode()))
        return folder / "index.json"
    base = CORPUS / target.name / "_base"
    keep = {p.name for p in base.iterdir()} if base.is_dir() else set()
    for p in folder.iterdir():  # what the previous input (or its loader) left
        if p.name not in keep:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    path = folder / (target.fixed_name or name)
    path.write_bytes(body)
    return path


def _restore_base(target: str, folder: Path) -> None:
    base = CORPUS / target / "_base"
    for p in base.iterdir():
        if p.is_file():
            dest = folder / p.name
            data = p.read_bytes()
            if not dest.exists() or dest.stat().st_size != len(data) or dest.read_bytes() != data:
                dest.write_bytes(data)


_LAYOUT_STATE: dict[str, tuple[Path, bytes]] = {}


def _place_layout(ctx: Ctx, folder: Path, key: str, body: bytes) -> Path | None:
    assert ctx.layouts is not None
    previous = _LAYOUT_STATE.pop(str(folder), None)
    if previous is not None:  # put back the file the last input replaced
        previous[0].write_bytes(previous[1])
    if not any(folder.iterdir()):
        shutil.copytree(ctx.layouts, folder, dirs_exist_ok=True)
    rel = Path(key)
    if rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2:
        return None
    path = folder / rel
    pristine = ctx.layouts / rel
    if not pristine.is_file():
        return None
    _LAYOUT_STATE[str(folder)] = (path, pristine.read_bytes())
    path.write_bytes(body)
    return path


def seeds(target: str) -> list[Path]:
    """The seed files of a target (everything in its corpus folder but ``_base``)."""
    folder = CORPUS / target
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and "_base" not in p.relative_to(folder).parts)
