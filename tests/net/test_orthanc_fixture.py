"""The session's Orthanc is a real server: it answers on its own ports and stores what it gets."""

from __future__ import annotations

from tests.net.orthanc import Orthanc


def test_orthanc_answers_with_dicomweb(orthanc: Orthanc) -> None:
    system = orthanc.get_json("/system")
    assert system["DicomAet"] == "ORTHANC"
    assert system["DicomPort"] == orthanc.dicom_port
    plugins = orthanc.get_json("/plugins")
    assert "dicom-web" in plugins
