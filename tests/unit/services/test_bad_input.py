"""Every kind of bad file gets a clear issue, and the rest of the dataset still opens."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.limits import ResourceLimitError
from lumbarview.io.annotations import read_markups, read_table, read_voc
from lumbarview.io.mesh import read_stl
from lumbarview.io.volume import open_volume
from lumbarview.phantom.layouts import Sizes, tube_mesh, write_aisslab, write_bids, write_spider, write_stl
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.open_dataset import open_path

SMALL = Sizes.small()


@pytest.fixture(scope="module")
def phantom() -> LumbarPhantom:
    return LumbarPhantom()


def _codes(ds: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in ds.all_issues():  # type: ignore[attr-defined]
        out.setdefault(i.code, []).append(i.message)
    return out


def test_truncated_and_mismatched_mha(tmp_path: Path, phantom: LumbarPhantom) -> None:
    root = tmp_path / "spider"
    write_spider(root, phantom, SMALL, patient=1)
    write_spider(root, phantom, SMALL, patient=2)
    write_spider(root, phantom, SMALL, patient=3)
    # Truncated voxel data (compressed stream cut short).
    img = root / "images" / "2_t2.mha"
    img.write_bytes(img.read_bytes()[:-4000])
    # A header that claims more voxels than the file holds.
    mha = root / "images" / "3_t1.mha"
    data = mha.read_bytes()
    head, _, _body = data.partition(b"ElementDataFile = LOCAL\n")
    head = head.replace(b"CompressedData = True", b"CompressedData = False")
    mha.write_bytes(head + b"ElementDataFile = LOCAL\n" + b"\0" * 100)
    ds = open_path(root, use_cache=False)
    assert [c.id for c in ds.cases] == ["1", "2", "3"]
    case2 = ds.case("2")
    assert case2 is not None
    # The cut is seen in the header (CompressedDataSize beyond the file's end): an issue at open.
    assert not any(s.description == "t2" for s in case2.series)
    assert any(i.path == str(img) and "re-copy" in i.message for i in case2.issues)
    case3 = ds.case("3")
    assert case3 is not None
    t1 = next((s for s in case3.series if s.description == "t1"), None)
    if t1 is not None:  # the header may still parse; the voxels must then fail clearly
        with pytest.raises(CorruptFileError):
            t1.stacks[0].pixels()
    # Everything else still opens and decodes.
    case1 = ds.case("1")
    assert case1 is not None and all(s.stacks[0].pixels().size for s in case1.series)


def test_xml_bomb_and_malformed_voc_are_issues(tmp_path: Path, phantom: LumbarPhantom) -> None:
    root = tmp_path / "aisslab"
    write_aisslab(root, phantom, SMALL)
    folder = root / "DICOM" / "1" / "Sagittal"
    xmls = sorted(folder.glob("*.xml"))
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            '<annotation><filename>&lol2;</filename></annotation>')
    xmls[0].write_text(bomb)
    (folder / "IM0004.xml").write_text("<annotation><object><name>LFS</name>")  # truncated
    with pytest.raises(CorruptFileError, match="forbidden"):
        read_voc(xmls[0])
    ds = open_path(root, use_cache=False)
    codes = _codes(ds)
    assert any("forbidden construct" in m for m in codes["load.failed"])
    assert any("not well-formed" in m for m in codes["load.failed"])
    case = ds.cases[0]
    assert case.series and case.label_maps  # the rest opened
    assert any(b.boxes for b in case.box_sets)  # the other XML's boxes are there


def test_voc_with_unknown_elements_and_odd_names(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text(
        "<annotation><filename>a.png</filename><size><width>10</width><height>10</height></size>"
        "<weird><nested>1</nested></weird>"
        "<object><name>RFS-3</name><level>L5/S1</level><bndbox><xmin>1</xmin><ymin>2</ymin>"
        "<xmax>4</xmax><ymax>5</ymax></bndbox><extra>kept quiet</extra></object>"
        "<object><name>left foramen</name><level>L4-L5</level><grade>moderate</grade>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>LFS</name><level>L9-L10</level><severity>7</severity>"
        "<bndbox><xmin>5</xmin><ymin>2</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>")
    voc = read_voc(path)
    assert [(o.side, o.level, o.severity) for o in voc.objects] == [
        ("right", "L5-S1", 3), ("left", "L4-L5", 2)]
    assert {i.code for i in voc.issues} == {"voc.bad-box"}


def test_png_mask_of_the_wrong_size_is_not_placed(tmp_path: Path, phantom: LumbarPhantom) -> None:
    root = tmp_path / "aisslab"
    write_aisslab(root, phantom, SMALL)
    (mask_path,) = (root / "Segmentation" / "Masks").glob("*.png")
    Image.fromarray(np.zeros((50, 60), dtype=np.uint8)).save(mask_path)
    ds = open_path(root, use_cache=False)
    codes = _codes(ds)
    assert "labels.png-size-mismatch" in codes and "60x50" in codes["labels.png-size-mismatch"][0]
    assert not ds.cases[0].label_maps and ds.cases[0].series


def test_malformed_json_nan_stl_and_wrong_triangle_count(tmp_path: Path, phantom: LumbarPhantom) -> None:
    root = tmp_path / "bids"
    write_bids(root, phantom, SMALL)
    markers = root / "derivatives" / "markers" / "sub-01"
    bad_json = sorted(markers.glob("*.json"))[0]
    bad_json.write_text('{"markups": [ {"type": "Fiducial", "controlPoints": [')
    model = root / "derivatives" / "model" / "sub-01"
    v, f = tube_mesh(np.array([[0, 0, 0], [0, 0, 10.0]]), 2.0)
    v[3] = np.nan
    write_stl(model / "sub-01_Bad.stl", v, f, binary=True, header="SPACE=LPS")
    dura = model / "sub-01_Dura.stl"
    raw = bytearray(dura.read_bytes())
    raw[80:84] = struct.pack("<I", struct.unpack_from("<I", raw, 80)[0] + 5)
    dura.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="not finite"):
        read_stl(model / "sub-01_Bad.stl")
    with pytest.raises(CorruptFileError, match="triangles"):
        read_stl(dura)
    with pytest.raises(CorruptFileError, match="malformed"):
        read_markups(bad_json)
    ds = open_path(root, use_cache=False)
    messages = " ".join(_codes(ds)["load.failed"])
    assert "malformed" in messages and "not finite" in messages and "triangles" in messages
    case = ds.cases[0]
    names = [m.name for m in case.meshes]  # the damaged dura left out; the roots one mesh each
    assert names[0] == "sub-01_Cord" and "sub-01_Dura" not in names
    assert "sub-01_nerveroots_L4_L" in names and names[-1] == "sub-01_Nerveroots"
    assert len(case.point_sets) > 10 and case.series


def test_csv_with_unknown_columns_is_kept_and_said(tmp_path: Path) -> None:
    path = tmp_path / "radiological_gradings.csv"
    path.write_text("Patient,IVD label,Modic,Colour of socks\n1,1,0,red\n")
    table, issues = read_table(path, "spider-gradings",
                               ("Patient", "IVD label", "Modic", "Pfirrman grade"))
    assert table.rows == [{"Patient": 1, "IVD label": 1, "Modic": 0, "Colour of socks": "red"}]
    assert {i.code for i in issues} == {"table.missing-columns", "table.unknown-columns"}


def test_markups_in_unknown_coordinate_system_and_bad_points(tmp_path: Path) -> None:
    path = tmp_path / "m.mrk.json"
    path.write_text(json.dumps({"markups": [
        {"type": "Fiducial", "coordinateSystem": "XYZ", "controlPoints": [{"position": [1, 2, 3]}]},
        {"type": "Curve", "coordinateSystem": "RAS",
         "controlPoints": [{"position": [1, 2, 3]}, {"position": ["a", 2, 3]}, {"position": [4, 5, 6]}]},
    ]}))
    sets, issues = read_markups(path)
    (curve,) = sets
    assert curve.kind == "curve"
    assert np.allclose(curve.points_lps, [[-1, -2, 3], [-4, -5, 6]])
    assert {i.code for i in issues} == {"markups.unknown-system", "markups.bad-point"}


def test_huge_header_claim_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.mha"
    path.write_text("ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\n"
                    "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    with pytest.raises((CorruptFileError, ResourceLimitError)):
        open_volume(path).pixels()


def test_user_label_scheme(tmp_path: Path, phantom: LumbarPhantom) -> None:
    root = tmp_path / "spider"
    write_spider(root, phantom, SMALL)
    (root / "lumbarview-labels.json").write_text(json.dumps({
        "name": "mine", "labels": [{"value": 202, "name": "the L4-L5 disc", "role": "disc",
                                    "level": "L4-L5", "color": "#ff0000"}]}))
    ds = open_path(root, use_cache=False)
    scheme = ds.cases[0].label_maps[0].scheme
    assert scheme.name == "mine" and scheme.entry(202).color_rgb == (255, 0, 0)
    (root / "lumbarview-labels.json").write_text('{"labels": [{"value": 1, "role": "banana"}]}')
    ds = open_path(root, use_cache=False)
    assert any("unknown role 'banana'" in m for m in _codes(ds)["load.failed"])
