"""De-identify one DICOM data set in place by the profile's table, sequences recursed.

:func:`held_back_reason` says why an instance must not leave at all (text burned into its
pixels, a secondary capture or screen save, an encapsulated document); :func:`deidentify`
applies the actions of :class:`~lumbarview.services.deidentify.profile.Profile` to every
attribute, at every depth, and stamps the result (``PatientIdentityRemoved`` YES,
``DeidentificationMethod`` and its code sequence, ``LongitudinalTemporalInformationModified``).

What each action does here:

* ``X`` removes; ``Z`` empties (a sequence loses its items); the patient's name and ID become
  the patient's pseudonym (a dummy ``Z`` allows), so two exports under one key join;
* ``D`` puts a dummy of the attribute's VR (``ANONYMIZED``, ``19000101``, 0...); a sequence is
  kept and its items cleaned like the data set (the Content Sequence of an SR keeps its
  measurements and references, its person names and UIDs cleaned);
* ``K`` keeps (sequences cleaned);
* ``C``: dates move back by the patient's shift (DA, and the date part of DT; times of day are
  kept, the shift being whole days); text loses every identifying value of the data set (names,
  IDs, dates, addresses, institution...) and anything shaped like a date;
* ``U`` and every instance UID the table does not list (outside the DICOM root 1.2.840.10008)
  are replaced one to one through :class:`~lumbarview.services.deidentify.identity.Identities`;
* private attributes are removed unless their (private creator, element) is allow-listed;
* pixel data and geometry (spacing, position, orientation, thickness, rows, columns) are not in
  the table and are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from lumbarview.services.deidentify.identity import Identities
from lumbarview.services.deidentify.profile import Profile

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
_DICOM_ROOT = "1.2.840.10008."
# UIDs that name a class, a coding scheme or a context, not an instance: kept whatever their root.
_NOT_INSTANCE_UIDS = frozenset({0x00080016, 0x00081150, 0x0008001A, 0x0008001B, 0x0008010C, 0x0008010D,
                                0x00080117, 0x00080118, 0x00041510, 0x00041512, 0x00081160})
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR", "AS"})
_DATE_LIKE = re.compile(r"\b(?:\d{8}|\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})\b")
SECONDARY_CAPTURE_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4"})
ENCAPSULATED_DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
_SCREEN_SAVE_TYPES = frozenset({"SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE"})
_DUMMY_TEXT = {"PN": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y",
               "IS": "0", "DS": "0", "AE": "ANONYMIZED"}
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})


def held_back_reason(ds: Dataset) -> str | None:
    """Why this instance is not exported (None: it may be), in words for the report."""
    burned = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES: text is burned into the pixels"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in SECONDARY_CAPTURE_CLASSES:
        return "a secondary capture: its pixels may show burned-in text"
    if sop_class.startswith(ENCAPSULATED_DOCUMENT_PREFIX):
        return "an encapsulated document: its content cannot be cleaned"
    image_type = ds.get("ImageType")
    values = [str(v).upper() for v in (image_type if isinstance(image_type, Iterable)
                                       and not isinstance(image_type, str) else [image_type or ""])]
    if any(v in _SCREEN_SAVE_TYPES for v in values):
        return "a screen save (ImageType): its pixels may show burned-in text"
    return None


@dataclass
class _Run:
    profile: Profile
    identities: Identities
    patient: str
    pseudonym: str
    known: list[str] = field(default_factory=list)


def patient_of(ds: Dataset, fallback: str) -> str:
    """The identifier the patient's pseudonym and date shift derive from."""
    return str(ds.get("PatientID", "") or "").strip() or fallback


def deidentify(ds: Dataset, profile: Profile, identities: Identities, fallback_patient: str) -> Dataset:
    """``ds`` de-identified in place (and returned), with new file meta when it had any."""
    patient = patient_of(ds, fallback_patient)
    run = _Run(profile, identities, patient, identities.pseudonym(patient))
    run.known = sorted(_identifying_texts(ds, Profile(table=profile.table)), key=len, reverse=True)
    _clean(ds, run)
    ds.PatientName = run.pseudonym
    ds.PatientID = run.pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [profile.method_text(), *(o.replace("_", " ")[:64]
                                                          for o in profile.options.chosen)]
    codes = []
    for value, meaning in profile.method_codes():
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if profile.options.retain_longitudinal_modified_dates else "REMOVED")
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        new_meta = FileMetaDataset()
        new_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        new_meta.TransferSyntaxUID = meta.TransferSyntaxUID
        new_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = new_meta
    return ds


def _identifying_texts(ds: Dataset, basic: Profile) -> set[str]:
    """Every text value the Basic Profile would not keep (and the parts of person names), to
    strike from descriptors."""
    found: set[str] = set()
    for elem in _walk(ds):
        if elem.VR not in _TEXT_VRS and elem.VR not in ("DA", "DT"):
            continue
        row = basic.table.row(int(elem.tag))
        descriptor = row is not None and bool(row.actions.get("clean_descriptors"))
        if not elem.tag.is_private and (row is None or descriptor or basic.action(int(elem.tag)) in ("K", "U")):
            continue  # kept, a UID, or a descriptor itself (cleaned, not a source of identity)
        for value in _values(elem):
            text = str(value).strip()
            parts = [text, *re.split(r"[\^=\s,]+", text)] if elem.VR == "PN" else [text]
            found.update(p for p in parts if len(p) >= 3)
    return found


def _walk(ds: Dataset) -> Iterable[DataElement]:
    for elem in ds:
        yield elem
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                yield from _walk(item)


def _values(elem: DataElement) -> list[object]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _clean(ds: Dataset, run: _Run) -> None:
    allowed_blocks = _allowed_private_blocks(ds, run.profile)
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private:
            if not _private_kept(elem, allowed_blocks, run.profile):
                del ds[tag]
            elif elem.VR == "SQ":
                _clean_items(elem, run)
            continue
        action = run.profile.action(int(tag))
        if action is None:
            if elem.VR == "UI":
                _replace_uids(elem, run, int(tag))
            elif elem.VR == "SQ":
                _clean_items(elem, run)
            continue
        _apply(ds, elem, action, run)


def _apply(ds: Dataset, elem: DataElement, action: str, run: _Run) -> None:
    tag = int(elem.tag)
    if action == "X":
        del ds[elem.tag]
    elif elem.VR == "SQ":
        if action == "Z":
            elem.value = Sequence()
        else:  # D, K, C, U: kept, its items cleaned
            _clean_items(elem, run)
    elif action == "K":
        return
    elif tag in (PATIENT_NAME, PATIENT_ID):
        elem.value = run.pseudonym
    elif action == "Z":
        elem.value = None if elem.VR in _NUMERIC_VRS else ("" if elem.VR not in _BINARY_VRS else b"")
    elif action == "D":
        _dummy(elem, run)
    elif action == "U":
        _replace_uids(elem, run, tag, force=True)
    elif action == "C":
        _clean_value(elem, run)


def _clean_items(elem: DataElement, run: _Run) -> None:
    for item in elem.value or ():
        _clean(item, run)


def _dummy(elem: DataElement, run: _Run) -> None:
    if elem.VR == "UI":
        _replace_uids(elem, run, int(elem.tag), force=True)
    elif elem.VR in _NUMERIC_VRS:
        elem.value = 0
    elif elem.VR in _BINARY_VRS:
        elem.value = b"\x00\x00"
    else:
        elem.value = _DUMMY_TEXT.get(elem.VR, "ANONYMIZED")


def _replace_uids(elem: DataElement, run: _Run, tag: int, force: bool = False) -> None:
    if tag in _NOT_INSTANCE_UIDS and not force:
        return
    values = [str(v) for v in _values(elem)]
    new = [v if (v.startswith(_DICOM_ROOT) and not force) else run.identities.uid(v) for v in values if v.strip()]
    if not new:
        return
    elem.value = new[0] if len(new) == 1 else new


def _clean_value(elem: DataElement, run: _Run) -> None:
    options = run.profile.options
    if elem.VR == "DA":
        shifted = [run.identities.shift_date(run.patient, str(v)) for v in _values(elem)]
        elem.value = shifted[0] if len(shifted) == 1 else shifted
        if not options.retain_longitudinal_modified_dates:
            elem.value = ""
    elif elem.VR == "DT":
        shifted = [run.identities.shift_datetime(run.patient, str(v)) for v in _values(elem)]
        elem.value = shifted[0] if len(shifted) == 1 else shifted
    elif elem.VR == "TM":
        return  # whole-day shifts keep the time of day
    elif elem.VR in _TEXT_VRS:
        cleaned = [clean_text(str(v), run.known) for v in _values(elem)]
        elem.value = cleaned[0] if len(cleaned) == 1 else cleaned
    elif elem.VR in _NUMERIC_VRS or elem.VR in ("IS", "DS"):
        return  # a number (a patient characteristic): its meaning kept
    else:
        elem.value = b"" if elem.VR in _BINARY_VRS else ""


def clean_text(text: str, known: Iterable[str]) -> str:
    """``text`` without any of the ``known`` identifying values (case-insensitive) and without
    anything shaped like a date; runs of spaces collapsed."""
    out = text
    for value in known:
        out = re.sub(re.escape(value), " ", out, flags=re.IGNORECASE)
    out = _DATE_LIKE.sub(" ", out)
    return re.sub(r"\s{2,}", " ", out).strip()


def _allowed_private_blocks(ds: Dataset, profile: Profile) -> dict[tuple[int, int], str]:
    """(group, block) -> private creator, for the creators on the allow-list."""
    creators = {c for c, _e in profile.options.private_allow_list}
    blocks: dict[tuple[int, int], str] = {}
    for elem in ds:
        tag = elem.tag
        if tag.is_private and 0x10 <= tag.element <= 0xFF and str(elem.value).strip() in creators:
            blocks[(tag.group, tag.element)] = str(elem.value).strip()
    return blocks


def _private_kept(elem: DataElement, blocks: dict[tuple[int, int], str], profile: Profile) -> bool:
    tag = elem.tag
    if 0x10 <= tag.element <= 0xFF:
        return (tag.group, tag.element) in blocks
    creator = blocks.get((tag.group, tag.element >> 8))
    return creator is not None and (creator, tag.element & 0xFF) in profile.options.private_allow_list
