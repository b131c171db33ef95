"""De-identified export (issue 26): the Basic Profile driven by Table E.1-1, identities kept
consistent under a project key, dates shifted with intervals kept, the burned-in guard, SR
references, pixels and geometry unchanged, and nothing recognisable left in any output byte."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from lumbarview.services import export as measurement_export
from lumbarview.services import sr
from lumbarview.services.deidentify.dicom import deidentify
from lumbarview.services.deidentify.export import ExportError, ExportRequest, export
from lumbarview.services.deidentify.identity import Identities, read_or_create_key
from lumbarview.services.deidentify.profile import Profile, ProfileOptions, load_table
from lumbarview.services.open_dataset import open_path
from tests.dicom_helpers import sagittal, write_series

MARK = "QZV"  # every recognisable text value starts with this
KEY = b"k" * 40


def _marked_text(tag: int, vr: str) -> Any:
    if vr == "DA":
        return "19870314"
    if vr == "TM":
        return "131415.161718"
    if vr == "DT":
        return "19870314131415"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.9.7777.{tag}"
    if vr == "AS":
        return "047Y"
    if vr in ("IS",):
        return "7345"
    if vr == "DS":
        return "73.45"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 7345
    if vr in ("FL", "FD"):
        return 73.45
    if vr == "AT":
        return 0x00100010
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return f"{MARK}{tag:08X}".encode()
    if vr == "CS":
        return f"{MARK}{tag:08X}"[:16]
    if vr == "AE":
        return f"{MARK}{tag:08X}"[:16]
    if vr in ("SH",):
        return f"{MARK}{tag:08X}"
    return f"{MARK}{tag:08X}"


def _item(tag: int) -> Dataset:
    item = Dataset()
    item.PatientName = f"{MARK}ITEM{tag:08X}"
    item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.9.7777.1.{tag}"
    return item


def every_attribute() -> tuple[dict[int, Any], list[str]]:
    """Each public, non-repeating attribute of Table E.1-1 with a recognisable value (and the
    table rows pydicom's dictionary does not know, which cannot be written)."""
    values: dict[int, Any] = {}
    unknown: list[str] = []
    for row in load_table().rows:
        if "x" in row.tag or row.tag == "ggggeeee":
            continue
        tag = int(row.tag, 16)
        if tag >> 16 in (0x0000, 0x0002, 0xFFFA, 0xFFFC) or tag == 0x7FE00010:
            continue  # command, file meta, signatures and padding: not written in a data set
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            unknown.append(row.tag)
            continue
        values[tag] = Sequence([_item(tag)]) if vr == "SQ" else _marked_text(tag, vr)
    return values, unknown


def _add_everything(ds: Dataset, values: dict[int, Any]) -> None:
    for tag, value in values.items():
        vr = dictionary_VR(tag).split(" or ")[0]
        if tag in (0x00100010, 0x00100020):
            ds.add_new(tag, vr, f"{MARK}PATIENT")
        elif tag in (0x0020000D, 0x0020000E, 0x00080018, 0x00200052, 0x00080016):
            continue  # the series' own identities (their replacement is tested on the written ones)
        else:
            ds.add_new(tag, vr, value)
    ds.add_new(0x60004000, "LT", f"{MARK}OVERLAY")  # a repeating group
    block = ds.private_block(0x0029, f"{MARK} CREATOR", create=True)
    block.add_new(0x10, "LO", f"{MARK}PRIVATE")


def synthetic_study(folder: Path, patient: str = "P1", study: str = "S", study_date: str = "19870314",
                    name: str = "sag t2") -> list[Path]:
    files = write_series(folder, sagittal(n=4, rows=12, cols=10), name, patient_id=patient, study=study)
    values, _unknown = every_attribute()
    for path in files:
        ds = pydicom.dcmread(path)
        _add_everything(ds, values)
        ds.PatientID = f"{MARK}{patient}"
        ds.StudyDate = study_date
        ds.file_meta.SourceApplicationEntityTitle = f"{MARK}AET"
        ds.save_as(path)
    return files


def _walk(ds: Dataset, depth: int = 0):  # type: ignore[no-untyped-def]
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, depth + 1)


def _out_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _dicoms(root: Path) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in _out_files(root) if p.suffix == ".dcm"]


def test_the_table_is_the_standards_2024b_with_its_version_and_every_row() -> None:
    table = load_table()
    assert table.version == "2024b" and "PS3.15" in table.source
    assert len(table.rows) == 621  # the rows of 2024b's Table E.1-1
    profile = Profile()
    # spot checks against the standard's text
    assert profile.action(0x00100010) == "Z"  # Patient's Name
    assert profile.action(0x00080018) == "U"  # SOP Instance UID
    assert profile.action(0x0008103E) == "X"  # Series Description
    assert profile.action(0x00080080) == "D"  # Institution Name: X/Z/D
    assert profile.action(0x60004000) == "X"  # Overlay Comments, a repeating group
    assert profile.action(0x00280030) is None  # Pixel Spacing: not in the table, kept
    options = Profile(ProfileOptions(retain_longitudinal_modified_dates=True, retain_patient_characteristics=True,
                                     clean_descriptors=True))
    assert options.action(0x00080020) == "C" and options.action(0x00101010) == "K"
    assert options.action(0x0008103E) == "C"
    assert [c for c, _ in options.method_codes()] == ["113100", "113107", "113108", "113105"]


def test_synthetic_study_with_every_table_attribute_keeps_nothing_recognisable(tmp_path: Path) -> None:
    values, unknown = every_attribute()
    assert len(values) > 550, f"only {len(values)} of the table's attributes could be written ({unknown[:5]})"
    synthetic_study(tmp_path / "src" / "P1")
    originals = {(int(e.tag), d): e.value for e, d in _walk(pydicom.dcmread(
        sorted((tmp_path / "src").rglob("*.dcm"))[0]))}
    report = export(ExportRequest(tmp_path / "src", tmp_path / "out", key=KEY))
    assert report.exported and not report.held_back
    profile = Profile()
    checked = 0
    for ds in _dicoms(tmp_path / "out"):
        assert ds.PatientIdentityRemoved == "YES"
        assert "113100" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert not any(e.tag.is_private for e, _ in _walk(ds))
        for elem, depth in _walk(ds):
            action = profile.action(int(elem.tag))
            if action in ("X", "Z", "D", "U") and elem.VR != "SQ" and (int(elem.tag), depth) in originals:
                assert elem.value != originals[(int(elem.tag), depth)] or elem.value in ("", None), \
                    f"{elem.tag} {elem.keyword} kept its value under action {action}"
                checked += 1
        removed = [t for (t, d), _v in originals.items() if d == 0 and profile.action(t) == "X" and t in ds]
        assert not removed
    assert checked > 100
    # nothing recognisable anywhere: files, headers, sidecars, reports
    for path in _out_files(tmp_path / "out"):
        data = path.read_bytes()
        for needle in (MARK.encode(), b"19870314", b"131415", b"1.2.826.0.1.3680043.9.7777"):
            assert needle not in data, f"{needle!r} left in {path.name}"
    assert KEY not in b"".join(p.read_bytes() for p in _out_files(tmp_path / "out"))
    # the control: a copy that is not de-identified does carry the marks the search looks for
    export(ExportRequest(tmp_path / "src", tmp_path / "copy", deidentify=False))
    copied = b"".join(p.read_bytes() for p in _out_files(tmp_path / "copy"))
    assert MARK.encode() in copied and b"19870314" in copied


def test_pixels_and_geometry_are_kept_bit_for_bit(tmp_path: Path) -> None:
    files = synthetic_study(tmp_path / "src" / "P1")
    export(ExportRequest(tmp_path / "src", tmp_path / "out"))
    before = {pydicom.dcmread(f).InstanceNumber: pydicom.dcmread(f) for f in files}
    after = {ds.InstanceNumber: ds for ds in _dicoms(tmp_path / "out")}
    assert sorted(before) == sorted(after)
    for n, ds in after.items():
        assert ds.PixelData == before[n].PixelData
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                        "Rows", "Columns"):
            assert ds.get(keyword) == before[n].get(keyword), keyword
    a, b = open_path(tmp_path / "src").cases[0].stacks()[0], open_path(tmp_path / "out").cases[0].stacks()[0]
    assert np.array_equal(a.geometry.ijk_to_lps, b.geometry.ijk_to_lps)
    assert np.array_equal(a.pixels(), b.pixels())


def test_two_exports_with_one_key_give_the_same_identities_and_another_key_others(tmp_path: Path) -> None:
    synthetic_study(tmp_path / "src" / "P1")

    def identities(out: str, key: bytes) -> set[tuple[str, ...]]:
        export(ExportRequest(tmp_path / "src", tmp_path / out, key=key))
        return {(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID,
                 str(ds.PatientID)) for ds in _dicoms(tmp_path / out)}

    first, second, other = identities("a", KEY), identities("b", KEY), identities("c", b"x" * 40)
    assert first == second and len(first) == 4
    assert not {t[2] for t in first} & {t[2] for t in other}
    uids = [u for t in first for u in t[:4]]
    assert all(u.startswith("2.25.") and len(u) <= 64 for u in uids)
    sources = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "src").rglob("*.dcm")}
    assert not sources & {t[2] for t in first}
    assert len({t[0] for t in first}) == 1 and len({t[3] for t in first}) == 1  # one study, one frame


def test_prior_and_current_400_days_apart_stay_400_days_apart(tmp_path: Path) -> None:
    current = dt.date(1988, 4, 17)
    prior = current - dt.timedelta(days=400)
    synthetic_study(tmp_path / "src" / "P1" / "prior", study="prior", study_date=prior.strftime("%Y%m%d"), name="a")
    synthetic_study(tmp_path / "src" / "P1" / "now", study="now", study_date=current.strftime("%Y%m%d"), name="b")
    options = ProfileOptions(retain_longitudinal_modified_dates=True)
    export(ExportRequest(tmp_path / "src", tmp_path / "out", options=options, key=KEY))
    dates = {str(ds.StudyDate) for ds in _dicoms(tmp_path / "out")}
    assert len(dates) == 2
    early, late = sorted(dt.datetime.strptime(d, "%Y%m%d").date() for d in dates)
    assert (late - early).days == 400
    assert early != prior and late != current
    assert {str(ds.LongitudinalTemporalInformationModified) for ds in _dicoms(tmp_path / "out")} == {"MODIFIED"}
    assert {str(ds.PatientID) for ds in _dicoms(tmp_path / "out")} == {Identities(KEY).pseudonym(f"{MARK}P1")}


def test_patient_characteristics_and_clean_descriptors_options(tmp_path: Path) -> None:
    files = synthetic_study(tmp_path / "src" / "P1")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientName = "Doewright^Janet"
        ds.SeriesDescription = "T2 SAG Doewright 19870314 L-spine"
        ds.PatientSex, ds.PatientAge = "F", "047Y"
        ds.save_as(path)
    options = ProfileOptions(retain_patient_characteristics=True, clean_descriptors=True)
    export(ExportRequest(tmp_path / "src", tmp_path / "out", options=options))
    ds = _dicoms(tmp_path / "out")[0]
    assert ds.PatientSex == "F" and ds.PatientAge == "047Y"
    assert ds.SeriesDescription == "T2 SAG L-spine"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113108", "113105"]
    plain = export(ExportRequest(tmp_path / "src", tmp_path / "plain"))
    assert plain.profile["options"] == []
    assert "SeriesDescription" not in _dicoms(tmp_path / "plain")[0]
    assert "PatientAge" not in _dicoms(tmp_path / "plain")[0]


def test_burned_in_secondary_capture_is_held_back_and_reported(tmp_path: Path) -> None:
    files = synthetic_study(tmp_path / "src" / "P1")
    capture = pydicom.dcmread(files[0])
    capture.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    capture.file_meta.MediaStorageSOPClassUID = capture.SOPClassUID
    capture.SOPInstanceUID = "1.2.826.0.1.3680043.9.7777.5.5"
    capture.BurnedInAnnotation = "YES"
    capture.save_as(files[0].parent / "capture.dcm")
    report = export(ExportRequest(tmp_path / "src", tmp_path / "out"))
    held = [h for h in report.held_back if h["source"].endswith("capture.dcm")]
    assert len(held) == 1 and "BurnedInAnnotation" in held[0]["why"]
    assert len(_dicoms(tmp_path / "out")) == len(files)
    written = (tmp_path / "out" / "export-report.txt").read_text()
    assert "Held back: 1." in written and "BurnedInAnnotation is YES" in written
    assert "capture.dcm" not in written  # source paths may name the patient: not in the export


def test_exported_sr_references_exported_images_that_exist(tmp_path: Path) -> None:
    files = write_series(tmp_path / "src" / "P1", sagittal(n=6), "sag t2", patient_id="Doewright")
    case = open_path(tmp_path / "src").cases[0]
    stack = case.stacks()[0]
    rows = measurement_export.export_rows([
        {"case": case.id, "series": "sag t2", "level": "L4-L5", "side": "left", "quantity": "foramen_width",
         "value": 4.5, "unit": "mm", "position_lps": list(stack.meta["positions_lps"][k]), "source": "manual"}
        for k in (1, 4)])
    written = sr.write_sr(tmp_path / "src" / "P1" / "report.dcm", rows, case, case.id)
    assert written.n_referenced_images == 2
    export(ExportRequest(tmp_path / "src", tmp_path / "out", key=KEY))
    out = _out_files(tmp_path / "out")
    datasets = {p: pydicom.dcmread(p) for p in out if p.suffix == ".dcm"}
    reports = [p for p, ds in datasets.items() if ds.Modality == "SR"]
    assert len(reports) == 1 and len(datasets) == len(files) + 1
    document = hd.sr.srread(reports[0])
    images = {str(ds.SOPInstanceUID) for ds in datasets.values() if ds.Modality != "SR"}
    referenced = {str(e.value) for e, _ in _walk(document) if e.keyword == "ReferencedSOPInstanceUID"}
    assert referenced and referenced <= images
    back = sr.read_sr(reports[0])
    assert sorted(b["value"] for b in back) == [4.5, 4.5]
    assert {u for b in back for u in b["referenced_sop_instance_uids"]} <= images
    assert document.StudyInstanceUID == next(iter(datasets.values())).StudyInstanceUID
    assert b"Doewright" not in b"".join(p.read_bytes() for p in out)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
                                  "examples_overlay.dcm"])
def test_pydicom_test_files(shared_data: Path, name: str) -> None:
    source = pydicom.dcmread(shared_data / "pydicom-testfiles" / "pydicom-3.0.2" / name)
    original = {(int(e.tag), d): e.value for e, d in _walk(source) if e.VR != "SQ"}
    ds = deidentify(pydicom.dcmread(shared_data / "pydicom-testfiles" / "pydicom-3.0.2" / name),
                    Profile(), Identities(KEY), "x")
    assert ds.PixelData == source.PixelData
    profile = Profile()
    for elem, depth in _walk(ds):
        if profile.action(int(elem.tag)) in ("X", "Z", "D", "U") and elem.VR != "SQ" \
                and original.get((int(elem.tag), depth)) not in (None, ""):
            assert elem.value != original[(int(elem.tag), depth)] or int(elem.tag) == 0x00100010, elem.keyword
        assert not elem.tag.is_private
    for keyword in ("PatientBirthDate", "InstitutionName", "ReferringPhysicianName"):
        value = source.get(keyword)
        if value:
            assert ds.get(keyword) != value


@pytest.mark.shared_data
def test_real_siemens_series_exports_with_its_geometry_and_pixels(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dcm-qa-decubitus" / "In" / "HFS"
    report = export(ExportRequest(source, tmp_path / "out", key=KEY))
    assert report.exported
    before = open_path(source).cases[0].stacks()
    after = open_path(tmp_path / "out").cases[0].stacks()
    assert len(before) == len(after)
    for a, b in zip(sorted(before, key=lambda s: s.n_slices), sorted(after, key=lambda s: s.n_slices), strict=True):
        assert np.array_equal(a.geometry.ijk_to_lps, b.geometry.ijk_to_lps)
        assert np.array_equal(a.pixels(), b.pixels())
    for ds in _dicoms(tmp_path / "out"):
        assert not any(e.tag.is_private for e, _ in _walk(ds))
        assert "InstitutionName" not in ds or ds.InstitutionName == "ANONYMIZED"


def test_output_folder_must_be_missing_or_empty_and_outside_the_source(tmp_path: Path) -> None:
    synthetic_study(tmp_path / "src" / "P1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export(ExportRequest(tmp_path / "src", tmp_path / "full"))
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="inside the source"):
        export(ExportRequest(tmp_path / "src", tmp_path / "src" / "out"))
    (tmp_path / "empty").mkdir()
    export(ExportRequest(tmp_path / "src", tmp_path / "empty"))
    assert (tmp_path / "empty" / "export-report.json").is_file()
    assert not list(tmp_path.glob(".*lvtmp"))


def test_key_file_is_created_once_then_reused_and_a_bad_one_refused(tmp_path: Path) -> None:
    key, created = read_or_create_key(tmp_path / "project.key")
    assert created and len(key) >= 32
    again, created_again = read_or_create_key(tmp_path / "project.key")
    assert again == key and not created_again
    (tmp_path / "short.key").write_text("tiny\n")
    with pytest.raises(Exception, match="no secret"):
        read_or_create_key(tmp_path / "short.key")
    assert "k" * 40 not in repr(Identities(KEY))


def test_private_allow_list_keeps_only_what_it_lists(tmp_path: Path) -> None:
    ds = pydicom.dcmread(synthetic_study(tmp_path / "src" / "P1")[0])
    block = ds.private_block(0x0019, "ACME SAFE", create=True)
    block.add_new(0x10, "DS", "1.5")
    block.add_new(0x11, "LO", f"{MARK}NOTSAFE")
    options = ProfileOptions(private_allow_list=frozenset({("ACME SAFE", 0x10)}))
    deidentify(ds, Profile(options), Identities(KEY), "x")
    private = {(e.tag.group, e.tag.element & 0xFF): e.value for e in ds if e.tag.is_private}
    assert 0x0029 not in {g for g, _ in private}
    assert (0x0019, 0x10) in private and str(private[(0x0019, 0x10)]) in ("1.5", "ACME SAFE")
    assert not any(MARK in str(v) for v in private.values())


def test_exported_seg_references_its_exported_source_series(tmp_path: Path) -> None:
    files = write_series(tmp_path / "src" / "P1", sagittal(n=4, rows=12, cols=10), "sag t2", patient_id="Doewright")
    sources = [pydicom.dcmread(f) for f in files]
    mask = np.zeros((len(sources), 12, 10), dtype=bool)
    mask[1:3, 4:8, 3:6] = True
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="canal",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("61342007", "SCT", "Spinal canal"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=99,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="lumbarview tests",
        manufacturer_model_name="none", software_versions="0", device_serial_number="QZVSERIAL")
    seg.save_as(tmp_path / "src" / "P1" / "seg.dcm")
    export(ExportRequest(tmp_path / "src", tmp_path / "out", key=KEY))
    written = _dicoms(tmp_path / "out")
    segs = [ds for ds in written if ds.Modality == "SEG"]
    images = [ds for ds in written if ds.Modality != "SEG"]
    assert len(segs) == 1 and len(images) == len(files)
    back = hd.seg.Segmentation.from_dataset(segs[0])
    image_uids = {str(ds.SOPInstanceUID) for ds in images}
    referenced = {str(e.value) for e, _ in _walk(segs[0]) if e.keyword == "ReferencedSOPInstanceUID"}
    assert referenced and referenced <= image_uids
    series = {str(e.value) for e, _ in _walk(segs[0]) if e.keyword == "SeriesInstanceUID"} - {segs[0].SeriesInstanceUID}
    assert series == {str(images[0].SeriesInstanceUID)}
    assert segs[0].FrameOfReferenceUID == images[0].FrameOfReferenceUID
    assert np.array_equal(back.pixel_array, seg.pixel_array)
    assert b"QZVSERIAL" not in b"".join(p.read_bytes() for p in _out_files(tmp_path / "out"))


@pytest.mark.shared_data
def test_real_bids_sidecar_keeps_acquisition_keys_only(shared_data: Path, tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_bids
    from lumbarview.phantom.spine import LumbarPhantom

    root = tmp_path / "bids"
    write_bids(root, LumbarPhantom(), Sizes.small())
    real = shared_data / "liu2024-bids-sidecars" / "rawdata" / "sub-04" / "anat" / "sub-04_T2TSE.json"
    target = next(root.rglob("sub-01_T2TSE.json"))
    doc = json.loads(real.read_text())
    doc["SeriesDescription"] += " FUMIN 2024-03-05"  # the patient's name (from ProcedureStepDescription), a date
    target.write_text(json.dumps(doc))
    export(ExportRequest(root, tmp_path / "out", options=ProfileOptions(clean_descriptors=True)))

    sidecars = [json.loads(p.read_text()) for p in _out_files(tmp_path / "out") if p.suffix == ".json"
                and not p.name.startswith("export-report")]
    full = next(s for s in sidecars if "EchoTime" in s and s.get("Manufacturer") == "Siemens")
    assert full["EchoTime"] == 0.104 and full["RepetitionTime"] == 3.5
    assert "InstitutionName" not in full and "ProcedureStepDescription" not in full
    assert full["SeriesDescription"] == "I_t2_tse_sag_384_C1-C8_COMP_SP_1"
    everything = b"".join(p.read_bytes() for p in _out_files(tmp_path / "out"))
    for needle in (b"Fudan", b"FUMIN", b"166104", b"Zhangheng", b"AWP"):
        assert needle not in everything


def test_the_saved_sessions_measurements_go_out_on_the_exported_series(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lumbarview.io.session_file import MeasurementRecord, SessionFile, read_session, write_session
    from lumbarview.services.session_store import default_session_file

    monkeypatch.setenv("LUMBARVIEW_WORKSPACE", str(tmp_path / "workspace"))
    write_series(tmp_path / "src" / "P1", sagittal(n=4), "sag t2", patient_id="Doewright")
    case = open_path(tmp_path / "src").cases[0]
    series = case.series[0]
    points = ((-14.0, -30.5, 40.25), (-14.0, -20.0, 31.0))
    record = MeasurementRecord(id="m1", kind="distance", points_lps=points, series=series.uid, level="L4-L5",
                               side="left", note=f"{case.id} looks narrow", case=case.id, label="canal")
    dataset_path = str(open_path(tmp_path / "src").path)
    write_session(default_session_file(dataset_path), SessionFile(dataset_path=dataset_path, case=case.id,
                                                                  measurements=[record]))
    export(ExportRequest(tmp_path / "src", tmp_path / "out", key=KEY))
    doc = read_session(tmp_path / "out" / "lumbarview-session.json")
    assert len(doc.measurements) == 1
    got = doc.measurements[0]
    exported = open_path(tmp_path / "out").cases[0]
    assert got.points_lps == points and got.kind == "distance" and got.level == "L4-L5"
    assert got.case == exported.id == Identities(KEY).pseudonym(case.id)
    assert got.series in {s.uid for s in exported.series} and got.series != series.uid
    assert got.note == "" and got.label == ""  # free text goes out only under Clean Descriptors
    assert doc.dataset_relative_path == "."
    assert b"Doewright" not in (tmp_path / "out" / "lumbarview-session.json").read_bytes()


def test_points_and_models_read_back_where_they_were(tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_bids
    from lumbarview.phantom.spine import LumbarPhantom

    write_bids(tmp_path / "bids", LumbarPhantom(), Sizes.small())
    report = export(ExportRequest(tmp_path / "bids", tmp_path / "out", key=KEY))
    before, after = open_path(tmp_path / "bids").cases[0], open_path(tmp_path / "out").cases[0]

    def points(case):  # type: ignore[no-untyped-def]
        return sorted((s.kind, tuple(s.labels), s.points_lps.tobytes()) for s in case.point_sets)

    assert points(before) and points(after) == points(before)  # bit for bit, in LPS
    assert [m.n_triangles for m in after.meshes] == [m.n_triangles for m in before.meshes]
    for a, b in zip(before.meshes, after.meshes, strict=True):
        assert np.allclose(a.vertices_lps[a.faces], b.vertices_lps[b.faces], atol=1e-4)  # STL stores float32
    assert not [h for h in report.held_back if h["what"].startswith(("mesh", "point set"))]


def test_a_damaged_file_is_held_back_and_a_cancel_leaves_nothing(tmp_path: Path) -> None:
    import threading

    from lumbarview.core.errors import Cancelled

    files = synthetic_study(tmp_path / "src" / "P1")
    data = files[0].read_bytes()
    (files[0].parent / "truncated.dcm").write_bytes(data[: len(data) // 3])
    report = export(ExportRequest(tmp_path / "src", tmp_path / "out"))
    assert len(_dicoms(tmp_path / "out")) == len(files)
    assert any(h["source"].endswith("truncated.dcm") for h in report.held_back)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        export(ExportRequest(tmp_path / "src", tmp_path / "cancelled"), cancel=cancel)
    assert not (tmp_path / "cancelled").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no staging folder left


def test_unidata_dicomdir_export_reads_back_without_its_dicomdir(tmp_path: Path) -> None:
    from lumbarview.phantom.layouts import Sizes, write_unidata
    from lumbarview.phantom.spine import LumbarPhantom

    root = write_unidata(tmp_path / "unidata", LumbarPhantom(), Sizes.small())
    report = export(ExportRequest(root, tmp_path / "out", key=KEY))
    before, after = open_path(root), open_path(tmp_path / "out")
    assert sum(len(c.stacks()) for c in after.cases) == sum(len(c.stacks()) for c in before.cases)
    def key(stack):  # type: ignore[no-untyped-def]
        return tuple(stack.geometry.ijk_to_lps.ravel())

    for a, b in zip(sorted((s for c in before.cases for s in c.stacks()), key=key),
                    sorted((s for c in after.cases for s in c.stacks()), key=key), strict=True):
        assert np.array_equal(a.geometry.ijk_to_lps, b.geometry.ijk_to_lps)
        assert np.array_equal(a.pixels(), b.pixels())
    assert not list((tmp_path / "out").rglob("DICOMDIR"))
    assert report.exported


def test_volume_headers_and_names_leave_nothing_recognisable(tmp_path: Path) -> None:
    import gzip

    import nibabel as nib
    import nrrd

    src = tmp_path / "src" / "QZVDoe_John"
    src.mkdir(parents=True)
    rng = np.random.default_rng(3)
    array = rng.integers(0, 900, size=(6, 7, 5)).astype(np.int16)  # i, j, k
    affine = np.array([[-0.8, 0, 0, 10.0], [0, -0.9, 0, 20.0], [0, 0, 3.3, -30.0], [0, 0, 0, 1]])
    image = nib.Nifti1Image(array, affine)
    image.header["descrip"] = b"QZVDESCRIP Doe John"
    image.header["aux_file"] = b"QZVAUX"
    image.header["intent_name"] = b"QZVINT"
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, str(src / "QZVDoe_John_t2.nii.gz"))
    nrrd.write(str(src / "QZVDoe_John_label.nrrd"), (array > 450).astype(np.uint8),
               {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.9, 3.3]),
                "space origin": np.array([-10.0, -20.0, -30.0]), "content": "QZVCONTENT",
                "encoding": "raw"}, custom_field_map=None)
    with open(src / "QZVDoe_John_label.nrrd", "rb") as fh:
        header = fh.read(400)
    assert b"QZVCONTENT" in header  # the control: the source carries the marks
    report = export(ExportRequest(tmp_path / "src", tmp_path / "out"))
    assert {e["kind"] for e in report.exported} >= {"volume"}
    for path in _out_files(tmp_path / "out"):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        assert b"QZV" not in data and b"Doe" not in data, path.name
        assert "QZV" not in path.as_posix().split("/out/")[1] and "Doe" not in path.name
    before = open_path(tmp_path / "src").cases[0]
    after = open_path(tmp_path / "out").cases[0]
    a = next(s for s in before.stacks() if s.n_slices == 5)
    b = next(s for s in after.stacks() if s.n_slices == 5)
    assert np.array_equal(a.pixels(), b.pixels())
    assert np.allclose(a.geometry.ijk_to_lps, b.geometry.ijk_to_lps, rtol=0, atol=1e-6)  # NIfTI stores float32


@pytest.mark.shared_data
def test_real_lumbar_nifti_and_its_mask_export_with_voxels_and_geometry(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "chu2015-vb2" / "VB2_05"
    if not source.is_dir():
        pytest.skip(reason="chu2015-vb2 is not in this copy of ../shared/data")
    export(ExportRequest(source, tmp_path / "out", key=KEY))
    before, after = open_path(source).cases[0], open_path(tmp_path / "out").cases[0]
    assert len(before.stacks()) == len(after.stacks()) and len(before.label_maps) == len(after.label_maps)
    for a, b in [*zip(before.stacks(), after.stacks(), strict=True),
                 *((x.stack, y.stack) for x, y in zip(before.label_maps, after.label_maps, strict=True))]:
        assert np.array_equal(a.pixels(), b.pixels())
        assert np.allclose(a.geometry.ijk_to_lps, b.geometry.ijk_to_lps, rtol=0, atol=1e-5)
    assert not [p for p in _out_files(tmp_path / "out") if "VB2" in p.as_posix().split("/out/")[1]]
