"""`lumbarview segment IMAGE --seeds SEEDS.json --out LABELS.nii.gz [--json]` and
`lumbarview measure IMAGE --labels LABELS.nii.gz` on a real lumbar T2 (chu2015-vb2 VB2_05).

The seeds: each body's click is the centroid of its manual label (a point a reader would click in
the middle of the body); the canal click at L4-L5 is the brightest point (smoothed) on the ray
running posterior from the middle of the L4 and L5 clicks, 10-40 mm behind (the CSF behind the
disc, as a reader clicks it). The manual labels are used for nothing else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lumbarview.cli import main
from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.measure.segment.bodies import dice
from lumbarview.services.measure_case import measure_case
from lumbarview.services.open_dataset import open_path

CASE = "VB2_05"


@pytest.fixture(scope="module")
def case_files(shared_data: Path) -> tuple[Path, Path]:
    folder = shared_data / "chu2015-vb2" / CASE
    if not folder.is_dir():
        pytest.skip(reason="chu2015-vb2 is not in this copy of ../shared/data")
    return folder / f"{CASE}_t2_iso1mm.nii.gz", folder / f"{CASE}_t2_iso1mm_vertebrae_mask.nii.gz"


def _seeds(image_path: Path, mask_path: Path) -> dict[str, object]:
    image, manual = open_volume(image_path), open_label_volume(mask_path).pixels()
    g = image.geometry
    centres = {name: g.index_to_lps(np.array(ndimage.center_of_mass(manual == value))[::-1])
               for value, name in ((5, "L3"), (6, "L4"), (7, "L5"))}
    mid = (centres["L4"] + centres["L5"]) / 2
    smooth = ndimage.gaussian_filter(image.pixels().astype(float), 1.0)
    ray = [mid + np.array([0.0, d, 0.0]) for d in np.arange(10.0, 40.0, 0.5)]  # +y: posterior
    values = [smooth[tuple(np.round(g.lps_to_index(p)[::-1]).astype(int))] for p in ray]
    canal = ray[int(np.argmax(values))]
    return {"bodies": [{"level": k, "point_lps": [float(c) for c in v]} for k, v in centres.items()],
            "discs": [{"level": "L3-L4", "point_lps": [float(c) for c in (centres["L3"] + centres["L4"]) / 2]},
                      {"level": "L4-L5", "point_lps": [float(c) for c in mid]}],
            "canal": [{"level": "L4-L5", "point_lps": [float(c) for c in canal]}]}


@pytest.mark.shared_data
def test_segment_then_measure(case_files: tuple[Path, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    image_path, mask_path = case_files
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps(_seeds(image_path, mask_path)))
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(image_path), "--seeds", str(seeds), "--out", str(out), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["structure"], r["level"]) for r in rows] == [
        ("vertebra", "L3"), ("vertebra", "L4"), ("vertebra", "L5"), ("disc", "L3-L4"), ("disc", "L4-L5"),
        ("canal", "L4-L5")]
    for r in rows:
        assert set(r) >= {"structure", "level", "label", "voxels", "volume_mm3"}
        assert r["voxels"] > 0 and r["volume_mm3"] == pytest.approx(r["voxels"] * 1.0)  # 1 mm iso
    canal = rows[-1]
    assert canal["plane"]["kind"] == "disc-aligned"
    assert 80.0 < canal["dsca_mm2"] < 300.0  # a lumbar dural sac at L4-L5 (not a leak, not a speck)
    assert 8.0 < canal["ap_mm"] < 20.0 and 10.0 < canal["transverse_mm"] < 25.0
    contour = np.array(canal["contour_lps"])
    assert contour.shape[1] == 3 and len(contour) > 20
    # The label map is on the image's grid and the bodies match the manual ones.
    written = open_label_volume(out)
    assert written.geometry.shape_kji == open_volume(image_path).geometry.shape_kji
    labels, manual = written.pixels(), open_label_volume(mask_path).pixels()
    for value_semi, value_manual in ((6, 5), (7, 6), (8, 7)):  # L3, L4, L5 in each scheme
        assert dice(labels == value_semi, manual == value_manual) > 0.8
    sidecar = json.loads((tmp_path / "labels.segmentation.json").read_text())
    assert sidecar["format"] == "lumbarview-segmentation" and sidecar["source"] == "semi-auto"
    assert sidecar["seeds"]["canal"][0]["level"] == "L4-L5"
    # The engine on it: disc heights where two bodies are named, the canal at L4-L5, source semi-auto.
    assert main(["measure", str(image_path), "--labels", str(out), "--json"]) == 0
    measured = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    values = {(r["level"], r["quantity"]): r["value"] for r in measured}
    assert all(r["source"] == "semi-auto" for r in measured)
    for level in ("L3-L4", "L4-L5"):
        for q in ("disc_height_anterior", "disc_height_middle", "disc_height_posterior", "dhi"):
            assert values[(level, q)] is not None, (level, q)
        assert 5.0 < values[(level, "disc_height_middle")] < 20.0
    # The engine reads the click's contour (extruded over the disc) within the 1 mm grid's error.
    assert values[("L4-L5", "canal_area")] == pytest.approx(canal["dsca_mm2"], rel=0.12)
    assert values[("L4-L5", "canal_area_min")] == pytest.approx(canal["dsca_mm2"], rel=0.12)
    assert values[("L1-L2", "disc_height_middle")] is None
    # Opened as a case (the viewer's path: the map beside its image, the sidecar's scheme as the
    # folder's scheme), Measure this case gives the same values, with source semi-auto.
    folder = tmp_path / "case"
    folder.mkdir()
    shutil.copy(image_path, folder / image_path.name)
    shutil.copy(out, folder / image_path.name.replace(".nii.gz", "_seg.nii.gz"))
    (folder / "lumbarview-labels.json").write_text(json.dumps(sidecar["scheme"]))
    (case,) = open_path(folder, use_cache=False).cases
    rows = [r for r in measure_case(case) if r["level"] == "L4-L5" and r["quantity"] == "canal_area"]
    assert len(rows) == 1 and rows[0]["source"] == "semi-auto"
    assert rows[0]["value"] == pytest.approx(values[("L4-L5", "canal_area")], abs=1e-9)


@pytest.mark.shared_data
def test_segment_refuses_to_overwrite_and_bad_seeds(case_files: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    image_path, _mask = case_files
    existing = tmp_path / "mine.nii.gz"
    existing.write_bytes(b"the user's file")
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"bodies": [{"level": "L4", "point_lps": [0, 0, 0]}]}))
    assert main(["segment", str(image_path), "--seeds", str(seeds), "--out", str(existing)]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert existing.read_bytes() == b"the user's file"
    for bad, message in (({"bodies": [{"level": "L9", "point_lps": [0, 0, 0]}]}, "unknown vertebra 'L9'"),
                         ({"bodies": [{"level": "L4", "point_lps": [0, 0]}]}, "three finite numbers"),
                         ({"canal": [{"level": "L4", "point_lps": [0, 0, 0]}]}, "unknown disc level 'L4'"),
                         ({"bodies": "L4"}, "must be a list"), ([], "one JSON object"), ({}, "nothing to segment"),
                         ({"bodies": [{"level": "L4", "point_lps": [0, 0, 5000]}]}, "outside the image")):
        seeds.write_text(json.dumps(bad))
        out = tmp_path / "out.nii.gz"
        assert main(["segment", str(image_path), "--seeds", str(seeds), "--out", str(out)]) == 2, bad
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (bad, err)
        assert not out.exists()
