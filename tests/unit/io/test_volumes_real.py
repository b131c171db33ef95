"""Non-DICOM volumes and tables on the real files in ../shared/data (see its MANIFEST.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.services.open_dataset import open_path

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("rel", ["sct-lumbar-t2/t2_lumbar.nii.gz", "sct-testing-spine/t2/t2.nii.gz",
                                 "sct-testing-spine/t1/t1w.nii.gz"])
def test_nifti_lands_where_simpleitk_puts_it(shared_data: Path, rel: str) -> None:
    path = shared_data / rel
    stack = open_volume(path)
    image = sitk.ReadImage(str(path))
    size = image.GetSize()
    for idx in [(0, 0, 0), (size[0] - 1, 0, 0), (0, size[1] - 1, 0), (0, 0, size[2] - 1),
                (size[0] // 2, size[1] // 3, size[2] - 1)]:
        expected = image.TransformIndexToPhysicalPoint(idx)
        assert np.allclose(stack.geometry.index_to_lps(idx), expected, atol=1e-4), idx
    pixels = stack.pixels()
    assert pixels.shape == stack.geometry.shape_kji
    assert np.array_equal(pixels, sitk.GetArrayFromImage(image))


def test_qform_differs_from_sform_and_negative_qfac(shared_data: Path) -> None:
    """t2.nii.gz has qform_code 2 != sform_code 1 and pixdim[0] = -1: the geometry is the one
    SimpleITK derives (checked above); here, that it is a proper rotation with 1 mm voxels."""
    stack = open_volume(shared_data / "sct-testing-spine/t2/t2.nii.gz")
    d = stack.geometry.ijk_to_lps[:3, :3]
    assert np.allclose(np.linalg.norm(d, axis=0), 1.0, atol=1e-4)
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-4)


def test_float64_label_map_is_converted_exactly(shared_data: Path) -> None:
    labels = open_label_volume(shared_data / "sct-testing-spine/t2/t2_seg-manual_labeled.nii.gz")
    values = labels.pixels()
    assert values.dtype == np.int32
    assert set(np.unique(values)) == {0, 2, 3, 4, 5}
    assert [i.code for i in labels.decode_issues] == ["labels.float-converted"]


def test_labels_overlay_their_image_in_a_plain_folder(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "t2"
    shutil.copytree(shared_data / "sct-testing-spine/t2", folder)
    ds = open_path(folder, use_cache=False)
    assert ds.layout == "folder"
    (case,) = ds.cases
    image = next(s for s in case.series if s.description == "t2").stacks[0]
    names = {m.name: m for m in case.label_maps}
    assert {"t2_seg-manual", "t2_seg-manual_labeled", "t2_seg-deepseg_rootlets-manual"} <= set(names)
    for m in names.values():
        assert m.bound_to == image.uid and m.resampled_from is None  # same grid, no resampling
    cord = names["t2_seg-manual"].stack.pixels() > 0
    img = image.pixels().astype(float)

    def contrast(mask: np.ndarray) -> float:
        ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
        return float(img[ring].mean() / img[mask].mean())

    # On T2 the cord is dark inside bright CSF: the mask as loaded gives the strongest
    # ring-to-inside contrast; the same mask moved 3 voxels any way gives less.
    placed = contrast(cord)
    assert placed > 2.0
    for axis in range(3):
        for shift in (-3, 3):
            assert placed > contrast(np.roll(cord, shift, axis=axis)), (axis, shift)
    assert not any(i.code == "labels.grid-mismatch" for i in ds.all_issues())


def test_mask_on_another_grid_is_resampled_through_patient_space(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(shared_data / "sct-testing-spine/t2/t2.nii.gz", folder / "t2.nii.gz")
    seg = sitk.ReadImage(str(shared_data / "sct-testing-spine/t2/t2_seg-manual.nii.gz"))
    # The same labels on a coarser grid, shifted by half a voxel: not aligned with the image.
    ref = sitk.Image([s // 2 for s in seg.GetSize()], seg.GetPixelID())
    ref.SetSpacing([2 * s for s in seg.GetSpacing()])
    ref.SetDirection(seg.GetDirection())
    ref.SetOrigin(seg.TransformContinuousIndexToPhysicalPoint([0.5, 0.5, 0.5]))
    coarse = sitk.Resample(seg, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    sitk.WriteImage(coarse, str(folder / "t2_seg-coarse.nii.gz"))
    ds = open_path(folder, use_cache=False)
    (case,) = ds.cases
    (mask,) = case.label_maps
    image = case.stack(mask.bound_to or "")
    assert image is not None and mask.resampled_from is not None
    assert any(i.code == "labels.grid-mismatch" for i in ds.all_issues())
    resampled = mask.stack.pixels()
    assert resampled.shape == image.geometry.shape_kji
    original = sitk.GetArrayFromImage(seg) > 0
    got = resampled > 0
    c_orig = image.geometry.index_to_lps(np.argwhere(original)[:, ::-1].astype(float)).mean(axis=0)
    c_got = image.geometry.index_to_lps(np.argwhere(got)[:, ::-1].astype(float)).mean(axis=0)
    assert np.linalg.norm(c_orig - c_got) < 1.5  # within a coarse voxel
    assert (original & got).sum() / original.sum() > 0.6


def test_real_spider_gradings_join_as_they_are(shared_data: Path, tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_spider
    from lumbarview.phantom.spine import LumbarPhantom

    root = tmp_path / "spider"
    phantom = LumbarPhantom()
    sizes = Sizes.small()
    write_spider(root, phantom, sizes, patient=107)
    write_spider(root, phantom, sizes, patient=1)
    shutil.copy(shared_data / "spider-gradings/radiological_gradings.csv", root / "radiological_gradings.csv")
    ds = open_path(root, use_cache=False)
    assert [c.id for c in ds.cases] == ["1", "107"]
    table = next(t for t in ds.tables if t.kind == "spider-gradings")
    assert len(table.rows) == 1520
    case1 = ds.case("1")
    assert case1 is not None
    rows1 = next(t for t in case1.tables if t.kind == "spider-gradings").rows
    assert rows1 and all(r["level"] is not None for r in rows1)
    assert {r["level"] for r in rows1} >= {"L5-S1", "L4-L5"}
    case107 = ds.case("107")
    assert case107 is not None
    rows107 = next(t for t in case107.tables if t.kind == "spider-gradings").rows
    assert any(r["IVD label"] == 0 and r["level"] is None for r in rows107)
    assert any(i.code == "spider.ivd-label" and "107" in i.message for i in ds.all_issues())


def test_liu_sidecars_are_recognised_in_their_bids_tree(shared_data: Path) -> None:
    ds = open_path(shared_data / "liu2024-bids-sidecars", use_cache=False)
    assert ds.layout == "bids"
    assert [c.id for c in ds.cases] == [f"sub-{n:02d}" for n in range(1, 15)]
    for case in ds.cases:
        (doc,) = case.sidecars.values()
        assert doc["SliceThickness"] == 3.3
        assert np.allclose(doc["ImageOrientationPatientDICOM"], [0, 1, 0, 0, 0, -1], atol=1e-6)
        codes = {i.code for i in case.issues}
        assert {"bids.composed", "bids.missing-image"} <= codes
