"""Reading one DICOM file's header into a compact, serialisable record (no pixel data).

This is phase one of loading (the scan). Only the attributes the assembler and the viewer need
are decoded; the pixel data is located (byte offset and length) but not read, so that phase two
can read native pixels straight from disk.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lumbarview.core.errors import CorruptFileError, LoadError
from lumbarview.core.fs import open_regular
from lumbarview.core.limits import ResourceLimitError, limits
from lumbarview.core.types import LoadIssue, Severity

MEDIA_STORAGE_DIRECTORY_UID = "1.2.840.10008.1.3.10"
_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED_UID = "1.2.840.10008.1.2.1.99"
_DEFLATED_BYTES = DEFLATED_UID.encode("ascii")
_INFLATE_CHUNK = 1 << 20
_PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
_PIXEL_VRS = (b"OB", b"OW", b"UN")

#: Attributes read in the scan. Functional group sequences carry per-frame geometry in
#: Enhanced MR (PS3.3 C.7.6.16).
SCAN_KEYWORDS: tuple[str, ...] = (
    "SOPClassUID", "SOPInstanceUID", "PatientID", "PatientName", "StudyInstanceUID",
    "StudyDescription", "StudyDate", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "Modality", "FrameOfReferenceUID", "Rows", "Columns", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
    "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PatientPosition",
    "SpacingBetweenSlices", "SliceThickness", "AcquisitionNumber", "EchoNumbers",
    "TemporalPositionIdentifier", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "ImageType",
)


@dataclass(frozen=True, slots=True)
class FrameGeometry:
    """Geometry of one image plane, straight from its header (may be incomplete)."""

    position_lps: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing_rc: tuple[float, float] | None  # (row spacing, column spacing), as (0028,0030)
    slice_thickness_mm: float | None


@dataclass(frozen=True, slots=True)
class DicomFileHeader:
    """What the scan keeps of one DICOM file. Serialisable as a flat row for the index cache."""

    path: str
    size: int
    mtime_ns: int
    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    patient_name: str
    study_uid: str
    study_description: str
    study_date: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    frame_of_reference_uid: str
    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    transfer_syntax: str
    n_frames: int
    rescale_slope: float
    rescale_intercept: float
    window_center: float | None
    window_width: float | None
    patient_position: str
    spacing_between_slices_mm: float | None
    acquisition_number: int | None
    echo_number: int | None
    temporal_position: int | None
    instance_number: int | None
    has_pixels: bool
    pixel_offset: int | None  # byte offset of native little-endian pixel data, else None
    pixel_length: int | None
    notes: tuple[str, ...]  # warnings pydicom raised while reading (invalid values...)
    frames: tuple[FrameGeometry, ...]

    @property
    def is_directory(self) -> bool:
        return self.sop_class_uid == MEDIA_STORAGE_DIRECTORY_UID

    def to_row(self) -> list[Any]:
        row: list[Any] = [getattr(self, name) for name in _FIELDS[:-1]]
        row.append([[f.position_lps, f.orientation, f.pixel_spacing_rc, f.slice_thickness_mm]
                    for f in self.frames])
        return row

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> DicomFileHeader:
        """Inverse of :meth:`to_row`. Kept lean: the index cache rebuilds 48,000 of these."""
        frames = tuple(
            FrameGeometry(None if p is None else tuple(p), None if o is None else tuple(o),
                          None if sp is None else tuple(sp), t)
            for p, o, sp, t in row[-1]
        )
        return cls(*row[:-2], tuple(row[-2]), frames)  # type: ignore[call-arg]  # (checked by tests)


_FIELDS: tuple[str, ...] = tuple(DicomFileHeader.__dataclass_fields__)
#: Field order of :meth:`DicomFileHeader.to_row`.
HEADER_FIELDS = _FIELDS


class NotDicomError(Exception):
    """Internal: the file is not DICOM (becomes an INFO issue, never reaches the user raw)."""


def _float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, pydicom.multival.MultiValue):
            value = value[0]
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None  # NaN and inf count as missing


def _floats(ds: Dataset | None, keyword: str, n: int) -> tuple[float, ...] | None:
    if ds is None:
        return None
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(values) != n or not all(math.isfinite(v) for v in values):
        return None
    return values


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(keyword)
    if not seq:
        return None
    item = seq[0]
    return item if isinstance(item, Dataset) else None


_TAGS: dict[str, int] = {kw: int(tag_for_keyword(kw) or 0) for kw in SCAN_KEYWORDS}
_BINARY_INT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}
#: Tags whose value is a binary unsigned short in every transfer syntax (PS3.3 C.7.6.3).
_US_TAGS = {0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103, 0x00280002}
_PLAIN_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"}


class _RawValues:
    """Reads the scan's attributes straight from pydicom's raw (not yet converted) elements.

    Converting values through ``Dataset.__getattr__`` costs twice the parse itself; the scan
    only needs strings and numbers, which are cheap to decode from the raw bytes. Sequences,
    and text in character sets other than ASCII/Latin-1, still go through pydicom.
    Invalid values (an IS of "1A") become ``notes`` instead of warnings.
    """

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.notes: list[str] = []
        charset = ds.get_item(0x00080005)
        raw = b"" if charset is None else charset.value
        text = raw.decode("latin-1").strip(" \x00") if isinstance(raw, bytes) else str(raw or "")
        self.plain_text = text in _PLAIN_CHARSETS

    def _raw(self, keyword: str) -> tuple[bytes | None, Any]:
        elem = self.ds.get_item(_TAGS[keyword])
        if elem is None:
            return None, None
        value = elem.value
        if isinstance(value, bytes):
            return value, elem
        return None, elem

    def text(self, keyword: str) -> str:
        raw, elem = self._raw(keyword)
        if raw is not None and (self.plain_text or keyword.endswith("UID")):
            return raw.decode("latin-1").strip(" \x00")
        if elem is None:
            return ""
        value = self.ds.get(keyword)
        return "" if value is None else str(value).strip()

    def _strings(self, keyword: str) -> list[str] | None:
        raw, elem = self._raw(keyword)
        if raw is None:
            if elem is None or elem.value is None:
                return None
            value = self.ds.get(keyword)
            if value is None or value == "":
                return None
            items = list(value) if isinstance(value, pydicom.multival.MultiValue | list | tuple) else [value]
            return [str(v) for v in items]
        text = raw.decode("latin-1").strip(" \x00")
        return None if not text else [t.strip(" \x00") for t in text.split("\\")]

    def int_(self, keyword: str) -> int | None:
        tag = _TAGS[keyword]
        raw, elem = self._raw(keyword)
        if raw is not None:
            vr = getattr(elem, "VR", None)
            fmt = _BINARY_INT_VRS.get(str(vr)) if vr else ("H" if tag in _US_TAGS else None)
            if fmt is not None:
                size = struct.calcsize(fmt)
                if len(raw) < size:
                    self.notes.append(f"{keyword} is too short ({len(raw)} bytes)")
                    return None
                order = "<" if getattr(elem, "is_little_endian", True) else ">"
                return int(struct.unpack(order + fmt, raw[:size])[0])
        items = self._strings(keyword)
        if not items:
            return None
        try:
            return int(float(items[0]))
        except ValueError:
            self.notes.append(f"invalid value for {keyword}: {items[0]!r}")
            return None

    def floats(self, keyword: str, n: int | None = None) -> tuple[float, ...] | None:
        items = self._strings(keyword)
        if not items:
            return None
        joined = "\\".join(items)
        try:
            values = tuple(float(v) for v in items)
        except ValueError:
            self.notes.append(f"invalid value for {keyword}: {joined!r}")
            return None
        if n is not None and len(values) != n:
            self.notes.append(f"{keyword} should have {n} finite values, has {joined!r}")
            return None
        if not all(math.isfinite(v) for v in values):
            what = f"{n} finite values" if n is not None else "finite values"
            self.notes.append(f"{keyword} should have {what}, has {joined!r}")
            return None
        return values

    def float_(self, keyword: str) -> float | None:
        values = self.floats(keyword)
        return None if values is None else values[0]



# -- fast path: one pass over the bytes of a plain explicit VR little-endian file -------------

_EXPLICIT_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split())
#: Explicit VR encodings with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
#: VRs whose empty value pydicom keeps as b"" (the others as None).
_TEXT_VRS = frozenset(v.decode() for v in b"AE AS CS DA DT LO LT PN SH ST TM UC UI UR UT".split())
#: Transfer syntaxes whose data set is explicit VR little endian (everything but implicit VR,
#: big endian and deflated); the compressed ones differ only in their pixel data.
_FAST_TS_EXCLUDED = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.2", DEFLATED_UID})
#: Most single-frame files (a scanner's header and the pixels) are read in one call.
_FAST_FIRST_READ = 1 << 20
_FAST_MAX_HEADER = 16 << 20
_FAST_MAX_DEPTH = 16
_FAST_TAGS = frozenset(_TAGS.values()) | {0x00080005}
#: Enhanced (functional group) files go through pydicom: their geometry is in sequences.
_FAST_REFUSED_TAGS = frozenset({_TAGS["SharedFunctionalGroupsSequence"],
                                _TAGS["PerFrameFunctionalGroupsSequence"]})
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD
_unpack_tag_vr = struct.Struct("<HH2s").unpack_from
_unpack_u16 = struct.Struct("<H").unpack_from
_unpack_u32 = struct.Struct("<I").unpack_from
_unpack_item = struct.Struct("<HHI").unpack_from


class _NotPlain(Exception):
    """Internal: the file is not a plain explicit VR little-endian file; read it with pydicom."""


class _NeedMore(Exception):
    """Internal: the header goes on past the bytes read so far."""


class _FastElement:
    __slots__ = ("VR", "value")
    is_little_endian = True

    def __init__(self, vr: str, value: bytes | None) -> None:
        self.VR = vr
        self.value = value


class _FastDataset:
    """The few top-level elements the scan reads, as raw bytes (stands in for a pydicom
    Dataset in :class:`_RawValues`)."""

    is_implicit_VR = False

    def __init__(self, elements: dict[int, _FastElement]) -> None:
        self.elements = elements

    def get_item(self, tag: int) -> _FastElement | None:
        return self.elements.get(tag)

    def get(self, keyword: str) -> None:
        return None  # only reached for empty values, which read as missing

    def __contains__(self, keyword: str) -> bool:
        return _TAGS[keyword] in self.elements


def _element_head(buf: bytes, pos: int) -> tuple[int, str, int, int]:
    """(tag, VR, value length, value offset) of the explicit VR LE element at ``pos``."""
    if pos + 8 > len(buf):
        raise _NeedMore(pos + 8)
    group, elem, vr = _unpack_tag_vr(buf, pos)
    if vr not in _EXPLICIT_VRS:
        raise _NotPlain("not an explicit VR")
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise _NeedMore(pos + 12)
        return (group << 16) | elem, vr.decode("ascii"), _unpack_u32(buf, pos + 8)[0], pos + 12
    return (group << 16) | elem, vr.decode("ascii"), _unpack_u16(buf, pos + 6)[0], pos + 8


def _skip_sequence(buf: bytes, pos: int, depth: int) -> int:
    """Position after a sequence of undefined length whose first item starts at ``pos``."""
    if depth > _FAST_MAX_DEPTH:
        raise _NotPlain("sequences nested too deeply")
    while True:
        if pos + 8 > len(buf):
            raise _NeedMore(pos + 8)
        group, elem, length = _unpack_item(buf, pos)
        pos += 8
        if group != 0xFFFE:
            raise _NotPlain("a sequence holds something other than items")
        if elem == _SEQ_END:
            return pos
        if elem != _ITEM:
            raise _NotPlain("unexpected delimiter in a sequence")
        if length != _UNDEFINED_LENGTH:
            pos += length
            continue
        while True:  # an item of undefined length: elements up to its delimiter
            if pos + 8 > len(buf):
                raise _NeedMore(pos + 8)
            group, elem, length = _unpack_item(buf, pos)
            if group == 0xFFFE:
                if elem != _ITEM_END:
                    raise _NotPlain("unexpected delimiter in an item")
                pos += 8
                break
            _, vr, length, pos = _element_head(buf, pos)
            if length == _UNDEFINED_LENGTH:
                if vr != "SQ":
                    raise _NotPlain("undefined length outside a sequence")
                pos = _skip_sequence(buf, pos, depth + 1)
            else:
                pos += length


_UID_RE = re.compile(rb"[0-9.]{0,64}")


def _plain_meta_value(vr: str, value: bytes) -> bool:
    """Whether a file meta value is one pydicom converts without a warning or an error (it
    converts the whole file meta group, unlike the data set); anything else is left to
    pydicom, which reports it."""
    if vr == "UL":
        return len(value) == 4
    if vr == "US":
        return len(value) == 2
    if vr == "UI":
        return _UID_RE.fullmatch(value.rstrip(b" \x00")) is not None
    if vr in ("AE", "SH"):
        return len(value) <= 16 and b"\\" not in value
    return vr == "OB"


def _parse_plain(buf: bytes, file_size: int) -> tuple[
        dict[int, _FastElement], str, str, int | None, int | None, bool]:
    """One pass over a Part 10 file: (elements, transfer syntax, media SOP class, pixel
    offset, pixel length, stopped at pixel data). Raises _NotPlain for anything but a plain
    explicit VR little-endian data set, _NeedMore when more bytes must be read."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _NotPlain("no DICM prefix")
    pos = 132
    ts = media_class = ""
    n = len(buf)
    while True:  # file meta information (PS3.10 7.1), always explicit VR little endian
        if pos + 8 > n:
            raise _NeedMore(pos + 8)
        if _unpack_u16(buf, pos)[0] != 0x0002:
            break
        tag, vr, length, start = _element_head(buf, pos)
        if length == _UNDEFINED_LENGTH:
            raise _NotPlain("undefined length in the file meta")
        pos = start + length
        if pos > n:
            raise _NeedMore(pos)
        if not _plain_meta_value(vr, buf[start:pos]):
            raise _NotPlain("a file meta element pydicom would warn about or refuse")
        if tag == 0x00020010:
            ts = buf[start:pos].decode("latin-1").strip(" \x00")
        elif tag == 0x00020002:
            media_class = buf[start:pos].decode("latin-1").strip(" \x00")
    if not ts or ts in _FAST_TS_EXCLUDED:
        raise _NotPlain("transfer syntax")
    elements: dict[int, _FastElement] = {}
    wanted, refused, long_vrs, explicit_vrs = _FAST_TAGS, _FAST_REFUSED_TAGS, _LONG_VRS, _EXPLICIT_VRS
    unpack_tag_vr, unpack_u16, unpack_u32 = _unpack_tag_vr, _unpack_u16, _unpack_u32
    while pos < file_size:
        # The element header, inline (this loop runs once per element of every file).
        if pos + 8 > n:
            raise _NeedMore(pos + 8)
        group, elem, vr = unpack_tag_vr(buf, pos)
        if vr in long_vrs:
            if pos + 12 > n:
                raise _NeedMore(pos + 12)
            length = unpack_u32(buf, pos + 8)[0]
            start = pos + 12
        elif vr in explicit_vrs:
            length = unpack_u16(buf, pos + 6)[0]
            start = pos + 8
        else:
            raise _NotPlain("not an explicit VR")
        tag = (group << 16) | elem
        if tag == 0x7FE00010:
            if vr not in (b"OB", b"OW"):
                raise _NotPlain("pixel data VR")
            if length == _UNDEFINED_LENGTH:  # encapsulated: decoded through pydicom
                return elements, ts, media_class, None, None, True
            if ts != ExplicitVRLittleEndian:
                return elements, ts, media_class, None, None, True
            return elements, ts, media_class, start, length, True
        if group == 0xFFFE or group < 0x0008:
            raise _NotPlain("a delimiter or file meta element in the data set")
        if tag in refused:
            raise _NotPlain("enhanced multi-frame")
        if length == _UNDEFINED_LENGTH:
            if vr != b"SQ":
                raise _NotPlain("undefined length outside a sequence")
            pos = _skip_sequence(buf, start, 1)
            continue
        pos = start + length
        if tag in wanted:
            if pos > n:
                raise _NeedMore(pos)
            vr_text = vr.decode("ascii")
            value = buf[start:pos] if length else (b"" if vr_text in _TEXT_VRS else None)
            elements[tag] = _FastElement(vr_text, value)
    if pos != file_size:
        raise _NotPlain("the last element runs past the end of the file")
    return elements, ts, media_class, None, None, False


def _read_plain(path: str, file_size: int) -> tuple[
        dict[int, _FastElement], str, str, int | None, int | None, bool] | None:
    """The fast scan of one file, or None when pydicom must read it."""
    want = min(file_size, _FAST_FIRST_READ)
    with open_regular(path) as fh:
        buf = fh.read(want)
        while True:
            try:
                return _parse_plain(buf, file_size)
            except _NotPlain:
                return None
            except _NeedMore as more:
                needed = int(more.args[0])
                if len(buf) >= file_size or needed > _FAST_MAX_HEADER:
                    return None  # truncated, or a very long header: pydicom says what is wrong
                want = min(file_size, max(needed + _FAST_FIRST_READ, 2 * len(buf)))
                fh.seek(0)
                buf = fh.read(want)
            except (struct.error, ValueError, UnicodeDecodeError):
                return None


def _frame_geometries(ds: Dataset, n_frames: int, raw: _RawValues) -> tuple[FrameGeometry, ...]:
    """Per-frame geometry: classic attributes, or Enhanced functional groups (C.7.6.16)."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if shared is None and not per_frame:
        thickness = raw.float_("SliceThickness")
        geom = FrameGeometry(
            raw.floats("ImagePositionPatient", 3),  # type: ignore[arg-type]
            raw.floats("ImageOrientationPatient", 6),  # type: ignore[arg-type]
            raw.floats("PixelSpacing", 2),  # type: ignore[arg-type]
            thickness,
        )
        if n_frames == 1:
            return (geom,)
        # Classic multi-frame with one position: frames have no 3D placement of their own.
        return tuple(FrameGeometry(None, geom.orientation, geom.pixel_spacing_rc, thickness)
                     for _ in range(n_frames))

    shared_orient = _first_item(shared, "PlaneOrientationSequence")
    shared_measures = _first_item(shared, "PixelMeasuresSequence")
    shared_pos = _first_item(shared, "PlanePositionSequence")
    frames: list[FrameGeometry] = []
    for index in range(n_frames):
        item = per_frame[index] if per_frame and index < len(per_frame) else None
        pos = _first_item(item, "PlanePositionSequence") or shared_pos
        orient = _first_item(item, "PlaneOrientationSequence") or shared_orient
        measures = _first_item(item, "PixelMeasuresSequence") or shared_measures
        frames.append(FrameGeometry(
            _floats(pos, "ImagePositionPatient", 3),  # type: ignore[arg-type]
            _floats(orient, "ImageOrientationPatient", 6),  # type: ignore[arg-type]
            _floats(measures, "PixelSpacing", 2),  # type: ignore[arg-type]
            None if measures is None else _float(measures, "SliceThickness"),
        ))
    return tuple(frames)


def _locate_native_pixels(fp: BinaryIO, ds: Dataset, file_size: int) -> tuple[int | None, int | None]:
    """Byte offset and length of native (uncompressed) little-endian pixel data, or
    (None, None) when the pixels must go through pydicom (compressed, big endian, deflated)."""
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return None, None
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None, None
    group, element = struct.unpack("<HH", head[:4])
    if (group, element) != _PIXEL_DATA_TAG:
        return None, None
    if ts == ExplicitVRLittleEndian:
        if len(head) < 12 or head[4:6] not in (b"OB", b"OW"):
            return None, None
        (length,) = struct.unpack("<I", head[8:12])
        offset = start + 12
    else:
        (length,) = struct.unpack("<I", head[4:8])
        offset = start + 8
    if length == _UNDEFINED_LENGTH:
        return None, None
    return offset, int(length)


def _sniff(fp: BinaryIO) -> tuple[bool, bool]:
    """(has the DICM prefix, may be deflated). Raises NotDicomError when the file clearly is
    not DICOM; a False prefix means a preamble-less file that may be a raw DICOM dataset.
    "May be deflated" means the Deflated Explicit VR Little Endian UID appears in the first
    kilobyte, where the file meta information sits."""
    head = fp.read(1024)
    fp.seek(0)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True, _DEFLATED_BYTES in head
    # Files written without the Part 10 preamble start directly with a group 0002 or 0008
    # element (little or big endian).
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08", b"\x00\x02"):
        return False, False
    raise NotDicomError("no DICM prefix and no DICOM element at the start")


def inflate_bounded(data: bytes, max_bytes: int, path: str | Path,
                    stop_at_pixel_data: bool = False) -> bytes:
    """Inflate a raw deflate stream (the data set of a Deflated Explicit VR Little Endian file,
    PS3.5 A.5) without ever holding more than ``max_bytes`` of output.

    With ``stop_at_pixel_data`` inflation stops at the first top-level-looking (7FE0,0010)
    element header, which is all a header scan needs: a deflate bomb hidden in the pixel
    data is never expanded.

    Raises
    ------
    CorruptFileError
        The stream is damaged or ends before its end marker.
    ResourceLimitError
        The stream inflates to more than ``max_bytes``.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            pending = inflater.unconsumed_tail
            start = max(0, len(out) - 6)
            out += chunk
            if stop_at_pixel_data:
                at = out.find(_PIXEL_TAG_LE, start)
                while at >= 0 and len(out) >= at + 6:
                    if bytes(out[at + 4:at + 6]) in _PIXEL_VRS:
                        return bytes(out[:at])
                    at = out.find(_PIXEL_TAG_LE, at + 1)
            if len(out) > max_bytes:
                limit = limits()
                raise ResourceLimitError(
                    path, f"the deflated data set inflates to more than {max_bytes:,} bytes "
                    "(a decompression bomb, or an image larger than the memory budget)",
                    "LUMBARVIEW_MAX_VOLUME_MB (in MB)", f"{limit.max_volume_bytes // (1 << 20)} MB")
            if inflater.eof:
                break
            if not chunk and not pending:
                raise CorruptFileError(path, "the deflated data set is truncated (the deflate "
                                       "stream ends before its end marker)",
                                       "re-copy the file from its source")
    except zlib.error as exc:
        raise CorruptFileError(path, f"the deflated data set cannot be inflated ({exc})",
                               "the file is damaged; re-copy it from its source") from exc
    return bytes(out)


def _stop_at_pixels(tag: Any, vr: str | None, length: int) -> bool:
    return int(tag) == 0x7FE00010


def read_deflated(fp: BinaryIO, path: str | Path, max_bytes: int,
                  stop_before_pixels: bool) -> Dataset | None:
    """Read a Part 10 file whose transfer syntax is Deflated Explicit VR Little Endian,
    inflating with a bound (pydicom itself inflates the whole stream, however large).
    Returns None when the file meta does not name the deflated syntax after all.

    Raises
    ------
    CorruptFileError, ResourceLimitError
        Damaged stream, or more than ``max_bytes`` of inflated data.
    """
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    fp.seek(0)
    preamble = read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED_UID:
        return None
    compressed = fp.read(max_bytes + 1)
    inflated = None
    if stop_before_pixels:
        head = inflate_bounded(compressed, max_bytes, path, stop_at_pixel_data=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inflated = read_dataset(cast(BinaryIO, DicomBytesIO(head)), False, True, stop_when=_stop_at_pixels)
        except Exception:  # the (7FE0,0010) found was inside a value: inflate it all
            inflated = None
    if inflated is None:
        body = inflate_bounded(compressed, max_bytes, path)
        inflated = read_dataset(cast(BinaryIO, DicomBytesIO(body)), False, True,
                                stop_when=_stop_at_pixels if stop_before_pixels else None)
    ds = pydicom.dataset.FileDataset(str(path), inflated, preamble=preamble, file_meta=meta)
    ds.set_original_encoding(False, True, inflated._character_set)
    return ds


def read_header(path: str | Path, stat: os.stat_result | None = None,
                fast: bool = True) -> DicomFileHeader:
    """Read the header of one file.

    A plain explicit VR little-endian Part 10 file (what scanners and PACS write, whatever the
    pixel compression) is read in one pass over its bytes, keeping only the attributes the
    scan needs; any other file, and any file the fast pass finds unusual (implicit VR, big
    endian, deflated, enhanced multi-frame, another character set, a damaged or truncated
    element), goes through pydicom. ``fast=False`` forces pydicom (used by tests to compare).

    Raises
    ------
    NotDicomError
        The file is not DICOM.
    OSError
        The file cannot be read.
    InvalidDicomError, ValueError, EOFError, struct.error
        The header is damaged (the caller turns these into issues).
    """
    path = str(path)
    st = stat or os.stat(path)
    if fast:
        plain = _read_plain(path, st.st_size)
        if plain is not None:
            elements, ts, media_class, offset, length, at_pixels = plain
            fast_ds = _FastDataset(elements)
            raw = _RawValues(cast(Dataset, fast_ds))
            if raw.plain_text:
                has_pixels = at_pixels or (
                    "Rows" in fast_ds and "Columns" in fast_ds and "BitsAllocated" in fast_ds)
                return _header_from(path, st, cast(Dataset, fast_ds), raw,
                                    raw.text("SOPClassUID") or media_class, ts, has_pixels,
                                    offset, length, [])
    with open_regular(path) as fp:
        has_prefix, maybe_deflated = _sniff(fp)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                deflated = (read_deflated(fp, path, limits().max_volume_bytes, True)
                            if maybe_deflated else None)
                if deflated is not None:
                    ds = deflated
                else:
                    fp.seek(0)
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not has_prefix)
        except InvalidDicomError as exc:
            raise NotDicomError(str(exc)) from exc
        if not has_prefix and "SOPClassUID" not in ds and "Rows" not in ds:
            raise NotDicomError("forced read found no DICOM image attributes")
        ds_end = fp.tell()
        raw = _RawValues(ds)
        sop_class = raw.text("SOPClassUID")
        if not sop_class and hasattr(ds, "file_meta"):
            sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
        fp.seek(ds_end)
        offset, length = _locate_native_pixels(fp, ds, st.st_size)
        fp.seek(ds_end)
        # Deflated or odd files leave the raw file position elsewhere; image attributes then
        # stand in for the tag check, and decoding reports a missing Pixel Data clearly.
        has_pixels = fp.read(4)[:4] in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10") or (
            "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds)
    ts = ""
    if hasattr(ds, "file_meta"):
        ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    if not ts and not has_prefix:
        ts = str(ImplicitVRLittleEndian) if ds.is_implicit_VR else str(ExplicitVRLittleEndian)
    return _header_from(path, st, ds, raw, sop_class, ts, has_pixels, offset, length,
                        list(caught))


def _header_from(path: str, st: os.stat_result, ds: Dataset, raw: _RawValues, sop_class: str,
                 ts: str, has_pixels: bool, offset: int | None, length: int | None,
                 caught: list[warnings.WarningMessage]) -> DicomFileHeader:
    """The header record from the elements read (by pydicom or by the fast pass)."""
    n_frames = raw.int_("NumberOfFrames") or 1
    if n_frames < 1:
        n_frames = 1
    if n_frames > max(1, int(st.st_size)):
        # Each frame is at least one byte of the file: a larger count is a damaged header, and
        # it would size the per-frame geometry (a 7 kB file claiming 2^31 frames took 3 GB).
        raise CorruptFileError(path, f"NumberOfFrames is {n_frames:,}, more frames than a file of {st.st_size:,} "
                               "bytes can hold", "the header is damaged; re-copy the file from its source")
    if has_pixels:
        check_pixel_budget(path, raw.int_("Rows") or 0, raw.int_("Columns") or 0, n_frames,
                           raw.int_("SamplesPerPixel") or 1, raw.int_("BitsAllocated") or 0)
    with warnings.catch_warnings(record=True) as caught_late:
        warnings.simplefilter("always")
        frames = _frame_geometries(ds, n_frames, raw)
    window_center = raw.floats("WindowCenter")
    window_width = raw.floats("WindowWidth")
    header = DicomFileHeader(
        path=path,
        size=int(st.st_size),
        mtime_ns=int(st.st_mtime_ns),
        sop_class_uid=sop_class,
        sop_instance_uid=raw.text("SOPInstanceUID"),
        patient_id=raw.text("PatientID"),
        patient_name=raw.text("PatientName"),
        study_uid=raw.text("StudyInstanceUID"),
        study_description=raw.text("StudyDescription"),
        study_date=raw.text("StudyDate"),
        series_uid=raw.text("SeriesInstanceUID"),
        series_number=raw.int_("SeriesNumber"),
        series_description=raw.text("SeriesDescription"),
        modality=raw.text("Modality"),
        frame_of_reference_uid=raw.text("FrameOfReferenceUID"),
        rows=raw.int_("Rows") or 0,
        cols=raw.int_("Columns") or 0,
        bits_allocated=raw.int_("BitsAllocated") or 0,
        bits_stored=raw.int_("BitsStored") or (raw.int_("BitsAllocated") or 0),
        pixel_representation=raw.int_("PixelRepresentation") or 0,
        samples_per_pixel=raw.int_("SamplesPerPixel") or 1,
        photometric=raw.text("PhotometricInterpretation"),
        transfer_syntax=ts,
        n_frames=n_frames,
        rescale_slope=raw.float_("RescaleSlope") or 1.0,
        rescale_intercept=raw.float_("RescaleIntercept") or 0.0,
        window_center=None if not window_center else window_center[0],
        window_width=None if not window_width else window_width[0],
        patient_position=raw.text("PatientPosition"),
        spacing_between_slices_mm=raw.float_("SpacingBetweenSlices"),
        acquisition_number=raw.int_("AcquisitionNumber"),
        echo_number=raw.int_("EchoNumbers"),
        temporal_position=raw.int_("TemporalPositionIdentifier"),
        instance_number=raw.int_("InstanceNumber"),
        has_pixels=has_pixels,
        pixel_offset=offset,
        pixel_length=length,
        notes=(),
        frames=frames,
    )
    # Only pydicom's own warnings describe the file (garbage collection can emit unrelated
    # ResourceWarnings inside the recording window).
    messages = [*raw.notes, *(str(w.message).split(". Please see")[0]
                              for w in [*caught, *caught_late] if "pydicom" in w.filename)]
    if messages:
        header = replace(header, notes=tuple(sorted(set(messages))))
    return header


def check_pixel_budget(path: str | Path | None, rows: int, cols: int, n_frames: int,
                       samples_per_pixel: int, bits_allocated: int) -> None:
    """Refuse, before anything is decoded or allocated, an image whose declared size exceeds
    the budgets (:func:`lumbarview.core.limits.limits`): each frame against the 2D image
    budget, all frames against the volume budget.

    Raises
    ------
    ResourceLimitError
    """
    budget = limits()
    samples = max(1, samples_per_pixel)
    pixels = max(0, rows) * max(0, cols)
    budget.check_image(path, pixels * samples, f"image ({rows} x {cols} pixels per frame)")
    budget.check_volume(path, pixels * max(1, n_frames) * samples, max(1, (bits_allocated + 7) // 8),
                        f"image ({rows} x {cols} x {n_frames} frames)")


def transfer_syntax_name(uid: str) -> str:
    """Readable name of a transfer syntax UID."""
    try:
        return str(UID(uid).name) if uid else "unknown transfer syntax"
    except (ValueError, KeyError):
        return uid


#: Issue code of a file refused by a resource budget: such verdicts are never cached, so that
#: raising the limit takes effect at once.
LIMIT_CODE = "dicom.too-large"


def _describe(exc: BaseException) -> str:
    """What a header-read exception means, in words (pydicom's own text kept short)."""
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, BytesLengthException):
        return f"an element's value length does not fit its value representation ({text})"
    if isinstance(exc, NotImplementedError) and "Value Representation" in text:
        return f"an element has an unknown value representation ({text})"
    if isinstance(exc, RecursionError):
        return "its sequences are nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "reading it needs more memory than is available"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def header_issue(path: str, exc: BaseException) -> LoadIssue:
    """Turn a header-read failure (any exception) into an issue record for that one file."""
    if isinstance(exc, NotDicomError):
        return LoadIssue(Severity.INFO, "dicom.not-dicom", "skipped: not a DICOM file", path)
    if isinstance(exc, OSError):
        return LoadIssue(Severity.WARNING, "io.unreadable",
                         f"cannot read the file ({exc.strerror or exc}); check its permissions",
                         path)
    if isinstance(exc, ResourceLimitError):
        return LoadIssue(Severity.ERROR, LIMIT_CODE,
                         f"the file was skipped: {exc.problem}. {exc.action}", path)
    if isinstance(exc, LoadError):
        code = "dicom.corrupt-deflate" if "deflate" in exc.problem else "dicom.corrupt-header"
        return LoadIssue(Severity.ERROR, code,
                         f"the file was skipped: {exc.problem}. {exc.action}", path)
    return LoadIssue(
        Severity.ERROR, "dicom.corrupt-header",
        f"the DICOM header is damaged ({_describe(exc)}); the file was skipped, "
        "re-export or re-copy it from the source", path)
