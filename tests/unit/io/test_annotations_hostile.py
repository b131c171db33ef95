"""Hostile side files (JSON, CSV/TSV, PASCAL VOC, PNG masks, STL): each fails alone with a typed
error naming what is wrong (and the limit, for budgets), before any big allocation, and a
dataset holding one bad file of each kind still opens everything else."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.errors import CorruptFileError, LoadError
from lumbarview.core.labels import load_scheme
from lumbarview.core.limits import ResourceLimitError
from lumbarview.core.safe_json import nesting_depth_exceeds, read_json_guarded
from lumbarview.core.types import Severity
from lumbarview.io.annotations import read_json, read_markups, read_png_mask, read_table, read_voc
from lumbarview.io.mesh import read_stl
from lumbarview.phantom.layouts import Sizes, write_aisslab, write_bids
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.open_dataset import open_path

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile"


def _deep_json(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


# -- JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", [read_json, read_markups, load_scheme])
def test_json_nested_10000_deep_is_refused_before_parsing(tmp_path: Path, reader: object) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"markups": ' + _deep_json(10_000) + "}")
    started = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_JSON_DEPTH") as info:
        reader(path)  # type: ignore[operator]
    assert "64 levels" in info.value.problem
    assert time.perf_counter() - started < 2.0


def test_json_depth_budget_is_exact_and_ignores_brackets_in_strings(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_MAX_JSON_DEPTH", "5")
    path = tmp_path / "d.json"
    path.write_text(_deep_json(5, "[", "]"))
    assert read_json_guarded(path) == [[[[[]]]]]
    path.write_text('[[[["[[[[[[\\"[[[", {"a": "{{{{"}]]]]')  # 5 levels, with the object
    assert read_json_guarded(path)[0][0][0][0] == '[[[[[["[[['
    path.write_text('\n\n[[[[[{"a": 1}]]]]]')
    with pytest.raises(ResourceLimitError, match=r"5 levels deep \(line 3\)"):
        read_json_guarded(path)
    # An escaped backslash before a quote closes the string: the bracket after it counts.
    assert nesting_depth_exceeds(b'["\\\\", [[[[[]]]]]]', 5) == 1
    assert nesting_depth_exceeds(b'["\\\\\\"", [[[[]]]]]', 5) is None


def test_json_huge_integer_is_refused_with_its_json_path() -> None:
    with pytest.raises(CorruptFileError, match=r"5,000 digits at \$\.markups\[0\]\.controlPoints\[0\]\.position\[2\]"):
        read_markups(HOSTILE / "json" / "markups_huge_int.json")
    with pytest.raises(CorruptFileError, match=r"41 digits at \$\.labels\[0\]\.value"):
        load_scheme(HOSTILE / "json" / "scheme_huge_value.json")


@pytest.mark.parametrize(("name", "expected"), [
    ("markups_control_points_int.json", r"\$\.markups\[0\]\.controlPoints should be a list of points but is a number"),
    ("markups_control_points_string.json", r"\$\.markups\[0\]\.controlPoints .* is a string"),
    ("markups_not_a_list.json", r"\$\.markups should be a list of markups but is an object"),
])
def test_markups_of_the_wrong_type_name_the_json_path(name: str, expected: str) -> None:
    with pytest.raises(CorruptFileError, match=expected):
        read_markups(HOSTILE / "json" / name)


def test_markups_null_nan_and_infinite_points_are_skipped_with_their_path() -> None:
    (points,), issues = read_markups(HOSTILE / "json" / "markups_bad_points.json")
    assert np.array_equal(points.points_lps, [[1.5, 2.5, 3.5]]) and points.labels == ["good"]
    messages = [i.message for i in issues]
    assert [i.code for i in issues] == ["markups.bad-point"] * 7
    for m in range(7):
        assert any(f"$.markups[0].controlPoints[{m}]" in text for text in messages)
    assert "is null, not a point" in messages[0]


@pytest.mark.parametrize(("name", "expected"), [
    ("scheme_bool_value.json", r"no integer \"value\" \(\$\.labels\[0\]\.value: a boolean\)"),
    ("scheme_labels_null.json", r"\$\.labels is null"),
])
def test_label_scheme_of_the_wrong_type(name: str, expected: str) -> None:
    with pytest.raises(CorruptFileError, match=expected):
        load_scheme(HOSTILE / "json" / name)


def test_json_size_budget_and_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.json"
    path.write_text('{"a": "' + "x" * (2 * 1024 * 1024) + '"}')
    monkeypatch.setenv("LUMBARVIEW_MAX_TEXT_MB", "1")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_TEXT_MB"):
        read_json(path)
    path.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        read_json(path)


# -- CSV --------------------------------------------------------------------------------------
def test_csv_cell_of_200000_characters_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "radiological_gradings.csv"
    path.write_text("Patient,IVD label,Modic\n1,1,0\n2,1," + "x" * 200_000 + "\n3,2,1\n")
    with pytest.raises(ResourceLimitError, match=r"row 3, column 'Modic' holds 200,000 characters") as info:
        read_table(path)
    assert info.value.variable == "LUMBARVIEW_MAX_CSV_FIELD"


def test_csv_field_budget_can_be_lowered_and_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"' + "y\n" * 100 + '"\n')
    monkeypatch.setenv("LUMBARVIEW_MAX_CSV_FIELD", "150")
    with pytest.raises(ResourceLimitError, match="column 'b' holds 200 characters"):
        read_table(path)
    monkeypatch.setenv("LUMBARVIEW_MAX_CSV_FIELD", "300000")  # beyond the csv module's own 131,072
    path.write_text("a,b\n1," + "z" * 200_000 + "\n")
    table, _ = read_table(path)
    assert len(table.rows[0]["b"]) == 200_000


def test_csv_cell_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "1,2\n" * 20)
    monkeypatch.setenv("LUMBARVIEW_MAX_TABLE_CELLS", "30")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_TABLE_CELLS"):
        read_table(path)


def test_csv_binary_and_encodings() -> None:
    with pytest.raises(CorruptFileError, match="binary data"):
        read_table(HOSTILE / "csv" / "nul_bytes.csv")
    table, issues = read_table(HOSTILE / "csv" / "latin1.csv")
    assert table.rows == [{"Patient": 1, "Note": "dégénéré"}]
    assert [i.code for i in issues] == ["table.encoding"] and "Windows-1252" in issues[0].message
    table, issues = read_table(HOSTILE / "csv" / "utf16.tsv")
    assert table.rows == [{"Patient": 7, "Modic": 2}] and not issues
    table, _ = read_table(HOSTILE / "csv" / "huge_integer.csv")
    assert table.rows[0]["Patient"] == "1" * 400  # kept as text, never converted


def test_csv_random_binary_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError):
        read_table(path)


def test_csv_ragged_rows_are_one_issue(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "1,2,3\n" * 1000)
    table, issues = read_table(path)
    assert len(table.rows) == 1000 and [i.message for i in issues] == [
        "1000 row(s) have more cells than the header; extra cells ignored"]


# -- VOC --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["width_inf.xml", "width_nan_negative.xml", "width_huge.xml"])
def test_voc_impossible_size_is_a_warning_and_boxes_are_kept(name: str) -> None:
    voc = read_voc(HOSTILE / "voc" / name)
    assert voc.width is None and voc.height is None
    assert [i.code for i in voc.issues] == ["voc.bad-size"]
    assert [(o.xmin, o.xmax, o.level, o.severity) for o in voc.objects] == [(10.0, 20.0, "L4-L5", 2)]


@pytest.mark.parametrize(("name", "code"), [
    ("box_nan_inf.xml", "voc.bad-box"), ("box_missing_field.xml", "voc.bad-box"),
    ("box_outside.xml", "voc.box-outside"),
])
def test_voc_bad_boxes_are_skipped_with_an_issue(name: str, code: str) -> None:
    voc = read_voc(HOSTILE / "voc" / name)
    assert voc.objects == () and [i.code for i in voc.issues] == [code]
    assert voc.width == 64


def test_voc_infinite_severity_is_an_issue() -> None:
    voc = read_voc(HOSTILE / "voc" / "severity_inf.xml")
    assert [i.code for i in voc.issues] == ["voc.bad-severity"] and voc.objects[0].severity is None


def test_voc_absurd_object_count_and_size_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "many.xml"
    obj = ("<object><name>LFS</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax>"
           "</bndbox></object>")
    path.write_text("<annotation><size><width>8</width><height>8</height></size>" + obj * 10_005 + "</annotation>")
    voc = read_voc(path)
    assert len(voc.objects) == 10_000 and [i.code for i in voc.issues] == ["voc.too-many-objects"]
    monkeypatch.setenv("LUMBARVIEW_MAX_TEXT_MB", "1")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_TEXT_MB"):
        read_voc(path)


# -- PNG --------------------------------------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_png_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    # 100,000 x 100,000 pixels declared; a few MB of zero rows compress to a few kB.
    stream = zlib.compressobj(9)
    idat = stream.compress(b"\0" * (100_001 * 40)) + stream.flush()
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(100_000, 100_000, idat))
    assert path.stat().st_size < 20_000
    started = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="10,000,000,000 pixels") as info:
        read_png_mask(path)
    assert info.value.variable == "LUMBARVIEW_MAX_IMAGE_PIXELS"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_png_text_chunk_bomb_is_never_inflated(tmp_path: Path, kind: bytes) -> None:
    stream = zlib.compressobj(9)
    text = b"".join(stream.compress(b"\0" * (1 << 20)) for _ in range(200)) + stream.flush()  # 200 MB
    body = b"Comment\0\0" + text if kind == b"zTXt" else b"Comment\0\x01\0\0\0" + text
    raw = b"".join(b"\0" + bytes([r % 3] * 6) for r in range(4))
    path = tmp_path / "text-bomb.png"
    path.write_bytes(_png(6, 4, zlib.compress(raw), _chunk(kind, body)))
    assert path.stat().st_size < 400_000
    started = time.perf_counter()
    mask = read_png_mask(path)
    assert time.perf_counter() - started < 2.0
    assert mask.shape == (4, 6) and mask[:, 0].tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize(("name", "expected"), [
    ("truncated.png", "truncated"), ("bad_crc.png", "checksum"), ("not_a_png.png", "signature"),
    ("bad_ihdr.png", "header is invalid"), ("broken_idat.png", "cannot be decoded"),
])
def test_png_damaged_files_are_corrupt_file_errors(name: str, expected: str) -> None:
    with pytest.raises(CorruptFileError, match=expected):
        read_png_mask(HOSTILE / "png" / name)


def test_png_every_truncation_is_a_typed_error(tmp_path: Path) -> None:
    raw = b"".join(b"\0" + bytes(range(r, r + 16)) for r in range(16))
    full = _png(16, 16, zlib.compress(raw))
    path = tmp_path / "cut.png"
    for size in range(0, len(full)):
        path.write_bytes(full[:size])
        with pytest.raises(LoadError):
            read_png_mask(path)
    path.write_bytes(full)
    assert read_png_mask(path)[3, 5] == 8


# -- STL --------------------------------------------------------------------------------------
def _binary_stl(triangles: int) -> bytes:
    record = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0)
    return b"SPACE=LPS".ljust(80) + struct.pack("<I", triangles) + record * triangles


def test_stl_binary_triangle_budget_is_checked_before_vtk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.stl"
    path.write_bytes(_binary_stl(12))
    assert read_stl(path)[0].faces.shape == (12, 3)
    monkeypatch.setenv("LUMBARVIEW_MAX_STL_TRIANGLES", "10")
    with pytest.raises(ResourceLimitError, match="12 triangles") as info:
        read_stl(path)
    assert info.value.variable == "LUMBARVIEW_MAX_STL_TRIANGLES"


def test_stl_ascii_facets_are_counted_against_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facet = ("facet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n  vertex 0 1 0\n"
             " endloop\nendfacet\n")
    path = tmp_path / "a.stl"
    path.write_text("solid vertex endfacet SPACE=LPS\n" + facet * 12 + "endsolid\n")
    assert read_stl(path)[0].faces.shape == (12, 3)
    monkeypatch.setenv("LUMBARVIEW_MAX_STL_TRIANGLES", "10")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_STL_TRIANGLES"):
        read_stl(path)


@pytest.mark.parametrize(("name", "expected"), [
    ("ascii_truncated.stl", "1 facets but 5 vertices"), ("ascii_nan.stl", "not finite"),
    ("ascii_binary_garbage.stl", "NUL"), ("binary_count_too_large.stl", "4,294,967,295 triangles"),
    ("header_only.stl", "no triangles"),
])
def test_stl_hostile_files_are_typed_errors(name: str, expected: str) -> None:
    with pytest.raises(CorruptFileError, match=expected):
        read_stl(HOSTILE / "stl" / name)


def test_every_hostile_file_fails_cleanly_in_a_child_process() -> None:
    """Nothing in tests/data/hostile may crash the process (VTK, Pillow, expat): each file is
    read in a child; the child must report a typed error or a result, and exit 0."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from lumbarview.core.errors import LoadError\n"
        "from lumbarview.core.labels import load_scheme\n"
        "from lumbarview.io.annotations import read_markups, read_png_mask, read_table, read_voc\n"
        "from lumbarview.io.mesh import read_stl\n"
        "from lumbarview.io.volume import open_volume\n"
        "from lumbarview.io.session_file import read_session\n"
        "from lumbarview.services.export import read_csv, read_json\n"
        "from lumbarview.services.documents import open_pdf, render_page\n"
        "readers = {'csv': read_table, 'json': read_markups, 'voc': read_voc, 'png': read_png_mask, "
        "'stl': read_stl, 'volume': lambda p: open_volume(p).pixels(), 'session': read_session,\n"
        "           'measurements': lambda p: (read_csv if p.suffix == '.csv' else read_json)(p),\n"
        "           'pdf': lambda p: (open_pdf(p), render_page(p, 0))}\n"
        "for path in sorted(Path(sys.argv[1]).glob('*/*')):\n"
        "    reader = load_scheme if path.name.startswith('scheme') else readers[path.parent.name]\n"
        "    try:\n"
        "        reader(path)\n"
        "        print('ok', path.name)\n"
        "    except LoadError:\n"
        "        print('error', path.name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(HOSTILE)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = dict(reversed(line.split(" ", 1)) for line in done.stdout.splitlines())
    assert len(outcomes) == sum(1 for _ in HOSTILE.glob("*/*")) and done.stderr == ""
    assert outcomes["truncated.png"] == "error" and outcomes["width_inf.xml"] == "ok"


# -- a dataset with one bad file of each kind ------------------------------------------------------
def test_dataset_with_one_bad_file_of_each_kind_opens_everything_good(tmp_path: Path) -> None:
    phantom = LumbarPhantom()
    bids = write_bids(tmp_path / "bids", phantom, Sizes.small())
    anatqc = sorted((bids / "derivatives" / "anatqc" / "sub-01").rglob("*.csv"))
    anatqc[0].write_text("a,b\n1," + "x" * 200_000 + "\n")
    markers = sorted((bids / "derivatives" / "markers" / "sub-01").glob("*.json"))
    markers[0].write_text('{"markups": [{"type": "Fiducial", "controlPoints": 5}]}')
    markers[1].write_text('{"markups": ' + _deep_json(10_000) + "}")
    sidecar = bids / "rawdata" / "sub-01" / "anat" / "sub-01_CISS.json"
    sidecar.write_text('{"EchoTime": ' + "7" * 5000 + "}")
    stl = bids / "derivatives" / "model" / "sub-01" / "sub-01_Dura.stl"
    stl.write_bytes(stl.read_bytes()[:-7])
    (bids / "lumbarview-labels.json").write_text('{"labels": ' + _deep_json(10_000) + "}")

    ds = open_path(bids, use_cache=False)
    errors = {Path(i.path).name: i for i in ds.all_issues() if i.severity is Severity.ERROR and i.path}
    assert set(errors) >= {anatqc[0].name, markers[0].name, markers[1].name, sidecar.name, stl.name,
                           "lumbarview-labels.json"}
    assert "LUMBARVIEW_MAX_CSV_FIELD" in errors[anatqc[0].name].message
    assert "controlPoints should be a list" in errors[markers[0].name].message
    assert "LUMBARVIEW_MAX_JSON_DEPTH" in errors[markers[1].name].message
    assert "5,000 digits at $.EchoTime" in errors[sidecar.name].message
    assert "re-export" in errors[stl.name].message
    case = ds.cases[0]
    assert len(case.series) == 2 and all(s.stacks[0].pixels().size for s in case.series)
    names = [m.name for m in case.meshes]  # the damaged dura left out; the roots one mesh each
    assert names[0] == "sub-01_Cord" and "sub-01_Dura" not in names
    assert "sub-01_nerveroots_L4_L" in names and names[-1] == "sub-01_Nerveroots"
    assert len(case.point_sets) == len(markers) - 2  # every other markups file
    assert len(case.tables) == len(anatqc) - 1

    aisslab = write_aisslab(tmp_path / "aisslab", phantom, Sizes.small())
    (good_mask,) = (aisslab / "Segmentation" / "Masks").glob("*.png")
    shutil.copy(good_mask, good_mask.with_name("1_IM0005.png"))
    stream = zlib.compressobj(9)
    good_mask.write_bytes(_png(100_000, 100_000, stream.compress(b"\0" * 1_000_000) + stream.flush()))
    vocs = sorted((aisslab / "Foramina_Detection" / "Annotations").glob("*.xml"))
    text = vocs[0].read_text()
    assert "<width>96</width>" in text
    vocs[0].write_text(text.replace("<width>96</width>", "<width>inf</width>"))
    beside = sorted((aisslab / "DICOM" / "1" / "Sagittal").glob("*.xml"))
    beside[0].write_text("<annotation><object><name>LFS</name>")  # truncated

    ds = open_path(aisslab, use_cache=False)
    issues = ds.all_issues()
    by_file = {(Path(i.path).name, i.code) for i in issues if i.path}
    assert (good_mask.name, "load.limit") in by_file
    assert (vocs[0].name, "voc.bad-size") in by_file
    assert (beside[0].name, "load.failed") in by_file
    bomb = next(i for i in issues if i.path and Path(i.path).name == good_mask.name)
    assert "LUMBARVIEW_MAX_IMAGE_PIXELS" in bomb.message
    case = ds.cases[0]
    assert case.series and [m.name for m in case.label_maps] == ["1_IM0005"]
    boxes = [b for s in case.box_sets for b in s.boxes]
    assert len(boxes) >= 6 and all(np.isfinite([b.xmin, b.xmax]).all() for b in boxes)
    json.dumps([i.to_dict() for i in issues])  # the issues list is reportable as it is
