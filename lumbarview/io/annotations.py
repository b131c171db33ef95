"""Annotations and tables: PASCAL VOC boxes, PNG label masks, 3D Slicer markups, CSV/TSV tables
and BIDS JSON sidecars. Each reader checks what it reads and raises a typed error that says what
is wrong; callers turn errors into issues and go on with the rest of the dataset.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import numpy as np
import numpy.typing as npt
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as safe_parse
from PIL import Image, UnidentifiedImageError

from lumbarview.core.dataset import PointSet, Table
from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.types import LoadIssue, Severity

_MAX_XML_BYTES = 5_000_000
_MAX_JSON_BYTES = 50_000_000
_MAX_PNG_PIXELS = 50_000_000


# -- PASCAL VOC -----------------------------------------------------------------------------
@dataclass(frozen=True)
class VocObject:
    name: str
    side: str | None
    level: str | None
    severity: int | None
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class VocAnnotation:
    path: str
    filename: str
    width: int | None
    height: int | None
    objects: tuple[VocObject, ...]
    issues: tuple[LoadIssue, ...]


_LEVEL_RE = re.compile(r"\b(T1[12]|L[1-5])\s*[-/_ ]?\s*(L[1-5]|S1)\b", re.IGNORECASE)
_SEVERITY_WORDS = {"normal": 0, "none": 0, "mild": 1, "moderate": 2, "severe": 3}


def _child_text(element: Element, *names: str) -> str | None:
    for name in names:
        found = element.find(name)
        if found is not None and found.text is not None and found.text.strip():
            return found.text.strip()
    return None


def parse_side_severity(name: str) -> tuple[str | None, int | None]:
    """Side and severity from a VOC ``<name>``: ``LFS``, ``RFS``, ``LFS_2``, ``RFS-3``,
    ``left foramen severe``, ``L2``... Unknown parts give None."""
    text = name.strip().lower()
    side: str | None = None
    if text.startswith(("lfs", "left", "l_", "l-")) or text in ("l",) or re.match(r"^l\d", text):
        side = "left"
    elif text.startswith(("rfs", "right", "r_", "r-")) or text in ("r",) or re.match(r"^r\d", text):
        side = "right"
    severity: int | None = None
    digits = re.findall(r"(?<![a-z])([0-3])(?![0-9])", text)
    if digits:
        severity = int(digits[-1])
    else:
        for word, grade in _SEVERITY_WORDS.items():
            if word in text:
                severity = grade
    return side, severity


def _normalise_level(text: str | None) -> str | None:
    if not text:
        return None
    m = _LEVEL_RE.search(text.replace("–", "-"))
    if not m:
        return None
    return f"{m.group(1).upper()}-{m.group(2).upper()}"


def read_voc(path: str | Path) -> VocAnnotation:
    """Read a PASCAL VOC annotation (with the LSS-MRI-AISSLab ``<level>`` extension).

    Side and severity may sit in ``<name>`` (``LFS_2``) or in their own elements
    (``<side>``, ``<severity>``/``<grade>``); unknown elements are ignored.

    Raises
    ------
    CorruptFileError
        Not well-formed XML, a forbidden construct (entity expansion, DTD, external
        reference: an "XML bomb"), or not a VOC ``<annotation>``.
    """
    path = str(path)
    p = Path(path)
    if p.stat().st_size > _MAX_XML_BYTES:
        raise CorruptFileError(path, f"{p.stat().st_size:,} bytes is too large for an annotation",
                               "check that this is a PASCAL VOC file")
    try:
        tree = safe_parse(path, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise CorruptFileError(path, f"the XML uses a forbidden construct ({type(exc).__name__})",
                               "annotation files must not declare entities or DTDs; "
                               "re-export the annotation") from exc
    except ParseError as exc:
        raise CorruptFileError(path, f"the XML is not well-formed ({exc})",
                               "the file may be truncated; re-export the annotation") from exc
    root = tree.getroot()
    if root.tag != "annotation":
        raise CorruptFileError(path, f"the root element is <{root.tag}>, not <annotation>",
                               "this is not a PASCAL VOC annotation")
    issues: list[LoadIssue] = []
    size = root.find("size")
    width = height = None
    if size is not None:
        try:
            width = int(float(_child_text(size, "width") or "nan"))
            height = int(float(_child_text(size, "height") or "nan"))
        except ValueError:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-size",
                                    "<size> is not numeric; the image size is not checked", path))
    objects = []
    for n, obj in enumerate(root.findall("object")):
        name = _child_text(obj, "name") or ""
        box = obj.find("bndbox")
        if box is None:
            issues.append(LoadIssue(Severity.WARNING, "voc.no-box",
                                    f"object #{n + 1} ({name!r}) has no <bndbox>; skipped", path))
            continue
        try:
            coords = [float(_child_text(box, k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            coords = [float("nan")] * 4
        if any(c != c for c in coords) or coords[2] < coords[0] or coords[3] < coords[1]:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-box",
                                    f"object #{n + 1} ({name!r}) has an invalid box {coords}; skipped",
                                    path))
            continue
        side, severity = parse_side_severity(name)
        side_text = _child_text(obj, "side")
        if side_text:
            side = parse_side_severity(side_text)[0] or side
        sev_text = _child_text(obj, "severity", "grade", "label")
        if sev_text is not None:
            try:
                severity = int(float(sev_text))
            except ValueError:
                severity = parse_side_severity(sev_text)[1]
        if severity is not None and not 0 <= severity <= 3:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-severity",
                                    f"object #{n + 1} has severity {severity}, outside 0-3", path))
            severity = None
        level_text = _child_text(obj, "level")
        level = _normalise_level(level_text)
        if level_text and level is None:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-level",
                                    f"object #{n + 1} has level {level_text!r}, not like L4-L5", path))
        objects.append(VocObject(name, side, level, severity, *coords))
    return VocAnnotation(path, _child_text(root, "filename") or "", width, height, tuple(objects),
                         tuple(issues))


# -- PNG masks ------------------------------------------------------------------------------
def read_png_mask(path: str | Path) -> npt.NDArray[np.int32]:
    """Class indices of a PNG label mask (palette or greyscale: the stored value is the class).

    Raises
    ------
    CorruptFileError, UnsupportedFormatError
    """
    path = str(path)
    try:
        with Image.open(path) as image:
            if image.width * image.height > _MAX_PNG_PIXELS:
                raise CorruptFileError(path, f"{image.width}x{image.height} is too large for a mask",
                                       "check the file")
            if image.mode in ("P", "L", "I", "I;16", "1"):
                array = np.asarray(image)
            elif image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
                    raise UnsupportedFormatError(
                        path, "the mask is in colour; lumbarview reads class masks stored as "
                        "palette or greyscale class indices", "re-export it as an indexed PNG")
                array = rgb[..., 0]
            else:
                raise UnsupportedFormatError(path, f"PNG mode {image.mode} is not a label mask",
                                             "re-export it as an indexed PNG")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptFileError(path, f"the PNG cannot be read ({exc})",
                               "the file may be truncated; re-copy it") from exc
    return array.astype(np.int32)


# -- 3D Slicer markups ----------------------------------------------------------------------
_KINDS = {"fiducial": "points", "curve": "curve", "closedcurve": "closed-curve", "line": "line",
          "angle": "points", "plane": "points", "roi": "points"}


def read_json(path: str | Path) -> Any:
    """Parse a JSON file with a size limit; typed error on failure."""
    path = str(path)
    size = Path(path).stat().st_size
    if size > _MAX_JSON_BYTES:
        raise CorruptFileError(path, f"{size:,} bytes is too large for a JSON file here", "check the file")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, "the JSON is not UTF-8 text", "re-save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise CorruptFileError(path, f"the JSON is malformed (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})", "fix or re-export the file") from exc


def is_markups(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("markups"), list)


def read_markups(path: str | Path) -> tuple[list[PointSet], list[LoadIssue]]:
    """Point sets and curves of a 3D Slicer markups JSON file, converted to LPS.

    ``coordinateSystem`` may be ``LPS`` (Slicer 5) or ``RAS`` (older files): RAS points are
    converted by negating x and y. A missing value is taken as LPS, the schema's default.

    Raises
    ------
    CorruptFileError
        Malformed JSON, or no ``markups`` list.
    """
    path = str(path)
    doc = read_json(path)
    if not is_markups(doc):
        raise CorruptFileError(path, "the JSON has no \"markups\" list", "this is not a Slicer markups file")
    issues: list[LoadIssue] = []
    out: list[PointSet] = []
    for n, markup in enumerate(doc["markups"]):
        if not isinstance(markup, dict):
            issues.append(LoadIssue(Severity.WARNING, "markups.bad-entry", f"markup #{n + 1} is not an object", path))
            continue
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            issues.append(LoadIssue(Severity.ERROR, "markups.unknown-system",
                                    f"markup #{n + 1} uses coordinate system {system!r}; skipped "
                                    "(only LPS and RAS are defined)", path))
            continue
        points, labels = [], []
        for m, cp in enumerate(markup.get("controlPoints") or []):
            pos = cp.get("position") if isinstance(cp, dict) else None
            try:
                xyz = [float(v) for v in pos] if pos is not None else []
            except (TypeError, ValueError):
                xyz = []
            if len(xyz) != 3 or not all(np.isfinite(xyz)):
                issues.append(LoadIssue(Severity.WARNING, "markups.bad-point",
                                        f"markup #{n + 1} point #{m + 1} has no valid position; skipped", path))
                continue
            points.append(xyz)
            labels.append(str(cp.get("label", f"{m + 1}")))
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if system == "RAS":
            pts = pts * np.array([-1.0, -1.0, 1.0])
        kind = _KINDS.get(str(markup.get("type", "Fiducial")).lower(), "points")
        # The file name says what it is (sub-01_nerveroots_L4_L); the markup's own name is often
        # generic ("root"), so it is added only when a file holds several markups.
        stem = Path(path).name.removesuffix(".json").removesuffix(".mrk")
        name = stem if len(doc["markups"]) == 1 else f"{stem}:{markup.get('name') or n + 1}"
        out.append(PointSet(name, kind, pts, labels, path, system))
    return out, issues


# -- tables ---------------------------------------------------------------------------------
def read_table(path: str | Path, kind: str = "table", expected: tuple[str, ...] = ()) -> tuple[Table, list[LoadIssue]]:
    """A CSV or TSV table. Columns beyond ``expected`` are kept and reported (INFO); missing
    expected columns are a WARNING. Numbers stay strings unless they parse as int/float.

    Raises
    ------
    CorruptFileError
        Not text, or no header row.
    """
    path = str(path)
    issues: list[LoadIssue] = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, "the table is not UTF-8 text", "re-save it as UTF-8 CSV") from exc
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise CorruptFileError(path, "the table has no header row", "add a header row")
    columns = [c.strip() for c in reader.fieldnames]
    rows = []
    for raw in reader:
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if key is None:
                issues.append(LoadIssue(Severity.WARNING, "table.ragged-row",
                                        "a row has more cells than the header; extra cells ignored", path))
                continue
            row[key.strip()] = _parse_cell(value)
        rows.append(row)
    if expected:
        missing = [c for c in expected if c not in columns]
        unknown = [c for c in columns if c not in expected]
        if missing:
            issues.append(LoadIssue(Severity.WARNING, "table.missing-columns",
                                    f"expected column(s) missing: {', '.join(missing)}", path))
        if unknown:
            issues.append(LoadIssue(Severity.INFO, "table.unknown-columns",
                                    f"column(s) not known to lumbarview kept as they are: {', '.join(unknown)}",
                                    path))
    return Table(Path(path).name, kind, columns, rows, path), issues


def _parse_cell(value: str | None) -> Any:
    if value is None:
        return None
    text = value.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


SPIDER_GRADING_COLUMNS = ("Patient", "IVD label", "Modic", "UP endplate", "LOW endplate",
                          "Spondylolisthesis", "Disc herniation", "Disc narrowing", "Disc bulging",
                          "Pfirrman grade")
SPIDER_OVERVIEW_COLUMNS = ("new_file_name", "subset")
