"""Use case: the local study database, what lumbarview has of which patient, study and series.

An SQLite file (WAL journal, so a writer killed at any moment leaves the last committed state)
in the user data folder (``$LUMBARVIEW_WORKSPACE`` or the platform's, ``studies/``), beside its
own *store* folder. Tables follow the usual DICOM browser schema (Slicer/CTK's): patients,
studies, series and instances, each instance with its file, its header row (so that a study
re-opens without reading its files again), when it was inserted and where it came from
(``folder``, ``dicomdir`` or ``pacs:NAME``). A ``sent`` table records what was sent where.

Files either live in the store (copied at import or received from a PACS; their path is kept
relative to the store, so the database folder can move) or are referenced in place (absolute
paths). Deleting from the database deletes store files only; a file outside the store is
never touched.

Schema changes go through :data:`_MIGRATIONS` (``schema_info.version``): a database from an
older lumbarview is migrated in one transaction when opened; one from a newer lumbarview is
refused with a message, never altered.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lumbarview.core.dataset import STUDY_PREFIX, Case, Dataset
from lumbarview.core.errors import Cancelled, LoadError, NothingToOpenError
from lumbarview.core.fs import atomic_write_parts
from lumbarview.core.types import LoadIssue, Severity
from lumbarview.io.dicom.assemble import assemble, collection_from_doc, collection_to_doc
from lumbarview.io.dicom.dicomdir import is_dicomdir, read_dicomdir
from lumbarview.io.dicom.headers import DicomFileHeader, NotDicomError, header_issue, read_header
from lumbarview.io.dicom.scan import scan_paths
from lumbarview.services.session_store import workspace_dir

__all__ = ["SCHEMA_VERSION", "ImportReport", "SeriesRecord", "StudyDatabase", "StudyQuery", "StudyRecord",
           "default_database_dir"]

#: The schema this lumbarview writes (``schema_info.version``).
SCHEMA_VERSION = 2

_UID = re.compile(r"[0-9.]{1,64}")
ProgressCallback = Callable[[int, int], None]


def default_database_dir(workspace: str | Path | None = None) -> Path:
    return workspace_dir(workspace) / "studies"


_SCHEMA_V1 = """
CREATE TABLE patients (
    pk INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    UNIQUE (patient_id, patient_name)
);
CREATE TABLE studies (
    study_uid TEXT PRIMARY KEY,
    patient_pk INTEGER NOT NULL REFERENCES patients(pk),
    study_date TEXT NOT NULL,
    description TEXT NOT NULL,
    insert_time REAL NOT NULL
);
CREATE TABLE series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    description TEXT NOT NULL,
    series_number INTEGER,
    insert_time REAL NOT NULL
);
CREATE TABLE instances (
    sop_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid) ON DELETE CASCADE,
    instance_number INTEGER,
    path TEXT NOT NULL,
    in_store INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    header BLOB NOT NULL,
    origin TEXT NOT NULL,
    insert_time REAL NOT NULL
);
CREATE TABLE sent (
    pk INTEGER PRIMARY KEY,
    sop_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX instances_series ON instances(series_uid);
CREATE INDEX series_study ON series(study_uid);
CREATE INDEX studies_patient ON studies(patient_pk);
CREATE INDEX studies_date ON studies(study_date);
"""

# Version 2: each study's assembled structure (series, stacks, geometry) kept beside its
# instances, so that re-opening does not assemble again what did not change.
_SCHEMA_V2 = """
CREATE TABLE assemblies (
    study_uid TEXT PRIMARY KEY REFERENCES studies(study_uid) ON DELETE CASCADE,
    state TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX instances_path ON instances(path)
"""

#: version -> the SQL that brings a database of version - 1 to it.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


@dataclass(frozen=True)
class SeriesRecord:
    uid: str
    description: str
    modality: str
    n_instances: int
    series_number: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "description": self.description, "modality": self.modality,
                "n_instances": self.n_instances}


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    series: tuple[SeriesRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "patient_id": self.patient_id, "patient_name": self.patient_name,
                "study_date": self.study_date, "description": self.description,
                "series": [s.to_json() for s in self.series]}


@dataclass(frozen=True)
class StudyQuery:
    """A search. Text fields take ``*`` and ``?`` wildcards and ignore case; dates are YYYYMMDD,
    both ends included; empty fields do not filter."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    description: str = ""

    @staticmethod
    def parse_date_range(text: str) -> tuple[str, str]:
        """``20240101-20241231``, ``20240101-``, ``-20241231`` or one day ``20240101``."""
        text = text.strip()
        m = re.fullmatch(r"(\d{8})?(-)?(\d{8})?", text)
        if not text or m is None or (m.group(1) is None and m.group(3) is None):
            raise ValueError(f"a date range is FROM-TO in YYYYMMDD (either end may be left out), not {text!r}")
        start, dash, end = m.group(1) or "", m.group(2), m.group(3) or ""
        if not dash:
            end = start
        for d in (start, end):
            if d and not _valid_date(d):
                raise ValueError(f"{d} is not a calendar date (YYYYMMDD)")
        if start and end and start > end:
            raise ValueError(f"the date range {text} ends before it starts")
        return start, end


def _valid_date(d: str) -> bool:
    import datetime

    try:
        datetime.date(int(d[:4]), int(d[4:6]), int(d[6:8]))
    except ValueError:
        return False
    return True


@dataclass
class ImportReport:
    added: int = 0
    already_there: int = 0
    issues: list[LoadIssue] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _safe_component(uid: str) -> str:
    """A folder or file name for a UID (UIDs are digits and dots; anything else is hashed)."""
    if _UID.fullmatch(uid) and uid not in (".", ".."):
        return uid
    return "h" + hashlib.sha1(uid.encode("utf-8", "surrogatepass")).hexdigest()


class StudyDatabase:
    """The database in ``folder`` (created when missing). Thread-safe: one connection, one lock
    (received instances arrive on the network threads)."""

    FILE_NAME = "studies.sqlite"

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_database_dir()
        self.store = self.folder / "store"
        self.path = self.folder / self.FILE_NAME
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.store.mkdir(exist_ok=True)
        except OSError as exc:
            raise LoadError(self.folder, f"cannot create the study database folder ({exc.strerror or exc})",
                            "Check that the user data folder is writable (or set LUMBARVIEW_WORKSPACE)") from exc
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LoadError(self.path, f"the study database cannot be read ({exc})",
                            "Move the file aside to start a new database; the files in its store are kept") from exc
        self._store_real = os.path.realpath(self.store)

    # -- life --------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StudyDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_info").fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"it has schema version {version}, newer than this lumbarview's {SCHEMA_VERSION}; "
                    "use the newer lumbarview")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, _MIGRATIONS[v].split(";")):
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                db.execute("UPDATE schema_info SET version = ?", (SCHEMA_VERSION,))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT version FROM schema_info").fetchone()[0])

    # -- adding ------------------------------------------------------------------------------------
    def store_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where the store keeps an instance (``store/<study>/<series>/<sop>.dcm``)."""
        return self.store / _safe_component(study_uid) / _safe_component(series_uid) / (
            _safe_component(sop_uid) + ".dcm")

    def study_folder(self, study_uid: str) -> Path:
        return self.store / _safe_component(study_uid)

    def add_bytes(self, data: bytes, origin: str) -> tuple[DicomFileHeader | None, LoadIssue | None]:
        """Write one received Part 10 file atomically into the store and index it at once.

        Returns its header, or an issue saying why it was not kept (malformed, or the same
        SOP instance is already there: the first copy is kept)."""
        tmp_dir = self.store / ".incoming"
        tmp_dir.mkdir(exist_ok=True)
        name = hashlib.sha1(data[:4096] + len(data).to_bytes(8, "little")).hexdigest()
        staging = tmp_dir / f"{name}-{threading.get_ident()}.dcm"
        _write_new(staging, data)
        try:
            header = read_header(staging)
        except NotDicomError:
            staging.unlink()
            return None, LoadIssue(Severity.ERROR, "pacs.malformed",
                                   "a received instance is not DICOM; it was dropped", origin)
        except Exception as exc:  # pydicom raises many kinds
            staging.unlink()
            issue = header_issue(origin, exc)
            return None, LoadIssue(Severity.ERROR, "pacs.malformed",
                                   f"a received instance could not be read ({issue.message}); it was dropped",
                                   origin)
        problem = self._identity_problem(header)
        if problem:
            staging.unlink()
            return None, LoadIssue(Severity.ERROR, "pacs.malformed", f"a received instance {problem}; it was dropped",
                                   origin)
        if self.has_instance(header.sop_instance_uid):
            staging.unlink()
            return None, LoadIssue(Severity.INFO, "db.duplicate",
                                   f"instance {header.sop_instance_uid} is already in the database; the copy "
                                   "there was kept", origin)
        target = self.store_path(header.study_uid, header.series_uid, header.sop_instance_uid)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        st = target.stat()
        header = _rehome(header, str(target), st)
        conflicts: list[LoadIssue] = []
        self._insert([(header, True)], origin, conflicts)
        if conflicts:
            target.unlink()
            return None, conflicts[0]
        return header, None

    @staticmethod
    def _identity_problem(h: DicomFileHeader) -> str:
        missing = [name for name, v in (("SOP Instance UID", h.sop_instance_uid), ("Study Instance UID", h.study_uid),
                                        ("Series Instance UID", h.series_uid)) if not v]
        return f"has no {', '.join(missing)}" if missing else ""

    def has_instance(self, sop_uid: str) -> bool:
        """True when the instance is indexed and its file is there with the size indexed; an
        index row whose file is gone or cut short is dropped (the instance can come again)."""
        with self._lock:
            row = self._db.execute("SELECT path, in_store, size FROM instances WHERE sop_uid = ?",
                                   (sop_uid,)).fetchone()
        if row is None:
            return False
        try:
            if os.stat(self._absolute(row[0], row[1])).st_size == row[2]:
                return True
        except OSError:
            pass
        with self._transaction() as db:
            db.execute("DELETE FROM instances WHERE sop_uid = ?", (sop_uid,))
        return False

    def instances_of_series(self, series_uid: str) -> set[str]:
        """The SOP Instance UIDs of the series whose files are there with the size indexed."""
        with self._lock:
            rows = self._db.execute("SELECT sop_uid, path, in_store, size FROM instances WHERE series_uid = ?",
                                    (series_uid,)).fetchall()
        present = set()
        for sop_uid, path, in_store, size in rows:
            try:
                if os.stat(self._absolute(path, in_store)).st_size == size:
                    present.add(sop_uid)
            except OSError:
                continue
        return present

    def flush(self) -> None:
        """Make what was written so far durable (files and database) against a power cut."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        os.sync()

    def _insert(self, items: Sequence[tuple[DicomFileHeader, bool]], origin: str,
                issues: list[LoadIssue] | None = None) -> int:
        """Index headers (``True``: the file is in the store). Returns how many were new; an
        instance whose series the database files under another study is left out, with an issue."""
        now = time.time()
        added = 0
        with self._transaction() as db:
            for h, in_store in items:
                owner = db.execute("SELECT study_uid FROM series WHERE series_uid = ?", (h.series_uid,)).fetchone()
                if owner is not None and owner[0] != h.study_uid:
                    if issues is not None:
                        issues.append(LoadIssue(
                            Severity.ERROR, "db.series-conflict",
                            f"series {h.series_uid} belongs to study {owner[0]} in the database, but this file "
                            f"says study {h.study_uid}; it was not indexed", h.path))
                    continue
                db.execute("INSERT OR IGNORE INTO patients (patient_id, patient_name) VALUES (?, ?)",
                           (h.patient_id, h.patient_name))
                patient_pk = db.execute("SELECT pk FROM patients WHERE patient_id = ? AND patient_name = ?",
                                        (h.patient_id, h.patient_name)).fetchone()[0]
                db.execute("INSERT OR IGNORE INTO studies VALUES (?, ?, ?, ?, ?)",
                           (h.study_uid, patient_pk, h.study_date, h.study_description, now))
                db.execute("INSERT OR IGNORE INTO series VALUES (?, ?, ?, ?, ?, ?)",
                           (h.series_uid, h.study_uid, h.modality, h.series_description, h.series_number, now))
                path = os.path.relpath(h.path, self.store) if in_store else h.path
                row = h.to_row()
                row[0] = ""  # the path lives in its own column
                cur = db.execute("INSERT OR IGNORE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (h.sop_instance_uid, h.series_uid, h.instance_number, path, int(in_store), h.size,
                                  h.mtime_ns, orjson.dumps(row), origin, now))
                added += cur.rowcount
        return added

    def import_path(self, path: str | Path, copy: bool = False, progress: ProgressCallback | None = None,
                    cancel: threading.Event | None = None) -> ImportReport:
        """Index every DICOM instance in a folder, a DICOMDIR (or a disc's root holding one).

        ``copy``: copy each file into the store (the source can then go away); otherwise the
        files are referenced where they are. An instance already in the database is left as it
        is (counted in ``already_there``); files that are not DICOM or are damaged are issues.
        """
        root = Path(os.path.abspath(str(path)))
        if not root.exists():
            raise NothingToOpenError(root, "no such file or folder", "Check the path and try again")
        report = ImportReport()
        origin = "folder"
        files: list[str] | None = None
        dicomdir = root if root.is_file() and is_dicomdir(root) else (
            root / "DICOMDIR" if (root / "DICOMDIR").is_file() else None)
        if dicomdir is not None:
            listing = read_dicomdir(dicomdir)
            report.issues.extend(listing.issues)
            origin = "dicomdir"
            files = [f for f in listing.files if os.path.isfile(f)]
            scan_root = dicomdir.parent
        else:
            scan_root = root
        if root.is_file() and dicomdir is None:
            headers, issues = self._read_single(root)
            report.issues.extend(issues)
        else:
            scan = scan_paths(scan_root, files=files, cache=None, progress=progress, cancel=cancel)
            headers = [h for h in scan.headers if not h.is_directory]
            report.issues.extend(scan.issues)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the import was cancelled")
        items: list[tuple[DicomFileHeader, bool]] = []
        copies: set[str] = set()  # store files this import made
        for h in headers:
            problem = self._identity_problem(h)
            if problem:
                report.issues.append(LoadIssue(Severity.WARNING, "db.no-identity",
                                               f"the file {problem}; it cannot be kept in the database", h.path))
                continue
            if copy:
                target = self.store_path(h.study_uid, h.series_uid, h.sop_instance_uid)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _write_new(target, Path(h.path).read_bytes())
                    copies.add(str(target))
                h = _rehome(h, str(target), target.stat())
            items.append((h, copy))
        known = self._known(h.sop_instance_uid for h, _ in items)
        fresh = [(h, s) for h, s in items if h.sop_instance_uid not in known]
        seen: set[str] = set()
        unique = []
        for h, s in fresh:
            if h.sop_instance_uid in seen:
                report.issues.append(LoadIssue(Severity.INFO, "db.duplicate",
                                               f"instance {h.sop_instance_uid} appears twice; the first file is kept",
                                               h.path))
                continue
            seen.add(h.sop_instance_uid)
            unique.append((h, s))
        for start in range(0, len(unique), 2000):
            if cancel is not None and cancel.is_set():
                raise Cancelled("the import was cancelled")
            report.added += self._insert(unique[start:start + 2000], origin, report.issues)
        for issue in report.issues:
            if issue.code == "db.series-conflict" and issue.path in copies:
                os.unlink(issue.path)  # a copy made for a file that could not be indexed
        report.already_there = len(items) - len(fresh)
        report.studies = {h.study_uid for h, _ in items}
        if copy:
            self.flush()
        return report

    @staticmethod
    def _read_single(path: Path) -> tuple[list[DicomFileHeader], list[LoadIssue]]:
        try:
            return [read_header(path)], []
        except NotDicomError:
            return [], [LoadIssue(Severity.WARNING, "dicom.not-dicom", "the file is not DICOM", str(path))]
        except Exception as exc:  # pydicom raises many kinds
            return [], [header_issue(str(path), exc)]

    def _known(self, sop_uids: Iterable[str]) -> set[str]:
        uids = list(sop_uids)
        known: set[str] = set()
        with self._lock:
            for start in range(0, len(uids), 500):
                chunk = uids[start:start + 500]
                q = f"SELECT sop_uid FROM instances WHERE sop_uid IN ({','.join('?' * len(chunk))})"
                known.update(r[0] for r in self._db.execute(q, chunk))
        return known

    def record_sent(self, sop_uids: Iterable[str], destination: str, status: str = "ok") -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany("INSERT INTO sent (sop_uid, destination, status, time) VALUES (?, ?, ?, ?)",
                           [(uid, destination, status, now) for uid in sop_uids])

    def sent_to(self, sop_uid: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT destination FROM sent WHERE sop_uid = ? AND status = 'ok'",
                                                   (sop_uid,))]

    # -- finding -----------------------------------------------------------------------------------
    def search(self, query: StudyQuery | None = None) -> list[StudyRecord]:
        """Studies matching ``query`` (all without one), newest first, each with its series."""
        q = query or StudyQuery()
        where, args = [], []
        if q.patient_id:
            where.append("p.patient_id LIKE ? ESCAPE '\\'")
            args.append(_like(q.patient_id))
        if q.patient_name:
            where.append("p.patient_name LIKE ? ESCAPE '\\'")
            args.append(_like(q.patient_name))
        if q.date_from:
            where.append("st.study_date >= ?")
            args.append(q.date_from)
        if q.date_to:
            where.append("st.study_date <> '' AND st.study_date <= ?")
            args.append(q.date_to)
        if q.modality:
            where.append("EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND m.modality LIKE ?"
                         " ESCAPE '\\')")
            args.append(_like(q.modality))
        if q.description:
            pattern = "%" + _like(q.description) + "%"
            where.append("(st.description LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM series d WHERE "
                         "d.study_uid = st.study_uid AND d.description LIKE ? ESCAPE '\\'))")
            args += [pattern, pattern]
        sql = ("SELECT st.study_uid, p.patient_id, p.patient_name, st.study_date, st.description "
               "FROM studies st JOIN patients p ON p.pk = st.patient_pk"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY st.study_date DESC, p.patient_name, st.study_uid")
        with self._lock:
            studies = self._db.execute(sql, args).fetchall()
            series_rows = self._db.execute(
                "SELECT s.study_uid, s.series_uid, s.description, s.modality, s.series_number, "
                "(SELECT COUNT(*) FROM instances i WHERE i.series_uid = s.series_uid) "
                "FROM series s ORDER BY s.series_number, s.series_uid").fetchall()
        by_study: dict[str, list[SeriesRecord]] = {}
        for study_uid, uid, description, modality, number, n in series_rows:
            by_study.setdefault(study_uid, []).append(SeriesRecord(uid, description, modality, n, number))
        return [StudyRecord(uid, pid, name, date, description, tuple(by_study.get(uid, ())))
                for uid, pid, name, date, description in studies]

    def study(self, study_uid: str) -> StudyRecord | None:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
        if row is None:
            return None
        return next((s for s in self.search() if s.study_uid == study_uid), None)

    def _rows(self, study_uid: str, series_uids: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        sql = ("SELECT i.path, i.in_store, i.size, i.mtime_ns, i.header FROM instances i "
               "JOIN series s ON s.series_uid = i.series_uid WHERE s.study_uid = ?")
        args: list[Any] = [study_uid]
        if series_uids:
            sql += f" AND s.series_uid IN ({','.join('?' * len(series_uids))})"
            args += list(series_uids)
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _all_rows(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute("SELECT path, in_store, size, mtime_ns, header FROM instances").fetchall()

    def files(self, study_uid: str, series_uids: Sequence[str] = ()) -> list[Path]:
        return [self._absolute(path, in_store) for path, in_store, *_ in self._rows(study_uid, series_uids)]

    def _absolute(self, path: str, in_store: int) -> Path:
        return self.store / path if in_store else Path(path)

    def headers(self, study_uid: str | None = None,
                check: bool = True) -> tuple[list[DicomFileHeader], list[LoadIssue]]:
        """The stored headers of a study (of everything without one), without reading the files.

        ``check``: stat each file; a file that is gone is an issue, one that changed since it was
        indexed is read again."""
        rows = self._all_rows() if study_uid is None else self._rows(study_uid)
        headers: list[DicomFileHeader] = []
        issues: list[LoadIssue] = []
        store = str(self.store) + os.sep
        from_row = DicomFileHeader.from_row
        loads = orjson.loads
        for path, in_store, size, mtime_ns, blob in rows:
            full = store + path if in_store else path
            if check:
                try:
                    st = os.stat(full)
                except OSError:
                    issues.append(LoadIssue(Severity.WARNING, "db.missing-file",
                                            "a file the database lists is gone (moved or deleted outside "
                                            "lumbarview); re-import its folder", full))
                    continue
                if st.st_size != size or st.st_mtime_ns != mtime_ns:
                    got, problems = self._read_single(Path(full))
                    headers.extend(got)
                    issues.extend(problems)
                    continue
            row = loads(blob)
            row[0] = full
            headers.append(from_row(row))
        return headers, issues

    def open_study(self, study_uid: str) -> Dataset:
        """The study as a dataset for the viewer (the files are not read until their pixels
        are needed).

        Raises
        ------
        NothingToOpenError
            The database has no such study, or none of its files is left.
        """
        if self.study(study_uid) is None:
            raise NothingToOpenError(study_uid, "no study with this Study Instance UID in the database",
                                     "List the database with `lumbarview db list` or import the study first")
        return self.open_studies([study_uid], f"{STUDY_PREFIX}{study_uid}")

    def open_studies(self, study_uids: Sequence[str] | None = None, path: str = "database") -> Dataset:
        """Studies (all of them without ``study_uids``) as one dataset, one case per patient.

        Every file is stat'ed: a study whose files are all as they were indexed comes from its
        kept assembly; any other is assembled again from the stored headers (a changed file
        is read again, a missing one is an issue) and its assembly kept for next time."""
        sql = ("SELECT s.study_uid, i.path, i.in_store, i.size, i.mtime_ns, i.insert_time FROM instances i "
               "JOIN series s ON s.series_uid = i.series_uid")
        args: list[str] = []
        if study_uids is not None:
            sql += f" WHERE s.study_uid IN ({','.join('?' * len(study_uids))})"
            args = list(study_uids)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
            kept = dict(self._db.execute("SELECT study_uid, state || char(10) || doc FROM assemblies").fetchall())
        by_study: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_study.setdefault(row[0], []).append(row)
        store = str(self.store) + os.sep
        stat = os.stat
        existing: set[str] = set()
        collections = []
        lookup = _HeaderLookup(self)
        for study_uid, study_rows in by_study.items():
            clean = True
            size_sum = mtime_sum = 0
            last = 0.0
            for _, path, in_store, size, mtime_ns, inserted in study_rows:
                full = store + path if in_store else path
                try:
                    st = stat(full)
                except OSError:
                    clean = False
                    continue
                existing.add(full)
                if st.st_size != size or st.st_mtime_ns != mtime_ns:
                    clean = False
                size_sum += size
                mtime_sum += mtime_ns
                last = max(last, inserted)
            state = f"{len(study_rows)}:{size_sum}:{mtime_sum}:{last!r}"
            collection = None
            entry = kept.get(study_uid)
            if clean and entry is not None:
                stored_state, _, doc = entry.partition("\n")
                if stored_state == state:
                    with suppress(ValueError, orjson.JSONDecodeError):
                        collection = collection_from_doc(orjson.loads(doc), path, existing.__contains__,
                                                         lookup)
            if collection is None:
                headers, study_issues = self.headers(study_uid)
                collection = assemble(headers, path, study_issues)
                doc_data = collection_to_doc(collection) if clean else None
                if doc_data is not None:
                    with self._transaction() as db:
                        db.execute("INSERT OR REPLACE INTO assemblies VALUES (?, ?, ?)",
                                   (study_uid, state, orjson.dumps(doc_data).decode()))
            collections.append(collection)
        cases: dict[str, Case] = {}
        issues: list[LoadIssue] = []
        for collection in collections:
            issues.extend(collection.issues)
            for patient in collection.patients:
                case = cases.setdefault(patient.id, Case(id=patient.id or "(no patient id)"))
                case.series.extend(s for st in patient.studies for s in st.series)
        if not cases:
            raise NothingToOpenError(path, "none of the images can be opened"
                                     + (f" ({issues[0].message})" if issues else ""),
                                     "Re-import or retrieve the study again")
        first = next(iter(cases.values()))
        first.issues.extend(issues)
        return Dataset(path=path, layout="database", cases=list(cases.values()))

    # -- removing ----------------------------------------------------------------------------------
    def delete_study(self, study_uid: str) -> tuple[int, int]:
        """Remove a study from the database; delete its files that are in the store (files
        referenced in place are never deleted). Returns (instances removed, files deleted)."""
        rows = self._rows(study_uid)
        with self._transaction() as db:
            db.execute("DELETE FROM instances WHERE series_uid IN (SELECT series_uid FROM series WHERE study_uid = ?)",
                       (study_uid,))
            db.execute("DELETE FROM series WHERE study_uid = ?", (study_uid,))
            db.execute("DELETE FROM studies WHERE study_uid = ?", (study_uid,))
            db.execute("DELETE FROM patients WHERE pk NOT IN (SELECT patient_pk FROM studies)")
        deleted = 0
        for path, in_store, *_ in rows:
            if not in_store:
                continue
            full = os.path.realpath(self.store / path)
            if not full.startswith(self._store_real + os.sep):
                continue  # a damaged row pointing out of the store: never delete outside it
            with suppress(FileNotFoundError):
                os.unlink(full)
                deleted += 1
        folder = self.study_folder(study_uid)
        if folder.is_dir() and os.path.realpath(folder).startswith(self._store_real + os.sep):
            for sub in sorted(folder.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with suppress(OSError):
                    sub.rmdir()  # only empty folders
        return len(rows), deleted


class _HeaderLookup:
    """The stored header of a file, looked up when a kept assembly's pixels are first read
    (possibly after the database was closed: it opens its own read-only connection)."""

    def __init__(self, db: StudyDatabase) -> None:
        self.db_path = db.path
        self.store = str(db.store) + os.sep
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def __call__(self, full_path: str) -> DicomFileHeader | None:
        in_store = full_path.startswith(self.store)
        key = full_path[len(self.store):] if in_store else full_path
        with self._lock:
            try:
                if self._con is None:
                    self._con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30.0,
                                                check_same_thread=False)
                row = self._con.execute("SELECT header FROM instances WHERE path = ? AND in_store = ?",
                                        (key, int(in_store))).fetchone()
            except sqlite3.Error:
                return None
        if row is None:
            return None
        values = orjson.loads(row[0])
        values[0] = full_path
        return DicomFileHeader.from_row(values)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` so that it appears whole or not at all (a temporary file renamed over it).

    Not fsynced one by one (three fsyncs per instance made a retrieve several times slower
    than the network): a killed process loses nothing written, and :meth:`StudyDatabase.flush`
    makes everything durable at the end of an import or a retrieve. What a power cut takes
    before that is noticed when the study is opened (its size no longer matches) and fetched
    again by the next retrieve (:meth:`StudyDatabase.instances_of_series` checks the files)."""
    atomic_write_parts(path, (data,), durable=False)


def _rehome(h: DicomFileHeader, path: str, st: os.stat_result) -> DicomFileHeader:
    from dataclasses import replace

    return replace(h, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


def slice_preview(path: str | Path, size: int = 256) -> npt.NDArray[np.uint8]:
    """An 8-bit preview of one received or stored slice (its first frame), at most ``size``
    pixels on a side, windowed 1-99 %: what a retrieve shows before the series is complete.

    Raises
    ------
    LoadError
        The file cannot be read or has no image.
    """
    from lumbarview.io.dicom.pixels import SliceSource, decode_stack

    try:
        header = read_header(path)
    except Exception as exc:  # pydicom raises many kinds
        raise LoadError(path, f"cannot be read ({exc})", "") from None
    if not header.has_pixels or header.rows <= 0 or header.cols <= 0:
        raise LoadError(path, "has no image", "")
    array, _ = decode_stack([SliceSource(header, 0)], (header.rows, header.cols))
    image = np.asarray(array[0], dtype=np.float32)
    step = max(1, -(-max(image.shape) // size))
    small = image[::step, ::step]
    lo, hi = np.percentile(small, (1, 99)) if small.size else (0.0, 1.0)
    scaled: npt.NDArray[np.uint8] = np.clip((small - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)
    return scaled
