"""``lumbarview labels apply`` and ``labels replay`` (issue 23): the contract, and every bad input a
clear message, exit 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.cli import main
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.volume_write import write_metaimage
from lumbarview.services.label_store import sha256_of


def _grid(shape=(10, 24, 20)) -> VolumeGeometry:
    return VolumeGeometry.from_directions(shape, (5.0, -12.0, 40.0), (1, 0, 0), (0, 0, -1), (0.8, 0.9, 3.0))


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Path]:
    geometry = _grid()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[:, 10:14, 8:12] = 100
    labels[4, 2:8, 2:8] = 201
    image = np.zeros(geometry.shape_kji, dtype=np.int16)
    image[:, :, 10:] = 300
    write_metaimage(tmp_path / "mask.mha", labels, geometry)
    write_metaimage(tmp_path / "image.mha", image, geometry)
    write_metaimage(tmp_path / "other.mha", image[:, :, :10].copy(), _grid((10, 24, 10)))
    centre = geometry.index_to_lps(np.array([[11.0, 5.0, 4.0]]))[0]  # half on intensity 300
    plane = geometry.slice_plane(4)
    log = {"format": "lumbarview-label-edits", "version": 1, "source_sha256": sha256_of(tmp_path / "mask.mha"),
           "operations": [
               {"op": "paint", "label": 100, "preserve": True, "shape": "sphere", "radius_mm": 3.0,
                "center_lps": centre.tolist(), "threshold": [200, 400]},
               {"op": "fill", "label": 5, "preserve": True, "contiguous": True,
                "points_lps": [geometry.index_to_lps(np.array([[1.0, 20.0, 4.0]]))[0].tolist()],
                "plane": {"origin_lps": plane.origin_lps.tolist(), "right_lps": plane.row_direction_lps.tolist(),
                          "down_lps": plane.column_direction_lps.tolist(), "normal_lps": plane.normal_lps.tolist()}},
               {"op": "relabel", "from_label": 201, "label": 202, "preserve": True},
           ]}
    (tmp_path / "edits.json").write_text(json.dumps(log))
    return {"root": tmp_path, "mask": tmp_path / "mask.mha", "image": tmp_path / "image.mha",
            "other": tmp_path / "other.mha", "log": tmp_path / "edits.json"}


def test_apply_writes_the_corrected_map_and_replay_finds_it_identical(case: dict[str, Path],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = case["root"] / "fixed" / "mask.mha"
    before = case["mask"].read_bytes()
    assert main(["labels", "apply", str(case["mask"]), "--log", str(case["log"]), "--out", str(out),
                 "--image", str(case["image"])]) == 0
    assert case["mask"].read_bytes() == before
    sidecar = out.with_name("mask.mha.edits.json")
    data = json.loads(sidecar.read_text())
    assert [op["op"] for op in data["operations"]] == ["paint", "fill", "relabel"]
    assert set(data["changes"]) == {"100", "5", "201", "202"}
    from lumbarview.io.label_write import read_stored

    fixed, _ = read_stored(out)
    painted = (fixed == 100) & (np.asarray(read_stored(case["mask"])[0]) != 100)
    assert painted.any() and np.nonzero(painted)[2].min() >= 10  # only where the image is in [200, 400]
    assert data["changes"]["201"]["relabelled"] == 36 and data["changes"]["202"]["added"] == 36
    assert "label 202: +36" in capsys.readouterr().out
    assert main(["labels", "replay", str(sidecar)]) == 0


@pytest.mark.parametrize(("change", "message"), [
    ("hash", "another file"), ("unknown", "unknown op"), ("outside", "outside the label map"),
    ("truncated", "truncated"), ("grid", "another grid"), ("no-image", "give the image"),
    ("null-radius", "operation 0 (paint)"), ("inf-radius", "positive number"), ("big-label", "does not fit"),
    ("missing", "no 'radius_mm'"), ("not-a-list", "must be a list"),
])
def test_bad_input_is_a_message_exit_2_and_nothing_written(case: dict[str, Path], change: str, message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    log = json.loads(case["log"].read_text())
    image = case["image"]
    if change == "hash":
        log["source_sha256"] = "0" * 64
    elif change == "unknown":
        log["operations"].append({"op": "smooth", "label": 1})
    elif change == "outside":
        log["operations"][0]["center_lps"] = [500.0, 0.0, 0.0]
    elif change == "grid":
        image = case["other"]
    elif change == "null-radius":
        log["operations"][0]["radius_mm"] = None
    elif change == "inf-radius":
        log["operations"][0]["radius_mm"] = float("inf")
    elif change == "big-label":
        log["operations"][2]["label"] = 70000  # the mask is uint8
    elif change == "missing":
        del log["operations"][0]["radius_mm"]
    elif change == "not-a-list":
        log["operations"] = {"op": "paint"}
    text = json.dumps(log)
    if change == "truncated":
        text = text[: len(text) // 2]
    case["log"].write_text(text)
    args = ["labels", "apply", str(case["mask"]), "--log", str(case["log"]), "--out", str(case["root"] / "new.mha")]
    if change != "no-image":
        args += ["--image", str(image)]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (case["root"] / "new.mha").exists() and not (case["root"] / "new.mha.edits.json").exists()


def test_apply_never_writes_over_a_file(case: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = case["mask"].read_bytes()
    assert main(["labels", "apply", str(case["mask"]), "--log", str(case["log"]), "--out", str(case["mask"]),
                 "--image", str(case["image"])]) == 2
    assert "source file" in capsys.readouterr().err and case["mask"].read_bytes() == before
