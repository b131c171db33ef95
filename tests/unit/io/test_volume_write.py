"""The MetaImage and NIfTI writers (``io.volume_write``, used by the phantom and the export) against SimpleITK's writer:
every volume the layouts write reads back (in lumbarview and in SimpleITK) exactly as the same
array and geometry written by SimpleITK do, and SimpleITK reads our files with the geometry they
were given, so that other tools do too."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import SimpleITK as sitk

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.volume import open_volume
from lumbarview.io.volume_write import anatomical_orientation, write_metaimage, write_nifti
from lumbarview.phantom import layouts
from lumbarview.phantom.layouts import Sizes, write_bids, write_spider
from lumbarview.phantom.spine import LumbarPhantom

_Written = tuple[Path, npt.NDArray[Any], VolumeGeometry]


def _sitk_write(path: Path, array_kji: npt.NDArray[Any], geometry: VolumeGeometry) -> Path:
    """What the phantom wrote before: SimpleITK's writer, the format from the suffix."""
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing(tuple(float(s) for s in geometry.spacing_mm))
    image.SetOrigin(tuple(float(v) for v in geometry.index_to_lps((0, 0, 0))))
    direction = geometry.ijk_to_lps[:3, :3] / np.asarray(geometry.spacing_mm)
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


@pytest.fixture(scope="module")
def layout_volumes(tmp_path_factory: pytest.TempPathFactory) -> list[_Written]:
    """Every volume write_spider and write_bids write, with the array and geometry given."""
    written: list[_Written] = []
    real_mha, real_nii = layouts.write_metaimage, layouts.write_nifti

    def record_mha(path: Path, array: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
        written.append((path, np.array(array), geometry))
        real_mha(path, array, geometry)

    def record_nii(path: Path, array: npt.NDArray[Any], geometry: VolumeGeometry) -> None:
        written.append((path, np.array(array), geometry))
        real_nii(path, array, geometry)

    root = tmp_path_factory.mktemp("layouts")
    phantom = LumbarPhantom()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layouts, "write_metaimage", record_mha)
        mp.setattr(layouts, "write_nifti", record_nii)
        write_spider(root / "spider", phantom, Sizes.small())
        write_bids(root / "bids", phantom, Sizes.small())
    assert sorted(p.suffix for p, _a, _g in written) == [".gz", ".gz", ".mha", ".mha", ".mha", ".mha"]
    return written


def _mha_header(path: Path) -> list[str]:
    """The header lines but the compressed size."""
    raw = path.read_bytes()
    end = raw.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    return [line for line in raw[:end].decode("ascii").splitlines() if not line.startswith("CompressedDataSize")]


def _sitk_view(path: Path) -> dict[str, Any]:
    image = sitk.ReadImage(str(path))
    return {"size": image.GetSize(), "spacing": image.GetSpacing(), "origin": image.GetOrigin(),
            "direction": image.GetDirection(), "pixel": image.GetPixelIDTypeAsString(),
            "array": sitk.GetArrayFromImage(image)}


def _check_against_simpleitk(path: Path, array: npt.NDArray[Any], geometry: VolumeGeometry,
                             reference: Path) -> None:
    """MetaImage: bit for bit. NIfTI stores single precision, and our float32 sform may be one
    unit in the last place away from the one ITK computes: equal to 1e-5 mm."""
    _sitk_write(reference, array, geometry)
    exact = path.suffix == ".mha"

    def same(a: Any, b: Any) -> bool:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return bool(np.array_equal(a, b) if exact else np.allclose(a, b, rtol=0, atol=1e-5))

    # 1. lumbarview reads our file as it reads SimpleITK's.
    ours, theirs = open_volume(path), open_volume(reference)
    assert same(ours.geometry.ijk_to_lps, theirs.geometry.ijk_to_lps)
    assert ours.geometry.shape_kji == theirs.geometry.shape_kji == array.shape
    assert ours.meta["pixel_type"] == theirs.meta["pixel_type"]
    got = ours.pixels()
    assert got.dtype == theirs.pixels().dtype == array.dtype and np.array_equal(got, array)
    # 2. SimpleITK reads our file as it reads its own.
    a, b = _sitk_view(path), _sitk_view(reference)
    assert a["size"] == b["size"] and a["pixel"] == b["pixel"]
    for key in ("spacing", "origin", "direction"):
        assert same(a[key], b[key]), key
    assert np.array_equal(a["array"], b["array"]) and np.array_equal(a["array"], array)
    # 3. ... and that is the geometry we gave (to the precision of the format).
    assert np.allclose(ours.geometry.ijk_to_lps, geometry.ijk_to_lps, rtol=0, atol=1e-12 if exact else 1e-4)


def test_every_layout_volume_reads_back_as_simpleitk_writes_it(layout_volumes: list[_Written],
                                                              tmp_path: Path) -> None:
    for n, (path, array, geometry) in enumerate(layout_volumes):
        suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".mha"
        _check_against_simpleitk(path, array, geometry, tmp_path / f"ref{n}{suffix}")


def test_metaimage_header_is_the_one_simpleitk_writes(layout_volumes: list[_Written], tmp_path: Path) -> None:
    """Key for key, number for number; only the compressed size differs (another zlib)."""
    for n, (path, array, geometry) in enumerate(layout_volumes):
        if path.suffix != ".mha":
            continue
        reference = _sitk_write(tmp_path / f"ref{n}.mha", array, geometry)
        assert _mha_header(path) == _mha_header(reference)
        raw = path.read_bytes()
        data = raw[raw.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n"):]
        size = int(raw.split(b"CompressedDataSize = ")[1].split(b"\n")[0])
        assert size == len(data) and zlib.decompress(data) == array.astype(array.dtype.newbyteorder("<")).tobytes()


def test_nifti_is_scanner_anatomical_in_ras_for_other_tools(layout_volumes: list[_Written]) -> None:
    for path, array, geometry in layout_volumes:
        if not path.name.endswith(".nii.gz"):
            continue
        image = nib.load(str(path))
        assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 1
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ geometry.ijk_to_lps
        assert np.allclose(image.affine, ras, atol=1e-4)
        assert np.allclose(image.header.get_qform(), ras, atol=1e-4)
        assert np.array_equal(np.asarray(image.dataobj), array.transpose(2, 1, 0))


def _rotation(seed: int) -> npt.NDArray[np.float64]:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "u2", "i4", "u4", "f4", "f8"])
@pytest.mark.parametrize("suffix", [".mha", ".nii.gz", ".nii"])
def test_oblique_grids_and_every_type_read_back(tmp_path: Path, seed: int, dtype: str, suffix: str) -> None:
    rng = np.random.default_rng(seed)
    rotation = _rotation(seed)
    shape = (3, 4, 5)
    geometry = VolumeGeometry.from_directions(shape, rng.normal(size=3) * 100, rotation[:, 0], rotation[:, 1],
                                              tuple(float(v) for v in rng.uniform(0.3, 4.0, 3)))
    array = (rng.random(shape) * 100).astype(dtype)
    path = tmp_path / f"v{suffix}"
    (write_metaimage if suffix == ".mha" else write_nifti)(path, array, geometry)
    _check_against_simpleitk(path, array, geometry, tmp_path / f"ref{suffix}")
    if suffix == ".mha":  # oblique: the AnatomicalOrientation letters too
        assert _mha_header(path) == _mha_header(tmp_path / f"ref{suffix}")


@pytest.mark.parametrize(("columns", "letters"), [
    (np.eye(3), "RAI"),
    (np.array([[0.0, 0, -1], [1, 0, 0], [0, -1, 0]]), "ASL"),
    (-np.eye(3), "LPS"),
])
def test_anatomical_orientation_letters(columns: npt.NDArray[np.float64], letters: str) -> None:
    assert anatomical_orientation(columns) == letters


def test_the_writers_refuse_a_mismatched_array(tmp_path: Path) -> None:
    geometry = VolumeGeometry.from_directions((2, 3, 4), (0, 0, 0), (1, 0, 0), (0, 1, 0), (1.0, 1.0, 1.0))
    for writer in (write_metaimage, write_nifti):
        with pytest.raises(ValueError, match="shape"):
            writer(tmp_path / "v.mha", np.zeros((4, 3, 2), np.int16), geometry)
