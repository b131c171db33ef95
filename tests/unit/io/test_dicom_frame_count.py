"""A frame count is an allocation a header asks for (issue 29, class 2): a DICOM file whose
NumberOfFrames is more than its bytes could hold is refused before the per-frame geometry is
built (the fuzz run's 7.6 kB file claiming billions of frames took 2.9 GB and four minutes)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lumbarview.core.errors import CorruptFileError
from lumbarview.io.dicom.headers import read_header


def _write(path: Path, frames: int) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.NumberOfFrames = frames
    ds.Modality = "RTDOSE"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


@pytest.mark.parametrize("frames", [1_000, 100_000])  # small enough that a regression fails, not hangs
def test_more_frames_than_the_file_holds_is_refused(tmp_path: Path, frames: int) -> None:
    path = _write(tmp_path / "f.dcm", frames)
    assert path.stat().st_size < 1000
    with pytest.raises(CorruptFileError, match="NumberOfFrames"):
        read_header(str(path))


def test_a_plausible_frame_count_is_read(tmp_path: Path) -> None:
    header = read_header(str(_write(tmp_path / "f.dcm", 12)))
    assert header.n_frames == 12 and len(header.frames) == 12
