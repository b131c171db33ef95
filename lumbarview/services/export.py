"""Export measurements as CSV or JSON: one row per measurement (a contract other tools read).

A row has the keys of ``lumbarview measure`` rows (:data:`~lumbarview.services.measure_case.ROW_KEYS`
+ :data:`~lumbarview.services.measure_case.EXTRA_KEYS`) plus ``source`` (``engine``, ``manual``,
``dataset``), ``engine_version`` (empty for a manual measurement), and for the session's
measurements (:mod:`lumbarview.services.measurement_export` builds their rows) ``id``,
``points_lps``, ``note`` and an area's ROI statistics ``roi_mean``, ``roi_sd``, ``roi_min``,
``roi_max``, ``roi_pixels`` (null where they do not apply). ``position_lps`` is a list of three
numbers in JSON and ``x;y;z`` in CSV, ``points_lps`` a list of such lists in JSON and
``x;y;z|x;y;z|...`` in CSV (where an empty cell is null: an empty text reads back as None).
Files are written atomically.

JSON: ``{"format": "lumbarview-measurements", "version": 1, "case": ..., "rows": [...]}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.fs import atomic_write_text, read_regular_bytes
from lumbarview.core.limits import limits
from lumbarview.core.safe_json import read_json_guarded
from lumbarview.services.measure_case import EXTRA_KEYS, ROW_KEYS

FORMAT = "lumbarview-measurements"
VERSION = 1
SESSION_KEYS = ("id", "points_lps", "note", "roi_mean", "roi_sd", "roi_min", "roi_max", "roi_pixels")
EXPORT_KEYS = (*ROW_KEYS, *EXTRA_KEYS, "source", "engine_version", *SESSION_KEYS)
_NUMERIC = ("value", "roi_mean", "roi_sd", "roi_min", "roi_max")
_INTEGER = ("label", "roi_pixels")


def export_rows(rows: Iterable[dict[str, Any]], source: str = "engine",
                engine_version: str = "") -> list[dict[str, Any]]:
    """``rows`` with every export key (missing ones None), ``source`` and ``engine_version``
    filled where a row does not carry its own."""
    out = []
    for row in rows:
        full = {key: row.get(key) for key in EXPORT_KEYS}
        full["source"] = row.get("source") or source
        full["engine_version"] = row.get("engine_version") or (engine_version if full["source"] == "engine" else "")
        value = full["value"]
        if isinstance(value, float) and not math.isfinite(value):
            full["value"] = None
        out.append(full)
    return out


def to_json_text(rows: Sequence[dict[str, Any]], case_id: str | None = None) -> str:
    return json.dumps({"format": FORMAT, "version": VERSION, "case": case_id, "rows": list(rows)},
                      indent=1, ensure_ascii=False, allow_nan=False)


def to_csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_KEYS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {}
        for key in EXPORT_KEYS:
            value = row.get(key)
            if key == "position_lps" and value is not None:
                value = ";".join(repr(float(c)) for c in value)
            elif key == "points_lps" and value is not None:
                value = "|".join(";".join(repr(float(c)) for c in point) for point in value)
            cells[key] = "" if value is None else value
        writer.writerow(cells)
    return buffer.getvalue()


def write_json(path: str | Path, rows: Sequence[dict[str, Any]], case_id: str | None = None) -> Path:
    path = Path(path)
    atomic_write_text(path, to_json_text(rows, case_id))
    return path


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    path = Path(path)
    atomic_write_text(path, to_csv_text(rows))
    return path


def write(path: str | Path, rows: Sequence[dict[str, Any]], case_id: str | None = None) -> Path:
    """Write by the file's suffix: ``.csv`` or ``.json``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return write_csv(path, rows)
    if suffix == ".json":
        return write_json(path, rows, case_id)
    raise ValueError(f"cannot export to {suffix or 'a file without suffix'}: choose a .csv or .json file name")


def _text(path: Path) -> str:
    try:
        limits().check_text_file(path)
        return read_regular_bytes(path).decode("utf-8-sig")
    except OSError as exc:
        raise CorruptFileError(path, f"the measurement file cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, f"the measurement file is not UTF-8 text (byte {exc.start:,})",
                               "export it again from lumbarview") from exc


def read_json(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON export (raises CorruptFileError for anything else)."""
    path = Path(path)
    data = read_json_guarded(path, "measurement file")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise CorruptFileError(path, f"the file is not a lumbarview measurement file (no format {FORMAT!r} "
                                     "with rows)", "choose a file exported by lumbarview")
    return [{key: row.get(key) for key in EXPORT_KEYS} for row in data["rows"] if isinstance(row, dict)]


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a CSV export, typed back (value float, label int, position_lps a list)."""
    path = Path(path)
    text = _text(path)
    out = []
    max_field = limits().max_csv_field_chars
    try:
        for cells in csv.DictReader(io.StringIO(text)):
            if any(len(v) > max_field for v in cells.values() if isinstance(v, str)):
                raise ValueError(f"a field is longer than {max_field:,} characters (LUMBARVIEW_MAX_CSV_FIELD)")
            row: dict[str, Any] = {key: (cells.get(key) or None) for key in EXPORT_KEYS}
            for key in _NUMERIC:
                row[key] = None if row[key] is None else float(row[key])
            for key in _INTEGER:
                row[key] = None if row[key] is None else int(row[key])
            if row["position_lps"] is not None:
                row["position_lps"] = [float(c) for c in str(row["position_lps"]).split(";")]
            if row["points_lps"] is not None:
                points = str(row["points_lps"]).split("|")
                row["points_lps"] = [[float(c) for c in point.split(";")] for point in points]
            if row["engine_version"] is None:
                row["engine_version"] = ""
            out.append(row)
    except (csv.Error, ValueError) as exc:
        raise CorruptFileError(path, f"the file is not a lumbarview measurement CSV ({exc})",
                               "choose a file exported by lumbarview") from exc
    return out
