"""Phase one of DICOM loading: walk a folder, read headers only, remember them.

Any file name is accepted (``.dcm``, Siemens ``.ima``, DICOMDIR exports without extension);
files that are not DICOM are skipped with an issue. The result of reading each header is kept
in an :class:`IndexCache` keyed by path, size and modification time, so re-opening an unchanged
tree only costs a directory walk.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.errors import InvalidDicomError

from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.dicom.headers import DicomFileHeader, NotDicomError, header_issue, read_header

ProgressCallback = Callable[[int, int], None]

#: Below this many files to read, a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 400
_CHUNK = 64
_INDEX_VERSION = 3
_HEADER_ERRORS = (NotDicomError, OSError, InvalidDicomError, ValueError, EOFError,
                  struct.error, KeyError, AttributeError, TypeError, IndexError)


class ScanCancelled(Exception):
    """The scan was cancelled by the caller."""


@dataclass
class ScanResult:
    """Headers found under a root, and issues for the files that were skipped."""

    root: str
    headers: list[DicomFileHeader] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    n_files: int = 0
    n_from_cache: int = 0


@dataclass(frozen=True)
class _FileStat:
    path: str
    size: int
    mtime_ns: int


def walk_files(root: str | Path) -> Iterator[_FileStat]:
    """Every regular file under ``root`` (or ``root`` itself), hidden files and folders
    excluded, links not followed."""
    root = str(root)
    if os.path.isfile(root):
        st = os.stat(root)
        yield _FileStat(root, st.st_size, st.st_mtime_ns)
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield _FileStat(entry.path, st.st_size, st.st_mtime_ns)
            except OSError:
                continue


def default_cache_dir() -> Path:
    """Where lumbarview keeps its header index: ``$LUMBARVIEW_CACHE_DIR`` or the user's cache
    folder. Never inside a dataset, which is read-only to us."""
    override = os.environ.get("LUMBARVIEW_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("lumbarview", appauthor=False))


class IndexCache:
    """Remembers header-scan results per root folder, keyed by (path, size, mtime).

    One JSON file per root, written atomically (temporary file + ``os.replace``) so that a
    crash while saving leaves the previous index intact. A damaged or foreign index is ignored
    and rebuilt.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _file_for(self, root: str) -> Path:
        digest = hashlib.sha1(os.path.abspath(root).encode("utf-8")).hexdigest()[:20]
        return self.directory / f"index-{digest}.json"

    def load(self, root: str) -> dict[str, tuple[int, int, Any]]:
        """``path -> (size, mtime_ns, entry)``; entry is a header row or an issue dict."""
        target = self._file_for(root)
        try:
            with open(target, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("version") != _INDEX_VERSION:
            return {}
        if doc.get("root") != os.path.abspath(root):
            return {}
        out: dict[str, tuple[int, int, Any]] = {}
        for item in doc.get("entries", []):
            try:
                path, size, mtime, entry = item
            except (TypeError, ValueError):
                return {}
            out[path] = (size, mtime, entry)
        return out

    def save(self, root: str, entries: dict[str, tuple[int, int, Any]]) -> None:
        """Write the index for ``root``; failures are silent (the cache is an optimisation)."""
        target = self._file_for(root)
        doc = {
            "version": _INDEX_VERSION,
            "root": os.path.abspath(root),
            "entries": [[p, s, m, e] for p, (s, m, e) in entries.items()],
        }
        tmp = target.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def _read_one(item: tuple[str, int, int]) -> tuple[str, Any]:
    path, _size, _mtime = item
    try:
        return "h", read_header(path).to_row()
    except _HEADER_ERRORS as exc:
        return "i", header_issue(path, exc).to_dict()


def _read_chunk(items: list[tuple[str, int, int]]) -> list[tuple[str, Any]]:
    return [_read_one(item) for item in items]


def _issue_from_dict(d: dict[str, Any]) -> LoadIssue:
    return LoadIssue(Severity[str(d["severity"]).upper()], d["code"], d["message"], d.get("path"))


def scan_paths(
    root: str | Path,
    files: Iterable[str | Path] | None = None,
    cache: IndexCache | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Read the headers of every file under ``root`` (or of ``files`` only).

    Parameters
    ----------
    root : path
        Folder (or single file) to scan; also the key of the index cache.
    files : iterable of path, optional
        Restrict the scan to these files (used for DICOMDIR references).
    cache : IndexCache, optional
        Header index; None disables caching.
    progress : callable(done, total), optional
        Called from the calling thread as files are read.
    cancel : threading.Event, optional
        When set, the scan stops and raises :class:`ScanCancelled`.
    workers : int, optional
        Processes for reading headers; defaults to the number of cores.
    """
    root = str(root)
    if files is None:
        stats = list(walk_files(root))
    else:
        stats = []
        for f in files:
            try:
                st = os.stat(f)
            except OSError as exc:
                stats.append(_FileStat(str(f), -1, -1))
                del exc
                continue
            stats.append(_FileStat(str(f), st.st_size, st.st_mtime_ns))
    result = ScanResult(root=root, n_files=len(stats))
    known = cache.load(root) if cache is not None else {}
    entries: dict[str, tuple[int, int, Any]] = {}
    todo: list[tuple[str, int, int]] = []
    rows: list[tuple[str, Any]] = []
    for st in stats:
        if st.size < 0:
            result.issues.append(LoadIssue(Severity.WARNING, "io.missing-file",
                                           "a referenced file does not exist", st.path))
            continue
        hit = known.get(st.path)
        if hit is not None and hit[0] == st.size and hit[1] == st.mtime_ns:
            entries[st.path] = hit
            rows.append(hit[2])
            result.n_from_cache += 1
        else:
            todo.append((st.path, st.size, st.mtime_ns))
    total = len(todo)
    if progress:
        progress(0, total)
    done = 0
    sizes = {p: (s, m) for p, s, m in todo}

    def _record(kind: str, payload: Any) -> None:
        nonlocal done
        path = payload[0] if kind == "h" else payload["path"]
        size, mtime = sizes[path]
        entry = [kind, payload]
        entries[path] = (size, mtime, entry)
        rows.append(entry)
        done += 1

    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if total >= _PARALLEL_MIN_FILES and n_workers > 1:
        chunks = [todo[i:i + _CHUNK] for i in range(0, total, _CHUNK)]
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            try:
                for chunk_result in pool.map(_read_chunk, chunks):
                    for kind, payload in chunk_result:
                        _record(kind, payload)
                    if progress:
                        progress(done, total)
                    if cancel is not None and cancel.is_set():
                        raise ScanCancelled()
            except ScanCancelled:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    else:
        for item in todo:
            if cancel is not None and cancel.is_set():
                raise ScanCancelled()
            kind, payload = _read_one(item)
            _record(kind, payload)
            if progress and (done % 32 == 0 or done == total):
                progress(done, total)

    not_dicom: dict[str, list[str]] = defaultdict(list)
    for entry in rows:
        kind, payload = entry
        if kind == "h":
            result.headers.append(DicomFileHeader.from_row(payload))
        else:
            issue = _issue_from_dict(payload)
            if issue.code == "dicom.not-dicom" and issue.path:
                not_dicom[os.path.dirname(issue.path)].append(os.path.basename(issue.path))
            else:
                result.issues.append(issue)
    for folder, names in sorted(not_dicom.items()):
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        result.issues.append(LoadIssue(
            Severity.INFO, "dicom.not-dicom",
            f"skipped {len(names)} file(s) that are not DICOM: {shown}", folder))
    if cache is not None and (todo or len(entries) != len(known)):
        cache.save(root, entries)
    return result
