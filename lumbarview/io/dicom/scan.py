"""Phase one of DICOM loading: walk a folder, read headers only, remember them.

Any file name is accepted (``.dcm``, Siemens ``.ima``, DICOMDIR exports without extension);
files that are not DICOM are skipped with an issue. The result of reading each header is kept
in an :class:`IndexCache` keyed by path, size and modification time, so re-opening an unchanged
tree only costs a directory walk.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydicom.errors import InvalidDicomError

from lumbarview.core.errors import Cancelled
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.dicom.headers import (
    HEADER_FIELDS as _HEADER_FIELDS,
)
from lumbarview.io.dicom.headers import (
    DicomFileHeader,
    NotDicomError,
    header_issue,
    read_header,
)

ProgressCallback = Callable[[int, int], None]

#: Below this many files to read, a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 100
_CHUNK = 64
_INDEX_VERSION = 4
_HEADER_ERRORS = (NotDicomError, OSError, InvalidDicomError, ValueError, EOFError,
                  struct.error, KeyError, AttributeError, TypeError, IndexError)


class ScanCancelled(Cancelled):
    """The scan was cancelled by the caller."""


class ScanResult:
    """Headers found under a root, and issues for the files that were skipped.

    Header records are built from the index on first access of :attr:`headers` (or per
    sub-folder with :meth:`headers_under`), so that listing a large tree stays cheap.
    """

    def __init__(self, root: str, n_files: int = 0) -> None:
        self.root = root
        self.issues: list[LoadIssue] = []
        self.n_files = n_files
        self.n_from_cache = 0
        self._pending: list[tuple[str, int, int, Any]] = []  # (path, size, mtime, payload)
        self._strings: list[str] = []
        self._headers: list[DicomFileHeader] | None = None

    @property
    def paths(self) -> list[str]:
        """Paths of the DICOM files found (without building header records)."""
        return [p[0] for p in self._pending]

    @property
    def headers(self) -> list[DicomFileHeader]:
        if self._headers is None:
            with _gc_paused():
                self._headers = [_expand(*p, self._strings) for p in self._pending]
        return self._headers

    def headers_under(self, folder: str) -> list[DicomFileHeader]:
        """Headers of the files below ``folder`` only."""
        prefix = os.path.join(os.path.abspath(folder), "")
        with _gc_paused():
            return [_expand(*p, self._strings) for p in self._pending if p[0].startswith(prefix)]


@dataclass(frozen=True)
class _FileStat:
    path: str
    size: int
    mtime_ns: int


def walk_files(root: str | Path) -> list[_FileStat]:
    """Every regular file under ``root`` (or ``root`` itself), hidden files and folders
    excluded, links not followed, in a stable order.

    Folders are listed first (cheap: no stat), then files are stat'ed folder by folder in a
    few threads: a stat is a system call that releases the GIL, and at 48,000 files the stats
    are most of the time a re-open takes.
    """
    root = str(root)
    if os.path.isfile(root):
        st = os.stat(root)
        return [_FileStat(root, st.st_size, st.st_mtime_ns)]
    groups: list[list[str]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        files: list[str] = []
        subfolders: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry.path)
            except OSError:
                continue
        stack.extend(reversed(subfolders))
        if files:
            groups.append(files)

    def _stat_group(paths: list[str]) -> list[_FileStat]:
        out = []
        for path in paths:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            out.append(_FileStat(path, st.st_size, st.st_mtime_ns))
        return out

    if sum(len(g) for g in groups) < 2000:
        return [f for g in groups for f in _stat_group(g)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [f for chunk in pool.map(_stat_group, groups) for f in chunk]


def default_cache_dir() -> Path:
    """Where lumbarview keeps its header index: ``$LUMBARVIEW_CACHE_DIR`` or the user's cache
    folder. Never inside a dataset, which is read-only to us."""
    override = os.environ.get("LUMBARVIEW_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("lumbarview", appauthor=False))


#: Header fields (positions in :meth:`DicomFileHeader.to_row`) whose values repeat across files;
#: the index stores them once in a string table.
_SHARED_FIELDS = tuple(
    i for i, name in enumerate(_HEADER_FIELDS)
    if name in {"sop_class_uid", "patient_id", "patient_name", "study_uid", "study_description",
                "study_date", "series_uid", "series_description", "modality",
                "frame_of_reference_uid", "photometric", "transfer_syntax", "patient_position"}
)


class _StringTable:
    def __init__(self, strings: list[str] | None = None) -> None:
        self.strings: list[str] = list(strings or [])
        self._index = {text: i for i, text in enumerate(self.strings)}

    def code(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.strings)
            self.strings.append(text)
        return found


def _compact(row: list[Any], table: _StringTable) -> list[Any]:
    """A header row without path/size/mtime (kept as the index key) and with shared strings
    replaced by their number in the string table."""
    out = row[3:]
    for i in _SHARED_FIELDS:
        out[i - 3] = table.code(out[i - 3])
    return out


def _expand(path: str, size: int, mtime: int, payload: list[Any] | str,
            strings: list[str]) -> DicomFileHeader:
    if isinstance(payload, str):
        payload = orjson.loads(payload)
    assert isinstance(payload, list)
    row = [path, size, mtime, *payload]
    for i in _SHARED_FIELDS:
        row[i] = strings[row[i]]
    return DicomFileHeader.from_row(row)


@dataclass
class _Index:
    """What the index holds for one root: ``relpath -> (size, mtime_ns, kind, payload)`` where
    kind is "h" (payload: compact header row) or "i" (payload: issue dict).

    A loaded index keeps its on-disk columns (relative paths, sizes, mtimes, kinds, payloads,
    in walk order) so that an unchanged tree is recognised by comparing three lists, without
    building a dictionary of 48,000 entries.
    """

    entries: dict[str, tuple[int, int, str, Any]] = field(default_factory=dict)
    table: _StringTable = field(default_factory=_StringTable)
    columns: list[Any] | None = None

    def lookup(self) -> dict[str, tuple[int, int, str, Any]]:
        if self.columns is not None and not self.entries:
            rels, sizes, mtimes, kinds, payloads = self.columns
            self.entries = {r: (s, m, k, p)
                            for r, s, m, k, p in zip(rels, sizes, mtimes, kinds, payloads, strict=True)}
        return self.entries


class IndexCache:
    """Remembers header-scan results per root folder, keyed by (path, size, mtime).

    One JSON file per root (paths relative to the root, repeated strings in a table), written
    atomically (temporary file + ``os.replace``) so that a crash while saving leaves the
    previous index intact. A damaged or foreign index is ignored and rebuilt.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _file_for(self, root: str) -> Path:
        digest = hashlib.sha1(os.path.abspath(root).encode("utf-8")).hexdigest()[:20]
        return self.directory / f"index-{digest}.json"

    def load_index(self, root: str) -> _Index:
        target = self._file_for(root)
        try:
            doc = orjson.loads(target.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return _Index()
        try:
            if (doc["version"] != _INDEX_VERSION or doc["root"] != os.path.abspath(root)):
                return _Index()
            columns = [doc[k] for k in ("rels", "sizes", "mtimes", "kinds", "payloads")]
            if len({len(c) for c in columns}) != 1 or not isinstance(doc["strings"], list):
                return _Index()
        except (KeyError, TypeError):
            return _Index()
        return _Index(table=_StringTable(doc["strings"]), columns=columns)

    def load(self, root: str) -> dict[str, tuple[int, int, str]]:
        """``path -> (size, mtime_ns, kind)`` of what the index knows (for inspection/tests)."""
        base = os.path.abspath(root)
        return {os.path.join(base, rel): (s, m, k)
                for rel, (s, m, k, _) in self.load_index(root).lookup().items()}

    def save_index(self, root: str, index: _Index) -> None:
        """Write the index for ``root``; failures are silent (the cache is an optimisation)."""
        target = self._file_for(root)
        doc = {
            "version": _INDEX_VERSION,
            "root": os.path.abspath(root),
            "strings": index.table.strings,
            "rels": list(index.entries),
            "sizes": [e[0] for e in index.entries.values()],
            "mtimes": [e[1] for e in index.entries.values()],
            "kinds": "".join(e[2] for e in index.entries.values()),
            # Each payload is its own JSON string: strings are invisible to the cyclic garbage
            # collector, nested lists are not (300,000 of them made every re-open collect).
            "payloads": [e[3] if isinstance(e[3], str) else orjson.dumps(e[3]).decode()
                         for e in index.entries.values()],
        }
        tmp = target.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(orjson.dumps(doc))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _read_one(item: tuple[str, int, int]) -> tuple[str, Any]:
    path, _size, _mtime = item
    try:
        return "h", read_header(path).to_row()
    except _HEADER_ERRORS as exc:
        return "i", header_issue(path, exc).to_dict()


def _read_chunk(items: list[tuple[str, int, int]]) -> list[tuple[str, Any]]:
    return [_read_one(item) for item in items]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small containers: they hold no
    cycles, and repeated full collections over them cost seconds at 48,000 files."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _issue_from_dict(d: dict[str, Any] | str) -> LoadIssue:
    if isinstance(d, str):
        d = orjson.loads(d)
    assert isinstance(d, dict)
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
    base = os.path.abspath(root) if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))
    prefix = os.path.join(base, "")

    def _rel(path: str) -> str:
        # String slicing, not os.path.relpath: that costs 20 us a file at 48,000 files.
        return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, base)

    if files is None:
        with _gc_paused():
            stats = walk_files(os.path.abspath(root))
    else:
        stats = []
        for f in files:
            try:
                info = os.stat(f)
            except OSError:
                stats.append(_FileStat(str(f), -1, -1))
                continue
            stats.append(_FileStat(str(f), info.st_size, info.st_mtime_ns))
    result = ScanResult(root=root, n_files=len(stats))
    with _gc_paused():
        known = cache.load_index(root) if cache is not None else _Index()
    fresh = _Index(table=known.table)
    todo: list[tuple[str, int, int]] = []
    issue_dicts: list[dict[str, Any]] = []
    unchanged = False
    if known.columns is not None:
        rels, sizes, mtimes, kinds, payloads = known.columns
        with _gc_paused():
            unchanged = (len(rels) == len(stats)
                         and [st.size for st in stats] == sizes
                         and [st.mtime_ns for st in stats] == mtimes
                         and [_rel(st.path) for st in stats] == rels)
            if unchanged:
                for st, kind, payload in zip(stats, kinds, payloads, strict=True):
                    if kind == "h":
                        result._pending.append((st.path, st.size, st.mtime_ns, payload))
                    else:
                        issue_dicts.append(payload)
                result.n_from_cache = len(stats)
    with _gc_paused():
        known_entries = {} if unchanged else known.lookup()
        for st in ([] if unchanged else stats):
            if st.size < 0:
                result.issues.append(LoadIssue(Severity.WARNING, "io.missing-file",
                                               "a referenced file does not exist", st.path))
                continue
            rel = _rel(st.path)
            hit = known_entries.get(rel)
            if hit is not None and hit[0] == st.size and hit[1] == st.mtime_ns:
                fresh.entries[rel] = hit
                if hit[2] == "h":
                    result._pending.append((st.path, st.size, st.mtime_ns, hit[3]))
                else:
                    issue_dicts.append(hit[3])
                result.n_from_cache += 1
            else:
                todo.append((st.path, st.size, st.mtime_ns))
    total = len(todo)
    if progress:
        progress(0, total)
    done = 0
    sizes = {p: (size, mtime) for p, size, mtime in todo}

    def _record(kind: str, payload: Any) -> None:
        nonlocal done
        path = payload[0] if kind == "h" else payload["path"]
        size, mtime = sizes[path]
        rel = _rel(path)
        if kind == "h":
            compact = _compact(payload, fresh.table)
            fresh.entries[rel] = (size, mtime, "h", compact)
            result._pending.append((path, size, mtime, compact))
        else:
            fresh.entries[rel] = (size, mtime, "i", payload)
            issue_dicts.append(payload)
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

    result._strings = fresh.table.strings
    not_dicom: dict[str, list[str]] = defaultdict(list)
    for d in issue_dicts:
        issue = _issue_from_dict(d)
        if issue.code == "dicom.not-dicom" and issue.path:
            not_dicom[os.path.dirname(issue.path)].append(os.path.basename(issue.path))
        else:
            result.issues.append(issue)
    for folder, names in sorted(not_dicom.items()):
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        result.issues.append(LoadIssue(
            Severity.INFO, "dicom.not-dicom",
            f"skipped {len(names)} file(s) that are not DICOM: {shown}", folder))
    if cache is not None and not unchanged and (todo or len(fresh.entries) != len(known_entries)):
        cache.save_index(root, fresh)
    return result
