"""DICOM loading on the real files in ../shared/data (see its MANIFEST.md for provenance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.errors import CorruptFileError, LoadError, NothingToOpenError
from lumbarview.io.dicom.dicomdir import read_dicomdir
from lumbarview.services.open_study import open_dicom

pytestmark = pytest.mark.shared_data

PYDICOM_FILES = [
    "CT_small.dcm", "ExplVR_BigEnd.dcm", "JPEG-lossy.dcm", "JPEG2000.dcm",
    "JPEGLSNearLossless_16.dcm", "JPGExtended.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm",
    "MR_truncated.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm",
    "SC_ybr_full_422_uncompressed.dcm", "badVR.dcm", "examples_overlay.dcm",
    "examples_palette.dcm", "examples_ybr_color.dcm", "image_dfl.dcm",
    "meta_missing_tsyntax.dcm", "no_meta.dcm",
]
PYDICOM_DATA_FILES = [
    "JPGLosslessP14SV1_1s_1f_8b.dcm", "MR2_UNCR.dcm", "eCT_Supplemental.dcm", "emri_small.dcm",
    "emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm", "liver.dcm", "mlut_18.dcm", "vlut_04.dcm",
]
#: Files that must fail, and the typed error they must fail with.
EXPECTED_FAILURES = {
    "MR_truncated.dcm": CorruptFileError,
    "meta_missing_tsyntax.dcm": NothingToOpenError,  # no image attributes at all
    "no_meta.dcm": NothingToOpenError,  # starts with a stray byte: not parseable as DICOM
}


def _open_and_decode(path: Path) -> list[np.ndarray]:
    collection = open_dicom(path, use_cache=False)
    return [s.pixels() for s in collection.all_stacks()]


@pytest.mark.parametrize("name", PYDICOM_FILES + PYDICOM_DATA_FILES)
def test_every_pydicom_test_image_opens_or_fails_with_a_typed_error(
        shared_data: Path, name: str) -> None:
    folder = "pydicom-3.0.2" if name in PYDICOM_FILES else "pydicom-data-1.0.0"
    path = shared_data / "pydicom-testfiles" / folder / name
    expected = EXPECTED_FAILURES.get(name)
    if expected is None:
        arrays = _open_and_decode(path)
        assert arrays and all(a.size > 0 and a.ndim == 3 for a in arrays)
    else:
        with pytest.raises(expected) as info:
            _open_and_decode(path)
        message = str(info.value)
        assert str(path) in message and len(message.splitlines()) == 1
        # It says what to do, not only what is wrong.
        assert any(w in message for w in ("re-copy", "Point lumbarview", "Check"))


def test_truncated_file_message_names_the_bytes(shared_data: Path) -> None:
    path = shared_data / "pydicom-testfiles/pydicom-3.0.2/MR_truncated.dcm"
    with pytest.raises(CorruptFileError, match=r"truncated: .* 8192 bytes, 8130 are present"):
        _open_and_decode(path)


def test_twelve_bit_lossy_jpeg_opens_through_gdcm(shared_data: Path) -> None:
    lossy = _open_and_decode(shared_data / "pydicom-testfiles/pydicom-3.0.2/JPEG-lossy.dcm")[0]
    fixed = _open_and_decode(shared_data / "pydicom-testfiles/pydicom-3.0.2/JPGExtended.dcm")[0]
    # The "fixed" copy re-encodes the same lossy image: equal to within one grey level.
    assert lossy.shape == fixed.shape == (1, 1024, 256)
    assert np.abs(lossy.astype(int) - fixed.astype(int)).max() <= 1


def test_missing_decoder_message_names_what_to_install(
        shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lumbarview.core.errors import MissingDecoderError
    from lumbarview.io.dicom import pixels

    # Compressed data is decoded in a child process; decode here so that the patch applies.
    monkeypatch.setenv("LUMBARVIEW_DECODE_IN_PROCESS", "1")
    monkeypatch.setattr(pixels, "_decode_with_gdcm", lambda header: None)
    with pytest.raises(MissingDecoderError) as info:
        _open_and_decode(shared_data / "pydicom-testfiles/pydicom-3.0.2/JPEG-lossy.dcm")
    assert "pip install" in str(info.value) and "python-gdcm" in str(info.value)


def test_bad_vr_is_reported_and_the_image_still_opens(shared_data: Path) -> None:
    c = open_dicom(shared_data / "pydicom-testfiles/pydicom-3.0.2/badVR.dcm", use_cache=False)
    assert any(i.code == "dicom.invalid-value" and "1A" in i.message for i in c.all_issues())
    assert c.all_stacks()[0].pixels().shape == (1, 10, 10)


def test_the_nine_transfer_syntaxes_decode_to_identical_pixels(shared_data: Path) -> None:
    folder = shared_data / "dcm-qa-ts" / "In"
    arrays = []
    for n in range(1, 10):
        (stack,) = open_dicom(folder / f"{n}.dcm", use_cache=False).all_stacks()
        arrays.append(stack.pixels())
    for other in arrays[1:]:
        assert np.array_equal(arrays[0], other)
    assert arrays[0].shape == (1, 384, 384) and int(arrays[0].max()) == 2362


def test_dcm_qa_ts_folder_keeps_the_nine_series_apart(shared_data: Path) -> None:
    c = open_dicom(shared_data / "dcm-qa-ts" / "In", use_cache=False)
    assert sorted(s.number for s in c.all_series()) == list(range(1, 10))
    assert any(i.code == "dicom.series-uid-reused" for i in c.all_issues())


def test_decubitus_hfs_is_one_sagittal_stack_at_4_8_mm_with_a_gap(shared_data: Path) -> None:
    c = open_dicom(shared_data / "dcm-qa-decubitus" / "In" / "HFS", use_cache=False)
    (series,) = c.all_series()
    (stack,) = series.stacks
    assert stack.n_slices == 35
    assert stack.geometry.orientation.value == "sagittal"
    assert stack.meta["slice_spacing_mm"] == pytest.approx(4.8, abs=1e-3)
    assert stack.meta["slice_gap_mm"] == pytest.approx(0.8, abs=1e-3)
    assert any(i.code == "dicom.slice-gap" for i in c.all_issues())
    # First and last slice centres sit at x = -81.6 and +81.6 mm (per the MANIFEST).
    xs = sorted(stack.geometry.index_to_lps((0, 0, k))[0] for k in (0, 34))
    assert xs == pytest.approx([-81.6, 81.6], abs=0.2)
    pixels = stack.pixels()
    assert pixels.shape == (35, 256, 256) and pixels.max() < 4096  # 12-bit


@pytest.mark.parametrize("name", ["DICOMDIR", "DICOMDIR-implicit", "DICOMDIR-bigEnd",
                                  "DICOMDIR-reordered", "DICOMDIR-nooffset"])
def test_dicomdir_variants_list_their_series(shared_data: Path, name: str) -> None:
    path = shared_data / "pydicom-testfiles/pydicom-3.0.2/dicomdirtests" / name
    listing = read_dicomdir(path)
    assert len(listing.files) == 31, [i.message for i in listing.issues]
    c = open_dicom(path, use_cache=False)
    assert len(c.patients) == 2
    descriptions = {s.description for s in c.all_series()}
    assert {"Cervical LAT", "Routine Brain", "FAST LOCALIZER"} <= descriptions


def test_broken_dicomdirs_fall_back_with_an_issue(shared_data: Path) -> None:
    folder = shared_data / "pydicom-testfiles/pydicom-3.0.2/dicomdirtests"
    for name in ("DICOMDIR-empty.dcm", "DICOMDIR-nopatient"):
        listing = read_dicomdir(folder / name)
        assert listing.issues or listing.files, name
    try:
        c = open_dicom(folder / "DICOMDIR-empty.dcm", use_cache=False)
    except LoadError as exc:  # pragma: no cover - depends on what the folder holds
        pytest.fail(f"an empty DICOMDIR must fall back to the folder: {exc}")
    assert any(i.code.startswith("dicomdir.") for i in c.all_issues())
    assert c.all_series()


def test_a_decoder_that_dies_costs_one_file_not_the_process(shared_data: Path) -> None:
    """Compressed pixel data is decoded in a child process: the fuzzed JPEG-LS file that aborts
    GDCM gives a CorruptFileError for that file, and the next compressed file still decodes."""
    from lumbarview.core.errors import CorruptFileError, LoadError

    regressions = Path(__file__).resolve().parents[2] / "fuzz" / "regressions" / "dicom_file"
    crashing = sorted(regressions.glob("JPEGLSNearLossless_16-crash-*.dcm"))
    assert crashing, "the fuzz regression input is missing"
    outcomes = []
    for path in crashing:
        try:
            stacks = open_dicom(path, use_cache=False).all_stacks()
            for stack in stacks:
                stack.pixels()
            outcomes.append("decoded")
        except CorruptFileError as exc:
            outcomes.append("corrupt: " + str(exc))
        except LoadError as exc:
            outcomes.append("load error: " + str(exc))
    assert any("crashed" in o for o in outcomes), outcomes
    good = shared_data / "dcm-qa-ts" / "In" / "2.dcm"
    (stack,) = open_dicom(good, use_cache=False).all_stacks()
    assert stack.pixels().max() > 0
