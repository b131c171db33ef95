"""The structured lumbar report: every level's grades and values in its own section of the PDF,
"not assessed" where nothing is, cut-off pointers, the SR re-read, the command line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from lumbarview.cli import main
from lumbarview.io.session_file import read_session
from lumbarview.model.alignment import alignment_values
from lumbarview.model.gradings import GRADINGS, LEVELS, Grade, slots
from lumbarview.model.measurements import Measurement, MeasurementPlane
from lumbarview.model.session import Session
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services import session_store
from lumbarview.services.lumbar_report import NOT_ASSESSED, build_pdf, build_report, report_session
from lumbarview.services.open_dataset import open_path
from lumbarview.services.sr import read_sr, read_sr_grades

SAGITTAL = MeasurementPlane((0.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 0.0, 0.0))
# Every level's reader grade: a different value per level so that a grade in the wrong section shows.
SCHIZAS = dict(zip(LEVELS, ("A1", "A2", "B", "C", "D"), strict=True))
PFIRRMANN = dict(zip(LEVELS, ("1", "2", "3", "4", "5"), strict=True))
LEE_LEFT = dict(zip(LEVELS, ("0", "1", "2", "3", "1"), strict=True))
DISTANCE_MM = dict(zip(LEVELS, (11.0, 12.5, 13.0, 14.5, 15.0), strict=True))


def _pdf_text(data: bytes) -> str:
    pdf = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in pdf)


def _sections(text: str) -> dict[str, str]:
    """The text of each level's section: from its heading to the next level's (or the end)."""
    starts = [(m.start(), m.group(0)) for m in re.finditer(r"^(L[1-5]-(?:L[2-5]|S1))\s*$", text, re.MULTILINE)]
    out = {}
    for n, (start, level) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        out[level.strip()] = text[start:end]
    return out


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    write_spider(root, LumbarPhantom(), Sizes.small(), patient=1)
    return root


@pytest.fixture(scope="module")
def graded_session(spider_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved session of case 1: reader grades at every level, a distance at every level drawn
    on the T2 image's sagittal plane through the disc, endplates of L1 and S1, the reader's words."""
    dataset = open_path(spider_root, use_cache=False)
    case = dataset.cases[0]
    case.ensure_open()
    t2 = next(s for s in case.series if "t2" in s.description.lower())
    session = Session()
    session.set_dataset(dataset)
    truth = LumbarPhantom().ground_truth()["levels"]
    for level in LEVELS:
        session.gradings.set(case.id, "schizas", level, SCHIZAS[level])
        session.gradings.set(case.id, "pfirrmann", level, PFIRRMANN[level])
        session.gradings.set(case.id, "lee_foraminal", level, LEE_LEFT[level], "left")
        centre = np.asarray(truth[level]["disc_centre_lps"], dtype=np.float64)
        a = centre + np.array([0.0, -DISTANCE_MM[level] / 2, 0.0])
        b = centre + np.array([0.0, DISTANCE_MM[level] / 2, 0.0])
        plane = MeasurementPlane(tuple(centre), SAGITTAL.right_lps, SAGITTAL.down_lps, SAGITTAL.normal_lps,
                                 (0.5, 0.5), (200, 200))
        session.measurements.add(Measurement.create("distance", [a, b], plane, series=t2.uid, case=case.id,
                                                    level=level))
    # L1 upper tilted 10° (anterior end up), S1 upper 40° the other way: 50° of lordosis.
    for label, tilt in (("L1 upper", 10.0), ("S1 upper", -40.0)):
        t = math.radians(tilt)
        session.measurements.add(Measurement.create(
            "endplate", [[0.0, 0.0, 0.0], [0.0, -30 * math.cos(t), 30 * math.sin(t)]], None, case=case.id,
            label=label))
    session.report_fields.set(case.id, "reader", "Dr. Test Reader")
    session.report_fields.set(case.id, "impression", "Moderate central stenosis L4-L5.")
    session.report_fields.set(case.id, "level L4-L5", "Broad-based bulge.")
    path = tmp_path_factory.mktemp("ws") / "session.json"
    session_store.SessionStore(path).save(session)
    return path


def test_every_level_holds_its_grades_and_values_in_its_section(spider_root: Path, graded_session: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    done = report_session(spider_root, out, session_file=graded_session)
    assert done.issues == []
    text = _pdf_text(out.read_bytes())
    pdf = pdfium.PdfDocument(str(out))
    assert 1 <= len(pdf) <= 2
    sections = _sections(text)
    assert list(sections) == list(LEVELS)
    for level, section in sections.items():
        flat = " ".join(section.split())
        assert f"Schizas (central canal) {SCHIZAS[level]}" in flat, (level, flat)
        assert f"Pfirrmann (disc) {PFIRRMANN[level]}" in flat
        assert f"Lee (foramen) left {LEE_LEFT[level]}" in flat
        assert f"distance {DISTANCE_MM[level]:.1f} mm" in flat
        others = [lv for lv in LEVELS if lv != level and DISTANCE_MM[lv] != DISTANCE_MM[level]]
        assert not any(f"distance {DISTANCE_MM[o]:.1f} mm" in flat for o in others)
    flat = " ".join(text.split())
    assert "lumbar lordosis (L1-S1) 50.0°" in flat
    assert "Dr. Test Reader" in flat and "Moderate central stenosis L4-L5." in flat
    assert "Broad-based bulge." in " ".join(sections["L4-L5"].split())
    assert f"Conus and cauda equina {NOT_ASSESSED}" in flat


def test_fonts_are_embedded(spider_root: Path, graded_session: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    report_session(spider_root, out, session_file=graded_session)
    data = out.read_bytes()
    assert b"/FontFile2" in data and b"DejaVuSans" in data
    assert b"/Helvetica" not in data  # no font the reader's machine would have to supply


def test_a_case_without_measurements_says_not_assessed_everywhere() -> None:
    rep = build_report(None, "empty", [], [])
    text = " ".join(_pdf_text(build_pdf(rep)).split())
    for heading in ("Technique and series", "Alignment", "Conus and cauda equina", "Other findings", "Impression"):
        assert f"{heading} {NOT_ASSESSED}" in text, heading
    sections = _sections(_pdf_text(build_pdf(rep)))
    assert list(sections) == list(LEVELS)
    for section in sections.values():
        flat = " ".join(section.split())
        assert all(f"{part} {NOT_ASSESSED}" in flat for part in ("canal", "recesses", "foramina", "disc")), flat


def test_a_constructed_disagreement_is_pointed_out_in_the_report() -> None:
    grades = [Grade.create("schizas", "L4-L5", "A1", case="x"), Grade.create("meyerding", "L5-S1", "I", case="x")]
    rows = [{"level": "L4-L5", "quantity": "canal_area", "value": 58.0, "unit": "mm2", "source": "engine",
             "series": "t2"},
            {"level": "L5-S1", "quantity": "slip", "value": 31.0, "unit": "%", "source": "engine", "series": "t2"}]
    rep = build_report(None, "x", grades, rows)
    assert len(rep.pointers) == 2
    text = " ".join(_pdf_text(build_pdf(rep)).split())
    assert "L4-L5: Schizas (central canal) A1 means no or minor stenosis, but the dural sac area is 58 mm²" in text
    assert "L5-S1: Meyerding I, but the measured slip of 31 % (engine) is Meyerding II" in text
    assert "Schizas (central canal) A1" in " ".join(_sections(_pdf_text(build_pdf(rep)))["L4-L5"].split())


def test_the_sr_gives_every_grade_and_measurement_back(spider_root: Path, graded_session: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "report.dcm"
    done = report_session(spider_root, out, session_file=graded_session)
    stored = read_session(graded_session)
    expected = {(g.level, g.grading, g.side, g.value, g.source) for g in stored.gradings}
    back = read_sr_grades(out)
    assert {(g.level, g.grading, g.side, g.value, g.source) for g in back} >= expected
    assert all(g.case == done.report.case_id for g in back)
    values = read_sr(out)
    distances = sorted(round(v["value"], 3) for v in values if v["quantity"] == "distance")
    assert distances == sorted(DISTANCE_MM.values())
    assert sum(1 for v in values if v["quantity"] == "endplate") == 2


def test_every_grading_value_survives_the_sr(tmp_path: Path) -> None:
    grades = []
    for n, (level, key, side) in enumerate(slots()):
        names = next(g for g in GRADINGS if g.key == key).value_names
        grades.append(Grade.create(key, level, names[n % len(names)], side, "reader" if n % 2 else "dataset",
                                   case="c9"))
    rep = build_report(None, "c9", grades, [])
    from lumbarview.services.lumbar_report import write

    write(tmp_path / "all.dcm", rep, grades, [], None)
    back = read_sr_grades(tmp_path / "all.dcm")
    assert sorted((g.slot, g.value, g.source) for g in back) == sorted((g.slot, g.value, g.source) for g in grades)


def test_lordosis_and_segmental_angles_from_endplates() -> None:
    def endplate(label: str, tilt: float) -> Measurement:
        t = math.radians(tilt)
        return Measurement.create("endplate", [[5.0, 10.0, 0.0], [5.0, 10.0 - 25 * math.cos(t), 25 * math.sin(t)]],
                                  None, label=label)

    values = {v.label: v.value for v in alignment_values([
        endplate("L1 upper", 4.0), endplate("S1 upper", -38.0), endplate("L4 lower", -5.0),
        endplate("L5 upper", -17.0)])}
    assert values["lumbar lordosis (L1-S1)"] == pytest.approx(42.0)
    assert values["segmental angle L4-L5"] == pytest.approx(12.0)
    assert "segmental angle L5-S1" not in values
    # Drawn the other way round (anterior corner first) it is the same line.
    reverse = Measurement.create("endplate", [[0.0, -25.0, 0.0], [0.0, 0.0, 0.0]], None, label="L1 upper")
    assert reverse.value().value == pytest.approx(0.0)


def test_the_command_line_writes_the_report(spider_root: Path, graded_session: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(spider_root), "--session", str(graded_session), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "case 1" in printed
    page = out.read_text(encoding="utf-8")
    assert "Dr. Test Reader" in page and "Schizas (central canal)" in page and "<img" in page
    assert main(["report", str(spider_root), "--out", str(tmp_path / "r.txt")]) == 2
    assert "choose a .pdf, .html or .dcm" in capsys.readouterr().err
    assert main(["report", str(spider_root), "--session", str(tmp_path / "none.json"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_small_slip_is_not_graded_and_a_reader_value_goes_to_the_part_its_note_names() -> None:
    rows = [{"level": "L3-L4", "quantity": "slip", "value": 2.0, "unit": "mm", "source": "engine", "series": "t2"},
            {"level": "L3-L4", "quantity": "slip", "value": 5.0, "unit": "%", "source": "engine", "series": "t2"},
            {"level": "L4-L5", "quantity": "slip", "value": 8.0, "unit": "mm", "source": "engine", "series": "t2"},
            {"level": "L4-L5", "quantity": "slip", "value": 27.0, "unit": "%", "source": "engine", "series": "t2"},
            {"level": "L4-L5", "quantity": "distance", "value": 9.5, "unit": "mm", "source": "manual",
             "note": "dural sac AP"},
            {"level": "L4-L5", "quantity": "distance", "value": 4.5, "unit": "mm", "source": "manual",
             "note": "left foramen width"}]
    rep = build_report(None, "x", [], rows)
    slips = {it.label: it.value for it in rep.alignment}
    assert slips["slip L3-L4"].endswith("no slip graded") and "Meyerding" not in slips["slip L3-L4"]
    assert slips["slip L4-L5"] == "27 %: Meyerding II"
    l45 = next(lv for lv in rep.levels if lv.level == "L4-L5")
    assert [it.value for it in l45.parts["canal"]] == ["9.5 mm"]
    assert [it.value for it in l45.parts["foramina"]] == ["4.5 mm"]


def test_a_level_block_is_never_split_across_pages() -> None:
    texts = {f"level {level}": " ".join([f"{level} comment line."] * 60) + f" END {level}" for level in LEVELS}
    grades = [Grade.create("pfirrmann", level, "3", case="x") for level in LEVELS]
    data = build_pdf(build_report(None, "x", grades, [], texts=texts))
    pages = [page.get_textpage().get_text_range() for page in pdfium.PdfDocument(data)]
    assert len(pages) >= 2  # long enough to need a page break
    seen = []
    for page in pages:
        for level, section in _sections(page).items():
            flat = " ".join(section.split())
            assert all(part in flat for part in ("canal", "recesses", "foramina", "disc")), (level, flat[:200])
            assert f"END {level}" in flat, level
            seen.append(level)
    assert seen == list(LEVELS)
