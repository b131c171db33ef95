"""Where ``lumbarview measure`` puts its rows: a resumable CSV file, NDJSON or text on stdout.

The CSV sink resumes *exactly once*: a case's rows and its done mark are committed together.

Design (a byte-offset journal). ``OUT.done`` holds one JSON line per finished case:
``[case, labels_path, offset]``, where ``offset`` is the length of ``OUT`` once that case's rows
were written. A case is committed in this order:

1. its rows are appended to ``OUT``, then ``OUT`` is fsynced;
2. its line is appended to ``OUT.done``, then ``OUT.done`` is fsynced.

Whatever is in ``OUT`` beyond the offset of the last complete line of ``OUT.done`` belongs to a
case that was not committed: on resume it is cut off (``OUT`` truncated to that offset), and a
torn last line of ``OUT.done`` is cut off too, so a run killed at any moment resumes with every
finished case once and every other case not at all. This was chosen over per-case part files
because there is one invariant to check (``len(OUT) >= last offset``), nothing to rename, and
no leftover files to clean.

Ownership: ``OUT.done`` is created (and fsynced) *before* ``OUT``, so an ``OUT`` without
``OUT.done``, or whose first line is not our header, is someone else's file and is never
written to (:class:`ResumeError`, exit 2). An empty ``OUT`` holds nothing to lose and is taken.

Lines of ``OUT.done`` written by earlier versions (``case<TAB>labels_path``, no offset) are still
honoured as finished cases; after such a line nothing can be cut, so ``OUT`` is kept as it is.

For tests, ``LUMBARVIEW_TEST_CRASH_AT=<point>:<n>`` ends the process with ``os._exit(137)`` the
n-th time the sink reaches ``<point>`` (see :data:`CRASH_POINTS`), to prove the resume at every
commit point.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from lumbarview.core.errors import LumbarviewError, SpecialFileError
from lumbarview.core.fs import fsync_dir, read_regular_bytes

#: Where the fault-injection hook can end the process, in the order a run reaches them.
CRASH_POINTS = (
    "done-created",    # OUT.done created, OUT not yet
    "header-partial",  # half of the header line written to OUT
    "header-written",  # header written and fsynced
    "rows-partial",    # half of a case's rows written to OUT
    "rows-synced",     # a case's rows written and fsynced, its done line not yet
    "done-partial",    # half of a case's done line written
    "done-synced",     # a case fully committed
)
_CRASH_ENV = "LUMBARVIEW_TEST_CRASH_AT"
_crash_counts: dict[str, int] = {}


def _maybe_crash(point: str) -> None:
    spec = os.environ.get(_CRASH_ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _crash_counts[point] = _crash_counts.get(point, 0) + 1
    if _crash_counts[point] == (int(nth) if nth.isdigit() else 1):
        sys.stderr.flush()
        os._exit(137)


class ResumeError(LumbarviewError):
    """``OUT`` or ``OUT.done`` is not a run that can be resumed; nothing was written."""


def job_key(case: str, labels_path: str) -> str:
    """How a finished label map is named in ``OUT.done``."""
    return f"{case}\t{labels_path}"


def _csv_line(values: Sequence[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def _write_all(fh: IO[bytes], data: bytes, partial_point: str) -> None:
    if os.environ.get(_CRASH_ENV, "").startswith(partial_point + ":"):
        fh.write(data[: len(data) // 2])
        fh.flush()
        _maybe_crash(partial_point)
        fh.write(data[len(data) // 2:])
    else:
        fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


class CsvSink:
    """Rows of finished cases appended to ``path``, resumable exactly once (see the module)."""

    def __init__(self, path: str | Path, keys: Sequence[str]) -> None:
        self.path = Path(path)
        self.done_path = self.path.with_name(self.path.name + ".done")
        self.keys = tuple(keys)
        self._header = _csv_line(self.keys)
        self._out: IO[bytes] | None = None
        self._done: IO[bytes] | None = None
        self.done_keys: set[str] = set()

    # -- recovery ---------------------------------------------------------------------------
    def _read_journal(self) -> tuple[set[str], int | None, int]:
        """The finished keys, the committed length of OUT (None: unknown, an old journal), and
        the length of the journal's complete lines."""
        try:
            data = read_regular_bytes(self.done_path)
        except SpecialFileError as exc:
            raise ResumeError(f"{self.done_path}: {exc.problem}") from exc
        except OSError as exc:
            raise ResumeError(f"{self.done_path} cannot be read ({exc.strerror}); fix its permissions "
                              f"or move it and {self.path} away to start again") from exc
        keys: set[str] = set()
        offset: int | None = 0
        good = 0
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            if last:  # after the last newline: empty, or a line torn by a kill
                break
            end = good + len(raw) + 1
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                good = end
                continue
            entry = self._parse_line(text)
            if entry is None:
                raise ResumeError(f"{self.done_path} line {number} is damaged ({text[:60]!r}); it lists the "
                                  f"cases already in {self.path}. Repair or remove that line, or move both "
                                  f"files away to start again")
            key, line_offset = entry
            keys.add(key)
            offset = line_offset
            good = end
        return keys, offset, good

    @staticmethod
    def _parse_line(text: str) -> tuple[str, int | None] | None:
        if text.startswith("["):
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError):
                return None
            if (isinstance(doc, list) and len(doc) == 3 and isinstance(doc[0], str) and isinstance(doc[1], str)
                    and isinstance(doc[2], int) and not isinstance(doc[2], bool) and doc[2] >= 0):
                return job_key(doc[0], doc[1]), doc[2]
            return None
        case, tab, labels = text.partition("\t")
        if not tab or not case or not labels:
            return None
        return job_key(case, labels), None  # a line of an earlier version: no offset

    def open(self) -> set[str]:
        """Recover an interrupted run (if any), open both files for appending and return the keys
        of the cases already finished. Raises :class:`ResumeError` when ``OUT`` is not ours or
        ``OUT.done`` is damaged; nothing is written then."""
        out_size = self.path.stat().st_size if self.path.exists() else None
        if out_size is not None and not self.path.is_file():
            raise ResumeError(f"{self.path} is not a regular file; give a file name for --csv")
        if self.done_path.exists():
            keys, committed, journal_len = self._read_journal()
        elif out_size:
            raise ResumeError(f"{self.path} already exists and is not a run of `lumbarview measure` "
                              f"(there is no {self.done_path.name} beside it); nothing was written: "
                              f"choose a new file name, or move it away")
        else:
            keys, committed, journal_len = set(), 0, 0
        if out_size:
            try:
                head = read_regular_bytes(self.path, len(self._header))
            except SpecialFileError as exc:
                raise ResumeError(f"{self.path}: {exc.problem}; give --csv a regular file") from exc
            if not (head == self._header or (self._header.startswith(head) and out_size < len(self._header))):
                raise ResumeError(f"{self.path} does not start with the columns `lumbarview measure` writes; "
                                  f"it is not a run this version can resume, so nothing was written: "
                                  f"choose a new file name, or move it away")
        size = out_size or 0
        if committed is None:  # an old journal: keep OUT as it is
            committed = size
        elif committed == 0 and size >= len(self._header):
            committed = len(self._header)  # only the header was committed
        if committed > size:
            raise ResumeError(f"{self.path} is shorter ({size} bytes) than {self.done_path.name} says it "
                              f"was ({committed} bytes): rows of finished cases are missing. Move both "
                              f"files away to measure again from the start")
        try:
            if not self.done_path.exists():
                with open(self.done_path, "xb") as fh:
                    os.fsync(fh.fileno())
                fsync_dir(self.done_path.parent)
            _maybe_crash("done-created")
            if self.done_path.stat().st_size != journal_len:
                os.truncate(self.done_path, journal_len)  # a torn last line
            if out_size is not None and size != committed:
                os.truncate(self.path, committed)  # rows of a case that was not committed
            self._done = open(self.done_path, "ab")  # noqa: SIM115 - closed in close()
            self._out = open(self.path, "ab")  # noqa: SIM115
            if committed == 0:
                if out_size is None:
                    fsync_dir(self.path.parent)
                _write_all(self._out, self._header, "header-partial")
                _maybe_crash("header-written")
        except OSError as exc:
            self.close()
            raise ResumeError(f"cannot write {self.path} ({exc.strerror or exc}); check the folder and "
                              f"the free space") from exc
        self.done_keys = keys
        return keys

    # -- writing ----------------------------------------------------------------------------
    def commit(self, case: str, labels_path: str, rows: Sequence[dict[str, Any]]) -> None:
        """Append one case's rows and then its done mark, each made durable before the next."""
        if self._out is None or self._done is None:
            raise RuntimeError("CsvSink.open() first")
        data = b"".join(_csv_line([_cell(row.get(k)) for k in self.keys]) for row in rows)
        _write_all(self._out, data, "rows-partial")
        _maybe_crash("rows-synced")
        offset = os.fstat(self._out.fileno()).st_size
        line = json.dumps([case, labels_path, offset], ensure_ascii=True).encode("ascii") + b"\n"
        _write_all(self._done, line, "done-partial")
        _maybe_crash("done-synced")
        self.done_keys.add(job_key(case, labels_path))

    def close(self) -> None:
        for fh in (self._out, self._done):
            if fh is not None:
                fh.close()
        self._out = self._done = None


class NdjsonSink:
    """One JSON object per row, per line, on a text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def commit(self, case: str, labels_path: str, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.stream.write(json.dumps(row, allow_nan=False) + "\n")
        self.stream.flush()


class TextSink:
    """A readable table on a text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def commit(self, case: str, labels_path: str, rows: Sequence[dict[str, Any]]) -> None:
        for r in rows:
            value = r["value"]
            text = "n/a" if value is None else f"{value:.1f}" if r["unit"] != "ratio" else f"{value:.2f}"
            side = f" {r['side']}" if r["side"] else ""
            why = f"  ({r['reason']})" if r["reason"] else ""
            flag = f"  ! {r['flag']}" if r["flag"] else ""
            grade = f"  [{r['dataset_grade']}]" if r.get("dataset_grade") else ""
            self.stream.write(f"{r['case']:>8} {r['series']:<10} {r['level'] or '':<6}{side:<7} "
                              f"{r['quantity'] or '':<22} {text:>7} {r['unit'] or '':<5} {r['confidence']:<6}"
                              f"{flag}{grade}{why}\n")
        self.stream.flush()
