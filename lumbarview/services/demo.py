"""Use case: the built-in demo dataset (the lumbar phantom written in the six layouts).

The demo is written where the user asks (``lumbarview demo --out DIR``), so it must never cost
the user a file. It writes only into a folder that is missing, empty, or a demo it wrote before,
which it recognises by its marker file (``DIR/.lumbarview-demo-complete``: the demo version,
the size, and the list of files it wrote with their sizes). Anything else is refused with a
:class:`DemoFolderError` saying why and what to do.

The demo is first written to a fresh hidden staging folder beside ``DIR`` (created with a unique
name, so it is never a folder of the user's) and moved into place with one rename, so an
interrupted run never leaves a half demo that looks complete. Replacing an older demo removes
only the files its marker lists, and only when the folder holds nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lumbarview.core.errors import LumbarviewError
from lumbarview.core.fs import atomic_write_text, fsync_dir

#: Written last, inside the staging folder, just before it becomes ``DIR``: it marks a complete
#: demo and lists the files the demo wrote.
MARKER = ".lumbarview-demo-complete"
#: Written first into a staging folder: the folder is lumbarview's and may be removed if the
#: run that made it is gone.
_STAGING_MARKER = ".lumbarview-demo-staging"
_STAGING_SUFFIX = ".lumbarview-partial"
_DEMO_VERSION = 5  # 3: the RSNA 2024 layout; 4: the UniData report PDF has text; 5: dura = the sac


class DemoFolderError(LumbarviewError):
    """The demo cannot be written to the folder asked for; the message says why and what to do."""


def _expected(small: bool) -> dict[str, Any]:
    return {"version": _DEMO_VERSION, "small": small}


def _read_marker(root: Path) -> dict[str, Any] | None:
    """The marker of a demo in ``root``, or None when there is none (or it cannot be read)."""
    marker = root / MARKER
    if not marker.is_file() or marker.is_symlink():
        return None
    try:
        if marker.stat().st_size > 64 * 1024 * 1024:
            return None
        doc = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _listed_files(doc: dict[str, Any]) -> dict[str, int] | None:
    files = doc.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in files.items()):
        return None
    return files


def _inventory(root: Path) -> tuple[dict[str, int], list[str]]:
    """Every regular file under ``root`` (relative POSIX path -> size), and whatever is neither
    a regular file nor a folder (links, sockets...)."""
    files: dict[str, int] = {}
    other: list[str] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in [*names, *dirs]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                other.append(rel)
            elif name in names:
                if path.is_file():
                    files[rel] = path.stat().st_size
                else:
                    other.append(rel)
    return files, other


def _foreign_entries(root: Path, doc: dict[str, Any]) -> list[str] | None:
    """What in a previous demo folder the demo did not write (or changed); None when its marker
    has no file list (a demo of an earlier lumbarview), so nothing can be proved ours."""
    listed = _listed_files(doc)
    if listed is None:
        return None
    files, other = _inventory(root)
    foreign = [rel for rel, size in files.items() if rel != MARKER and listed.get(rel) != size]
    return sorted(foreign + other)


def _remove_previous_demo(root: Path, doc: dict[str, Any]) -> None:
    """Remove exactly the files a previous demo listed, then its (now empty) folders."""
    listed = _listed_files(doc) or {}
    for rel in listed:
        with contextlib.suppress(FileNotFoundError):
            (root / rel).unlink()
    (root / MARKER).unlink()
    folders = {parent for rel in listed for parent in Path(rel).parents if parent != Path(".")}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            (root / folder).rmdir()  # fails, and so keeps the folder, if anything is left in it


def _sweep_stale_staging(root: Path) -> None:
    """Remove the staging folders of killed demo runs for ``root`` (only those carrying the
    staging marker of a process that no longer runs)."""
    parent = root.parent
    if not parent.is_dir():
        return
    for candidate in parent.glob(f".{root.name}.*{_STAGING_SUFFIX}"):
        marker = candidate / _STAGING_MARKER
        if candidate.is_symlink() or not marker.is_file():
            continue
        try:
            pid = int(marker.read_text(encoding="utf-8").strip() or "0")
        except (OSError, ValueError):
            continue
        if pid > 0 and pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # that run is still writing
            except ProcessLookupError:
                pass
            except OSError:
                continue
        shutil.rmtree(candidate, ignore_errors=True)


def _check_target(root: Path, small: bool) -> tuple[str, dict[str, Any] | None]:
    """What ``root`` is: ``"missing"``, ``"empty"``, ``"current"`` (a complete demo of this
    version and size) or ``"previous"`` (another demo, all of it ours); raises otherwise."""
    if root.is_symlink():
        raise DemoFolderError(f"{root} is a symbolic link; give the folder it points to, or a new folder, "
                              f"with --out")
    if not root.exists():
        return "missing", None
    if not root.is_dir():
        raise DemoFolderError(f"{root} is a file, not a folder; give a folder that does not exist yet "
                              f"or is empty with --out")
    try:
        entries = sorted(p.name for p in root.iterdir())
    except OSError as exc:
        raise DemoFolderError(f"{root} cannot be read ({exc.strerror}); choose another folder with --out") from exc
    if not entries:
        return "empty", None
    doc = _read_marker(root)
    if doc is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise DemoFolderError(f"{root} is not empty ({shown}) and was not written by `lumbarview demo`; "
                              f"nothing was written: choose a new or empty folder with --out")
    if {k: doc.get(k) for k in ("version", "small")} == _expected(small):
        return "current", doc
    foreign = _foreign_entries(root, doc)
    if foreign is None:
        raise DemoFolderError(f"{root} holds a demo written by an earlier lumbarview, which cannot be "
                              f"replaced safely; delete that folder yourself or choose a new one with --out")
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise DemoFolderError(f"{root} holds a demo of another version or size and files the demo did not "
                              f"write ({shown}); nothing was changed: move those files out or choose "
                              f"another folder with --out")
    return "previous", doc


def write_all(root: Path, params: Any, sizes: Any) -> dict[str, Path]:
    """The phantom written in every layout under ``root`` (:func:`lumbarview.phantom.layouts.
    write_all`, imported on first use: the phantom's writers load pydicom)."""
    from lumbarview.phantom.layouts import write_all as write_layouts

    return write_layouts(root, params, sizes)


def ensure_demo(root: str | Path, small: bool = False) -> dict[str, Path]:
    """Write the demo under ``root`` unless a complete one of this version and size is there;
    returns the root of each layout.

    Raises
    ------
    DemoFolderError
        ``root`` is a file, or a folder holding anything the demo did not write, or cannot be
        written; nothing was changed.
    """
    from lumbarview.phantom.layouts import LAYOUTS, Sizes  # the phantom (pydicom): not at launch
    from lumbarview.phantom.spine import PhantomParams

    root = Path(root)
    state, doc = _check_target(root, small)
    layouts = {name: root / name for name in LAYOUTS}
    if state == "current":
        return layouts
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_staging(root)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=_STAGING_SUFFIX, dir=root.parent))
    except OSError as exc:
        raise DemoFolderError(f"cannot create a folder beside {root} ({exc.strerror}); "
                              f"choose a writable place with --out") from exc
    try:
        (staging / _STAGING_MARKER).write_text(str(os.getpid()), encoding="utf-8")
        write_all(staging, PhantomParams(), Sizes.small() if small else Sizes())
        (staging / _STAGING_MARKER).unlink()
        files, _ = _inventory(staging)
        atomic_write_text(staging / MARKER, json.dumps({**_expected(small), "files": files}))
        # Look again just before the move: the folder may have changed while the demo was written.
        state, doc = _check_target(root, small)
        if state == "current":
            shutil.rmtree(staging)
            return layouts
        if state == "previous" and doc is not None:
            _remove_previous_demo(root, doc)
        elif state == "empty":
            root.rmdir()
        os.rename(staging, root)  # fails, rather than replaces, if root is not empty
        fsync_dir(root.parent)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DemoFolderError(f"cannot write the demo to {root} ({exc.strerror or exc}); "
                              f"choose a writable, new or empty folder with --out") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return layouts


def default_demo_root() -> Path:
    """Where the viewer keeps its demo dataset: the user cache folder (never a dataset)."""
    from lumbarview.io.dicom.scan import default_cache_dir

    return default_cache_dir() / "demo"


#: The demo's layouts, in the order the start page and File > Open demo offer them, each with
#: one line on what it shows.
DEMO_LAYOUTS: dict[str, str] = {
    "sudirman": "Siemens DICOM (.ima): sagittal T1/T2 and axial blocks angled along the discs; no labels",
    "unidata": "A DICOMDIR disc export with extension-less files, a PDF radiology report and a CSV",
    "spider": "SPIDER MetaImage volumes with 3D vertebra, disc and canal label maps and gradings",
    "aisslab": "DICOM sagittal slices with VOC foramen boxes and PNG masks on the slices",
    "bids": "BIDS NIfTI (T2 TSE, CISS) with Slicer markers, STL nerve-root models and QC tables",
    "rsna": "RSNA 2024 training layout: DICOM series with graded points per level and side",
}
