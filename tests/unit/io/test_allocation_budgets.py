"""Budgets count every allocation a file can ask for (issue 29, classes 4, 5 and 6): a
compressed NIfTI's ``vox_offset``, a gzip NRRD's ``byte skip``, the working memory of
resampling labels onto another file's grid. Each input is built here; each is read in a child
process whose peak memory (``ru_maxrss``, after the imports) must stay within the budget that
applies plus 100 MB."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

MARGIN_MB = 100

_PROBE = textwrap.dedent('''
    import json, resource, sys
    import numpy as np
    from lumbarview.core.errors import LoadError
    from lumbarview.io.volume import open_label_volume, open_volume, resample_labels_to
    from lumbarview.core.geometry import VolumeGeometry
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = {}
    try:
        exec(sys.argv[1])
    except LoadError as exc:
        outcome["error"] = type(exc).__name__
        outcome["message"] = str(exc)
        outcome["variable"] = getattr(exc, "variable", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome["peak_mb"] = (peak - base) / 1024.0
    print(json.dumps(outcome))
''')


def _probe(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` (it may set ``outcome[...]``) in a child; its LoadError and peak memory."""
    done = subprocess.run([sys.executable, "-c", _PROBE, textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _zeros_gzip(out, n_zero: int, tail: bytes, wbits: int = 31) -> None:
    """``n_zero`` zero bytes then ``tail``, deflated a megabyte at a time (never held whole)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    block = bytes(1 << 20)
    left = n_zero
    while left:
        out.write(packer.compress(block[:min(left, len(block))]))
        left -= min(left, len(block))
    out.write(packer.compress(tail))
    out.write(packer.flush())


def _nifti_header(shape: tuple[int, int, int], vox_offset: int) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = vox_offset
    return header.binaryblock + bytes(4)


def test_a_60_byte_nifti_gz_asking_1_tib_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "v.nii.gz"
    path.write_bytes(gzip.compress(_nifti_header((2, 2, 2), 1 << 40), 9))
    assert len(path.read_bytes()) < 120
    outcome = _probe(f"open_volume({str(path)!r}).pixels()")
    assert outcome.get("error") == "CorruptFileError", outcome
    assert "inflate to at most" in outcome["message"]
    assert outcome["peak_mb"] < MARGIN_MB


def test_a_genuine_large_vox_offset_is_skipped_by_streaming(tmp_path: Path) -> None:
    """400 MB of padding before 8 voxels: the voxels come back, the padding is never held."""
    shape = (2, 2, 2)
    pad = 400 << 20
    voxels = np.arange(8, dtype="<i2")
    path = tmp_path / "v.nii.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        head = _nifti_header(shape, 352 + pad)
        out.write(head)
        block = bytes(1 << 20)
        for _ in range(pad // len(block)):
            out.write(block)
        out.write(voxels.tobytes())
    outcome = _probe(f"outcome['sum'] = int(open_volume({str(path)!r}).pixels().sum())")
    assert "error" not in outcome, outcome
    assert outcome["sum"] == int(voxels.sum())
    assert outcome["peak_mb"] < MARGIN_MB  # the file asks for 400 MB before its voxels


_NRRD_GZ = ("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: gzip\nbyte skip: {skip}\n"
            "space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
            "space origin: (0,0,0)\n\n")


def test_a_gzip_nrrd_byte_skip_is_streamed_not_held(tmp_path: Path) -> None:
    skip = 400 << 20
    path = tmp_path / "v.nrrd"
    with open(path, "wb") as out:
        out.write(_NRRD_GZ.format(skip=skip).encode())
        _zeros_gzip(out, skip, bytes(range(1, 9)))
    assert path.stat().st_size < 2 << 20  # a 1-2 MB file describing 8 voxels
    outcome = _probe(f"outcome['values'] = open_volume({str(path)!r}).pixels().ravel().tolist()")
    assert "error" not in outcome, outcome
    assert sorted(outcome["values"]) == list(range(1, 9))
    assert outcome["peak_mb"] < MARGIN_MB


@pytest.mark.parametrize("skip", [1 << 63, 10**25, 1 << 40])
def test_a_byte_skip_the_file_cannot_hold_is_a_clear_message(tmp_path: Path, skip: int) -> None:
    path = tmp_path / "v.nrrd"
    with open(path, "wb") as out:
        out.write(_NRRD_GZ.format(skip=skip).encode())
        _zeros_gzip(out, 0, bytes(8))
    outcome = _probe(f"open_volume({str(path)!r}).pixels()")
    assert outcome.get("error") == "CorruptFileError", outcome
    assert "byte skip" in outcome["message"] and "\n" not in outcome["message"]


def _label_file(path: Path) -> None:
    import SimpleITK as sitk

    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:6, 2:6, 2:6] = 3
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((4.0, 4.0, 4.0))
    sitk.WriteImage(image, str(path))


def test_resampling_onto_a_claimed_1000_cubed_grid_is_refused_by_the_volume_budget(tmp_path: Path) -> None:
    """The grid comes from another file's header (a 1.3 kB image header claiming 1000^3
    voxels): the budget refuses it, naming the variable, before any working array exists."""
    _label_file(tmp_path / "m.mha")
    code = f'''
        grid = VolumeGeometry((1000, 1000, 1000), np.diag([0.03, 0.03, 0.03, 1.0]))
        resample_labels_to(open_label_volume({str(tmp_path / "m.mha")!r}), grid)
    '''
    outcome = _probe(code, {"LUMBARVIEW_MAX_VOLUME_MB": "1024"})
    assert outcome.get("error") == "ResourceLimitError", outcome
    assert "LUMBARVIEW_MAX_VOLUME_MB" in outcome["message"]
    assert outcome["peak_mb"] < MARGIN_MB


def test_resampling_works_in_slabs(tmp_path: Path) -> None:
    """A 200^3 grid: 32 MB of int32 output; the whole-grid index arrays would take ~800 MB."""
    _label_file(tmp_path / "m.mha")
    code = f'''
        grid = VolumeGeometry((200, 200, 200), np.diag([0.16, 0.16, 0.16, 1.0]))
        out = resample_labels_to(open_label_volume({str(tmp_path / "m.mha")!r}), grid)
        outcome['shape'] = list(out.shape)
        # voxel centre (i, j, k) = 0.16 * index mm; the label cube spans 8..24 mm -> ~ 50..150
        outcome['inside'] = int(out[100, 100, 100]); outcome['outside'] = int(out[5, 5, 5])
        outcome['count'] = int((out == 3).sum())
    '''
    outcome = _probe(code)
    assert "error" not in outcome, outcome
    assert outcome["shape"] == [200, 200, 200]
    assert (outcome["inside"], outcome["outside"]) == (3, 0)
    # 16 mm cube / 0.16 mm = ~100 voxels a side (nearest neighbour at the edges: 99-101)
    assert 99**3 <= outcome["count"] <= 101**3
    assert outcome["peak_mb"] < 32 + MARGIN_MB


def test_a_spider_image_header_claiming_1000_cubed_is_refused_when_its_mask_is_bound(tmp_path: Path) -> None:
    """The campaign's class 6 through the real opener: a 1.3 kB compressed image header claims
    1000^3 voxels (inside the voxel and volume budgets as an image); binding its mask would
    resample the labels onto that grid (4 bytes a voxel): one ``load.limit`` issue naming the
    variable, nothing allocated, the rest of the dataset opens."""
    from tests.spider_helpers import spider_cases

    root = spider_cases(tmp_path / "source", tmp_path / "spider", 2)
    payload = zlib.compress(bytes(1000))
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"CompressedData = True\nCompressedDataSize = {len(payload)}\n"
              "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = 0.1 0.1 0.1\n"
              "DimSize = 1000 1000 1000\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    image = root / "images" / "2_t2.mha"
    image.unlink()
    image.write_bytes(header.encode() + payload)
    assert image.stat().st_size < 1400
    code = f'''
        from lumbarview.services.open_dataset import open_path
        dataset = open_path({str(root)!r}, use_cache=False)
        limited = [i for i in dataset.all_issues() if i.code == "load.limit"]
        outcome['limited'] = [(i.path, i.message) for i in limited]
        outcome['cases'] = sorted(c.id for c in dataset.cases)
        outcome['maps'] = {{c.id: [m.name for m in c.label_maps] for c in dataset.cases}}
    '''
    outcome = _probe(code, {"LUMBARVIEW_MAX_VOLUME_MB": "1024"})
    assert "error" not in outcome, outcome
    assert outcome["cases"] == ["1", "2"]
    mask_issues = [m for p, m in outcome["limited"] if p.endswith("2_t2.mha") and "masks" in p]
    assert len(mask_issues) == 1 and "LUMBARVIEW_MAX_VOLUME_MB" in mask_issues[0], outcome["limited"]
    assert "2_t2" not in outcome["maps"]["2"] and "1_t2" in outcome["maps"]["1"]
    assert outcome["peak_mb"] < MARGIN_MB
