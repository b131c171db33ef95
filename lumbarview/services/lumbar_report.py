"""Use case: the structured lumbar report of a case, as PDF, HTML and DICOM SR.

:func:`build_report` fills fixed sections from the case's grades (reader's and dataset's), its
measurements (the reader's and, when it ran, the engine's) and the reader's words
(:mod:`lumbarview.model.report_fields`):

1. Technique and series (the case's series and their grids, and the reader's text);
2. Alignment (lumbar lordosis and segmental angles from endplate lines, slips with their
   Meyerding grade from the measured slip %, the reader's text);
3. Per level L1-L2 ... L5-S1: canal, recesses, foramina, disc, each with its grades and values,
   the reader's comment, and a key image with what was measured drawn on it;
4. Conus and cauda equina; other findings; impression (the reader's text);
5. Grades a measured value contradicts by a published cut-off (pointed out, never changed).

A section with nothing in it says "not assessed". :func:`write_pdf` writes it on A4 with the
bundled DejaVu Sans embedded, each table kept whole on one page; :func:`write_html` one HTML
file with its images inside; :func:`write_sr` a TID 1500 SR holding every measurement and every
grade (as qualitative evaluations). :func:`report_session` is ``lumbarview report``. Every file
is written atomically and never inside the dataset.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from lumbarview.core.dataset import Case
from lumbarview.core.errors import LoadError
from lumbarview.core.fs import atomic_write_bytes, atomic_write_text, refuse_inside
from lumbarview.core.types import LoadIssue
from lumbarview.model.alignment import alignment_values
from lumbarview.model.gradings import (
    BY_KEY,
    LEVELS,
    Grade,
    Measured,
    disagreements,
    meyerding_of,
    reader_quantity,
)
from lumbarview.model.measurements import Measurement, source_stack
from lumbarview.model.report_fields import REPORT_FIELDS, level_field
from lumbarview.services import export, report, sr
from lumbarview.services.engine_view import EngineResult, part_of, run_engine
from lumbarview.services.gradings import dataset_grades
from lumbarview.services.measurement_export import case_rows
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import open_session_file, to_grade, to_measurement
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reformat import reformat

NOT_ASSESSED = "not assessed"
PARTS = ("canal", "recesses", "foramina", "disc")
#: The part of a level each grading belongs to.
GRADING_PART = {"schizas": "canal", "lee_central": "canal", "rsna_canal": "canal",
                "rsna_subarticular": "recesses", "lee_foraminal": "foramina", "rsna_foraminal": "foramina",
                "pfirrmann": "disc", "modic": "disc", "disc_contour": "disc", "meyerding": "disc",
                "disc_narrowing": "disc", "disc_herniation": "disc", "disc_bulging": "disc",
                "endplate_upper": "disc", "endplate_lower": "disc", "spondylolisthesis": "disc"}
#: The engine's parts -> the report's.
ENGINE_PART = {"canal": "canal", "foramen": "foramina", "disc": "disc"}
SUFFIXES = (".pdf", ".html", ".htm", ".dcm")
FONT_DIR = Path(__file__).resolve().parent.parent / "report_fonts"
#: A slip this large (mm) or larger counts as a listhesis (one open pipeline's cut-off, a secondary
#: source: measurements.md [3DS]); a smaller one is not given a Meyerding grade.
SLIP_MM_POSITIVE = 3.0
#: Words of a reader's measurement's note or label that place it in a part of its level (else: disc).
MANUAL_PART_WORDS = (("recess", "recesses"), ("foram", "foramina"), ("canal", "canal"), ("sac", "canal"),
                     ("dural", "canal"))
KEY_FIELD_MM = 60.0
KEY_PIXEL_MM = 0.25
MANUAL_RGB = (255, 120, 0)


@dataclass(frozen=True)
class Item:
    """One line of a section: what, its value, who gave it and, for a flag or a pointer, why."""

    label: str
    value: str
    source: str = ""
    note: str = ""
    is_grade: bool = False


@dataclass
class LevelReport:
    level: str
    parts: dict[str, list[Item]]
    comment: str = ""
    image: Image.Image | None = None
    caption: str = ""


@dataclass
class StructuredReport:
    case_id: str
    dataset: str
    reader: str
    written_at: str
    technique: list[Item]
    alignment: list[Item]
    levels: list[LevelReport]
    texts: dict[str, str]  # report-wide free text by key of REPORT_FIELDS
    pointers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, key: str) -> str:
        return self.texts.get(key, "").strip() or NOT_ASSESSED


def _number(value: float, unit: str) -> str:
    shown = {"mm2": "mm²", "deg": "°", "ratio": ""}.get(unit, unit)
    digits = 2 if unit == "ratio" else 1
    return f"{value:.{digits}f} {shown}".replace(" °", "°").strip()


def _row_label(row: dict[str, Any]) -> str:
    """A value's name within its part: ``left height`` (a foramen's), ``AP`` (the canal's)."""
    label = str(row.get("quantity") or "").replace("_", " ")
    for prefix in ("canal ", "foramen "):
        label = label.removeprefix(prefix)
    label = {"ap": "AP", "dhi": "DHI"}.get(label, label)
    return f"{row['side']} {label}" if row.get("side") else label


def _manual_part(row: dict[str, Any]) -> str:
    """The part of its level a reader's measurement belongs to, by the words of its note (see
    :data:`MANUAL_PART_WORDS`); the disc when they name none."""
    words = str(row.get("note") or "").lower()
    return next((part for word, part in MANUAL_PART_WORDS if word in words), "disc")


def _source(row: dict[str, Any]) -> str:
    """Who measured a row, and on which series."""
    source = str(row.get("source") or "engine")
    return f"{source} {row['series']}" if row.get("series") else source


def _grade_item(g: Grade, pointers: dict[tuple[str, str, str | None], str]) -> Item:
    grading = BY_KEY[g.grading]
    label = grading.name + (f" {g.side}" if g.side else "")
    return Item(label, f"{g.value}: {grading.meaning(g.value)}", g.source, pointers.get(g.slot[1:], ""), True)


def measured_values(rows: Sequence[dict[str, Any]]) -> list[Measured]:
    """The rows' finite values as :class:`Measured` (for the cut-off pointers)."""
    out = []
    for row in rows:
        value = row.get("value")
        if row.get("level") and isinstance(value, int | float) and math.isfinite(value):
            source = str(row.get("source") or "engine")
            quantity = str(row.get("quantity"))
            if source != "engine":
                quantity = reader_quantity(quantity, str(row.get("unit")), str(row.get("note") or ""))
            out.append(Measured(str(row["level"]), quantity, float(value), str(row.get("unit")), source))
    return out


def _technique(case: Case | None) -> list[Item]:
    items = []
    for series in (case.series if case is not None else []):
        stacks = series.stacks
        if not stacks:
            continue
        g = stacks[0].geometry
        sp = g.spacing_mm
        n_slices = sum(s.geometry.shape_kji[0] for s in stacks)
        items.append(Item(series.description or series.uid, f"{series.modality or 'MR'}, {n_slices} slices, "
                          f"{sp[0]:.2f} x {sp[1]:.2f} mm pixels, {sp[2]:.1f} mm apart", "dataset"))
    return items


def build_report(case: Case | None, case_id: str, grades: Sequence[Grade], rows: Sequence[dict[str, Any]],
                 measurements: Sequence[Measurement] = (), texts: dict[str, str] | None = None,
                 engine: EngineResult | None = None, dataset_path: str = "",
                 written_at: str | None = None) -> StructuredReport:
    """The report of ``case_id`` (see the module): ``grades`` of the case, ``rows`` its export rows
    (reader's and engine's), ``measurements`` the reader's (for key images), ``texts`` the
    report fields (REPORT_FIELDS keys and ``level L4-L5`` comments)."""
    texts = dict(texts or {})
    notes: list[str] = []
    engine_series = sorted({str(r.get("series")) for r in rows if (r.get("source") or "engine") == "engine"},
                           key=lambda name: ("t2" not in name.lower(), name))
    if len(engine_series) > 1:  # one series' engine values: the report stays readable
        notes.append(f"engine values of series {engine_series[0]}; those of {', '.join(engine_series[1:])} are in "
                     "the measurement export (CSV, SR)")
        rows = [r for r in rows
                if (r.get("source") or "engine") != "engine" or str(r.get("series")) == engine_series[0]]
    measured = measured_values(rows)
    found = disagreements(grades, measured)
    pointer_of = {d.grade.slot[1:]: d.why for d in found}
    alignment = [Item(a.label, _number(a.value, "deg"), a.source, a.note) for a in alignment_values(measurements)]
    for row in rows:
        if row.get("quantity") == "slip" and row.get("unit") == "%" and isinstance(row.get("value"), int | float):
            value = float(row["value"])
            mm = next((float(r["value"]) for r in rows if r.get("quantity") == "slip" and r.get("unit") == "mm"
                       and r.get("level") == row.get("level") and r.get("series") == row.get("series")
                       and isinstance(r.get("value"), int | float)), None)
            if mm is not None and abs(mm) < SLIP_MM_POSITIVE:
                text = f"{abs(value):.0f} % ({abs(mm):.1f} mm): under {SLIP_MM_POSITIVE:.0f} mm, no slip graded"
            else:
                text = f"{abs(value):.0f} %: Meyerding {meyerding_of(value)}"
            alignment.append(Item(f"slip {row.get('level')}", text, _source(row),
                                  "Meyerding from the measured slip %; a slip of 3 mm or more counts (secondary "
                                  "source, measurements.md [3DS])"))
    levels = []
    for level in LEVELS:
        parts: dict[str, list[Item]] = {p: [] for p in PARTS}
        for g in grades:
            if g.level == level:
                parts[GRADING_PART[g.grading]].append(_grade_item(g, pointer_of))
        for row in rows:
            if row.get("level") != level or row.get("value") is None:
                continue
            source = str(row.get("source") or "engine")
            part = (ENGINE_PART.get(part_of(row.get("quantity")) or "", "disc") if source == "engine"
                    else _manual_part(row))
            note = str(row.get("flag") or row.get("note") or "")
            parts[part].append(Item(_row_label(row), _number(float(row["value"]), str(row.get("unit") or "")),
                                    _source(row), note))
        image, caption = _key_image(case, level, engine, measurements, notes)
        levels.append(LevelReport(level, parts, texts.get(level_field(level), ""), image, caption))
    return StructuredReport(case_id, dataset_path, texts.get("reader", "").strip(),
                            written_at or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                            _technique(case), alignment, levels, texts,
                            [f"{d.grade.level}: {d.why}" for d in found], notes)


# -- key images -----------------------------------------------------------------------------------
def _key_image(case: Case | None, level: str, engine: EngineResult | None, measurements: Sequence[Measurement],
               notes: list[str]) -> tuple[Image.Image | None, str]:
    """The level's key image: the engine's canal plane with its contour and chords, else the plane
    of the reader's measurement of the level with its outline (orange)."""
    if case is None:
        return None, ""
    if engine is not None:
        for wanted in ("canal", "disc"):
            part = next((p for p in engine.parts if p.level == level and p.part == wanted), None)
            stack = report.image_stack(case, part.series) if part is not None else None
            if part is not None and stack is not None:
                try:
                    image, _plane = report.draw_part(stack, part)
                except (ValueError, MemoryError, OSError) as exc:
                    notes.append(f"{level}: no key image ({exc})")
                    continue
                return image, ("engine: canal contour (yellow), AP and transverse chords (cyan)" if wanted == "canal"
                               else "engine: mid-sagittal disc plane, disc heights (cyan)")
    for m in measurements:
        if m.level != level or m.plane is None:
            continue
        stack = source_stack(m, case.series)
        if stack is None:
            continue
        try:
            return _draw_measurement(stack, m), f"reader: {m.kind} {m.value_text()} (orange) on its plane"
        except (ValueError, MemoryError, OSError) as exc:
            notes.append(f"{level}: no key image of {m.kind} {m.id} ({exc})")
    return None, ""


def _draw_measurement(stack: Any, m: Measurement) -> Image.Image:
    """The plane the measurement was drawn on, 60 mm around it, reformatted from ``stack`` with
    the measurement's outline drawn where its points are (LPS -> the plane's pixels)."""
    assert m.plane is not None
    n = round(KEY_FIELD_MM / KEY_PIXEL_MM)
    plane = ViewPlane.centred(m.centre_lps(), m.plane.right_lps, m.plane.down_lps, (KEY_PIXEL_MM, KEY_PIXEL_MM),
                              (n, n))
    grey = report._grey(reformat(stack.pixels(), stack.geometry, plane).pixels)
    image = Image.fromarray(grey, "L").convert("RGB")
    draw = ImageDraw.Draw(image)
    for line in m.outline_lps():
        pts = [(float(c), float(r)) for c, r in plane.lps_to_pixel(np.asarray(line, dtype=np.float64))]
        if len(pts) >= 2:
            draw.line(pts, fill=MANUAL_RGB, width=2)
        elif pts:
            x, y = pts[0]
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=MANUAL_RGB, width=2)
    return image


def part_cells(items: Sequence[Item]) -> tuple[str, str, str]:
    """A part of a level in three cells: its grades and its measured values, each grouped by who
    gave them, and the notes (flags, pointers); "not assessed" when it has neither."""
    def grouped(chosen: list[Item], with_label: bool) -> str:
        by_source: dict[str, list[str]] = {}
        for it in chosen:
            short = it.value.split(":", 1)[0] if it.is_grade else it.value
            by_source.setdefault(it.source, []).append(f"{it.label} {short}" if with_label else short)
        return "\n".join(f"{source}: {', '.join(values)}" for source, values in by_source.items())

    grades = grouped([it for it in items if it.is_grade], True)
    values = grouped([it for it in items if not it.is_grade], True)
    notes = "; ".join(dict.fromkeys(it.note for it in items if it.note))
    if not grades and not values:
        return NOT_ASSESSED, "", ""
    return grades or "not graded", values or "not measured", notes


# -- HTML -----------------------------------------------------------------------------------------
def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _html_items(items: Sequence[Item]) -> str:
    if not items:
        return f"<p class='na'>{NOT_ASSESSED}</p>"
    out = ["<table><tr><th>finding</th><th>value</th><th>source</th><th>note</th></tr>"]
    for it in items:
        cls = " class='flag'" if it.note else ""
        out.append(f"<tr{cls}><td>{html.escape(it.label)}</td><td>{html.escape(it.value)}</td>"
                   f"<td>{html.escape(it.source)}</td><td>{html.escape(it.note)}</td></tr>")
    return "".join(out) + "</table>"


def build_html(rep: StructuredReport) -> str:
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>Lumbar spine MRI report, case {e(rep.case_id)}</title>",
           "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;"
           "font-size:90%;margin:.3em 0}td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}"
           "th{background:#eee}.flag{color:#a33}.na{color:#777}figure{float:right;margin:0 0 1em 1em}"
           "section{clear:both}</style></head><body>",
           f"<h1>Lumbar spine MRI: case {e(rep.case_id)}</h1>",
           f"<p>Reader: {e(rep.reader or NOT_ASSESSED)}. Written {e(rep.written_at)}. Dataset: {e(rep.dataset)}</p>",
           "<section><h2>Technique and series</h2>", _html_items(rep.technique),
           f"<p>{e(rep.texts.get('technique', ''))}</p></section>",
           "<section><h2>Alignment</h2>", _html_items(rep.alignment),
           f"<p>{e(rep.texts.get('alignment', ''))}</p></section>"]
    for lv in rep.levels:
        out.append(f"<section><h2>{e(lv.level)}</h2>")
        if lv.image is not None:
            data = base64.b64encode(_png(lv.image)).decode("ascii")
            out.append(f"<figure><img width='240' alt='{e(lv.level)} key image' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{e(lv.caption)}</figcaption></figure>")
        for part in PARTS:
            out.append(f"<h3>{part}</h3>{_html_items(lv.parts[part])}")
        if lv.comment:
            out.append(f"<p>Comment: {e(lv.comment)}</p>")
        out.append("</section>")
    for key in ("conus_cauda", "other", "impression"):
        out.append(f"<section><h2>{e(REPORT_FIELDS[key])}</h2><p>{e(rep.text(key))}</p></section>")
    out.append("<section><h2>Grades a measured value contradicts</h2>")
    out.append("<ul>" + "".join(f"<li class='flag'>{e(p)}</li>" for p in rep.pointers) + "</ul>" if rep.pointers
               else "<p class='na'>none</p>")
    if rep.notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in rep.notes) + "</ul>")
    out.append("<p><small>Flags and pointers are published cut-offs with their source, never a diagnosis; "
               "grades are the reader's or the dataset's as marked.</small></p></section></body></html>")
    return "\n".join(out)


# -- PDF ------------------------------------------------------------------------------------------
def build_pdf(rep: StructuredReport) -> bytes:
    """The report as PDF bytes: A4, DejaVu Sans embedded, tables never split across pages."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_margins(12, 12, 12)
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(f"Lumbar spine MRI report, case {rep.case_id}")
    pdf.set_creator("lumbarview")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    head = FontFace(emphasis="BOLD", fill_color=(232, 232, 232))

    def heading(doc: Any, text: str, size: float = 10.5) -> None:
        doc.set_font("DejaVu", "B", size)
        doc.cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        doc.set_font("DejaVu", "", 7.5)

    def para(doc: Any, text: str, size: float = 7.5) -> None:
        doc.set_font("DejaVu", "", size)
        doc.multi_cell(0, 3.6, text, new_x="LMARGIN", new_y="NEXT")

    def table(doc: Any, rows: Sequence[Sequence[str]], x: float, w: float,
              columns: Sequence[str] = ("finding", "value", "source", "note"),
              col_widths: Sequence[float] = (26, 44, 14, 28)) -> None:
        doc.set_font("DejaVu", "", 6.5)
        doc.set_x(x)
        with doc.table(width=w, align="LEFT", col_widths=tuple(col_widths), line_height=2.9,
                       headings_style=head, padding=0.5, first_row_as_headings=True, text_align="LEFT") as t:
            t.row(tuple(columns))
            for cells in rows:
                t.row(tuple(cells))

    def together(draw: Callable[[Any], None]) -> None:
        """Draw a block on this page if it fits, else on the next (never split)."""
        with pdf.offset_rendering() as trial:
            draw(trial)
        if trial.page_break_triggered:
            pdf.add_page()
        draw(pdf)

    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 7, f"Lumbar spine MRI: case {rep.case_id}", new_x="LMARGIN", new_y="NEXT")
    para(pdf, f"Reader: {rep.reader or NOT_ASSESSED}.   Written: {rep.written_at}.   Dataset: {rep.dataset}")

    def listed(title: str, items: list[Item], key: str) -> Callable[[Any], None]:
        def draw(doc: Any) -> None:
            doc.ln(1)
            heading(doc, title)
            if items:
                table(doc, [(it.label, it.value, it.source, it.note) for it in items], doc.l_margin, width)
            text = rep.texts.get(key, "").strip()
            if text or not items:
                para(doc, text or NOT_ASSESSED)
        return draw

    together(listed("Technique and series", rep.technique, "technique"))
    together(listed("Alignment", rep.alignment, "alignment"))
    image_w = 34.0

    def level_block(lv: LevelReport) -> Callable[[Any], None]:
        def draw(doc: Any) -> None:
            doc.ln(1)
            heading(doc, lv.level)
            top = doc.get_y()
            x = doc.l_margin
            bottom = top
            if lv.image is not None:
                doc.image(lv.image, x=x, y=top, w=image_w)
                doc.set_xy(x, top + image_w + 0.5)
                doc.set_font("DejaVu", "", 5.5)
                doc.multi_cell(image_w, 2.4, lv.caption, new_x="LMARGIN", new_y="NEXT", align="L")
                bottom = doc.get_y()
                x += image_w + 3
                doc.set_y(top)
            rows = [(part, *part_cells(lv.parts[part])) for part in PARTS]
            table(doc, rows, x, width - (x - doc.l_margin), ("part", "grades", "measured", "note"), (12, 50, 50, 30))
            if lv.comment:
                doc.set_x(x)
                doc.set_font("DejaVu", "", 7.5)
                doc.multi_cell(width - (x - doc.l_margin), 3.6, f"Comment: {lv.comment}", new_x="LMARGIN",
                               new_y="NEXT")
            doc.set_y(max(doc.get_y(), bottom))
        return draw

    for lv in rep.levels:
        together(level_block(lv))

    def free(key: str) -> Callable[[Any], None]:
        def draw(doc: Any) -> None:
            doc.ln(1)
            heading(doc, REPORT_FIELDS[key])
            para(doc, rep.text(key))
        return draw

    for key in ("conus_cauda", "other", "impression"):
        together(free(key))

    def closing(doc: Any) -> None:
        doc.ln(1)
        heading(doc, "Grades a measured value contradicts")
        para(doc, "\n".join(rep.pointers) if rep.pointers else "none")
        if rep.notes:
            para(doc, "Notes: " + "; ".join(rep.notes))
        para(doc, "Flags and pointers are published cut-offs with their source, never a diagnosis; grades are "
             "the reader's or the dataset's as marked.", 6.0)

    together(closing)
    return bytes(pdf.output())


# -- files ----------------------------------------------------------------------------------------
def write(path: str | Path, rep: StructuredReport, grades: Sequence[Grade], rows: Sequence[dict[str, Any]],
          case: Case | None, dataset_path: str = "") -> Path:
    """Write ``rep`` by the suffix of ``path`` (.pdf, .html, .dcm), atomically, never into the dataset."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot write a report to {suffix or 'a file without suffix'}: choose a .pdf, .html or "
                         ".dcm (DICOM SR) file name")
    target = refuse_inside(target, dataset_path, "the report") if dataset_path else target.resolve()
    if suffix == ".pdf":
        atomic_write_bytes(target, build_pdf(rep))
    elif suffix in (".html", ".htm"):
        atomic_write_text(target, build_html(rep))
    else:
        sr.write_sr(target, export.export_rows(list(rows)), case, rep.case_id, grades=grades)
    return target


@dataclass
class ReportWritten:
    path: Path
    report: StructuredReport
    issues: list[LoadIssue] = field(default_factory=list)


def report_session(dataset_path: str | Path, out: str | Path, *, session_file: str | Path | None = None,
                   case_id: str | None = None, engine: bool = False) -> ReportWritten:
    """``lumbarview report``: the structured report of one case of the dataset at ``dataset_path``
    from its saved session (the reader's grades, measurements and words; without a session the
    dataset's grades only) and, with ``engine``, the engine's values, written to ``out``.

    Raises
    ------
    LoadError
        The session file or the dataset cannot be read.
    ValueError
        No such case (the message lists them), an unknown suffix, ``out`` inside the dataset.
    """
    if Path(out).suffix.lower() not in SUFFIXES:
        raise ValueError(f"cannot write a report to {Path(out).suffix or 'a file without suffix'}: choose a .pdf, "
                         ".html or .dcm (DICOM SR) file name")
    issues: list[LoadIssue] = []
    doc = None
    if session_file is not None:
        opened = open_session_file(session_file)
        if opened.doc is None:
            problem = "; ".join(i.message for i in opened.issues) or "it is not a session file"
            raise LoadError(session_file, problem, "give a session file that lumbarview saved")
        doc = opened.doc
        issues.extend(opened.issues)
    dataset = open_path(dataset_path)
    wanted = case_id or (doc.case if doc is not None else None)
    if wanted is None and len(dataset.cases) == 1:
        wanted = dataset.cases[0].id
    case = next((c for c in dataset.cases if c.id == wanted), None)
    if case is None:
        names = ", ".join(c.id for c in dataset.cases[:20]) + (" ..." if len(dataset.cases) > 20 else "")
        what = f"the dataset has no case {wanted!r}" if wanted is not None else (
            "no session names the case and the dataset has several")
        raise ValueError(f"{what}; give --case with one of: {names}")
    case.ensure_open()
    measurements: list[Measurement] = []
    grades_by_slot: dict[Any, Grade] = {}
    texts: dict[str, str] = {}
    if doc is not None:
        for record in doc.measurements:
            m, problems = to_measurement(record, str(session_file))
            issues.extend(problems)
            if m is not None and (m.case is None or m.case == case.id):
                measurements.append(m)
        for grade_record in doc.gradings:
            g, problems = to_grade(grade_record, str(session_file))
            issues.extend(problems)
            if g is not None and (g.case is None or g.case == case.id):
                grades_by_slot.setdefault(g.slot[1:], g)
        texts = {key: text for c, key, text in doc.report if c is None or c == case.id}
    if doc is None or not any(g.source == "dataset" for g in grades_by_slot.values()):
        for g in dataset_grades(case)[0]:
            grades_by_slot.setdefault(g.slot[1:], g)
    grades = list(grades_by_slot.values())
    result = run_engine(case) if engine else None
    rows = case_rows(measurements, case, result)
    rep = build_report(case, case.id, grades, rows, measurements, texts, result, str(dataset_path))
    written = write(out, rep, grades, rows, case, str(dataset_path))
    return ReportWritten(written, rep, issues)
