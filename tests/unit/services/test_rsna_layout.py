"""The RSNA 2024 lumbar layout, on real DICOM and on the phantom.

The real-data dataset is written here from the real sagittal series in ``../shared/data``
(dcm-qa-decubitus): files named by instance number and copied in shuffled order, a second series
whose instance numbers are shuffled against the slice positions, the CSVs written by the test.
Every coordinate is checked against an independent computation from the file's own
ImagePositionPatient / ImageOrientationPatient / PixelSpacing read with pydicom.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from lumbarview.cli import main
from lumbarview.core.dataset import Case, Dataset, PointSet
from lumbarview.model.markers import parse_marker_name, point_label
from lumbarview.phantom.dicom_writer import make_uid
from lumbarview.phantom.layouts import TRUTH_FILE, Sizes, write_all
from lumbarview.phantom.spine import LUMBAR_LEVELS, PhantomParams
from lumbarview.services.layouts import detect_layout, rsna
from lumbarview.services.open_dataset import open_path

STUDY_A, STUDY_B, STUDY_ABSENT = "4003253", "8785691", "1510451897"
S_T1, S_T2, S_B = "1054713880", "702807833", "2448190387"
S_LISTED_ABSENT, S_NOWHERE = "3333333333", "5555"
LEVELS = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
GRADE_CYCLE = ("Normal/Mild", "Moderate", "Severe")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _copy_series(files: list[Path], folder: Path, rng: random.Random, *, new_uids: tuple[str, str] | None = None,
                 shuffle_instances: bool = False) -> None:
    """Copy ``files`` into ``folder`` as ``<InstanceNumber>.dcm`` in shuffled order. With ``new_uids``
    (study, series) the copies get their own UIDs; with ``shuffle_instances`` their InstanceNumbers
    are permuted, so that instance order is not spatial order."""
    folder.mkdir(parents=True)
    numbers = list(range(1, len(files) + 1))
    if shuffle_instances:
        rng.shuffle(numbers)
    order = list(range(len(files)))
    rng.shuffle(order)
    for n in order:
        src = files[n]
        if new_uids is None and not shuffle_instances:
            ds = pydicom.dcmread(src, stop_before_pixels=True)
            shutil.copyfile(src, folder / f"{int(ds.InstanceNumber)}.dcm")
            continue
        ds = pydicom.dcmread(src)
        if new_uids is not None:
            ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uids
            ds.SOPInstanceUID = make_uid(new_uids[1], "sop", n)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = numbers[n]
        ds.save_as(folder / f"{numbers[n]}.dcm")


@pytest.fixture(scope="module")
def real_root(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = sorted((shared_data / "dcm-qa-decubitus" / "In" / "HFS" / "3_t1_fl2d_sag").glob("*.dcm"))
    assert len(src) == 35
    rng = random.Random(2024)
    root = tmp_path_factory.mktemp("rsna-real")
    images = root / "train_images"
    _copy_series(src, images / STUDY_A / S_T1, rng)
    middle = src[10:25]  # 15 files: the series' slices need not all be there for a second series
    _copy_series(middle, images / STUDY_A / S_T2, rng,
                 new_uids=(make_uid("rsna-test", STUDY_A), make_uid("rsna-test", S_T2)), shuffle_instances=True)
    _copy_series(middle, images / STUDY_B / S_B, rng,
                 new_uids=(make_uid("rsna-test", STUDY_B), make_uid("rsna-test", S_B)), shuffle_instances=True)
    _write_csv(root / "train_series_descriptions.csv", ["study_id", "series_id", "series_description"], [
        [STUDY_A, S_T1, "Sagittal T1"], [STUDY_A, S_T2, "Sagittal T2/STIR"],
        [STUDY_A, S_LISTED_ABSENT, "Axial T2"], [STUDY_B, S_B, "Sagittal T1"],
        [STUDY_ABSENT, "77", "Axial T2"]])
    coords: list[list[Any]] = []
    # Foramina on the T1 series: every level, both sides, on instances spread over the series.
    for n, level in enumerate(LEVELS):
        for side, instance in (("Left", 5 + n), ("Right", 30 - n)):
            coords.append([STUDY_A, S_T1, instance, f"{side} Neural Foraminal Narrowing", level,
                           100.25 + 7.5 * n, 80.75 + 11.125 * n])
    # The canal on the T2 series (whose instance numbers are shuffled against position).
    for n, level in enumerate(LEVELS):
        coords.append([STUDY_A, S_T2, 3 + 2 * n, "Spinal Canal Stenosis", level, 128.5 - n, 60.0 + 20.5 * n])
    coords += [
        [STUDY_A, S_T2, 999, "Left Subarticular Stenosis", "L4/L5", 10.0, 10.0],  # no such instance
        [STUDY_A, S_LISTED_ABSENT, 3, "Right Subarticular Stenosis", "L4/L5", 10.0, 10.0],  # series not on disk
        [STUDY_A, S_NOWHERE, 1, "Right Subarticular Stenosis", "L5/S1", 10.0, 10.0],  # series nowhere
        [STUDY_B, S_B, 8, "Spinal Canal Stenosis", "L3/L4", 0.0, 255.0],  # corner pixel centre
        [STUDY_ABSENT, 77, 1, "Spinal Canal Stenosis", "L1/L2", 1.0, 1.0],  # study not downloaded
    ]
    _write_csv(root / "train_label_coordinates.csv", list(rsna.COORDINATE_COLUMNS), coords)
    columns = [f"{prefix}_{lv.lower().replace('/', '_')}" for prefix, _ in rsna.CONDITIONS.values() for lv in LEVELS]
    grades_a = [GRADE_CYCLE[i % 3] for i in range(len(columns))]
    grades_b = ["Normal/Mild"] * len(columns)
    grades_b[3] = grades_b[17] = ""  # two blank grades
    _write_csv(root / "train.csv", ["study_id", *columns],
               [[STUDY_A, *grades_a], [STUDY_B, *grades_b], [STUDY_ABSENT, *grades_a]])
    (root / "sample_submission.csv").write_text("row_id,normal_mild,moderate,severe\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def real(real_root: Path) -> Dataset:
    return open_path(real_root, use_cache=False)


def _codes(case: Case | Dataset) -> dict[str, list[str]]:
    issues = case.all_issues() if isinstance(case, Dataset) else case.issues
    out: dict[str, list[str]] = {}
    for issue in issues:
        out.setdefault(issue.code, []).append(issue.message)
    return out


def _points_by_label(case: Case) -> dict[str, tuple[PointSet, np.ndarray]]:
    """Each point by "<level> <condition>" (the text beside it starts so; a grade may follow)."""
    out: dict[str, tuple[PointSet, np.ndarray]] = {}
    for ps in case.point_sets:
        for label, point, info in zip(ps.labels, ps.points_lps, ps.info, strict=True):
            key = f"{info['level']} {info['condition']}"
            assert label.startswith(key) and key not in out, f"label {label} appears twice"
            out[key] = (ps, point)
    return out


def _independent_lps(path: Path, x: float, y: float) -> np.ndarray:
    """The pixel (column x, row y; integers at pixel centres) in LPS from the file's own tags."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    return ipp + x * col_spacing * iop[:3] + y * row_spacing * iop[3:]


def _spatial_rank(folder: Path, path: Path) -> int:
    """Index of ``path`` among the series' files sorted by position along the normal."""
    def along(p: Path) -> float:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        return float(np.array([float(v) for v in ds.ImagePositionPatient]) @ np.cross(iop[:3], iop[3:]))
    return sorted(folder.glob("*.dcm"), key=along).index(path)


def test_real_series_open_as_one_case_per_study(real: Dataset) -> None:
    assert real.layout == "rsna"
    assert [c.id for c in real.cases] == [STUDY_A, STUDY_B]
    a = real.cases[0]
    assert sorted(s.description for s in a.series) == ["Sagittal T1", "Sagittal T2/STIR"]
    assert sorted(s.n_slices for s in a.series) == [15, 35]


def test_every_coordinate_lands_on_its_slice_and_pixel(real: Dataset, real_root: Path) -> None:
    with open(real_root / "train_label_coordinates.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cases = {c.id: c for c in real.cases}
    checked = 0
    for row in rows:
        case = cases.get(row["study_id"])
        file = real_root / "train_images" / row["study_id"] / row["series_id"] / f"{row['instance_number']}.dcm"
        if case is None or not file.is_file():
            continue
        level = rsna.LEVELS[row["level"]]
        ps, point = _points_by_label(case)[f"{level} {row['condition']}"]
        x, y = float(row["x"]), float(row["y"])
        assert np.allclose(point, _independent_lps(file, x, y), atol=1e-3), row
        assert ps.source.endswith("train_label_coordinates.csv") and row["series_id"] in ps.name
        # The right slice: the point sits on the slice that is this file in spatial order.
        series = next(s for s in case.series if Path(s.stacks[0].meta["files"][0]).parent.name == row["series_id"])
        (stack,) = series.stacks
        i, j, k = stack.geometry.lps_to_index(point)
        assert (i, j) == pytest.approx((x, y), abs=1e-3)
        assert k == pytest.approx(_spatial_rank(file.parent, file), abs=1e-3)
        checked += 1
    assert checked == 16  # 10 foramina + 5 canal points in study A, 1 in study B
    # The T2 series' instance numbers are not in spatial order, so both orders were exercised.
    t2 = real_root / "train_images" / STUDY_A / S_T2
    ranks = [_spatial_rank(t2, t2 / f"{n}.dcm") for n in range(1, 16)]
    assert ranks != sorted(ranks)


def test_points_are_named_and_grouped_per_series_and_condition(real: Dataset) -> None:
    a = real.cases[0]
    names = {ps.name: ps for ps in a.point_sets}
    assert set(names) == {f"Left Neural Foraminal Narrowing (Sagittal T1, {S_T1})",
                          f"Right Neural Foraminal Narrowing (Sagittal T1, {S_T1})",
                          f"Spinal Canal Stenosis (Sagittal T2/STIR, {S_T2})"}
    left = names[f"Left Neural Foraminal Narrowing (Sagittal T1, {S_T1})"]
    assert [label.split(":")[0] for label in left.labels] == [
        f"{lv} Left Neural Foraminal Narrowing" for lv in LUMBAR_LEVELS]
    assert left.points_lps.shape == (5, 3) and left.coordinate_system == "pixel"


def test_grades_are_joined_by_level_and_condition(real: Dataset, real_root: Path) -> None:
    with open(real_root / "train.csv", encoding="utf-8") as fh:
        source = {r["study_id"]: r for r in csv.DictReader(fh)}
    for case in real.cases:
        (table,) = [t for t in case.tables if t.kind == rsna.GRADES_TABLE_KIND]
        assert table.name == "train.csv" and len(table.rows) == 25
        assert {(r["condition"], r["level"]) for r in table.rows} == {
            (c, lv) for c in rsna.CONDITIONS for lv in LUMBAR_LEVELS}
        for r in table.rows:
            expected = source[case.id][r["column"]] or None
            assert r["grade"] == expected, r
            assert r["column"] == f"{rsna.CONDITIONS[r['condition']][0]}_{r['level'].lower().replace('-', '_')}"
            assert r["side"] == rsna.CONDITIONS[r["condition"]][1]
    a = real.cases[0]
    row = next(r for r in a.tables[0].rows
               if r["condition"] == "Spinal Canal Stenosis" and r["level"] == "L3-L4")
    assert (row["series_id"], row["instance_number"], row["n_points"]) == (S_T2, 7, 1)
    assert (row["x"], row["y"]) == (126.5, 101.0)
    assert row["slice_index"] == _spatial_rank(real_root / "train_images" / STUDY_A / S_T2,
                                               real_root / "train_images" / STUDY_A / S_T2 / "7.dcm")
    unplaced = next(r for r in a.tables[0].rows
                    if r["condition"] == "Left Subarticular Stenosis" and r["level"] == "L4-L5")
    assert unplaced["n_points"] == 0 and unplaced["series_id"] is None


def test_missing_instances_series_and_grades_are_reported(real: Dataset) -> None:
    a, b = _codes(real.cases[0]), _codes(real.cases[1])
    (missing_instance,) = a["rsna.coordinate-missing-instance"]
    assert f"series {S_T2} instance 999" in missing_instance and missing_instance.startswith("1 ")
    (missing_series,) = a["rsna.coordinate-missing-series"]
    assert missing_series.startswith("2 ")
    assert S_LISTED_ABSENT in missing_series and f"series {S_NOWHERE}" in missing_series
    (not_on_disk,) = a["rsna.series-not-on-disk"]
    assert S_LISTED_ABSENT in not_on_disk and "Axial T2" in not_on_disk
    (blank,) = b["rsna.missing-grade"]
    assert blank.startswith("2 ") and "spinal_canal_stenosis_l4_l5" in blank
    assert "rsna.missing-grade" not in a
    absent = [i for i in real.issues if i.code == "rsna.study-not-on-disk"]
    assert len(absent) == 3 and all(STUDY_ABSENT in i.message for i in absent)
    # Nothing else went wrong, and the other CSV is kept as an attachment.
    assert not [i for i in real.all_issues() if i.severity.label == "error"
                and not i.code.startswith("rsna.coordinate-missing")]
    assert [Path(p).name for p in real.attachments] == ["sample_submission.csv"]


def test_info_json_reports_layout_points_and_train_csv(real_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(real_root), "--json", "--no-cache"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layout"] == "rsna"
    a, b = doc["patients"]
    assert (a["id"], b["id"]) == (STUDY_A, STUDY_B)
    points = a["overlays"]["points"]
    assert sorted(p["n_points"] for p in points) == [5, 5, 5] and all(p["kind"] == "points" for p in points)
    assert [p["n_points"] for p in b["overlays"]["points"]] == [1]
    canal = next(p for p in points if p["name"].startswith("Spinal Canal Stenosis"))
    assert canal["labels"] == [f"{lv} Spinal Canal Stenosis" for lv in LUMBAR_LEVELS]
    assert canal["coordinate_system"] == "pixel" and canal["source"].endswith("train_label_coordinates.csv")
    (grades,) = a["tables"]
    assert (grades["name"], grades["kind"], grades["n_rows"]) == ("train.csv", "rsna-grades", 25)
    assert {"level", "condition", "side", "grade"} <= set(grades["columns"])
    assert {i["code"] for i in doc["issues"]} >= {"rsna.coordinate-missing-instance", "rsna.missing-grade"}


# -- detection and bad input ----------------------------------------------------------------
def test_detection_needs_the_rsna_tree(tmp_path: Path) -> None:
    for name, make in {
        "sudirman": ["01_MRI_Data/0001/study/series"],
        "spider": ["images", "masks"],
        "aisslab": ["PATIENT1/ST0/SE0"],
        "plain": ["train_images/readme", "notes"],  # a train_images folder alone is not enough
    }.items():
        root = tmp_path / name
        for folder in make:
            (root / folder).mkdir(parents=True)
        assert not rsna.detect(root), name
        assert detect_layout(root) != "rsna"
    tree = tmp_path / "tree"
    (tree / "test_images" / "123" / "456").mkdir(parents=True)
    assert detect_layout(tree) == "rsna"
    with_csv = tmp_path / "csv"
    (with_csv / "train_images").mkdir(parents=True)
    (with_csv / "train_series_descriptions.csv").write_text("study_id,series_id,series_description\n")
    assert detect_layout(with_csv) == "rsna"


def test_damaged_csvs_are_issues_and_the_images_still_open(real_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "bad"
    shutil.copytree(real_root / "train_images" / STUDY_A / S_T1, root / "train_images" / STUDY_A / S_T1)
    (root / "train_series_descriptions.csv").write_bytes(b"\x00\x01\x02PK\x03\x04" * 50)  # binary
    (root / "train.csv").write_text("study_id,foo\n4003253,1\n", encoding="utf-8")  # wrong columns
    huge = "9" * 5000
    (root / "train_label_coordinates.csv").write_text(
        "study_id,series_id,instance_number,condition,level,x,y\n"
        f"{STUDY_A},{S_T1},5,Left Neural Foraminal Narrowing,L1/L2,nan,3\n"
        f"{STUDY_A},{S_T1},5,Pain,L9/L10,1,2\n"
        f"{STUDY_A},{huge},5,Spinal Canal Stenosis,L1/L2,1,2\n"
        f"{huge},{S_T1},5,Spinal Canal Stenosis,L1/L2,1,2\n"
        f"{STUDY_A},{S_T1},-3,Spinal Canal Stenosis,L1/L2,1,2\n"
        f"{STUDY_A},{S_T1},6,Spinal Canal Stenosis,L2/L3,1e6,-40\n"
        f"{STUDY_A},{S_T1},7,Spinal Canal Stenosis,L3/L4,12.5,13.5\n"
        f"{STUDY_A},{S_T1},8,spinal canal  STENOSIS,l4-l5,12.5,13.5\n"  # spelling variants accepted
        "\n,,,,,,\n", encoding="utf-8")
    ds = open_path(root, use_cache=False)
    assert ds.layout == "rsna" and [c.id for c in ds.cases] == [STUDY_A]
    codes = _codes(ds)
    assert "load.failed" in codes  # the binary descriptions file, named
    assert any("spinal_canal_stenosis_l1_l2" in m for m in codes["rsna.missing-columns"])
    # nan x, unknown condition and level, instance -3 (per study); the blank row (the dataset's)
    assert sorted(m[:2] for m in codes["rsna.bad-coordinate"]) == ["1 ", "3 "]
    assert "rsna.coordinate-missing-series" in codes
    assert "rsna.coordinate-outside-image" in codes
    labels = [label for ps in ds.cases[0].point_sets for label in ps.labels]
    assert labels == ["L2-L3 Spinal Canal Stenosis", "L3-L4 Spinal Canal Stenosis", "L4-L5 Spinal Canal Stenosis"]


def test_table_budget_refuses_the_coordinates_but_not_the_images(
        real_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_MAX_TABLE_CELLS", "20")
    ds = open_path(real_root, use_cache=False)
    assert [c.id for c in ds.cases] == [STUDY_A, STUDY_B]
    limited = [i for i in ds.issues if i.code == "load.limit"]
    assert {Path(i.path or "").name for i in limited} >= {"train_label_coordinates.csv", "train.csv"}
    assert all("LUMBARVIEW_MAX_TABLE_CELLS" in i.message for i in limited)
    assert not any(c.point_sets for c in ds.cases)


# -- the phantom demo study -----------------------------------------------------------------
@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rsna-phantom")
    return write_all(root, PhantomParams(tilt_deg=8.0), Sizes.small(), layouts=("rsna",))["rsna"]


def test_phantom_points_lie_where_the_truth_says(phantom_root: Path) -> None:
    ds = open_path(phantom_root, use_cache=False)
    assert ds.layout == "rsna" and len(ds.cases) == 1
    case = ds.cases[0]
    truth = json.loads((phantom_root / TRUTH_FILE).read_text())
    levels = truth["levels"]
    assert case.id == str(truth["rsna"]["study_id"])
    series = {s.description: s for s in case.series}
    assert set(series) == {"Sagittal T1", "Sagittal T2/STIR", "Axial T2"}
    assert len(series["Axial T2"].stacks) == 5
    where = {"Spinal Canal Stenosis": "Sagittal T2/STIR", "Left Neural Foraminal Narrowing": "Sagittal T1",
             "Right Neural Foraminal Narrowing": "Sagittal T1", "Left Subarticular Stenosis": "Axial T2",
             "Right Subarticular Stenosis": "Axial T2"}
    points = _points_by_label(case)
    assert len(points) == 25
    for label, (_ps, point) in points.items():
        level, condition = label.split(" ", 1)
        t = levels[level]
        canal = np.asarray(t["canal_centre_lps"])
        if condition == "Spinal Canal Stenosis":
            expected = canal
        elif "Foraminal" in condition:
            expected = np.asarray(t["foramen"][condition.split()[0].lower()]["centre_lps"])
        else:  # the subarticular recess: half the canal's width to that side (+x is the left)
            sign = 1.0 if condition.startswith("Left") else -1.0
            expected = canal + np.array([sign * t["canal_transverse_mm"] / 2, 0.0, 0.0])
        # The point lies on a slice of its series; the truth projects onto it within a pixel.
        on: list[tuple[Any, int]] = []
        for stack in series[where[condition]].stacks:
            k = round(float(stack.geometry.lps_to_index(point)[2]))
            if 0 <= k < stack.n_slices and abs(float(stack.geometry.slice_plane(k).signed_distance_mm(point))) < 1e-3:
                on.append((stack, k))
        assert len(on) >= 1, label
        stack, k = on[0]
        plane = stack.geometry.slice_plane(k)
        in_plane_px = plane.lps_to_pixel(expected) - plane.lps_to_pixel(point)
        assert float(np.linalg.norm(in_plane_px)) < 1.0, label
        # (an axial block is centred between two slices: a tie, hence the tolerance)
        assert abs(float(plane.signed_distance_mm(expected))) <= stack.geometry.slice_spacing_mm / 2 + 1e-3, label
    # The checks competitors run: right foramina at a smaller LPS x than left; the canal points
    # go down the image (y grows) from L1 to S1.
    for level in LUMBAR_LEVELS:
        right, left = (points[f"{level} {side} Neural Foraminal Narrowing"][1] for side in ("Right", "Left"))
        assert right[0] < left[0]
    sagittal_t2 = series["Sagittal T2/STIR"].stacks[0].geometry
    canal_rows = [sagittal_t2.lps_to_index(points[f"{lv} Spinal Canal Stenosis"][1])[1] for lv in LUMBAR_LEVELS]
    assert canal_rows == sorted(canal_rows)


def test_phantom_grades_follow_the_truth(phantom_root: Path) -> None:
    ds = open_path(phantom_root, use_cache=False)
    levels = json.loads((phantom_root / TRUTH_FILE).read_text())["levels"]

    def grade(value: float, normal: float, moderate: float) -> str:
        return "Normal/Mild" if value >= normal else "Moderate" if value >= moderate else "Severe"

    (table,) = ds.cases[0].tables
    assert len(table.rows) == 25 and all(r["n_points"] == 1 for r in table.rows)
    for r in table.rows:
        t = levels[r["level"]]
        if "Foraminal" in r["condition"]:
            assert r["grade"] == grade(t["foramen"][r["side"]]["width_mm"], 6.0, 4.5), r
        else:
            assert r["grade"] == grade(t["canal_ap_mm"], 10.0, 7.0), r
    assert {r["grade"] for r in table.rows} == {"Normal/Mild", "Moderate", "Severe"}
    assert not [i for i in ds.all_issues() if i.code.startswith("rsna.")]


# -- the graded points as annotations -------------------------------------------------------
def _csv_grade(real_root: Path, study: str, condition: str, level: str) -> str | None:
    """The grade train.csv gives, read here with the csv module: the column is the condition in
    snake case and the level ("L4-L5" -> "l4_l5")."""
    with open(real_root / "train.csv", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["study_id"] == study)
    return row[f"{condition.lower().replace(' ', '_')}_{level.lower().replace('-', '_')}"] or None


def test_points_carry_their_grade_beside_them(real: Dataset, real_root: Path) -> None:
    seen = 0
    for case in real.cases:
        for ps in case.point_sets:
            for label, info in zip(ps.labels, ps.info, strict=True):
                expected = _csv_grade(real_root, case.id, info["condition"], info["level"])
                assert info["grade"] == expected
                assert label == f"{info['level']} {info['condition']}"
                # The text the views write beside the point names its grade.
                shown = point_label(parse_marker_name(ps.name), label, 0, info)
                side = info["condition"].split()[0]
                what = {"Spinal": "canal", "Left": "L ", "Right": "R "}[side] + (
                    "foramen" if "Foraminal" in info["condition"] else "subarticular" if "Subarticular" in
                    info["condition"] else "")
                assert shown == f"{info['level']} {what}" + (f": {expected}" if expected else "")
                seen += 1
    assert seen == 16
    grades = {info["grade"] for ps in real.cases[0].point_sets for info in ps.info}
    assert grades == set(GRADE_CYCLE)  # the cycle of grades reaches every point set


def test_graded_points_are_annotations_with_filters_and_jumps(real: Dataset, real_root: Path) -> None:
    from lumbarview.services.annotations import annotation_grades, case_annotations, filter_annotations

    a = real.cases[0]
    rows = case_annotations(a)
    points = [r for r in rows if r.kind == "graded point"]
    grades_only = [r for r in rows if r.kind == "grade"]
    assert len(points) == 15 and len(grades_only) == 25 - 15  # every grade listed once
    with open(real_root / "train_label_coordinates.csv", encoding="utf-8") as fh:
        coords = [r for r in csv.DictReader(fh) if r["study_id"] == STUDY_A and r["instance_number"] != "999"
                  and r["series_id"] in (S_T1, S_T2)]
    assert len(coords) == len(points)
    for row in coords:
        level = row["level"].replace("/", "-")
        (found,) = [r for r in points if (r.condition, r.level) == (row["condition"], level)]
        file = real_root / "train_images" / STUDY_A / row["series_id"] / f"{row['instance_number']}.dcm"
        assert np.allclose(found.position_lps, _independent_lps(file, float(row["x"]), float(row["y"])), atol=1e-3)
        assert found.grade == _csv_grade(real_root, STUDY_A, row["condition"], level)
        side = row["condition"].split()[0].lower()
        assert found.side == (side if side in ("left", "right") else None)
    assert all(r.position_lps is None and "no coordinate" in r.text for r in grades_only)
    # Filters: by condition, by grade (the words the dataset uses), by level and side.
    canal = filter_annotations(rows, condition="Spinal Canal Stenosis")
    assert len(canal) == 5 and all(r.kind == "graded point" for r in canal)
    moderate = filter_annotations(rows, grade="Moderate")
    assert moderate and all(r.grade == "Moderate" for r in moderate)
    assert len(filter_annotations(rows, level="L4-L5", side="left")) == 2  # foramen + subarticular
    assert annotation_grades(rows) == list(GRADE_CYCLE)
    # The case summary counts the graded points per grade, as the CSVs give them.
    from collections import Counter

    from lumbarview.services.annotations import case_summary

    expected = Counter(_csv_grade(real_root, STUDY_A, r["condition"], r["level"].replace("/", "-")) or "no grade"
                       for r in coords)
    assert case_summary(a)["graded_points_by_grade"] == dict(expected)
    # Rows ordered by level, L1-L2 first.
    order = [r.level for r in points]
    assert order == sorted(order, key=list(rsna.LEVELS.values()).index)


def test_a_grades_table_row_points_at_its_coordinate(real: Dataset) -> None:
    from lumbarview.services.annotations import table_row_position

    a = real.cases[0]
    (table,) = [t for t in a.tables if t.kind == rsna.GRADES_TABLE_KIND]
    points = _points_by_label(a)
    for row in table.rows:
        where = table_row_position(a, table, row)
        if row["n_points"]:
            assert np.allclose(where, points[f"{row['level']} {row['condition']}"][1])
        else:
            assert where is None
    assert sum(1 for r in table.rows if table_row_position(a, table, r) is not None) == 15
