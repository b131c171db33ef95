"""Use case: the grades a dataset ships, into the grading panel and back out.

- :func:`dataset_grades`: a case's own grades as :class:`~lumbarview.model.gradings.Grade` with
  ``source`` ``dataset``: the SPIDER gradings (per IVD: Pfirrmann, Modic, endplates,
  spondylolisthesis, herniation, narrowing, bulging) and the RSNA 2024 ``train.csv`` severities
  (canal; subarticular and foraminal per side). Grades the panel cannot hold (a thoracic disc, a
  value outside the grading) are listed with why, never guessed.
- :func:`prefill`: put them in the session's grading document (not an edit: no undo step),
  keeping what the reader already graded.
- :func:`write_grades_csv` / :func:`read_grades_csv`: every grade (all gradings, reader's and
  dataset's) as a CSV of :data:`GRADES_CSV_COLUMNS` and back.
- :func:`write_spider_gradings`: the SPIDER gradings CSV with the document's lumbar grades in
  place of the dataset's: every other row and cell as read, so a file read and written back
  unchanged is byte for byte the same. Never written over the source.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.fs import atomic_write_text
from lumbarview.core.limits import limits
from lumbarview.io.annotations import SPIDER_GRADING_COLUMNS, read_table
from lumbarview.model.gradings import LEVELS, Grade
from lumbarview.model.session import Session

#: SPIDER gradings column -> grading key.
SPIDER_COLUMNS = {"Modic": "modic", "UP endplate": "endplate_upper", "LOW endplate": "endplate_lower",
                  "Spondylolisthesis": "spondylolisthesis", "Disc herniation": "disc_herniation",
                  "Disc narrowing": "disc_narrowing", "Disc bulging": "disc_bulging", "Pfirrman grade": "pfirrmann"}
#: RSNA condition -> grading key (the side is the row's).
RSNA_CONDITIONS = {"Spinal Canal Stenosis": "rsna_canal", "Left Neural Foraminal Narrowing": "rsna_foraminal",
                   "Right Neural Foraminal Narrowing": "rsna_foraminal",
                   "Left Subarticular Stenosis": "rsna_subarticular",
                   "Right Subarticular Stenosis": "rsna_subarticular"}
#: SPIDER's IVD label n is the n-th disc from the sacrum up (1 = L5-S1).
SPIDER_IVD_LEVELS = {1: "L5-S1", 2: "L4-L5", 3: "L3-L4", 4: "L2-L3", 5: "L1-L2"}


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def dataset_grades(case: Case) -> tuple[list[Grade], list[str]]:
    """The case's dataset grades (see the module) and, for each one left out, why."""
    grades: list[Grade] = []
    skipped: list[str] = []
    for table in case.tables:
        if table.kind == "spider-gradings":
            for row in table.rows:
                level = row.get("level")
                if level not in LEVELS:
                    skipped.append(f"SPIDER IVD label {row.get('IVD label')!r} ({level or 'no level'}) is not a "
                                   "lumbar disc L1-L2 ... L5-S1")
                    continue
                grades.extend(_spider_row(row, str(level), case.id, Path(table.source).name, skipped))
        elif table.kind == "rsna-grades":
            for row in table.rows:
                rsna_key = RSNA_CONDITIONS.get(str(row.get("condition")))
                value = row.get("grade")
                if rsna_key is None or not value:
                    continue
                grades.append(_checked(rsna_key, str(row.get("level")), _cell(value), row.get("side") or None, case.id,
                                       f"RSNA 2024 {Path(table.source).name}", skipped))
    out: dict[tuple[str | None, str, str, str | None], Grade] = {}
    for g in grades:
        if g.value:
            out.setdefault(g.slot, g)
    return list(out.values()), skipped


def _spider_row(row: dict[str, Any], level: str, case: str, source_name: str, skipped: list[str]) -> list[Grade]:
    return [_checked(key, level, _cell(row[column]), None, case, f"SPIDER gradings ({source_name})", skipped)
            for column, key in SPIDER_COLUMNS.items() if row.get(column) not in (None, "")]


def spider_csv_grades(path: str | Path) -> tuple[list[Grade], list[str]]:
    """The lumbar grades of every patient (case id: the ``Patient`` column) of a SPIDER gradings
    CSV read on its own, and what was left out and why.

    Raises
    ------
    LoadError
        The file cannot be read as a table.
    """
    table, _issues = read_table(path, "spider-gradings", SPIDER_GRADING_COLUMNS)
    grades: list[Grade] = []
    skipped: list[str] = []
    for row in table.rows:
        ivd = row.get("IVD label")
        level = SPIDER_IVD_LEVELS.get(ivd) if isinstance(ivd, int) else None
        if level is None:
            skipped.append(f"patient {row.get('Patient')}: IVD label {ivd!r} is not a lumbar disc L1-L2 ... L5-S1")
            continue
        grades.extend(_spider_row(row, level, _cell(row.get("Patient")), Path(path).name, skipped))
    return [g for g in grades if g.value], skipped


def _checked(key: str, level: str, value: str, side: str | None, case: str, note: str, skipped: list[str]) -> Grade:
    try:
        return Grade.create(key, level, value, side, "dataset", note, case)
    except ValueError as exc:
        skipped.append(f"{note}, {level}: {exc}")
        return Grade(key, level, "", side, "dataset", note, case)  # empty value: dropped by the caller


def prefill(session: Session, case: Case) -> list[str]:
    """Put ``case``'s dataset grades into the session's grading document where the reader has not
    graded (not an undo step: the dataset's grades are where the read starts). Returns what was
    left out and why."""
    grades, skipped = dataset_grades(case)
    doc = session.gradings
    present = {g.slot for g in doc}
    doc.reset([*doc, *(g for g in grades if g.slot not in present)])
    return skipped


def write_spider_gradings(source: str | Path, grades: Iterable[Grade], out: str | Path) -> list[Grade]:
    """Write the SPIDER gradings CSV ``source`` to ``out`` with the lumbar cells of each patient
    (case id) taken from ``grades`` (SPIDER's gradings only); every other cell, row and line ending
    as read. Returns the grades that have no row in the file (not written).

    Raises
    ------
    LumbarviewError
        ``out`` is ``source`` (the dataset is read-only), or ``source`` cannot be read.
    """
    source, out = Path(source), Path(out)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise LumbarviewError(f"{out} is the dataset's own gradings file; lumbarview never writes over it. "
                              "Choose another file.")
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise LumbarviewError(f"the SPIDER gradings {source} cannot be read ({exc.strerror or exc}); check the "
                              "path") from exc
    text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("utf-8")
    newline = "\r\n" if "\r\n" in text else "\n"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise LumbarviewError(f"the SPIDER gradings {source} are empty; choose the radiological_gradings.csv")
    header = rows[0]
    missing = [c for c in ("Patient", "IVD label") if c not in header]
    if missing:
        raise LumbarviewError(f"{source} has no column {', '.join(missing)}: it is not SPIDER's gradings file")
    by_slot = {(g.case, g.level, g.grading): g for g in grades if g.side is None}
    written: set[tuple[str | None, str, str]] = set()
    patient_col, ivd_col = header.index("Patient"), header.index("IVD label")
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        try:
            level = SPIDER_IVD_LEVELS.get(int(row[ivd_col]))
        except ValueError:
            level = None
        if level is None:
            continue
        for n, column in enumerate(header):
            key = SPIDER_COLUMNS.get(column)
            grade = by_slot.get((row[patient_col].strip(), level, key)) if key else None
            if grade is not None:
                row[n] = grade.value
                written.add((grade.case, level, grade.grading))
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    body = buffer.getvalue()
    if not text.endswith(("\n", "\r")):
        body = body[: -len(newline)]
    atomic_write_text(out, ("\ufeff" if raw.startswith(b"\xef\xbb\xbf") else "") + body)
    return [g for g in by_slot.values() if g.grading in SPIDER_COLUMNS.values()
            and (g.case, g.level, g.grading) not in written]


#: The columns of lumbarview's own gradings CSV (every grading, one row a grade).
GRADES_CSV_COLUMNS = ("case", "level", "grading", "side", "value", "source", "note")


def write_grades_csv(path: str | Path, grades: Iterable[Grade]) -> Path:
    """Write ``grades`` as lumbarview's gradings CSV (:data:`GRADES_CSV_COLUMNS`), atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GRADES_CSV_COLUMNS)
    for g in grades:
        writer.writerow([g.case or "", g.level, g.grading, g.side or "", g.value, g.source, g.note])
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def read_grades_csv(path: str | Path) -> tuple[list[Grade], list[str]]:
    """The grades of a gradings CSV written by :func:`write_grades_csv`, and each row left out
    with why (an unknown grading, level, side, value or source).

    Raises
    ------
    LumbarviewError
        The file cannot be read, is over the text budget, or lacks a column.
    """
    try:
        limits().check_text_file(str(path))
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LumbarviewError(f"the gradings CSV {path} cannot be read ({exc}); check the file") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in GRADES_CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LumbarviewError(f"{path} has no column {', '.join(missing)}: it is not a lumbarview gradings CSV "
                              f"(columns {', '.join(GRADES_CSV_COLUMNS)})")
    grades: list[Grade] = []
    skipped: list[str] = []
    for row in reader:
        cell = {key: str(row.get(key) or "") for key in GRADES_CSV_COLUMNS}
        try:
            grades.append(Grade.create(cell["grading"], cell["level"], cell["value"], cell["side"] or None,
                                       cell["source"] or "reader", cell["note"], cell["case"] or None))
        except ValueError as exc:
            skipped.append(f"{path}, line {reader.line_num}: {exc}")
    return grades, skipped
