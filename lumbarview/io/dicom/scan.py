"""Phase one of DICOM loading: walk a folder, read headers only, remember them.

Any file name is accepted (``.dcm``, Siemens ``.ima``, DICOMDIR exports without extension);
files that are not DICOM are skipped with an issue. The result of reading each header is kept
in an :class:`IndexCache` keyed by path, size and modification time, so re-opening an unchanged
tree only costs a directory walk.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from lumbarview.core.errors import Cancelled, SpecialFileError
from lumbarview.core.fs import atomic_write_bytes, read_regular_bytes, special_kind
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.dicom.headers import (
    HEADER_FIELDS as _HEADER_FIELDS,
)
from lumbarview.io.dicom.headers import (
    LIMIT_CODE,
    DicomFileHeader,
    header_issue,
    read_header,
)

ProgressCallback = Callable[[int, int], None]

#: Below this many files to read, a process pool costs more than it saves. Most files take the
#: fast header pass (a fraction of a millisecond each), so the pool only pays from a thousand.
_PARALLEL_MIN_FILES = 1000
#: ... and from a hundred when the caller asks for several workers.
_PARALLEL_MIN_FILES_ASKED = 100
_CHUNK = 64
#: 5: a checksum line before the JSON body; headers checked against the resource budgets
#: and for finite geometry (version 4 indexes may hold headers that no longer pass).
_INDEX_VERSION = 5
_INDEX_MAGIC = b"LVIDX"
REBUILT_CODE = "index.rebuilt"


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
        #: Called once when a cached record turns out to be damaged (drops the index file).
        self._on_damage: Callable[[], None] | None = None
        self._damage_reported = False
        self._lock = threading.Lock()
        self._sorted: tuple[list[str], list[int]] | None = None
        self._by_path: dict[str, tuple[str, int, int, Any]] | None = None

    @property
    def paths(self) -> list[str]:
        """Paths of the DICOM files found (without building header records)."""
        return [p[0] for p in self._pending]

    @property
    def headers(self) -> list[DicomFileHeader]:
        if self._headers is None:
            with _gc_paused():
                found = [self._header(p) for p in self._pending]
            self._headers = [h for h in found if h is not None]
        return self._headers

    def headers_under(self, folder: str) -> list[DicomFileHeader]:
        """Headers of the files below ``folder`` only."""
        with _gc_paused():
            found = [self._header(p) for p in self._entries_under(folder)]
        return [h for h in found if h is not None]

    def _entries_under(self, folder: str | None) -> list[tuple[str, int, int, Any]]:
        """Pending entries below ``folder`` (all of them for None), in scan order. A sorted
        copy of the paths is made once, so that 500 case folders cost 500 binary searches
        rather than 500 passes over every path."""
        if folder is None:
            return self._pending
        prefix = os.path.join(os.path.abspath(folder), "")
        with self._lock:
            if self._sorted is None or len(self._sorted[0]) != len(self._pending):
                order = sorted(range(len(self._pending)), key=lambda i: self._pending[i][0])
                self._sorted = ([self._pending[i][0] for i in order], order)
            paths, order = self._sorted
        lo = bisect.bisect_left(paths, prefix)
        hi = bisect.bisect_left(paths, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return [self._pending[i] for i in sorted(order[lo:hi])]

    def count_under(self, folder: str) -> int:
        """How many DICOM files were found below ``folder``."""
        return len(self._entries_under(folder))

    def state_key(self, folder: str | None = None) -> str:
        """A digest of the paths, sizes and modification times of the DICOM files below
        ``folder`` (all for None): what an assembly of them depends on. Any file touched,
        added or removed changes it."""
        digest = hashlib.blake2b(digest_size=20)
        digest.update(os.path.abspath(folder or self.root).encode("utf-8", "surrogateescape"))
        text = "\n".join(f"{p}\x00{s}\x00{m}" for p, s, m, _ in self._entries_under(folder))
        digest.update(text.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def header_for(self, path: str) -> DicomFileHeader | None:
        """The header of one scanned file (built on demand; thread-safe), or None when the
        scan kept no header for it."""
        with self._lock:
            if self._by_path is None:
                self._by_path = {p[0]: p for p in self._pending}
            pending = self._by_path.get(path)
        return None if pending is None else self._header(pending)

    def _header(self, pending: tuple[str, int, int, Any]) -> DicomFileHeader | None:
        """The header record of one pending entry. A cached record that does not expand to a
        well-formed header (a damaged index that kept its checksum) is read again from the
        file: the index may be wrong, the answer may not."""
        try:
            return _expand(*pending, self._strings)
        except (Exception, RecursionError):  # any damage means: read the file
            pass
        if not self._damage_reported:
            self._damage_reported = True
            self.issues.append(LoadIssue(
                Severity.INFO, REBUILT_CODE,
                "the header index of this folder held damaged records; the files were read "
                "again and the index will be rebuilt", self.root))
            if self._on_damage is not None:
                self._on_damage()
        kind, payload = _read_one(pending[:3])
        if kind == "h":
            return DicomFileHeader.from_row(payload)
        self.issues.append(_issue_from_dict(payload))
        return None


@dataclass(frozen=True)
class FileStat:
    """A file found by :func:`walk_files`: its path, size and modification time; ``link`` when
    the entry is a symbolic link to a file (whose target was stat'ed)."""

    path: str
    size: int
    mtime_ns: int
    link: bool = False


def walk_files(root: str | Path, include_links: bool = False,
               specials: list[tuple[str, str]] | None = None) -> list[FileStat]:
    """Every regular file under ``root`` (or ``root`` itself), hidden files and folders
    excluded, linked folders not entered, in a stable order (each folder's files by name, then
    its subfolders by name, depth first); with ``include_links`` also symbolic links to files,
    flagged (the DICOM scan leaves them out; a dataset layout may read them).

    Folders are listed first (``os.scandir``: cheap, no stat), then files are stat'ed folder by
    folder in a few threads: a stat is a system call that releases the GIL, and at 48,000 files
    the stats are most of the time a re-open takes. The listing is done once per open: a layout
    that lists the tree hands it on to :func:`scan_paths` (``listing``). With ``specials``, the
    FIFOs, devices and sockets met on the way (links to them included) are appended to it as
    ``(path, kind)``, so that nothing lists the tree again to name them.
    """
    root = str(root)
    if os.path.isfile(root):
        st = os.stat(root)
        return [FileStat(root, st.st_size, st.st_mtime_ns, os.path.islink(root))]
    groups: list[list[tuple[str, bool]]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        files: list[tuple[str, bool]] = []
        subfolders: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files.append((entry.path, False))
                elif include_links and entry.is_symlink() and entry.is_file():
                    files.append((entry.path, True))
                elif specials is not None and not entry.is_file() and not entry.is_dir():
                    kind = special_kind(entry.stat(follow_symlinks=True).st_mode)
                    if kind is not None:
                        specials.append((entry.path, kind))
            except OSError:
                continue  # gone meanwhile, or a dangling link: nothing to open
        stack.extend(reversed(subfolders))
        if files:
            groups.append(files)

    def _stat_group(paths: list[tuple[str, bool]]) -> list[FileStat]:
        out = []
        for path, link in paths:
            try:
                st = os.stat(path, follow_symlinks=link)
            except OSError:
                continue
            out.append(FileStat(path, st.st_size, st.st_mtime_ns, link))
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


_NONE = type(None)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "int | None": (int, _NONE), "float": (float, int),
    "float | None": (float, int, _NONE), "bool": (bool,),
}
#: Accepted JSON types of each header field after the path, size and mtime (the last two,
#: notes and frames, are checked apart).
#: Shared strings are numbers in the string table.
_ROW_TYPES = tuple((int,) if i in _SHARED_FIELDS
                   else _FIELD_TYPES[str(DicomFileHeader.__dataclass_fields__[name].type)]
                   for i, name in enumerate(_HEADER_FIELDS) if 3 <= i < len(_HEADER_FIELDS) - 2)
_NON_NEGATIVE = tuple(i - 3 for i, name in enumerate(_HEADER_FIELDS)
                      if name in {"rows", "cols", "bits_allocated", "bits_stored",
                                  "samples_per_pixel", "n_frames", "pixel_offset",
                                  "pixel_length"})
_FRAME_LENGTHS = (3, 6, 2)
_SEQ = (list, tuple)


class _DamagedRecord(Exception):
    """Internal: a cached record is not a well-formed header row."""


def _check_payload(payload: list[Any], n_strings: int) -> None:
    """Raise _DamagedRecord unless ``payload`` is a compact header row as :func:`_compact`
    writes it: the right length, each field of its type, string numbers inside the table,
    sizes not negative, frames of 3/6/2 numbers and a thickness."""
    if len(payload) != len(_ROW_TYPES) + 2:
        raise _DamagedRecord("wrong length")
    for value, allowed in zip(payload, _ROW_TYPES, strict=False):
        if type(value) not in allowed:
            raise _DamagedRecord(f"{value!r} has the wrong type")
    for i in _SHARED_FIELDS:
        code = payload[i - 3]
        if type(code) is not int or not 0 <= code < n_strings:
            raise _DamagedRecord("string number out of range")
    for i in _NON_NEGATIVE:
        value = payload[i]
        if value is not None and value < 0:
            raise _DamagedRecord("negative size")
    notes, frames = payload[-2], payload[-1]
    # Lists when read back from JSON; tuples in a record built by this scan.
    if type(notes) not in _SEQ or not all(type(n) is str for n in notes):
        raise _DamagedRecord("notes")
    if type(frames) not in _SEQ or not frames:
        raise _DamagedRecord("frames")
    for frame in frames:
        if type(frame) not in _SEQ or len(frame) != 4:
            raise _DamagedRecord("frame")
        for part, n in zip(frame[:3], _FRAME_LENGTHS, strict=True):
            if part is not None and (type(part) not in _SEQ or len(part) != n
                                     or not all(type(v) in (float, int) for v in part)):
                raise _DamagedRecord("frame geometry")
        if type(frame[3]) not in (float, int, _NONE):
            raise _DamagedRecord("slice thickness")


def _expand(path: str, size: int, mtime: int, payload: list[Any] | str,
            strings: list[str]) -> DicomFileHeader:
    if isinstance(payload, str):
        payload = orjson.loads(payload)
    if type(payload) is not list:
        raise _DamagedRecord("not a list")
    _check_payload(payload, len(strings))
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
    #: Why an index file that exists could not be used (it is rebuilt), else None.
    damage: str | None = None

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

    def discard(self, root: str) -> None:
        """Forget the index of ``root`` (it was found damaged); the next scan rebuilds it."""
        with contextlib.suppress(OSError):
            self._file_for(root).unlink(missing_ok=True)

    def load_index(self, root: str) -> _Index:
        """The index of ``root``; an empty one when there is none, and an empty one whose
        ``damage`` says why when the file exists but cannot be trusted (it is then rebuilt)."""
        target = self._file_for(root)
        try:
            data = read_regular_bytes(target)
        except FileNotFoundError:
            return _Index()
        except SpecialFileError as exc:
            return _Index(damage=exc.problem)
        except OSError as exc:
            return _Index(damage=f"it cannot be read ({exc.strerror or exc})")
        try:
            return _parse_index(data, os.path.abspath(root))
        except _DamagedRecord as exc:
            return _Index(damage=str(exc))
        except (Exception, RecursionError) as exc:  # any damage: rebuild
            return _Index(damage=f"{type(exc).__name__}")

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
        body = orjson.dumps(doc)
        with contextlib.suppress(OSError):  # a cache that cannot be saved only costs a rescan
            atomic_write_bytes(target, _index_head(body) + body)


def _index_head(body: bytes) -> bytes:
    """The first line of an index file: magic, version and a checksum of the JSON body, so
    that any damage to the body (a torn write, a flipped bit, an edit) is recognised."""
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return _INDEX_MAGIC + f"{_INDEX_VERSION} {digest}\n".encode("ascii")


def _parse_index(data: bytes, root: str) -> _Index:
    """Check and parse an index file. Raises _DamagedRecord (or anything orjson raises) when
    the file is damaged; returns an empty index, silently, for another version or root."""
    head, sep, body = data.partition(b"\n")
    if not sep or not head.startswith(_INDEX_MAGIC):
        raise _DamagedRecord("it is not a lumbarview index")
    version, _, digest = head[len(_INDEX_MAGIC):].decode("ascii", "replace").partition(" ")
    if version != str(_INDEX_VERSION):
        return _Index()
    if hashlib.blake2b(body, digest_size=16).hexdigest() != digest:
        raise _DamagedRecord("its checksum does not match its contents")
    doc = orjson.loads(body)
    if type(doc) is not dict:
        raise _DamagedRecord("it does not hold an index")
    if type(doc.get("version")) is not int or type(doc.get("root")) is not str:
        raise _DamagedRecord("it has no version or root")
    if doc["version"] != _INDEX_VERSION or doc["root"] != root:
        return _Index()
    columns = [doc.get(k) for k in ("rels", "sizes", "mtimes", "kinds", "payloads")]
    strings = doc.get("strings")
    rels, sizes, mtimes, kinds, payloads = columns
    if (type(rels) is not list or type(sizes) is not list or type(mtimes) is not list
            or type(kinds) is not str or type(payloads) is not list or type(strings) is not list):
        raise _DamagedRecord("a column has the wrong type")
    if len({len(rels), len(sizes), len(mtimes), len(kinds), len(payloads)}) != 1:
        raise _DamagedRecord("its columns differ in length")
    if not all(type(r) is str and r and not os.path.isabs(r) for r in rels):
        raise _DamagedRecord("a path is not a relative path")
    if not all(type(n) is int and n >= 0 for n in sizes):
        raise _DamagedRecord("a file size is not a size")
    if not all(type(n) is int for n in mtimes):
        raise _DamagedRecord("a modification time is not a number")
    if kinds.strip("hi"):
        raise _DamagedRecord("a record kind is unknown")
    if not all(type(p) is str for p in payloads) or not all(type(t) is str for t in strings):
        raise _DamagedRecord("a record is not text")
    if len(set(strings)) != len(strings) or len(set(rels)) != len(rels):
        raise _DamagedRecord("it repeats an entry")
    return _Index(table=_StringTable(strings), columns=columns)


def _read_one(item: tuple[str, int, int]) -> tuple[str, Any]:
    """One file's header, or its issue: whatever goes wrong with one file (a damaged header
    makes pydicom raise almost anything) is that file's issue, never the scan's failure."""
    path, _size, _mtime = item
    try:
        return "h", read_header(path).to_row()
    except (Exception, RecursionError) as exc:  # one file, one issue
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
    if type(d) is not dict:
        raise _DamagedRecord("an issue record is not a mapping")
    severity, code, message, path = d.get("severity"), d.get("code"), d.get("message"), d.get("path")
    if (type(severity) is not str or severity.upper() not in Severity.__members__
            or type(code) is not str or type(message) is not str
            or not (path is None or type(path) is str)):
        raise _DamagedRecord("an issue record is damaged")
    return LoadIssue(Severity[severity.upper()], code, message, path)


def scan_paths(
    root: str | Path,
    files: Iterable[str | Path] | None = None,
    cache: IndexCache | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    listing: Sequence[FileStat] | None = None,
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
        Processes for reading headers; defaults to the number of cores, used from 1,000 files
        to read (from 100 when given).
    listing : sequence of FileStat, optional
        :func:`walk_files` of ``root`` made by the caller (links left out): the tree is then
        not listed a second time.

    A damaged index is never a failure: it is rebuilt from the files, with an INFO issue
    (code ``index.rebuilt``).
    """
    file_list = None if files is None else list(files)
    stats = None if listing is None else [st for st in listing if not st.link]
    try:
        return _scan(root, file_list, cache, progress, cancel, workers, use_index=True, listed=stats)
    except _DamagedRecord as exc:
        # A cached record that passed the checksum but is not what the writer wrote.
        assert cache is not None
        cache.discard(str(root))
        result = _scan(root, file_list, cache, progress, cancel, workers, use_index=False, listed=stats)
        result.issues.insert(0, _rebuilt_issue(str(root), str(exc)))
        return result


def _rebuilt_issue(root: str, why: str) -> LoadIssue:
    return LoadIssue(Severity.INFO, REBUILT_CODE,
                     f"the header index of this folder could not be used ({why}); it was "
                     "rebuilt from the files", root)


def _scan(
    root: str | Path,
    files: list[str | Path] | None,
    cache: IndexCache | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    workers: int | None,
    use_index: bool,
    listed: list[FileStat] | None = None,
) -> ScanResult:
    root = str(root)
    base = os.path.abspath(root) if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))
    prefix = os.path.join(base, "")

    def _rel(path: str) -> str:
        # String slicing, not os.path.relpath: that costs 20 us a file at 48,000 files.
        return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, base)

    if files is None and listed is not None:
        stats = listed
    elif files is None:
        with _gc_paused():
            stats = walk_files(os.path.abspath(root))
    else:
        stats = []
        for f in files:
            try:
                info = os.stat(f)
            except OSError:
                stats.append(FileStat(str(f), -1, -1))
                continue
            stats.append(FileStat(str(f), info.st_size, info.st_mtime_ns))
    result = ScanResult(root=root, n_files=len(stats))
    with _gc_paused():
        known = cache.load_index(root) if cache is not None and use_index else _Index()
    if known.damage is not None:
        result.issues.append(_rebuilt_issue(root, known.damage))
    if cache is not None:
        result._on_damage = partial(cache.discard, root)
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
        # Headers keep the walk order whether they come from the index or from the files, so
        # that an assembly (and its cache key) does not depend on which files were read again.
        slots: list[tuple[str, int, int, Any] | None] = [None] * (0 if unchanged else len(stats))
        slot_of: dict[str, int] = {}
        for n_stat, st in enumerate([] if unchanged else stats):
            if st.size < 0:
                result.issues.append(LoadIssue(Severity.WARNING, "io.missing-file",
                                               "a referenced file does not exist", st.path))
                continue
            rel = _rel(st.path)
            hit = known_entries.get(rel)
            if hit is not None and hit[0] == st.size and hit[1] == st.mtime_ns:
                fresh.entries[rel] = hit
                if hit[2] == "h":
                    slots[n_stat] = (st.path, st.size, st.mtime_ns, hit[3])
                else:
                    issue_dicts.append(hit[3])
                result.n_from_cache += 1
            else:
                todo.append((st.path, st.size, st.mtime_ns))
                slot_of[st.path] = n_stat
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
            slots[slot_of[path]] = (path, size, mtime, compact)
        else:
            # A budget refusal is not remembered: raising the limit must take effect at once.
            if payload.get("code") != LIMIT_CODE:
                fresh.entries[rel] = (size, mtime, "i", payload)
            issue_dicts.append(payload)
        done += 1

    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    # A caller that names its worker count gets the pool from a hundred files on.
    min_files = _PARALLEL_MIN_FILES if workers is None else _PARALLEL_MIN_FILES_ASKED
    if total >= min_files and n_workers > 1:
        chunks = [todo[i:i + _CHUNK] for i in range(0, total, _CHUNK)]
        n_chunks_done = 0
        try:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                try:
                    for chunk_result in pool.map(_read_chunk, chunks):
                        for kind, payload in chunk_result:
                            _record(kind, payload)
                        n_chunks_done += 1
                        if progress:
                            progress(done, total)
                        if cancel is not None and cancel.is_set():
                            raise ScanCancelled()
                except ScanCancelled:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        except (BrokenProcessPool, OSError):
            # A worker died (a native library met a hostile file) or no process could be
            # started: read what is left here, one file at a time.
            for chunk in chunks[n_chunks_done:]:
                for item in chunk:
                    if cancel is not None and cancel.is_set():
                        raise ScanCancelled() from None
                    _record(*_read_one(item))
                if progress:
                    progress(done, total)
    else:
        for item in todo:
            if cancel is not None and cancel.is_set():
                raise ScanCancelled()
            kind, payload = _read_one(item)
            _record(kind, payload)
            if progress and (done % 32 == 0 or done == total):
                progress(done, total)

    if not unchanged:
        result._pending = [entry for entry in slots if entry is not None]
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
    if cache is not None and not unchanged:
        # The index is kept in walk order: the next re-open of the same tree then recognises
        # it by comparing three lists (files read again would otherwise sit at its end).
        walk_order = {_rel(st.path): n for n, st in enumerate(stats)}
        fresh.entries = dict(sorted(fresh.entries.items(),
                                    key=lambda kv: walk_order.get(kv[0], len(walk_order))))
        if (todo or len(fresh.entries) != len(known_entries)
                or known.columns is None or list(fresh.entries) != known.columns[0]):
            cache.save_index(root, fresh)
    return result
