"""The engine on a loaded case (geometry beside the rows) and the exports: CSV/JSON round trip,
the DICOM SR read back with highdicom, the HTML report's key images (pixels)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from lumbarview.core.errors import CorruptFileError, LumbarviewError
from lumbarview.services import export, report, sr
from lumbarview.services.engine_view import EngineResult, run_engine
from lumbarview.services.measure_case import measure_case
from lumbarview.services.open_dataset import open_path
from tests.tree_snapshot import tree_snapshot

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile" / "measurements"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.phantom.spine import PhantomParams

    return write_all(tmp_path_factory.mktemp("demo"), PhantomParams(), Sizes.small(),
                     layouts=("spider", "sudirman"))


@pytest.fixture(scope="module")
def spider(demo: dict[str, Path]) -> tuple[Any, Any, EngineResult]:
    dataset = open_path(str(demo["spider"]))
    case = dataset.cases[0]
    progress: list[tuple[int, int]] = []
    result = run_engine(case, progress=lambda n, total: progress.append((n, total)))
    assert progress[0][0] == 0 and progress[-1][0] == progress[-1][1]
    return dataset, case, result


def _shoelace_in(part: Any, points: Any) -> float:
    u = (points - part.centre_lps) @ part.right_lps
    v = (points - part.centre_lps) @ part.down_lps
    return 0.5 * abs(float(np.dot(u, np.roll(v, 1)) - np.dot(v, np.roll(u, 1))))


def test_run_engine_rows_are_measure_case_rows_and_geometry_sits_where_they_say(spider) -> None:  # type: ignore[no-untyped-def]
    _dataset, case, result = spider
    assert result.rows == measure_case(case)
    canal_rows = [r for r in result.rows if r["quantity"] == "canal_area" and r["value"] is not None]
    assert canal_rows
    for row in canal_rows:
        part = result.part_for(row)
        assert part is not None and part.view == "axial"
        contour = next(line for line in part.polylines if line.name == "canal contour")
        # The contour is the one the engine measured: in the plane, enclosing the row's area.
        assert contour.closed
        assert np.abs((contour.points_lps - part.centre_lps) @ part.normal_lps).max() < 1e-6
        assert _shoelace_in(part, contour.points_lps) == pytest.approx(row["value"], rel=0.005)
        for quantity, name in (("canal_ap", "canal ap"), ("canal_transverse", "canal transverse")):
            chord_row = next(r for r in result.rows if r["series"] == row["series"] and r["level"] == row["level"]
                             and r["quantity"] == quantity)
            own = result.geometry_for(chord_row)
            assert own is not None and own.polylines[0].name == name  # a length's first line: its ends
            assert any(line is own.polylines[0] for line in part.polylines)
    foramen = [r for r in result.rows if r["quantity"] == "foramen_area" and r["value"] is not None]
    assert foramen
    for row in foramen:
        part = result.part_for(row)
        assert part is not None and part.side == row["side"] and part.view == "sagittal"
        outline = next(line for line in part.polylines if line.name == "foramen outline")
        assert outline.closed and len(outline.points_lps) >= 4
        # The outline's plane is the parasagittal one through the foramen's centroid.
        assert np.abs((outline.points_lps - part.centre_lps) @ part.normal_lps).max() < 1e-6
        extent = float(np.ptp((outline.points_lps - part.centre_lps) @ part.right_lps))
        assert abs(_shoelace_in(part, outline.points_lps) - row["value"]) <= extent * 1.0  # one row of 1 mm
    # Rows keep the contract's keys only: the geometry is beside them, not in them.
    assert all("geometry" not in r for r in result.rows)


def test_csv_and_json_round_trip_engine_and_manual_rows(spider, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _dataset, case, result = spider
    rows = export.export_rows(result.rows, "engine", result.engine_version)
    manual = export.export_rows([{"case": case.id, "series": "t2", "level": "L4-L5", "side": "left",
                                  "quantity": "distance", "value": 7.25, "unit": "mm",
                                  "position_lps": [1.5, -2.25, 30.0], "source": "manual"}])
    rows = rows + manual
    assert manual[0]["engine_version"] == "" and rows[0]["engine_version"] == result.engine_version
    back_json = export.read_json(export.write(tmp_path / "m.json", rows, case.id))
    back_csv = export.read_csv(export.write(tmp_path / "m.csv", rows))
    assert back_json == rows
    # CSV has no null: an empty text reads back as None (engine_version as "").
    assert back_csv == [{k: (None if v == "" and k != "engine_version" else v) for k, v in r.items()} for r in rows]
    assert {r["source"] for r in back_csv} == {"engine", "manual"}
    assert back_csv[-1]["position_lps"] == [1.5, -2.25, 30.0]
    with pytest.raises(ValueError, match=r"csv or \.json"):
        export.write(tmp_path / "m.txt", rows)


@pytest.mark.parametrize("name", ["measurements_not_json.json", "measurements_wrong_format.json",
                                  "measurements_bad_value.csv", "measurements_truncated.json"])
def test_hostile_measurement_files_give_a_clear_error(name: str) -> None:
    path = HOSTILE / name
    read = export.read_csv if name.endswith(".csv") else export.read_json
    with pytest.raises(LumbarviewError) as caught:
        read(path)
    assert str(path) in str(caught.value) or path.name in str(caught.value)


def test_missing_measurement_file_is_a_corrupt_file_error(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError):
        export.read_csv(tmp_path / "gone.csv")


def test_sr_read_back_with_highdicom_gives_the_measurements(spider, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _dataset, case, result = spider
    rows = export.export_rows(result.rows, "engine", result.engine_version)
    written = sr.write_sr(tmp_path / "report.dcm", rows, case, case.id, result.engine_version)
    measured = [r for r in rows if r["value"] is not None]
    assert written.n_measurements == len(measured)
    document = hd.sr.srread(tmp_path / "report.dcm")
    assert document.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    back = sr.read_sr(tmp_path / "report.dcm")
    assert len(back) == len(measured)
    got = sorted((b["quantity"], round(b["value"], 4)) for b in back)
    want = sorted((r["quantity"], r["value"]) for r in measured)
    assert got == want
    assert {b["algorithm_version"] for b in back} == {result.engine_version}
    groups = {b["group"] for b in back}
    assert any(g.startswith("L4-L5 foramen left") for g in groups)
    assert not any(b["referenced_sop_instance_uids"] for b in back)  # the SPIDER images are not DICOM
    assert "CurrentRequestedProcedureEvidenceSequence" not in pydicom.dcmread(tmp_path / "report.dcm")


def test_sr_references_the_dicom_slice_a_measurement_lies_on(demo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case = open_path(str(demo["sudirman"])).cases[0]
    series = next(s for s in case.series if len(s.stacks[0].meta.get("files") or []) > 5)
    stack = series.stacks[0]
    k = 4
    position = np.asarray(stack.meta["positions_lps"][k]) + 0.3 * stack.geometry.ijk_to_lps[:3, 0]
    rows = export.export_rows([{"case": case.id, "series": series.description, "level": "L4-L5", "side": "left",
                                "quantity": "foramen_width", "value": 4.5, "unit": "mm",
                                "position_lps": position.tolist(), "source": "manual"}])
    written = sr.write_sr(tmp_path / "dicom.dcm", rows, case, case.id)
    assert written.n_referenced_images == 1
    back = sr.read_sr(tmp_path / "dicom.dcm")
    source = pydicom.dcmread(stack.meta["files"][k], stop_before_pixels=True)
    assert back == [{"group": f"L4-L5 foramen left ({series.description}) [manual]", "quantity": "foramen_width",
                     "value": 4.5, "unit": "mm", "algorithm_version": None,
                     "referenced_sop_instance_uids": [str(source.SOPInstanceUID)], "graphic_type": None,
                     "points_lps": None}]
    document = pydicom.dcmread(tmp_path / "dicom.dcm")
    assert document.StudyInstanceUID == source.StudyInstanceUID and document.PatientID == source.PatientID


def test_sr_read_of_a_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"DICM" * 10)
    with pytest.raises(CorruptFileError):
        sr.read_sr(path)


def _images(text: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(m))).convert("RGB"))
            for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)]


def test_report_has_the_table_and_key_images_with_the_contour_drawn(spider, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dataset, case, result = spider
    path = report.write_report(tmp_path / "out" / "case.html", case, result, dataset_path=dataset.path)
    text = path.read_text(encoding="utf-8")
    levels = {(r["series"], r["level"]) for r in result.rows}
    images = _images(text)
    assert len(images) == len(levels)
    measured = [r for r in result.rows if r["value"] is not None]
    assert all(f"<td>{r['value']}</td>" in text for r in measured[:20])
    part = next(p for p in result.parts if p.part == "canal")
    stack = report.image_stack(case, part.series)
    assert stack is not None
    drawn, plane = report.draw_part(stack, part)
    pixels = np.asarray(drawn)
    contour = next(line for line in part.polylines if line.name == "canal contour").points_lps
    cr = np.rint(plane.lps_to_pixel(contour)).astype(int)
    is_contour = np.abs(pixels.astype(int) - report.CONTOUR_RGB).max(axis=2) == 0
    near = [is_contour[r - 1:r + 2, c - 1:c + 2].any() for c, r in cr]
    assert np.mean(near) > 0.9  # where the chords cross it, the chord colour is on top
    # The same image without the geometry has no contour colour: the drawing is what shows it.
    part.polylines, kept = [], part.polylines
    try:
        bare = np.asarray(report.draw_part(stack, part)[0])
    finally:
        part.polylines = kept
    assert not (np.abs(bare - report.CONTOUR_RGB).max(axis=2) == 0).any()
    assert any(np.array_equal(pixels, image) for image in images)


def test_report_is_never_written_into_the_dataset(spider) -> None:  # type: ignore[no-untyped-def]
    dataset, case, result = spider
    target = Path(dataset.path) / "report.html"
    before = tree_snapshot(Path(dataset.path))
    with pytest.raises(ValueError, match="never writes into a dataset"):
        report.write_report(target, case, result, dataset_path=dataset.path)
    assert tree_snapshot(Path(dataset.path)) == before
    default = report.default_report_path(dataset.path, case.id, workspace="/tmp/ws")
    assert default.parent == Path("/tmp/ws/reports") and default.suffix == ".html"


def test_run_engine_cancels_between_label_maps(spider) -> None:  # type: ignore[no-untyped-def]
    import threading

    from lumbarview.core.errors import Cancelled

    _dataset, case, _result = spider
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(n: int, total: int) -> None:
        seen.append((n, total))
        if n == 1:  # the first label map is measured: the user cancels
            cancel.set()

    with pytest.raises(Cancelled):
        run_engine(case, progress=progress, cancel=cancel)
    assert seen == [(0, 3), (1, 3)]  # two masks and the dura curves; stopped before the second mask
