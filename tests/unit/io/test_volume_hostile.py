"""Hostile and damaged non-DICOM volumes: a clear typed error, never a crash, a hang, a huge
allocation, silent zeros, or bytes read from outside the dataset; valid files read exactly as
SimpleITK reads them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from lumbarview.core.errors import CorruptFileError, LoadError, UnsupportedFormatError
from lumbarview.core.limits import ResourceLimitError
from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.io.volume_headers import read_voxels

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile" / "volume"
REPO = Path(__file__).resolve().parents[3]


def _mha_text(dims: str = "4 3 2", etype: str = "MET_UCHAR", extra: str = "", datafile: str = "LOCAL",
              ndims: int | None = None) -> str:
    n = ndims if ndims is not None else len(dims.split())
    return (f"ObjectType = Image\nNDims = {n}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n{extra}"
            f"DimSize = {dims}\nElementType = {etype}\nElementDataFile = {datafile}\n")


def _write(path: Path, text: str, data: bytes = b"") -> Path:
    path.write_bytes(text.encode("latin-1") + data)
    return path


# -- the headers that crash or hang SimpleITK: a clean typed error, in a child process -------------
_CHILD = textwrap.dedent("""
    import sys
    from lumbarview.core.errors import LoadError
    from lumbarview.io.volume import open_volume
    try:
        open_volume(sys.argv[1]).pixels()
    except LoadError as exc:
        print("LOADERROR", type(exc).__name__, exc)
        sys.exit(0)
    print("OPENED")
    sys.exit(3)
""")


@pytest.mark.parametrize("name", ["ndims-minus-one.mha", "ndims-minus-one-with-dims.mha", "ndims-int-min.mha",
                                  "ndims-200-digits.mha", "dimension-16.nrrd"])
def test_headers_that_crash_simpleitk_give_a_typed_error(name: str) -> None:
    # SimpleITK 2.5.7 on these: SIGSEGV (ndims-minus-one, dimension-16) or an endless loop
    # (the other three). In a child, so that a regression fails this test and not pytest.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(HOSTILE / name)], capture_output=True, text=True,
                           timeout=60, env=env)
    assert child.returncode == 0, (child.returncode, child.stdout, child.stderr[-2000:])
    assert "LOADERROR CorruptFileError" in child.stdout or "LOADERROR UnsupportedFormatError" in child.stdout
    assert "Traceback" not in child.stderr


@pytest.mark.parametrize(("text", "match"), [
    (_mha_text(ndims=-1), "NDims = -1 is outside"),
    (_mha_text(ndims=100000), "NDims = 100000 is outside"),
    (_mha_text(dims="9" * 200 + " 4 4"), "at most 30 digits"),
    (_mha_text(dims="0 0 0"), "empty image"),
    (_mha_text(dims="-4 4 4"), "empty image"),
    (_mha_text(dims="4 4", ndims=3), "DimSize has 2 values but NDims = 3"),
    (_mha_text(extra="ElementSpacing = 0 1 1\n"), "not a finite positive voxel size"),
    (_mha_text(extra="ElementSpacing = nan 1 1\n"), "not a finite number"),
    (_mha_text(extra="ElementSpacing = 1 -2 1\n"), "not a finite positive voxel size"),
    (_mha_text(extra="ElementSpacing = " + "9" * 400 + " 1 1\n"), "characters long"),
    (_mha_text(extra="Offset = 0 inf 0\n"), "not a finite number"),
    (_mha_text(extra="TransformMatrix = 1 0 0 1 0 0 0 0 1\n"), "singular"),
    (_mha_text(extra="TransformMatrix = 1 0 0 0 1e308 0 0 0 nan\n"), "not a finite number"),
    (_mha_text(extra="TransformMatrix = 1 0 0\n"), "9 expected"),
    (_mha_text(extra="HeaderSize = -5\n"), "negative"),
    (_mha_text(extra="CompressedData = True\nCompressedDataSize = -1\n"), "compressed data"),
    (_mha_text(extra="CompressedData = True\nCompressedDataSize = 99999999999999\n"), "compressed data"),
    ("NDims = 3\nDimSize = 4 4 4\n" * 3, "no ElementDataFile"),
    ("\x00\xff garbage without a key\nElementDataFile = LOCAL\n", "not 'Key = Value'"),
])
def test_damaged_metaimage_headers_are_corrupt(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "v.mha", text, bytes(64))
    with pytest.raises(CorruptFileError, match=match):
        open_volume(path)


@pytest.mark.parametrize(("text", "match"), [
    (_mha_text(etype="MET_OTHER"), "ElementType"),
    (_mha_text(etype="MET_UCHAR_ARRAY"), "ElementType"),
    (_mha_text(extra="ElementNumberOfChannels = 3\n"), "3-channel"),
    (_mha_text(datafile="LIST 2D"), "lists several data files"),
    (_mha_text(datafile="slice%03d.raw 1 2 1"), "lists several data files"),
    (_mha_text(dims="4 3 2 5"), "4-dimensional"),
    (_mha_text(extra="BinaryData = False\n"), "ASCII"),
])
def test_unsupported_metaimage_variants_are_refused(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "v.mha", text, bytes(64))
    with pytest.raises(UnsupportedFormatError, match=match):
        open_volume(path)


_NRRD = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 3 2\nencoding: raw\n"


@pytest.mark.parametrize(("extra", "match"), [
    ("space: left-posterior-superior\nspace directions: (nan,0,0) (0,1,0) (0,0,1)\n", "non-finite|parsed"),
    ("space: left-posterior-superior\nspace directions: (1,0,0) (1,0,0) (0,0,1)\n", "singular"),
    ("space: left-posterior-superior\nspace directions: (0,0,0) (0,1,0) (0,0,1)\n", "zero axis"),
    ("spacings: 1 0 1\n", "finite positive"),
    ("spacings: nan 1 1\n", "finite positive"),
    ("space: left-posterior-superior\nspace origin: (" + "9" * 400 + ",0,0)\n", "non-finite"),
    ("data file: ../../../../etc/passwd\n", "outside the dataset"),
    ("byte skip: -5\n", "out of range"),
    ("line skip: 999\n", "past the end"),
])
def test_damaged_nrrd_headers_are_corrupt(tmp_path: Path, extra: str, match: str) -> None:
    path = _write(tmp_path / "v.nrrd", _NRRD + extra + "\n", bytes(24))
    with pytest.raises(CorruptFileError, match=match):
        open_volume(path)


@pytest.mark.parametrize(("text", "error"), [
    (_NRRD.replace("sizes: 4 3 2", "sizes: 0 0 0"), CorruptFileError),
    (_NRRD.replace("sizes: 4 3 2", "sizes: 4 " + "9" * 200 + " 2"), CorruptFileError),
    (_NRRD.replace("dimension: 3", "dimension: -1"), LoadError),
    (_NRRD.replace("dimension: 3\nsizes: 4 3 2", "dimension: 16\nsizes: " + "1 " * 16), UnsupportedFormatError),
    (_NRRD.replace("encoding: raw", "encoding: bzip2"), UnsupportedFormatError),
    (_NRRD.replace("uint8", "block"), UnsupportedFormatError),
    (_NRRD + "kinds: RGB-color domain domain\n", UnsupportedFormatError),
    (_NRRD + "data file: LIST 2\n", UnsupportedFormatError),
    ("NRRD0004\ntype: uint8\n" + "x" * 70_000, CorruptFileError),
])
def test_hostile_nrrd_headers_are_refused(tmp_path: Path, text: str, error: type[LoadError]) -> None:
    path = _write(tmp_path / "v.nrrd", text + "\n", bytes(24))
    with pytest.raises(error):
        open_volume(path)


def _nifti(path: Path, array: np.ndarray, **fields: object) -> Path:
    image = nib.Nifti1Image(array, np.diag([1.0, 1.0, 2.0, 1.0]))
    for key, value in fields.items():
        image.header[key] = value
    nib.save(image, str(path))
    return path


@pytest.mark.parametrize(("fields", "match"), [
    ({"pixdim": [1, 0, 1, 1, 1, 1, 1, 1]}, "finite positive"),
    ({"pixdim": [1, np.nan, 1, 1, 1, 1, 1, 1]}, "finite positive"),
    ({"pixdim": [1, 1, -1, 1, 1, 1, 1, 1]}, "finite positive"),
])
def test_damaged_nifti_headers_are_corrupt(tmp_path: Path, fields: dict[str, object], match: str) -> None:
    path = _nifti(tmp_path / "v.nii", np.ones((4, 3, 2), np.int16))
    raw = bytearray(path.read_bytes())
    pixdim = np.asarray(fields["pixdim"], dtype="<f4")
    raw[76:108] = pixdim.tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=match):
        open_volume(path)


def test_nifti_dims_zero_and_truncated(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "v.nii", np.ones((4, 3, 2), np.int16))
    raw = bytearray(path.read_bytes())
    raw[40:56] = np.asarray([3, 0, 0, 0, 1, 1, 1, 1], dtype="<i2").tobytes()
    (tmp_path / "zero.nii").write_bytes(bytes(raw))
    with pytest.raises(LoadError):
        open_volume(tmp_path / "zero.nii")
    (tmp_path / "short.nii").write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptFileError, match="declares 48 bytes of voxel data but the file holds 38"):
        open_volume(tmp_path / "short.nii")


# -- paths stay inside the dataset ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/passwd", "../outside.raw"])
def test_element_data_file_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "data" / "case"
    folder.mkdir(parents=True)
    (tmp_path / "data" / "outside.raw").write_bytes(bytes(24))
    path = _write(folder / "v.mhd", _mha_text(datafile=name))
    with pytest.raises(CorruptFileError, match="outside the dataset folder"):
        open_volume(path)
    # A dataset root above both files lets the sibling one in (and only that one).
    if name == "../outside.raw":
        assert open_volume(path, root=tmp_path / "data").pixels().shape == (2, 3, 4)
        assert open_label_volume(path, root=tmp_path / "data").pixels().dtype == np.int32


def test_symlinked_data_file_is_resolved_before_the_check(tmp_path: Path) -> None:
    (tmp_path / "secret.raw").write_bytes(bytes(24))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "v.raw").symlink_to(tmp_path / "secret.raw")
    path = _write(folder / "v.mhd", _mha_text(datafile="v.raw"))
    with pytest.raises(CorruptFileError, match="outside the dataset folder"):
        open_volume(path)


def test_nrrd_data_file_outside_is_refused_and_inside_opens(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "v.raw").write_bytes(bytes(range(24)))
    (tmp_path / "x.raw").write_bytes(bytes(24))
    good = _write(folder / "good.nhdr", _NRRD + "data file: v.raw\n\n")
    assert np.array_equal(open_volume(good).pixels().ravel(), np.arange(24))
    bad = _write(folder / "bad.nhdr", _NRRD + "data file: ../x.raw\n\n")
    with pytest.raises(CorruptFileError, match="outside the dataset folder"):
        open_volume(bad)


# -- budgets and compressed data ---------------------------------------------------------------------
def _claim_1000_cubed(tmp_path: Path) -> Path:
    text = _mha_text(dims="1000 1000 1800", etype="MET_USHORT",
                     extra="ElementSpacing = 1 1 1\nOffset = 0 0 0\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n")
    path = _write(tmp_path / "claim.mha", text)
    path.write_bytes(path.read_bytes() + bytes(413 - path.stat().st_size))
    assert path.stat().st_size == 413
    return path


def test_a_413_byte_file_claiming_1000_cubed_is_refused_by_the_budget(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_MAX_VOLUME_MB", "100")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_VOLUME_MB") as info:
        open_volume(_claim_1000_cubed(tmp_path))
    assert "3,433 MB" in info.value.problem and "100 MB" in str(info.value)


def test_a_413_byte_file_claiming_1000_cubed_is_refused_by_its_size(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMBARVIEW_MAX_VOLUME_MB", "100000")
    with pytest.raises(CorruptFileError,
                       match=r"declares 3,600,000,000 bytes of voxel data but the file holds [0-9]+"):
        open_volume(_claim_1000_cubed(tmp_path))


def test_a_413_byte_file_claiming_1000_cubed_fails_in_under_a_second_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUMBARVIEW_MAX_VOLUME_MB", raising=False)
    monkeypatch.delenv("LUMBARVIEW_MAX_VOXELS", raising=False)
    path = _claim_1000_cubed(tmp_path)
    start = time.perf_counter()
    with pytest.raises((ResourceLimitError, CorruptFileError), match=r"MB|file holds"):
        open_volume(path)
    assert time.perf_counter() - start < 1.0


def test_zlib_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    bomb = zlib.compress(bytes(200 * 1024 * 1024), 9)  # ~200 kB inflating to 200 MB
    text = _mha_text(dims="64 64 16", extra=f"CompressedData = True\nCompressedDataSize = {len(bomb)}\n")
    stack = open_volume(_write(tmp_path / "bomb.mha", text, bomb))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError, match="inflates to more than the 65,536 bytes"):
            stack.pixels()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # the compressed input plus one bounded output, not 200 MB


def _sitk_written(tmp_path: Path, name: str, array: np.ndarray, compress: bool) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([0.7, 0.8, 3.0][: array.ndim])
    path = tmp_path / name
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


@pytest.mark.parametrize("name", ["v.mha", "v.nrrd", "v.nii.gz"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_compressed_stream_is_an_error_not_zeros(tmp_path: Path, name: str, damage: str) -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(1, 200, (8, 32, 32)).astype(np.int16)
    path = _sitk_written(tmp_path, name, array, compress=True)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) * 2 // 3])
    else:
        middle = len(raw) * 2 // 3
        path.write_bytes(raw[:middle] + bytes(b ^ 0x5A for b in raw[middle:middle + 16]) + raw[middle + 16:])
    with pytest.raises(CorruptFileError):
        open_volume(path).pixels()


def test_a_pixel_read_failure_at_load_time_is_typed(tmp_path: Path) -> None:
    for name in ("v.mha", "v.nrrd", "v.nii"):
        path = _sitk_written(tmp_path, name, np.ones((3, 4, 5), np.uint8), compress=False)
        stack = open_volume(path)
        path.write_bytes(path.read_bytes()[:-7])
        with pytest.raises(CorruptFileError):
            stack.pixels()
        path.unlink()
        with pytest.raises(CorruptFileError, match="cannot be read"):
            open_volume(path).pixels()


# -- valid files: read as SimpleITK reads them --------------------------------------------------------
_DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("shape", [(5, 6, 7), (6, 7)])
@pytest.mark.parametrize(("name", "compress"), [("v.mha", False), ("v.mha", True), ("v.nrrd", False),
                                                ("v.nrrd", True), ("v.nii.gz", True)])
def test_pixels_equal_simpleitk(tmp_path: Path, dtype: type, shape: tuple[int, ...], name: str,
                                compress: bool) -> None:
    rng = np.random.default_rng(7)
    array = (rng.random(shape) * 100).astype(dtype)
    image = sitk.GetImageFromArray(array)
    n = array.ndim
    d = np.linalg.qr(rng.normal(size=(n, n)))[0]
    image.SetDirection(d.ravel().tolist())
    image.SetOrigin(rng.normal(size=n).tolist())
    image.SetSpacing((rng.random(n) + 0.5).tolist())
    path = tmp_path / name
    sitk.WriteImage(image, str(path), useCompression=compress)
    stack = open_volume(path)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if expected.ndim == 2:
        expected = expected[np.newaxis]
    got = stack.pixels()
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    if n == 3:
        reread = sitk.ReadImage(str(path))
        for idx in [(0, 0, 0), (6, 0, 0), (0, 5, 0), (0, 0, 4), (6, 5, 4)]:
            assert np.allclose(stack.geometry.index_to_lps(idx), reread.TransformIndexToPhysicalPoint(idx),
                               atol=1e-4)


@pytest.mark.parametrize("etype", ["MET_SHORT", "MET_USHORT", "MET_INT", "MET_FLOAT", "MET_DOUBLE"])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("key", ["BinaryDataByteOrderMSB", "ElementByteOrderMSB"])
def test_msb_metaimage_equals_simpleitk(tmp_path: Path, etype: str, compress: bool, key: str) -> None:
    dtype = {"MET_SHORT": ">i2", "MET_USHORT": ">u2", "MET_INT": ">i4", "MET_FLOAT": ">f4", "MET_DOUBLE": ">f8"}[etype]
    array = (np.arange(2 * 3 * 4) * 37 - 100).astype(dtype).reshape(2, 3, 4)
    if etype == "MET_USHORT":
        array = (np.arange(24) * 2000).astype(dtype).reshape(2, 3, 4)
    data = array.tobytes()
    extra = "ElementSpacing = 0.5 0.6 2\nOffset = 1 2 3\n" \
            "TransformMatrix = 0 1 0 0 0 -1 -1 0 0\n"
    if compress:
        data = zlib.compress(data)
        extra += f"CompressedData = True\nCompressedDataSize = {len(data)}\n"
    text = _mha_text(etype=etype, extra=extra).replace("BinaryDataByteOrderMSB = False", f"{key} = True")
    path = _write(tmp_path / "v.mha", text, data)
    stack = open_volume(path)
    image = sitk.ReadImage(str(path))
    expected = sitk.GetArrayFromImage(image)
    got = stack.pixels()
    assert got.dtype == expected.dtype and np.array_equal(got, expected) and np.array_equal(got, array)
    for idx in [(0, 0, 0), (3, 0, 0), (0, 2, 0), (0, 0, 1)]:
        assert np.allclose(stack.geometry.index_to_lps(idx), image.TransformIndexToPhysicalPoint(idx), atol=1e-6)


def test_separate_data_file_with_header_size(tmp_path: Path) -> None:
    array = np.arange(24, dtype="<u2").reshape(2, 3, 4)
    (tmp_path / "v.raw").write_bytes(b"junk-prefix!" + array.tobytes())
    for extra in ("HeaderSize = 12\n", "HeaderSize = -1\n"):
        path = _write(tmp_path / "v.mhd", _mha_text(etype="MET_USHORT", extra=extra, datafile="v.raw"))
        stack = open_volume(path)
        assert np.array_equal(stack.pixels(), array)
        assert np.array_equal(stack.pixels(), sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def test_read_voxels_refuses_a_file_shortened_after_the_check(tmp_path: Path) -> None:
    from lumbarview.io.volume import check_volume_header

    path = _write(tmp_path / "v.mha", _mha_text(), bytes(24))
    header = check_volume_header(path)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CorruptFileError, match="holds 23 bytes of voxel data, not the 24"):
        read_voxels(header)


# -- a dataset with bad files beside good ones ---------------------------------------------------------
def test_spider_dataset_with_a_bad_image_and_a_bad_mask_opens_the_rest(tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_spider
    from lumbarview.phantom.spine import LumbarPhantom
    from lumbarview.services.open_dataset import open_path

    root = tmp_path / "spider"
    phantom = LumbarPhantom()
    for patient in (1, 2, 3):
        write_spider(root, phantom, Sizes.small(), patient=patient)
    bad_image = root / "images" / "2_t2.mha"
    shutil.copy(HOSTILE / "ndims-minus-one.mha", bad_image)  # segfaults SimpleITK 2.5.7
    bad_mask = root / "masks" / "3_t1.mha"
    raw = bad_mask.read_bytes()
    cut = raw.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n") + 40
    bad_mask.write_bytes(raw[:cut] + bytes(b ^ 0xFF for b in raw[cut:cut + 64]) + raw[cut + 64:])
    escape = root / "masks" / "1_t2.mha"
    escape.write_bytes(_mha_text(dims="120 120 11", datafile="../../../../etc/passwd").encode())
    ds = open_path(root, use_cache=False)
    assert [c.id for c in ds.cases] == ["1", "2", "3"]
    for case in ds.cases:
        expected = {"t1"} if case.id == "2" else {"t1", "t2"}
        assert {s.description for s in case.series} == expected
        for series in case.series:
            assert series.stacks[0].pixels().shape == series.stacks[0].geometry.shape_kji
    errors = {Path(i.path or "").name + "@" + Path(i.path or "").parent.name: i.message
              for i in ds.all_issues() if i.severity.name == "ERROR"}
    assert "2_t2.mha@images" in errors and "NDims = -1" in errors["2_t2.mha@images"]
    assert "1_t2.mha@masks" in errors and "outside the dataset folder" in errors["1_t2.mha@masks"]
    # The damaged compressed mask opens lazily; its voxels fail clearly, never as zeros.
    case3 = ds.case("3")
    assert case3 is not None
    mask = next(m for m in case3.label_maps if m.name == "3_t1")
    with pytest.raises(CorruptFileError, match="compressed voxel data"):
        mask.stack.pixels()
    good = next(m for m in case3.label_maps if m.name == "3_t2")
    assert good.stack.pixels().max() > 0
