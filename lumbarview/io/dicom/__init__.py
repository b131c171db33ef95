"""lumbarview.io.dicom."""
