"""Write lumbarview/selftest_data/jpeg_lossless.dcm: the self-test's JPEG Lossless slice.

pydicom has no JPEG Lossless encoder, so the slice is written natively with pydicom and then
re-encoded by python-gdcm. Its pixels are ``lumbarview.services.selftest.sample_pattern()``; the script
checks that pydicom decodes them back exactly. Run from the repository root:

    PYTHONPATH=. .venv/bin/python packaging/make_selftest_data.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gdcm
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from lumbarview.services.selftest import JPEG_LOSSLESS_SAMPLE, sample_pattern

UID_ROOT = "1.2.826.0.1.3680043.10.1337.77."  # this project's own test UIDs


def native_dataset(pixels: np.ndarray) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = UID_ROOT + "3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = UID_ROOT + "1"
    ds.SeriesInstanceUID = UID_ROOT + "2"
    ds.Modality = "MR"
    ds.PatientName = "Selftest^Phantom"
    ds.PatientID = "SELFTEST"
    ds.SeriesDescription = "lumbarview self-test JPEG Lossless"
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 3.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def main() -> None:
    pixels = sample_pattern()
    with tempfile.TemporaryDirectory() as tmp:
        native = Path(tmp) / "native.dcm"
        native_dataset(pixels).save_as(native, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(native))
        if not reader.Read():
            raise SystemExit("gdcm could not read the native slice")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise SystemExit("gdcm could not encode JPEG Lossless")
        writer = gdcm.ImageWriter()
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        JPEG_LOSSLESS_SAMPLE.parent.mkdir(parents=True, exist_ok=True)
        writer.SetFileName(str(JPEG_LOSSLESS_SAMPLE))
        if not writer.Write():
            raise SystemExit(f"gdcm could not write {JPEG_LOSSLESS_SAMPLE}")
    ds = pydicom.dcmread(JPEG_LOSSLESS_SAMPLE)
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.70", ds.file_meta.TransferSyntaxUID
    assert np.array_equal(ds.pixel_array, pixels), "the encoded slice does not decode back exactly"
    print(f"{JPEG_LOSSLESS_SAMPLE}: {JPEG_LOSSLESS_SAMPLE.stat().st_size} bytes, {ds.file_meta.TransferSyntaxUID}")


if __name__ == "__main__":
    main()
