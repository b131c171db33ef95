"""Annotations and tables: PASCAL VOC boxes, PNG label masks, 3D Slicer markups, CSV/TSV tables
and BIDS JSON sidecars. Each reader checks what it reads and raises a typed error that says what
is wrong; callers turn errors into issues and go on with the rest of the dataset.
"""

from __future__ import annotations

import csv
import io
import math
import re
import struct
import zlib
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
from lumbarview.core.fs import open_regular, read_regular_bytes
from lumbarview.core.limits import ResourceLimitError, limits
from lumbarview.core.safe_json import json_path, read_json_guarded, type_name
from lumbarview.core.types import LoadIssue, Severity


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


_MAX_VOC_OBJECTS = 10_000  # a slice's annotation holds a handful; beyond this, the rest is ignored


def _finite_number(text: str | None) -> float | None:
    """A finite number from an element's text, or None (missing, not a number, NaN, infinity)."""
    if text is None or len(text) > 64:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(text: str) -> bool:
    try:
        float(text[:64])
    except ValueError:
        return False
    return True


def _image_side(text: str | None, max_side: int) -> int | None:
    value = _finite_number(text)
    if value is None or value != int(value) or not 1 <= value <= max_side:
        return None
    return int(value)


def read_voc(path: str | Path) -> VocAnnotation:
    """Read a PASCAL VOC annotation (with the LSS-MRI-AISSLab ``<level>`` extension).

    Side and severity may sit in ``<name>`` (``LFS_2``) or in their own elements
    (``<side>``, ``<severity>``/``<grade>``); unknown elements are ignored.

    A ``<size>`` that is not two positive whole numbers within the image budget (``inf``,
    ``nan``, negative, huge) is a WARNING and the size is not used. An object whose box is
    missing, not finite, inverted or outside the image is skipped with a WARNING; beyond
    10,000 objects the rest are ignored with a WARNING.

    Raises
    ------
    CorruptFileError
        Not well-formed XML, a forbidden construct (entity expansion, DTD, external
        reference: an "XML bomb"), or not a VOC ``<annotation>``.
    ResourceLimitError
        Larger than the text budget.
    """
    path = str(path)
    budget = limits()
    try:
        budget.check_text_file(path)
        with open_regular(path) as handle:
            tree = safe_parse(handle, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise CorruptFileError(path, f"the XML uses a forbidden construct ({type(exc).__name__})",
                               "annotation files must not declare entities or DTDs; "
                               "re-export the annotation") from exc
    except ParseError as exc:
        raise CorruptFileError(path, f"the XML is not well-formed ({exc})",
                               "the file may be truncated; re-export the annotation") from exc
    except OSError as exc:
        raise CorruptFileError(path, f"the annotation cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    root = tree.getroot()
    if root.tag != "annotation":
        raise CorruptFileError(path, f"the root element is <{str(root.tag)[:60]}>, not <annotation>",
                               "this is not a PASCAL VOC annotation")
    issues: list[LoadIssue] = []
    max_side = budget.max_image_pixels
    size = root.find("size")
    width = height = None
    if size is not None:
        width_text, height_text = _child_text(size, "width"), _child_text(size, "height")
        width, height = _image_side(width_text, max_side), _image_side(height_text, max_side)
        if width is None or height is None or width * height > budget.max_image_pixels:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-size",
                                    f"<size> is {str(width_text)[:30]} x {str(height_text)[:30]}, not two "
                                    "positive whole numbers of pixels within the image budget; the image "
                                    "size is not checked and the boxes are not checked against it", path))
            width = height = None
    limit_x = (width + 1) if width else max_side
    limit_y = (height + 1) if height else max_side
    objects = []
    found = root.findall("object")
    if len(found) > _MAX_VOC_OBJECTS:
        issues.append(LoadIssue(Severity.WARNING, "voc.too-many-objects",
                                f"the annotation has {len(found):,} objects; only the first "
                                f"{_MAX_VOC_OBJECTS:,} are read", path))
        found = found[:_MAX_VOC_OBJECTS]
    for n, obj in enumerate(found):
        name = (_child_text(obj, "name") or "")[:200]
        box = obj.find("bndbox")
        if box is None:
            issues.append(LoadIssue(Severity.WARNING, "voc.no-box",
                                    f"object #{n + 1} ({name!r}) has no <bndbox>; skipped", path))
            continue
        values = [_finite_number(_child_text(box, k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in values):
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-box",
                                    f"object #{n + 1} ({name!r}) has a box coordinate that is missing or not "
                                    "a finite number; skipped", path))
            continue
        coords = [float(v) for v in values if v is not None]
        if coords[2] < coords[0] or coords[3] < coords[1]:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-box",
                                    f"object #{n + 1} ({name!r}) has an invalid box {coords}; skipped",
                                    path))
            continue
        if min(coords) < -1 or coords[2] > limit_x or coords[3] > limit_y:
            where = f"the {width}x{height} image" if width else "any image lumbarview can open"
            issues.append(LoadIssue(Severity.WARNING, "voc.box-outside",
                                    f"object #{n + 1} ({name!r}) has a box {coords} outside {where}; skipped",
                                    path))
            continue
        side, severity = parse_side_severity(name)
        side_text = _child_text(obj, "side")
        if side_text:
            side = parse_side_severity(side_text[:200])[0] or side
        sev_text = _child_text(obj, "severity", "grade", "label")
        if sev_text is not None:
            number = _finite_number(sev_text)
            if number is not None:
                severity = int(number) if number == int(number) and abs(number) < 1000 else -1
            elif _is_number(sev_text):
                severity = -1  # NaN or infinity
            else:
                severity = parse_side_severity(sev_text[:200])[1]
        if severity is not None and not 0 <= severity <= 3:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-severity",
                                    f"object #{n + 1} has severity {str(sev_text)[:30]}, outside 0-3", path))
            severity = None
        level_text = _child_text(obj, "level")
        level = _normalise_level(level_text[:200] if level_text else None)
        if level_text and level is None:
            issues.append(LoadIssue(Severity.WARNING, "voc.bad-level",
                                    f"object #{n + 1} has level {level_text[:30]!r}, not like L4-L5", path))
        objects.append(VocObject(name, side, level, severity, *coords))
    return VocAnnotation(path, (_child_text(root, "filename") or "")[:1000], width, height, tuple(objects),
                         tuple(issues))


# -- PNG masks ------------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bit depths allowed for each colour type (PNG specification, IHDR).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# The chunks a class mask needs; text (tEXt/zTXt/iTXt), colour profiles and the rest are dropped
# before Pillow sees the file, so that no compressed text is ever inflated.
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def _png_essentials(path: str, data: bytes) -> tuple[bytes, int, int]:
    """Check a PNG's structure and budget from its chunks alone, without decoding anything, and
    return (the file with only the chunks a mask needs, width, height).

    Raises CorruptFileError (not a PNG, truncated, damaged chunk, impossible header) or
    ResourceLimitError (more pixels than the image budget)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise CorruptFileError(path, "the file does not start with the PNG signature",
                               "this is not a PNG file (or its start is damaged); re-copy it")
    kept = [_PNG_SIGNATURE]
    offset = len(_PNG_SIGNATURE)
    width = height = 0
    seen_iend = False
    first = True
    while offset < len(data) and not seen_iend:
        if offset + 8 > len(data):
            raise CorruptFileError(path, f"the PNG is truncated (a chunk header at byte {offset:,} is cut)",
                                   "the file is incomplete; re-copy it")
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 8 + length + 4
        if length > 0x7FFFFFFF or end > len(data):
            raise CorruptFileError(path, f"the PNG is truncated (chunk {kind!r} at byte {offset:,} claims "
                                   f"{length:,} bytes, {len(data) - offset - 12:,} remain)",
                                   "the file is incomplete; re-copy it")
        body = data[offset + 8: offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise CorruptFileError(path, f"the PNG chunk {kind.decode('latin-1')!r} at byte {offset:,} is "
                                   "damaged (checksum mismatch)", "re-copy the file")
        if first:
            if kind != b"IHDR" or length != 13:
                raise CorruptFileError(path, "the PNG does not start with its IHDR header chunk",
                                       "the file is damaged; re-copy it")
            width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
            if width == 0 or height == 0 or width > 0x7FFFFFFF or height > 0x7FFFFFFF:
                raise CorruptFileError(path, f"the PNG header gives an impossible size {width}x{height}",
                                       "the file is damaged; re-copy it")
            # The budget is checked before anything is decoded (a decompression bomb is a small
            # file claiming a huge image).
            limits().check_image(path, width * height, "PNG mask")
            if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
                raise CorruptFileError(path, f"the PNG header is invalid (colour type {colour}, bit depth "
                                       f"{depth}, methods {compression}/{filtering}/{interlace})",
                                       "the file is damaged; re-copy it")
            first = False
        if kind in _PNG_KEPT:
            kept.append(data[offset:end])
        seen_iend = kind == b"IEND"
        offset = end
    if first or not seen_iend:
        raise CorruptFileError(path, "the PNG is truncated (it has no IEND end chunk)",
                               "the file is incomplete; re-copy it")
    return b"".join(kept), width, height


def read_png_mask(path: str | Path) -> npt.NDArray[np.int32]:
    """Class indices of a PNG label mask (palette or greyscale: the stored value is the class).

    The file's chunks are checked first (signature, checksums, a complete file, a valid header
    whose width x height fits the image budget) and only the image chunks reach Pillow: text
    chunks are never inflated, and a decompression bomb is refused before any decoding.

    Raises
    ------
    CorruptFileError, UnsupportedFormatError
    ResourceLimitError
        The header claims more pixels than the image budget.
    """
    path = str(path)
    try:
        data = read_regular_bytes(path)
    except OSError as exc:
        raise CorruptFileError(path, f"the PNG cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    essentials, width, height = _png_essentials(path, data)
    del data
    try:
        with Image.open(io.BytesIO(essentials), formats=["PNG"]) as image:
            if image.size != (width, height):
                raise CorruptFileError(path, "the PNG's size could not be read consistently",
                                       "the file is damaged; re-copy it")
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
    except Image.DecompressionBombError as exc:
        # Only when the image budget was raised past Pillow's own ceiling.
        raise ResourceLimitError(path, f"the PNG mask is larger than Pillow's own ceiling ({exc})",
                                 "LUMBARVIEW_MAX_IMAGE_PIXELS (lower it)", f"{limits().max_image_pixels:,}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as exc:
        raise CorruptFileError(path, f"the PNG cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})",
                               "the file may be truncated or damaged; re-copy it") from exc
    if array.shape[:2] != (height, width):
        raise CorruptFileError(path, f"the PNG decoded to {array.shape} instead of {height}x{width}",
                               "the file is damaged; re-copy it")
    return array.astype(np.int32)


# -- 3D Slicer markups ----------------------------------------------------------------------
_KINDS = {"fiducial": "points", "curve": "curve", "closedcurve": "closed-curve", "line": "line",
          "angle": "points", "plane": "points", "roi": "points"}


def read_json(path: str | Path) -> Any:
    """Parse a JSON file within the size, depth and digit budgets (see
    :func:`lumbarview.core.safe_json.read_json_guarded`); typed error on failure."""
    return read_json_guarded(path)


def is_markups(doc: Any) -> bool:
    """A Slicer markups document: an object with a ``markups`` member (its type is checked by
    :func:`read_markups`, so that ``"markups": 5`` is an error, not a silently ignored file)."""
    return isinstance(doc, dict) and "markups" in doc


def _finite_xyz(value: Any) -> list[float] | None:
    if not isinstance(value, list) or len(value) != 3:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    xyz = [float(v) for v in value]
    return xyz if all(np.isfinite(xyz)) else None


def read_markups(path: str | Path) -> tuple[list[PointSet], list[LoadIssue]]:
    """Point sets and curves of a 3D Slicer markups JSON file, converted to LPS.

    ``coordinateSystem`` may be ``LPS`` (Slicer 5) or ``RAS`` (older files): RAS points are
    converted by negating x and y. A missing value is taken as LPS, the schema's default.

    A point whose position is not three finite numbers (null, text, NaN, infinity) is skipped
    with a WARNING naming its JSON path; the rest of the markup is kept. A structure of the
    wrong type (``"markups": {}``, ``"controlPoints": 5``) makes the file unreadable.

    Raises
    ------
    CorruptFileError
        Malformed JSON, no ``markups`` list, or a member of the wrong type (the message gives
        its JSON path).
    ResourceLimitError
        Larger or more deeply nested than the budgets allow.
    """
    path = str(path)
    doc = read_json_guarded(path, "markups file")
    if not isinstance(doc, dict) or not isinstance(doc.get("markups"), list):
        found = "nothing" if not isinstance(doc, dict) or "markups" not in doc else type_name(doc["markups"])
        raise CorruptFileError(path, f"$.markups should be a list of markups but is {found}",
                               "this is not a valid Slicer markups file; re-export it from Slicer")
    issues: list[LoadIssue] = []
    out: list[PointSet] = []
    markups: list[Any] = doc["markups"]
    for n, markup in enumerate(markups):
        where = json_path(["markups", n])
        if not isinstance(markup, dict):
            issues.append(LoadIssue(Severity.WARNING, "markups.bad-entry",
                                    f"{where} is {type_name(markup)}, not a markup object; skipped", path))
            continue
        system_value = markup.get("coordinateSystem", "LPS")
        system = system_value.upper() if isinstance(system_value, str) else repr(system_value)[:40]
        if system not in ("LPS", "RAS"):
            issues.append(LoadIssue(Severity.ERROR, "markups.unknown-system",
                                    f"markup #{n + 1} ({where}) uses coordinate system {system!r}; skipped "
                                    "(only LPS and RAS are defined)", path))
            continue
        control_points = markup.get("controlPoints")
        if control_points is None:
            control_points = []
        if not isinstance(control_points, list):
            raise CorruptFileError(path, f"{where}.controlPoints should be a list of points but is "
                                   f"{type_name(control_points)}", "fix or re-export the markups file")
        points, labels = [], []
        for m, cp in enumerate(control_points):
            point_path = f"{where}.controlPoints[{m}]"
            xyz = _finite_xyz(cp.get("position")) if isinstance(cp, dict) else None
            if xyz is None:
                what = (f"is {type_name(cp)}, not a point" if not isinstance(cp, dict)
                        else f"has no position of three finite numbers ({type_name(cp.get('position'))})")
                issues.append(LoadIssue(Severity.WARNING, "markups.bad-point",
                                        f"markup #{n + 1} point #{m + 1} ({point_path}) {what}; skipped", path))
                continue
            points.append(xyz)
            label = cp.get("label")
            labels.append(label if isinstance(label, str) else f"{m + 1}")
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if system == "RAS":
            pts = pts * np.array([-1.0, -1.0, 1.0])
        kind_value = markup.get("type", "Fiducial")
        kind = _KINDS.get(kind_value.lower() if isinstance(kind_value, str) else "", "points")
        # The file name says what it is (sub-01_nerveroots_L4_L); the markup's own name is often
        # generic ("root"), so it is added only when a file holds several markups.
        stem = Path(path).name.removesuffix(".json").removesuffix(".mrk")
        markup_name = markup.get("name")
        name = stem if len(markups) == 1 else \
            f"{stem}:{markup_name if isinstance(markup_name, str) and markup_name else n + 1}"
        out.append(PointSet(name, kind, pts, labels, path, system))
    return out, issues


# -- tables ---------------------------------------------------------------------------------
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32), 127])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?|[+-]?(?:nan|inf|infinity)",
                       re.IGNORECASE)


def _decode_table(path: str, raw: bytes) -> tuple[str, list[LoadIssue]]:
    """Text of a table file: UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode
    text"), or, when it is text but not UTF-8, Windows-1252 with a WARNING. Binary data is refused."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise CorruptFileError(path, "the table says it is UTF-16 text but is damaged "
                                   f"(byte {exc.start:,})", "re-save it as UTF-8 CSV") from exc
    controls = len(raw.translate(None, _NOT_CONTROL))
    if b"\x00" in raw or controls > max(8, len(raw) // 100):
        raise CorruptFileError(path, "the table holds binary data (NUL or control bytes), not CSV/TSV text",
                               "open the CSV or TSV export itself; re-save it as UTF-8 CSV if it was "
                               "damaged")
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        text = raw.decode("cp1252", errors="replace")
        return text, [LoadIssue(Severity.WARNING, "table.encoding",
                                f"the table is not UTF-8 (byte {exc.start:,}); it was read as Windows-1252. "
                                "Check accented characters, or re-save it as UTF-8", path)]


def _csv_field_limit_at_least(chars: int) -> None:
    """The csv module's own field limit is process-wide; it is only ever raised (never lowered,
    so this is safe whatever thread reads a table), up to the size of the text already in
    memory, so that our own budget, checked after each row, decides and names row and column."""
    if csv.field_size_limit() < chars:
        csv.field_size_limit(chars)


def read_table(path: str | Path, kind: str = "table", expected: tuple[str, ...] = ()) -> tuple[Table, list[LoadIssue]]:
    """A CSV or TSV table. Columns beyond ``expected`` are kept and reported (INFO); missing
    expected columns are a WARNING. Numbers stay strings unless they parse as int/float
    (integers longer than the digit budget stay strings).

    A cell longer than the CSV field budget makes the whole file unreadable (the error names the
    row, the column and the limit): past such a cell the column structure of the file cannot be
    trusted, and a partial table would look complete.

    Raises
    ------
    CorruptFileError
        Binary data, a damaged encoding, malformed CSV, or no header row.
    ResourceLimitError
        The file, one cell, or the number of cells is beyond its budget.
    """
    path = str(path)
    budget = limits()
    try:
        budget.check_text_file(path)
        raw = read_regular_bytes(path)
    except OSError as exc:
        raise CorruptFileError(path, f"the table cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    budget.check_text_file(path, len(raw))
    text, issues = _decode_table(path, raw)
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    max_field = budget.max_csv_field_chars
    _csv_field_limit_at_least(max(max_field, len(text)) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def too_long(row: int, column: str, chars: int | None) -> ResourceLimitError:
        size = f"{chars:,} characters" if chars is not None else "more characters"
        return ResourceLimitError(path, f"row {row}, column {column!r} holds {size} than the "
                                  f"{max_field:,} allowed in one cell", "LUMBARVIEW_MAX_CSV_FIELD",
                                  f"{max_field:,}")

    columns: list[str] | None = None
    rows: list[dict[str, Any]] = []
    cells = 0
    ragged = 0
    try:
        for record in reader:
            if not record:
                continue
            if columns is None:
                columns = [c.strip() for c in record]
                for c, name in enumerate(record):
                    if len(name) > max_field:
                        raise too_long(reader.line_num, f"#{c + 1}", len(name))
                cells = len(columns)
                budget.check_table_cells(path, cells)
                continue
            if len(record) > len(columns):
                ragged += 1
            row: dict[str, Any] = {}
            for c, key in enumerate(columns):
                value = record[c] if c < len(record) else None
                if value is not None and len(value) > max_field:
                    raise too_long(reader.line_num, key, len(value))
                row[key] = _parse_cell(value, budget.max_int_digits)
            for value in record[len(columns):]:
                if len(value) > max_field:
                    raise too_long(reader.line_num, "(beyond the header)", len(value))
            cells += len(row)
            budget.check_table_cells(path, cells)
            rows.append(row)
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise too_long(reader.line_num, "?", None) from exc
        raise CorruptFileError(path, f"the table is malformed at line {reader.line_num} ({exc})",
                               "fix the file or re-export it as CSV") from exc
    if columns is None:
        raise CorruptFileError(path, "the table has no header row", "add a header row")
    if ragged:
        issues.append(LoadIssue(Severity.WARNING, "table.ragged-row",
                                f"{ragged} row(s) have more cells than the header; extra cells ignored", path))
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


def _parse_cell(value: str | None, max_int_digits: int = 30) -> Any:
    if value is None:
        return None
    text = value.strip()
    if text == "":
        return None
    if len(text) > 64:  # no number a table means is this long: text (and no regex over it)
        return text
    if _INT_RE.fullmatch(text):
        if len(text.lstrip("+-")) <= max_int_digits:
            return int(text)
        return text
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    return text


SPIDER_GRADING_COLUMNS = ("Patient", "IVD label", "Modic", "UP endplate", "LOW endplate",
                          "Spondylolisthesis", "Disc herniation", "Disc narrowing", "Disc bulging",
                          "Pfirrman grade")
SPIDER_OVERVIEW_COLUMNS = ("new_file_name", "subset")
