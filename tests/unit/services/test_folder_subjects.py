"""A plain folder holding several subjects opens as one case per subject; a label volume is bound
only to an image on its grid or the image its name ties it to; an integer volume with few values
on an image's grid is a label map (announced, and can be shown as an image instead)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lumbarview.core.dataset import Case, Dataset
from lumbarview.services.open_dataset import open_path
from lumbarview.services.subjects import group_by_subject, subject_of, subject_of_name

SHAPE = (12, 20, 16)  # k, j, i


def _write(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 2.0),
           origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))


def _image(rng: np.random.Generator, block: tuple[slice, slice, slice]) -> np.ndarray:
    """Noise (hundreds of values) with a bright block where this subject's structure is."""
    array = rng.integers(50, 400, SHAPE).astype(np.int16)
    array[block] += 1500
    return array


def _mask(block: tuple[slice, slice, slice], value: int = 1) -> np.ndarray:
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[block] = value
    return array


BLOCKS = {"S01": (slice(2, 6), slice(3, 9), slice(2, 7)), "S02": (slice(6, 11), slice(10, 17), slice(8, 14)),
          "S03": (slice(1, 4), slice(12, 18), slice(1, 5))}


@pytest.fixture
def several(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    root.mkdir()
    rng = np.random.default_rng(7)
    for subject, block in BLOCKS.items():
        _write(root / f"{subject}_t2.nii.gz", _image(rng, block))
    # Every subject's T2 is on the same grid: only the names tell the masks apart.
    _write(root / "S01_t2_seg.nii.gz", _mask(BLOCKS["S01"]))
    _write(root / "S02_t2_seg.nii.gz", _mask(BLOCKS["S02"]))
    # S01's T1 on its own, coarser grid; its mask on a third grid over the same space.
    _write(root / "S01_t1.nii.gz", rng.integers(0, 900, (6, 10, 8)).astype(np.int16), spacing=(2.0, 2.0, 4.0))
    _write(root / "S01_t1_seg.nii.gz", np.ones((4, 5, 4), dtype=np.uint8), spacing=(4.0, 4.0, 6.0),
           origin=(0.5, 0.5, 0.5))
    # A mask whose image is not here (no S01_flair, and no image on its grid).
    _write(root / "S01_flair_seg.nii.gz", np.ones((5, 5, 5), dtype=np.uint8), spacing=(3.0, 3.0, 3.0))
    # S03's mask is not named as one: an integer volume with three values on S03's grid.
    cord = _mask(BLOCKS["S03"], 2)
    cord[0, 0, :3] = 7
    _write(root / "S03_t2_cord.nii.gz", cord)
    # An integer image with many values on the same grid stays an image.
    _write(root / "S03_pd.nii.gz", rng.integers(0, 3000, SHAPE).astype(np.int16))
    with open(root / "participants.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["subject", "age"], ["S01", 40], ["S02", 51], ["S03", 63]])
    return root


def _series(case: Case) -> list[str]:
    return sorted(s.description for s in case.series)


def _maps(case: Case) -> dict[str, str | None]:
    """Label map name -> the description of the series it is bound to."""
    by_uid = {k.uid: s.description for s in case.series for k in s.stacks}
    return {m.name: by_uid.get(m.bound_to or "") for m in case.label_maps}


def _opened(root: Path) -> Dataset:
    dataset = open_path(root, use_cache=False)
    assert dataset.layout == "folder"
    return dataset


def test_one_case_per_subject_each_mask_on_its_own_image(several: Path) -> None:
    dataset = _opened(several)
    cases = {c.id: c for c in dataset.cases}
    assert list(cases) == ["S01", "S02", "S03"]
    assert _series(cases["S01"]) == ["S01_t1", "S01_t2"]
    assert _series(cases["S02"]) == ["S02_t2"]
    assert _series(cases["S03"]) == ["S03_pd", "S03_t2"]
    assert _maps(cases["S01"]) == {"S01_t2_seg": "S01_t2", "S01_t1_seg": "S01_t1"}
    assert _maps(cases["S02"]) == {"S02_t2_seg": "S02_t2"}
    # The mask marks the bright block of the image it is drawn on (its own subject's).
    for subject in ("S01", "S02"):
        case = cases[subject]
        (label_map,) = [m for m in case.label_maps if m.name == f"{subject}_t2_seg"]
        image = case.stack(label_map.bound_to or "")
        assert image is not None and label_map.resampled_from is None
        inside = image.pixels()[label_map.stack.pixels() > 0]
        assert inside.min() >= 1500
    # The table that names no subject belongs to the dataset.
    assert [t.name for t in dataset.tables] == ["participants.csv"]


def test_a_label_on_another_grid_goes_only_to_the_image_its_name_gives(several: Path) -> None:
    dataset = _opened(several)
    s01 = dataset.case("S01")
    assert s01 is not None
    (t1_seg,) = [m for m in s01.label_maps if m.name == "S01_t1_seg"]
    t1 = next(s for s in s01.series if s.description == "S01_t1").stacks[0]
    assert t1_seg.bound_to == t1.uid and t1_seg.resampled_from is not None
    assert t1_seg.stack.geometry.shape_kji == t1.geometry.shape_kji
    # The FLAIR mask has no image on its grid and none named S01_flair: it is not drawn over
    # the T2 or the T1 (as the longest common name prefix, "S01_", would have had it).
    assert "S01_flair_seg" not in _maps(s01)
    (issue,) = [i for i in s01.issues if i.code == "labels.no-image"]
    assert issue.path and issue.path.endswith("S01_flair_seg.nii.gz")


def test_an_integer_volume_with_few_values_is_a_label_map_and_can_be_an_image(several: Path) -> None:
    dataset = _opened(several)
    s03 = dataset.case("S03")
    assert s03 is not None
    (cord,) = s03.label_maps
    assert cord.name == "S03_t2_cord" and cord.guessed and "3 whole-number values (0, 2, 7)" in cord.guessed
    assert _maps(s03) == {"S03_t2_cord": "S03_t2"}
    (notice,) = [i for i in s03.issues if i.code == "labels.guessed"]
    assert notice.severity.name == "INFO" and "Show as an image" in notice.message
    assert np.array_equal(np.unique(cord.stack.pixels()), [0, 2, 7])
    # Flip: the volume becomes a series (its own pixels), and back.
    series = s03.treat_as_image(cord)
    assert not s03.label_maps and _series(s03) == ["S03_pd", "S03_t2", "S03_t2_cord"]
    assert np.array_equal(series.stacks[0].pixels(), cord.stack.pixels())
    assert s03.treat_as_labels(series) is cord and _series(s03) == ["S03_pd", "S03_t2"]
    with pytest.raises(ValueError, match="not a label map shown as an image"):
        s03.treat_as_labels(series)
    s01 = dataset.case("S01")
    assert s01 is not None
    named = s01.label_maps[0]
    with pytest.raises(ValueError, match="only those can be shown"):
        s01.treat_as_image(named)  # a mask by its name is not a guess


def test_two_masks_alone_on_one_grid_stay_images(tmp_path: Path) -> None:
    _write(tmp_path / "A01_t2.nii.gz", _mask(BLOCKS["S01"]))
    _write(tmp_path / "A01_pd.nii.gz", _mask(BLOCKS["S02"]))
    (case,) = _opened(tmp_path).cases
    assert not case.label_maps and _series(case) == ["A01_pd", "A01_t2"]


def test_subject_names() -> None:
    cases = {"S01_t2.nii.gz": "S01", "S01-t2-seg.nii.gz": "S01", "sub-07_T2w.nii.gz": "sub-07",
             "VB2_06_t2_iso1mm_vertebrae_mask.nii.gz": "VB2_06", "107_t2_SPACE.mha": "107",
             "case3_image.nrrd": "case3", "case3_label.nrrd": "case3", "patient12.nii.gz": "patient12",
             "t2.nii.gz": None, "t2_seg-manual.nii.gz": None, "labels.nii.gz": None, "t1w.nii.gz": None,
             "participants.csv": None}
    assert {name: subject_of_name(name) for name in cases} == cases
    root = Path("/data")
    assert subject_of(root / "VB2_05" / "t2.nii.gz", root) == "VB2_05"  # the folder names it
    assert subject_of(root / "t2" / "S04_t2.nii.gz", root) == "S04"  # "t2" names no subject
    one = [root / "t2.nii.gz", root / "t2_seg.nii.gz", root / "S01_t2.nii.gz"]
    assert group_by_subject(root, one, one) == {None: one}  # one subject: one case, as before


def test_real_folder_of_three_subjects_opens_as_three_cases(shared_data: Path) -> None:
    dataset = _opened(shared_data / "chu2015-vb2")
    assert [c.id for c in dataset.cases] == ["VB2_05", "VB2_06", "VB2_09"]
    for case in dataset.cases:
        (series,) = case.series
        (label_map,) = case.label_maps
        assert series.description == f"{case.id}_t2_iso1mm"
        assert label_map.bound_to == series.stacks[0].uid and label_map.resampled_from is None
        assert label_map.name == f"{case.id}_t2_iso1mm_vertebrae_mask" and label_map.guessed is None


def test_files_naming_no_subject_and_what_info_says(several: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lumbarview.cli import main

    rng = np.random.default_rng(11)
    _write(several / "overview_t2.nii.gz", rng.integers(0, 900, SHAPE).astype(np.int16))
    dataset = _opened(several)
    assert [c.id for c in dataset.cases] == ["S01", "S02", "S03", "study"]
    shared = dataset.cases[-1]
    assert _series(shared) == ["overview_t2"]
    (notice,) = [i for i in shared.issues if i.code == "folder.no-subject"]
    assert "S01_" in notice.message
    assert main(["info", str(several), "--json", "--no-cache"]) == 0
    doc = json.loads(capsys.readouterr().out)
    maps = {m["name"]: m for p in doc["patients"] for m in p["overlays"]["label_maps"]}
    assert maps["S03_t2_cord"]["guessed"] is True and maps["S01_t2_seg"]["guessed"] is False
    assert main(["info", str(several), "--no-cache"]) == 0
    assert "S03_t2_cord (SCT" in (text := capsys.readouterr().out) and "a label map by its values" in text
