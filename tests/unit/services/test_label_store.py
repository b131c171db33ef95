"""Saving corrected label maps: same format, header and pixel type as the source, only the edited
voxels changed (read back by nibabel and SimpleITK's MetaImage reader, independently of ours),
the sidecar, replay byte-identical, refusals, and an autosave that survives SIGKILL."""

from __future__ import annotations

import json
import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.volume_write import write_metaimage, write_nifti, write_nrrd
from lumbarview.services import label_store as ls
from tests.kill_helpers import kill_during_saves

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (test extra) reads MetaImage independently")


def _geometry() -> VolumeGeometry:
    c, s = np.cos(0.2), np.sin(0.2)
    return VolumeGeometry.from_directions((12, 30, 28), (-41.25, 17.125, 103.3), (c, s, 0), (0, 0, -1),
                                          (0.6875, 0.7, 3.3))


def _labels() -> np.ndarray:
    a = np.zeros((12, 30, 28), dtype=np.uint16)
    a[2:10, 5:20, 4:14] = 1
    a[3:8, 5:20, 15:20] = 201
    a[:, 22:27, 8:12] = 100
    return a


def _paint_op(geometry: VolumeGeometry) -> dict:
    plane = geometry.slice_plane(5)
    centre = geometry.index_to_lps(np.array([[12.0, 15.0, 5.0]]))[0]
    return {"op": "paint", "label": 100, "preserve": True, "shape": "disk", "radius_mm": 4.0,
            "plane": {"origin_lps": plane.origin_lps.tolist(), "right_lps": plane.row_direction_lps.tolist(),
                      "down_lps": plane.column_direction_lps.tolist(), "normal_lps": plane.normal_lps.tolist()},
            "points_lps": [centre.tolist(), (centre + 2 * plane.row_direction_lps).tolist()]}


@pytest.mark.parametrize("name", ["mask.mha", "mask.nii.gz", "mask.nrrd"])
def test_round_trip_keeps_the_header_and_changes_only_the_edited_voxels(tmp_path: Path, name: str) -> None:
    geometry, labels = _geometry(), _labels()
    source_path = tmp_path / "data" / name
    writer = {"mask.mha": write_metaimage, "mask.nii.gz": write_nifti, "mask.nrrd": write_nrrd}[name]
    writer(source_path, labels, geometry)
    before = source_path.read_bytes()
    source = ls.LabelSource.open(source_path)
    assert source.array.dtype == np.uint16  # the stored type, not widened
    edited, records = ls.apply_log(source, [_paint_op(geometry)])
    out = ls.save_corrected(source, edited, records, tmp_path / "out" / name)
    assert source_path.read_bytes() == before
    changed = edited != labels
    # what the paint must do: 100 on background voxels of slice 5 only, discs and vertebrae kept
    assert changed.sum() > 0 and set(np.nonzero(changed)[0].tolist()) == {5}
    assert np.all(edited[changed] == 100) and np.all(labels[changed] == 0)
    if name.endswith(".mha"):
        a, b = sitk.ReadImage(str(source_path)), sitk.ReadImage(str(out))
        for getter in ("GetOrigin", "GetSpacing", "GetDirection", "GetSize", "GetPixelIDValue"):
            assert getattr(a, getter)() == getattr(b, getter)()  # exact
        got = sitk.GetArrayFromImage(b)
        header = {k: v for k, v in (line.split(" = ", 1) for line in out.read_bytes().split(b"ElementDataFile")[0]
                                    .decode().splitlines())}
        original = {k: v for k, v in (line.split(" = ", 1) for line in before.split(b"ElementDataFile")[0]
                                      .decode().splitlines())}
        header.pop("CompressedDataSize"), original.pop("CompressedDataSize")
        assert header == original
    elif name.endswith(".nii.gz"):
        a, b = nib.load(str(source_path)), nib.load(str(out))
        assert np.array_equal(a.affine, b.affine) and a.get_data_dtype() == b.get_data_dtype()
        assert a.header.binaryblock == b.header.binaryblock
        got = np.asarray(b.dataobj).transpose(2, 1, 0)
    else:
        import nrrd

        _, head_a = nrrd.read(str(source_path))
        data_b, head_b = nrrd.read(str(out))
        assert np.array_equal(head_a["space directions"], head_b["space directions"])
        assert np.array_equal(head_a["space origin"], head_b["space origin"])
        assert head_a["type"] == head_b["type"]
        got = data_b.transpose(2, 1, 0)
    assert got.dtype == np.uint16
    assert np.array_equal(got[~changed], labels[~changed]) and np.array_equal(got[changed], edited[changed])
    sidecar = json.loads(ls.sidecar_of(out).read_text())
    assert sidecar["format"] == "lumbarview-label-edits" and sidecar["version"] == 1
    assert sidecar["source_sha256"] == ls.sha256_of(source_path)
    assert sidecar["changes"] == {"100": {"added": int(changed.sum()), "removed": 0, "relabelled": 0}}
    assert sidecar["operations"][0]["op"] == "paint"
    assert ls.replay(ls.sidecar_of(out)).identical


def test_replay_refuses_a_changed_source_and_catches_a_changed_output(tmp_path: Path) -> None:
    geometry, labels = _geometry(), _labels()
    source_path = tmp_path / "mask.mha"
    write_metaimage(source_path, labels, geometry)
    source = ls.LabelSource.open(source_path)
    edited, records = ls.apply_log(source, [_paint_op(geometry)])
    out = ls.save_corrected(source, edited, records, tmp_path / "fixed.mha")
    tampered = edited.copy()
    tampered[0, 0, 0] = 7
    out.unlink()
    write_metaimage(out, tampered, geometry)
    result = ls.replay(ls.sidecar_of(out))
    assert not result.identical and result.differing_voxels == 1
    labels2 = labels.copy()
    labels2[0, 0, 1] = 3
    write_metaimage(source_path, labels2, geometry)
    with pytest.raises(ls.LabelStoreError, match="changed since"):
        ls.replay(ls.sidecar_of(out))


def test_saving_never_replaces_a_file(tmp_path: Path) -> None:
    geometry, labels = _geometry(), _labels()
    source_path = tmp_path / "mask.mha"
    write_metaimage(source_path, labels, geometry)
    source = ls.LabelSource.open(source_path)
    with pytest.raises(ls.LabelStoreError, match="source file"):
        ls.save_corrected(source, labels, [], source_path)
    (tmp_path / "taken.mha").write_bytes(b"the user's")
    with pytest.raises(ls.LabelStoreError, match="exists"):
        ls.save_corrected(source, labels, [], tmp_path / "taken.mha")
    assert (tmp_path / "taken.mha").read_bytes() == b"the user's"
    first = ls.default_output(source_path, tmp_path, workspace=tmp_path / "ws")
    ls.save_corrected(source, labels, [], first)
    second = ls.default_output(source_path, tmp_path, workspace=tmp_path / "ws")
    assert second != first and second.name == "mask-2.mha" and "label-edits" in second.parts


def test_an_autosave_killed_mid_write_loses_nothing_saved(tmp_path: Path) -> None:
    geometry, labels = _geometry(), _labels()
    source_path = tmp_path / "mask.mha"
    write_metaimage(source_path, labels, geometry)
    autosave = tmp_path / "mask.autosave.json"
    child = "\n".join([
        "from lumbarview.services import label_store as ls",
        f"src = ls.LabelSource.open({str(source_path)!r})",
        f"auto = ls.Autosave({str(autosave)!r}, src)",
        "ops = []",
        "for i in range(100000):",
        "    ops.append({'op': 'islands', 'label': 1, 'min_voxels': i, 'note': 'x' * 2000})",
        "    auto.save(ops)",
        "    print(len(ops), flush=True)",
    ])
    rng = random.Random(23)
    for _ in range(3):
        saved = kill_during_saves(child, rng)
        ops = ls.Autosave(autosave, ls.LabelSource.open(source_path)).load()
        assert len(ops) >= saved  # everything reported saved is there, and the file parses
        assert [op["min_voxels"] for op in ops] == list(range(len(ops)))


@pytest.mark.parametrize("mode", ["P", "L", "I;16"])
def test_a_png_mask_is_written_in_its_source_mode_and_palette(tmp_path: Path, mode: str) -> None:
    from PIL import Image

    from lumbarview.io.annotations import read_png_mask
    from lumbarview.io.label_write import write_png_mask_like

    mask = np.zeros((20, 30), dtype=np.uint16)
    mask[5:10, 3:12] = 2
    source = tmp_path / "mask.png"
    if mode == "P":
        image = Image.frombytes("P", (30, 20), mask.astype(np.uint8).tobytes())
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    elif mode == "L":
        image = Image.fromarray(mask.astype(np.uint8))
    else:
        image = Image.fromarray(mask)
    image.save(source)
    edited = mask.copy()
    edited[12:15, 20:25] = 1
    write_png_mask_like(source, edited, tmp_path / "out" / "fixed.png")
    with Image.open(tmp_path / "out" / "fixed.png") as back, Image.open(source) as original:
        assert back.mode == original.mode and back.size == original.size
        if mode == "P":
            assert back.getpalette() == original.getpalette()
    assert np.array_equal(read_png_mask(tmp_path / "out" / "fixed.png"), edited)
    with pytest.raises(ValueError, match="outside"):
        write_png_mask_like(source, edited.astype(np.int64) + (300 if mode != "I;16" else 70000), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
