"""NIfTI read without SimpleITK (``io.volume_headers``) against SimpleITK reading the same file.

For every real NIfTI in ../shared/data and for synthetic files covering each header variant ITK
handles, the size, spacing, origin and direction, the pixel type name, and the voxels (values and
dtype) must be *identical* to SimpleITK's: compared with ``==``, not a tolerance. Where we differ
from SimpleITK on purpose, the test says why and checks both sides of the difference.

SimpleITK is a test-only dependency (the ``test`` extra); it is imported unconditionally, so that
a missing SimpleITK fails these tests rather than skipping them.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from lumbarview.core.errors import CorruptFileError, LoadError, UnsupportedFormatError
from lumbarview.core.types import Severity
from lumbarview.io.volume import check_volume_header, open_label_volume, open_volume
from tests.conftest import shared_data_dir

REAL_NIFTI = [
    "chu2015-vb2/VB2_05/VB2_05_t2_iso1mm.nii.gz",
    "chu2015-vb2/VB2_05/VB2_05_t2_iso1mm_vertebrae_mask.nii.gz",
    "chu2015-vb2/VB2_06/VB2_06_t2_iso1mm.nii.gz",
    "chu2015-vb2/VB2_06/VB2_06_t2_iso1mm_vertebrae_mask.nii.gz",
    "chu2015-vb2/VB2_09/VB2_09_t2_iso1mm.nii.gz",
    "chu2015-vb2/VB2_09/VB2_09_t2_iso1mm_vertebrae_mask.nii.gz",
    "sct-lumbar-t2/t2_lumbar.nii.gz",
    "sct-testing-spine/t1/t1w.nii.gz",
    "sct-testing-spine/t1/t1w_seg-manual.nii.gz",
    "sct-testing-spine/t2/labels.nii.gz",
    "sct-testing-spine/t2/t2.nii.gz",
    "sct-testing-spine/t2/t2_seg-deepseg_rootlets-manual.nii.gz",
    "sct-testing-spine/t2/t2_seg-manual.nii.gz",
    "sct-testing-spine/t2/t2_seg-manual_labeled.nii.gz",
]

# -- the two readers ------------------------------------------------------------------------------
def _sitk(path: Path) -> dict[str, Any]:
    image = sitk.ReadImage(str(path))
    n = image.GetDimension()
    array = sitk.GetArrayFromImage(image)
    return {"size": tuple(image.GetSize()), "spacing": np.array(image.GetSpacing()),
            "origin": np.array(image.GetOrigin()), "direction": np.array(image.GetDirection()).reshape(n, n),
            "pixel_type": image.GetPixelIDTypeAsString(), "array": array[np.newaxis] if array.ndim == 2 else array,
            "image": image}


def _ours(path: Path) -> dict[str, Any]:
    header = check_volume_header(path)
    stack = open_volume(path)
    n = len(header.size_ijk)
    return {"size": header.size_ijk, "spacing": np.array(header.spacing_mm), "origin": np.array(header.origin_lps),
            "direction": np.array(header.direction).reshape(n, n), "pixel_type": stack.meta["pixel_type"],
            "array": stack.pixels(), "stack": stack}


def _assert_same(path: Path) -> dict[str, Any]:
    """Our reading of ``path`` equals SimpleITK's exactly; returns ours."""
    ref, got = _sitk(path), _ours(path)
    assert got["size"] == ref["size"]
    for key in ("spacing", "origin", "direction"):
        assert got[key].shape == ref[key].shape, key
        assert np.array_equal(got[key], ref[key]), (key, got[key], ref[key], np.abs(got[key] - ref[key]).max())
    assert got["pixel_type"] == ref["pixel_type"]
    assert got["array"].dtype == ref["array"].dtype
    assert got["array"].shape == ref["array"].shape
    assert np.array_equal(got["array"], ref["array"], equal_nan=True)
    # And through the VolumeGeometry the viewer uses: the same patient position of each corner.
    if len(ref["size"]) == 3:
        i, j, k = (s - 1 for s in ref["size"])
        for idx in [(0, 0, 0), (i, 0, 0), (0, j, 0), (0, 0, k), (i, j, k)]:
            expected = ref["image"].TransformIndexToPhysicalPoint(idx)
            assert np.allclose(got["stack"].geometry.index_to_lps(idx), expected, rtol=0, atol=1e-9), idx
    return got


def _sitk_refuses(path: Path) -> str:
    with pytest.raises(RuntimeError) as info:
        sitk.ReadImage(str(path))
    return str(info.value)


# -- writing synthetic files ------------------------------------------------------------------------
def _save(path: Path, data_xyz: np.ndarray, *, qform: np.ndarray | None = None, qcode: int = 0,
          sform: np.ndarray | None = None, scode: int = 0, endian: str = "<", nifti2: bool = False,
          **raw: Any) -> Path:
    """A NIfTI holding ``data_xyz`` (x fastest). The qform and sform are set through nibabel
    (which derives pixdim and qfac from the qform); ``raw`` fields are then written byte for byte
    over what nibabel wrote (e.g. ``scl_slope``, ``pixdim``, ``intent_code``), so that values
    nibabel would normalise reach the file. ``.nii.gz`` paths are gzipped afterwards."""
    header_class: Any = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    image_class: Any = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    hdr = header_class(endianness=endian)
    hdr.set_data_dtype(data_xyz.dtype)
    if qform is not None:
        hdr.set_qform(qform, qcode)
    if sform is not None:
        hdr.set_sform(sform, scode)
    image = image_class(data_xyz, None, header=hdr)
    gz = path.name.endswith(".gz")
    plain = path.with_name(path.name[:-3]) if gz else path
    nib.save(image, str(plain))
    if raw:
        buf = bytearray(plain.read_bytes())
        fields = header_class.template_dtype.fields
        for name, value in raw.items():
            field_dtype, offset = fields[name][0], fields[name][1]
            data = np.asarray(value, dtype=field_dtype.base).astype(field_dtype.base.newbyteorder(endian))
            buf[offset:offset + data.nbytes] = data.tobytes()
        plain.write_bytes(bytes(buf))
    if gz:
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    return path


def _rotation(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _affine(rotation: np.ndarray, zooms: tuple[float, float, float], offset: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(zooms)
    affine[:3, 3] = offset
    return affine


def _data(shape: tuple[int, ...], dtype: str = "i2", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        return (rng.normal(size=shape) * 1000).astype(dtype)
    return rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), size=shape, endpoint=True).astype(dtype)


_OBLIQUE = _affine(_rotation(3), (0.9375, 0.9375, 3.6), (-120.5, 80.25, -33.0))
_SAGITTAL = _affine(np.array([[0.0, 0, -1], [1, 0, 0], [0, -1, 0]]), (0.6, 0.6, 3.3), (10.0, -150.0, 120.0))


# -- the real files ---------------------------------------------------------------------------------
def test_every_real_nifti_is_listed() -> None:
    shared = shared_data_dir()
    if shared is None:
        pytest.skip(reason="../shared/data is not beside this checkout (set LUMBARVIEW_SHARED_DATA)")
    found = sorted(str(p.relative_to(shared)) for p in shared.rglob("*.nii*"))
    assert found == sorted(REAL_NIFTI)


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", REAL_NIFTI)
def test_real_nifti_equals_simpleitk(shared_data: Path, rel: str) -> None:
    _assert_same(shared_data / rel)


@pytest.mark.shared_data
def test_real_nifti_label_maps_load_as_before(shared_data: Path) -> None:
    labels = open_label_volume(shared_data / "sct-testing-spine/t2/t2_seg-manual_labeled.nii.gz")
    assert labels.pixels().dtype == np.int32
    assert not labels.issues


# -- orientation: which of qform and sform, and how ------------------------------------------------
_ORIENTATIONS: dict[str, dict[str, Any]] = {
    "no-codes": {},
    "sform-only-scanner": {"sform": _OBLIQUE, "scode": 1},
    "sform-only-aligned": {"sform": _OBLIQUE, "scode": 2},
    "qform-only-scanner": {"qform": _OBLIQUE, "qcode": 1},
    "qform-only-mni": {"qform": _SAGITTAL, "qcode": 4},
    "both-same-scanner": {"qform": _OBLIQUE, "qcode": 1, "sform": _OBLIQUE, "scode": 1},
    # sform code SCANNER_ANAT wins over a different qform (t2.nii.gz in shared/data is such a file).
    "both-differ-sform-scanner": {"qform": _SAGITTAL, "qcode": 2, "sform": _OBLIQUE, "scode": 1},
    "both-differ-sform-scanner-flip": {"qform": _OBLIQUE @ np.diag([1.0, 1, -1, 1]), "qcode": 2,
                                       "sform": _OBLIQUE, "scode": 1},
    # A shearing sform is never used; the qform is.
    "sheared-sform-with-qform": {"qform": _OBLIQUE, "qcode": 1, "sform": _OBLIQUE @ np.array(
        [[1.0, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "scode": 1},
    "nearly-orthogonal-sform": {"sform": _OBLIQUE @ np.array(
        [[1.0, 2e-6, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "scode": 1},
    # ITK takes the spacing from pixdim even when the sform's columns are longer.
    "sform-scaled-unlike-pixdim": {"qform": _OBLIQUE, "qcode": 0, "sform": _OBLIQUE @ np.diag([1.5, 2.0, 0.5, 1]),
                                   "scode": 1},
    # A left-handed grid: qfac = pixdim[0] = -1.
    "negative-qfac": {"qform": _OBLIQUE @ np.diag([1.0, 1, -1, 1]), "qcode": 1},
    "negative-qfac-both": {"qform": _SAGITTAL @ np.diag([1.0, 1, -1, 1]), "qcode": 1,
                           "sform": _SAGITTAL @ np.diag([1.0, 1, -1, 1]), "scode": 1},
    # The 180-degree quaternion (a = 0) niftilib normalises.
    "qform-180-degrees": {"qform": _affine(np.diag([-1.0, -1, 1]), (0.5, 0.5, 2.0), (1.0, 2.0, 3.0)), "qcode": 1},
    "qform-180-degrees-x": {"qform": _affine(np.diag([1.0, -1, -1]), (0.5, 0.7, 2.0), (1.0, 2.0, 3.0)), "qcode": 1},
}


@pytest.mark.parametrize("name", sorted(_ORIENTATIONS))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_orientation_equals_simpleitk(tmp_path: Path, name: str, suffix: str) -> None:
    path = _save(tmp_path / f"v{suffix}", _data((5, 6, 7)), **_ORIENTATIONS[name])
    _assert_same(path)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("qcode", "scode"), [(1, 1), (1, 0), (0, 1), (2, 1), (3, 0), (0, 4)])
def test_random_oblique_grids_equal_simpleitk(tmp_path: Path, seed: int, qcode: int, scode: int) -> None:
    rng = np.random.default_rng(seed)
    zooms = tuple(float(z) for z in rng.uniform(0.2, 4.0, 3))
    affine = _affine(_rotation(100 + seed), zooms, tuple(float(v) for v in rng.normal(size=3) * 150))
    if rng.random() < 0.5:
        affine = affine @ np.diag([1.0, 1, -1, 1])
    # A different sform for qform-and-sform headers: ITK still takes the SCANNER_ANAT sform.
    sform = _affine(_rotation(200 + seed), zooms, (1.0, 2.0, 3.0)) if (qcode, scode) == (2, 1) else affine
    path = _save(tmp_path / "v.nii", _data((4, 5, 3)), qform=affine, qcode=qcode, sform=sform, scode=scode)
    _assert_same(path)


def test_sheared_sform_and_no_qform_is_refused_as_itk_refuses_it(tmp_path: Path) -> None:
    shear = _OBLIQUE @ np.array([[1.0, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    path = _save(tmp_path / "v.nii", _data((5, 6, 7)), sform=shear, scode=1)
    assert "No orthonormal definition found" in _sitk_refuses(path)
    with pytest.raises(UnsupportedFormatError, match="shears the voxel grid"):
        open_volume(path)


# ITK's choice between a qform and a sform of code ALIGNED_ANAT, TALAIRACH or MNI_152 compares the
# left singular vectors of the two matrices (vnl_svd<float>, LINPACK); their signs are arbitrary,
# so SimpleITK 2.5.7 takes either matrix, as the signs fall, for two headers a flip apart or equal
# to 1e-7. We take the sform when the two describe the same grid within 1e-4 (then either is the
# same grid to 1e-4 mm), the qform otherwise (ITK's stated intent), and say so in a warning.
@pytest.mark.parametrize("seed", range(6))
def test_disagreeing_qform_and_sform_give_the_qform_and_a_warning(tmp_path: Path, seed: int) -> None:
    qform = _affine(_rotation(300 + seed), (0.8, 0.9, 3.0), (5.0, -6.0, 7.0))
    sform = qform @ np.diag([1.0, 1, -1, 1])  # the slice axis reversed: a mirror image
    path = _save(tmp_path / "v.nii", _data((4, 5, 6)), qform=qform, qcode=1, sform=sform, scode=2)
    got = _ours(path)
    h = nib.load(str(path)).header
    qform_dir = (np.diag([-1.0, -1, 1]) @ h.get_qform()[:3, :3]) / np.array([0.8, 0.9, 3.0])
    sform_dir = (np.diag([-1.0, -1, 1]) @ h.get_sform()[:3, :3]) / np.array([0.8, 0.9, 3.0])
    assert np.allclose(got["direction"], qform_dir, atol=1e-6)
    (issue,) = [i for i in got["stack"].issues if i.code == "volume.orientation-conflict"]
    assert issue.severity is Severity.WARNING
    assert "qform (code 1) and sform (code 2)" in issue.message and "the qform was used" in issue.message
    ref = _sitk(path)
    assert np.allclose(ref["direction"], qform_dir, atol=1e-6) or np.allclose(ref["direction"], sform_dir, atol=1e-6)
    assert np.array_equal(got["array"], ref["array"])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scode", [2, 3, 4])
def test_agreeing_qform_and_sform_of_a_non_scanner_code_give_the_sform(tmp_path: Path, seed: int,
                                                                      scode: int) -> None:
    affine = _affine(_rotation(400 + seed), (0.7, 0.7, 2.5), (-10.0, 20.0, 30.0))
    path = _save(tmp_path / "v.nii", _data((4, 5, 6)), qform=affine, qcode=2, sform=affine, scode=scode)
    got, ref = _ours(path), _sitk(path)
    sform = np.diag([-1.0, -1, 1]) @ nib.load(str(path)).header.get_sform()[:3, :3]
    assert np.allclose(got["direction"], sform / np.linalg.norm(sform, axis=0), rtol=0, atol=1e-12)
    # SimpleITK took the sform or the (float-rounded) qform: the same grid to 1e-6.
    for key in ("spacing", "origin", "direction"):
        assert np.allclose(got[key], ref[key], rtol=0, atol=1e-5), key
    assert not [i for i in got["stack"].issues if i.code == "volume.orientation-conflict"]


# -- sizes, dimensions, units ----------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "raw"), [
    ((6, 7), {}),  # 2D: a [1, j, i] array and the 2 x 2 block of the orientation
    ((6, 7, 1), {}),  # 3D of one slice
    ((6, 7, 5, 1), {}),  # 4D with one volume: ITK drops the time axis
    ((6, 7, 5, 1, 1), {}),  # 5D with ones
    ((6, 7, 5), {"intent_code": 1007}),  # a one-component vector image
    ((6, 7, 1), {"intent_code": 1007}),  # ... whose axes ITK counts to the last longer than 1
    ((6, 7, 5), {"intent_code": 2}),  # a statistic intent: a plain image
    ((6, 7, 5), {"xyzt_units": 1}),  # metres: spacing and origin scaled to mm
    ((6, 7, 5), {"xyzt_units": 3}),  # microns
    ((6, 7, 5), {"xyzt_units": 10}),  # mm and seconds
])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_dimensions_and_units_equal_simpleitk(tmp_path: Path, shape: tuple[int, ...], raw: dict[str, Any],
                                              suffix: str) -> None:
    path = _save(tmp_path / f"v{suffix}", _data(shape), qform=_SAGITTAL, qcode=2, sform=_OBLIQUE, scode=1, **raw)
    _assert_same(path)


def test_2d_image_whose_plane_is_not_the_xy_plane_is_refused_as_itk_refuses_it(tmp_path: Path) -> None:
    # ITK keeps the 2 x 2 block of a 3D orientation: for a sagittal slice it is singular.
    path = _save(tmp_path / "v.nii", _data((6, 7)), qform=_SAGITTAL, qcode=1)
    assert "determinant is 0" in _sitk_refuses(path)
    with pytest.raises(CorruptFileError, match="direction"):
        open_volume(path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_voxels_after_extension_room_equal_simpleitk(tmp_path: Path, suffix: str) -> None:
    plain = _save(tmp_path / "p.nii", _data((6, 7, 5)), qform=_OBLIQUE, qcode=1).read_bytes()
    moved = bytearray(plain[:352] + bytes(1024 - 352) + plain[352:])
    moved[108:112] = np.float32(1024.0).tobytes()  # vox_offset
    path = tmp_path / f"v{suffix}"
    path.write_bytes(gzip.compress(bytes(moved)) if suffix == ".nii.gz" else bytes(moved))
    _assert_same(path)


def test_one_dimensional_vector_image_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "v.nii", _data((6, 1, 1)), qform=_OBLIQUE, qcode=1, intent_code=1007)
    assert "dimension of 1" in _sitk_refuses(path)
    with pytest.raises(UnsupportedFormatError, match="not a 2D or 3D volume"):
        open_volume(path)


# -- pixel types, byte order, intensity scaling ----------------------------------------------------
_DTYPES = ["u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(("slope", "inter"), [(1.0, 0.0), (0.0, 0.0), (2.5, -1024.0), (0.0, 3.0), (1.0, 0.5),
                                              (-0.001, 7.0), (np.nan, 5.0), (np.inf, 0.0)])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_pixels_and_scaling_equal_simpleitk(tmp_path: Path, dtype: str, endian: str, slope: float, inter: float,
                                            suffix: str) -> None:
    data = _data((5, 4, 3), dtype, seed=len(dtype))
    path = _save(tmp_path / f"v{suffix}", data, qform=_SAGITTAL, qcode=1, endian=endian,
                 scl_slope=slope, scl_inter=inter)
    got = _assert_same(path)
    # ITK's rule, independently: a non-finite slope reads as 0, and a zero slope as 1.
    effective = slope if np.isfinite(slope) and slope != 0.0 else 1.0
    if effective != 1.0 or inter != 0.0:
        assert got["array"].dtype == (np.float64 if dtype == "f8" else np.float32)
    else:
        assert np.array_equal(got["array"], data.transpose(2, 1, 0))


def test_large_integers_are_rescaled_through_float32_as_itk_does(tmp_path: Path) -> None:
    data = np.array([[[2**31 - 1, -(2**31), 16_777_217, 3]]], dtype=np.int32).reshape(4, 1, 1)
    path = _save(tmp_path / "v.nii", data, qform=_SAGITTAL, qcode=1, scl_slope=1.0, scl_inter=0.25)
    _assert_same(path)


# -- gzip: members, trailing bytes, damage -----------------------------------------------------------
def test_multi_member_and_trailing_bytes_gzip_equal_simpleitk(tmp_path: Path) -> None:
    plain = _save(tmp_path / "p.nii", _data((9, 8, 7)), qform=_OBLIQUE, qcode=1).read_bytes()
    members = tmp_path / "members.nii.gz"  # as bgzip or pigz --independent write them
    members.write_bytes(b"".join(gzip.compress(plain[i:i + 300]) for i in range(0, len(plain), 300)))
    _assert_same(members)
    trailing = tmp_path / "trailing.nii.gz"
    trailing.write_bytes(gzip.compress(plain) + b"not gzip, ignored by gzread")
    _assert_same(trailing)


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.99])
def test_truncated_files_are_corrupt_not_zeros(tmp_path: Path, cut: float) -> None:
    for name in ("v.nii", "v.nii.gz"):
        path = _save(tmp_path / name, _data((20, 20, 10)), qform=_OBLIQUE, qcode=1)
        raw = path.read_bytes()
        path.write_bytes(raw[:max(400, int(len(raw) * cut))])
        with pytest.raises(CorruptFileError, match="truncated"):
            open_volume(path).pixels()


def test_a_damaged_deflate_stream_is_caught_by_its_checksum(tmp_path: Path) -> None:
    path = _save(tmp_path / "v.nii.gz", _data((20, 20, 10)), qform=_OBLIQUE, qcode=1)
    raw = bytearray(path.read_bytes())
    caught = 0
    for at in range(len(raw) // 3, len(raw) - 8, max(1, len(raw) // 40)):
        damaged = bytearray(raw)
        damaged[at] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            open_volume(path).pixels()
        except CorruptFileError:
            caught += 1
    assert caught == len(range(len(raw) // 3, len(raw) - 8, max(1, len(raw) // 40)))


# -- where we differ from SimpleITK on purpose ---------------------------------------------------------
def test_nifti2_is_read_like_its_nifti1_twin(tmp_path: Path) -> None:
    """SimpleITK 2.5.7 cannot read NIfTI-2 at all; we read it by the same rules, in double
    precision: it lands where SimpleITK puts the same header written as NIfTI-1."""
    data = _data((4, 5, 6), "i2")
    twin = _save(tmp_path / "one.nii", data, qform=_OBLIQUE, qcode=1, sform=_SAGITTAL, scode=2,
                 scl_slope=2.0, scl_inter=-3.0)
    h1 = nib.Nifti1Header.from_fileobj(twin.open("rb"))
    h2 = nib.Nifti2Header()
    h2.set_data_dtype(data.dtype)
    h2.set_data_shape(data.shape)
    for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                "qoffset_z", "srow_x", "srow_y", "srow_z", "pixdim", "scl_slope", "scl_inter"):
        h2[key] = h1[key]
    h2["vox_offset"] = 544
    two = tmp_path / "two.nii.gz"
    buf = io.BytesIO()
    h2.write_to(buf)  # the header and the 4-byte extension flag
    assert buf.tell() == 544
    two.write_bytes(gzip.compress(buf.getvalue() + data.tobytes(order="F")))
    assert "Unable to determine ImageIO reader" in _sitk_refuses(two)
    ref, got = _sitk(twin), _ours(two)
    assert got["size"] == ref["size"] and got["pixel_type"] == ref["pixel_type"]
    for key in ("spacing", "origin", "direction"):
        assert np.allclose(got[key], ref[key], rtol=0, atol=1e-5), key
    assert got["array"].dtype == ref["array"].dtype and np.array_equal(got["array"], ref["array"])


def test_a_gz_beside_its_uncompressed_twin_reads_itself(tmp_path: Path) -> None:
    """niftilib, asked for x.nii.gz, reads x.nii when one lies beside it; we read the file named."""
    gz = _save(tmp_path / "x.nii.gz", np.full((3, 3, 3), 7, np.int16), qform=_OBLIQUE, qcode=1)
    _save(tmp_path / "x.nii", np.full((3, 3, 3), 9, np.int16), qform=_OBLIQUE, qcode=1)
    assert np.all(sitk.GetArrayFromImage(sitk.ReadImage(str(gz))) == 9)
    assert np.all(open_volume(gz).pixels() == 7)


@pytest.mark.parametrize(("raw", "sitk_reads", "error", "match"), [
    # ITK reads a one-component displacement field but "converts" it from RAS as if each voxel
    # were three components (nonsense values), and fails on the other two: refused up front.
    ({"intent_code": 1006}, True, UnsupportedFormatError, "intent 1006"),
    ({"intent_code": 1005}, False, UnsupportedFormatError, "intent 1005"),
    ({"intent_code": 1004}, False, UnsupportedFormatError, "intent 1004"),
    # nibabel's header checks, kept from before (lumbarview refused these when SimpleITK read the
    # pixels too): ITK reads qfac 0 as 1 and normalises a quaternion longer than 1.
    ({"pixdim": [0.0, 0.6, 0.6, 3.3, 1, 1, 1, 1]}, True, CorruptFileError, "qfac"),
    ({"quatern_b": 0.9, "quatern_c": 0.9}, True, CorruptFileError, "NIfTI header is invalid"),
    # ... and ITK reads a non-finite intercept beside a valid slope as 0.
    ({"scl_slope": 2.0, "scl_inter": np.nan}, True, CorruptFileError, "invalid intercept"),
    # A negative voxel size: ITK flips that axis; refused as before (by nibabel's qform check
    # here, by ours when there is no qform).
    ({"pixdim": [1.0, 0.6, -0.6, 3.3, 1, 1, 1, 1]}, True, CorruptFileError, "pixdims"),
])
def test_headers_refused_on_purpose(tmp_path: Path, raw: dict[str, Any], sitk_reads: bool, error: type[LoadError],
                                    match: str) -> None:
    path = _save(tmp_path / "v.nii", _data((5, 6, 7), "f4"), qform=_SAGITTAL, qcode=1, **raw)
    if sitk_reads:
        assert sitk.ReadImage(str(path)).GetSize() == (5, 6, 7)
    else:
        _sitk_refuses(path)
    with pytest.raises(error, match=match):
        open_volume(path).pixels()


def test_no_simpleitk_in_the_reader() -> None:
    import lumbarview.io.volume as volume
    import lumbarview.io.volume_headers as headers

    for module in (volume, headers):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "import SimpleITK" not in source and "sitk." not in source
