"""Export measurements as a DICOM Structured Report: a TID 1500 measurement report (highdicom).

One measurement group (TID 1501) per series, level, part (canal, foramen, disc) and side, its
tracking identifier naming them (``"L4-L5 foramen left (t2)"``); one numeric measurement per row
with a value, coded in lumbarview's own coding scheme (:data:`SCHEME`, the code value is the
``quantity`` key of ``lumbarview measure``) and UCUM units. Engine rows carry the algorithm
(``lumbarview`` and its version); every row's ``source`` is the group's method text.

Where the measured image is DICOM, each measurement references the source slice nearest to its
position (SOP class and instance read from the files' headers) and the report joins that
study. A measurement drawn by hand (a row with ``points_lps``) on a DICOM image with a frame of
reference is its own planar ROI group (TID 1410) whose region is its points as SCOORD3D in that
frame (POINT, POLYLINE for lines and angles, MULTIPOINT for a Cobb angle's two lines, POLYGON
for an area, ELLIPSE for an ellipse); elsewhere it is a measurement group of its own referencing
the image. Where the image is not DICOM (NIfTI, MHA...) the report belongs to a new study whose
patient ID is the case ID, and it references no image. Rows without a value (NaN: not measured) are left out
and counted in the returned notes. :func:`read_sr` gives the measurements back.

The reader's and the dataset's grades (:mod:`lumbarview.model.gradings`) are qualitative
evaluations, one measurement group per level, side and source (tracking identifier
``"L4-L5 left gradings [reader]"``), each grading coded in :data:`SCHEME` by
:attr:`~lumbarview.model.gradings.Grading.code` and its value coded by the value itself;
:func:`read_sr_grades` gives them back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from lumbarview.core.dataset import Case
from lumbarview.core.errors import CorruptFileError
from lumbarview.core.fs import atomic_write_bytes, open_regular
from lumbarview.core.types import ImageStack
from lumbarview.model.gradings import BY_KEY, SR_CODES, Grade
from lumbarview.services.engine_view import ENGINE_VERSION, part_of

SCHEME = "99LMBV"
_UCUM = {"mm": ("mm", "millimeter"), "mm2": ("mm2", "square millimeter"), "ratio": ("1", "no units"),
         "%": ("%", "percent"), "deg": ("deg", "degree")}
_LINES = ("distance", "angle")
_AREAS = ("polygon", "freehand", "rectangle")
_MAX_HEADERS = 400  # headers read for references (one per measured slice at most)


@dataclass
class SrResult:
    path: Path
    n_measurements: int
    n_referenced_images: int
    notes: list[str] = field(default_factory=list)


def _stack_for_series(case: Case | None, series: str) -> ImageStack | None:
    if case is None:
        return None
    for stack in case.stacks():
        if series in (str(stack.meta.get("description")), stack.series_uid) and stack.meta.get("files"):
            return stack
    return None


def _region(quantity: str, points: Any, frame_uid: str) -> hd.sr.ImageRegion3D | None:
    """The SCOORD3D region of a hand-drawn measurement (None for a kind without one)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if quantity == "point":
        return hd.sr.ImageRegion3D("POINT", p[:1], frame_uid)
    if quantity in _LINES:
        return hd.sr.ImageRegion3D("POLYLINE", p, frame_uid)
    if quantity == "cobb":
        return hd.sr.ImageRegion3D("MULTIPOINT", p, frame_uid)
    if quantity in _AREAS and len(p) >= 3:
        return hd.sr.ImageRegion3D("POLYGON", np.vstack([p, p[:1]]), frame_uid)
    if quantity == "ellipse" and len(p) == 3:
        c, u, v = p[0], p[1] - p[0], p[2] - p[0]
        major, minor = (u, v) if np.linalg.norm(u) >= np.linalg.norm(v) else (v, u)
        return hd.sr.ImageRegion3D("ELLIPSE", np.array([c - major, c + major, c - minor, c + minor]), frame_uid)
    return None


class _References:
    """DICOM headers of the slices measurements lie on (read once each, bounded)."""

    def __init__(self) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.notes: list[str] = []

    def nearest(self, stack: ImageStack, position_lps: Sequence[float] | None) -> Dataset | None:
        files = stack.meta.get("files") or []
        positions = stack.meta.get("positions_lps") or []
        if position_lps is None or not files:
            return None
        normal = stack.geometry.ijk_to_lps[:3, 2]
        normal = normal / np.linalg.norm(normal)
        best, best_d = None, np.inf
        for k, (path, pos) in enumerate(zip(files, positions, strict=False)):
            if path is None or pos is None:
                continue
            d = abs(float((np.asarray(position_lps) - np.asarray(pos)) @ normal))
            if d < best_d:
                best, best_d = k, d
        if best is None:
            return None
        path = str(files[best])
        found = self.datasets.get(path)
        if found is None and len(self.datasets) < _MAX_HEADERS:
            try:
                with open_regular(path) as handle:
                    found = pydicom.dcmread(handle, stop_before_pixels=True)
                found.SOPClassUID  # noqa: B018  (present, or the reference is useless)
                found.SOPInstanceUID  # noqa: B018
            except Exception as exc:  # a damaged header only loses that reference
                self.notes.append(f"{path}: not referenced ({type(exc).__name__}: {exc})")
                return None
            self.datasets[path] = found
        return found


def _evidence(case: Case | None, case_id: str) -> Dataset:
    """A stand-in for patient and study when no source image is DICOM."""
    ds = Dataset()
    ds.PatientID = case_id[:64]
    ds.PatientName = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.StudyID = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage: what the source would be
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    return ds


def _group_key(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """Engine rows group by series, level, part and side; anything else is a group of its own
    (one per measurement, named by its kind)."""
    source = str(row.get("source") or "engine")
    if source != "engine":
        return (str(row.get("series") or ""), str(row.get("level") or ""),
                part_of(row.get("quantity")) or str(row.get("quantity")),
                str(row.get("side") or ""), f"{source} {row.get('id') or ''}".strip())
    part = part_of(row.get("quantity")) or "other"
    side = str(row.get("side") or "") if part == "foramen" else ""
    return (str(row.get("series") or ""), str(row.get("level") or ""), part, side, source)


GRADES_GROUP = "gradings"


def _grade_groups(grades: Sequence[Grade]) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    by_group: dict[tuple[str, str, str], list[hd.sr.QualitativeEvaluation]] = {}
    for g in grades:
        grading = BY_KEY[g.grading]
        evaluation = hd.sr.QualitativeEvaluation(
            hd.sr.CodedConcept(grading.code, SCHEME, grading.name),
            hd.sr.CodedConcept(g.value, SCHEME, g.value))
        by_group.setdefault((g.level, g.side or "", g.source), []).append(evaluation)
    return [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=" ".join(p for p in (level, side, GRADES_GROUP) if p) + f" [{source}]"),
        method=hd.sr.CodedConcept(source[:16], SCHEME, f"{source} grading"), qualitative_evaluations=evaluations)
        for (level, side, source), evaluations in by_group.items()]


def build_sr(rows: Sequence[dict[str, Any]], case: Case | None, case_id: str,
             engine_version: str = ENGINE_VERSION, grades: Sequence[Grade] = ()
             ) -> tuple[hd.sr.Comprehensive3DSR, SrResult]:
    """The SR of ``rows`` (export rows: ``lumbarview measure`` keys + ``source``) and ``grades``."""
    refs = _References()
    groups: dict[tuple[str, str, str, str, str], list[hd.sr.Measurement]] = {}
    regions: list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations] = []
    skipped = 0
    n = 0
    for row in rows:
        value = row.get("value")
        quantity = row.get("quantity")
        unit = _UCUM.get(str(row.get("unit")))
        if value is None or quantity is None or unit is None:
            skipped += 1
            continue
        source = str(row.get("source") or "engine")
        images = []
        ref = None
        stack = _stack_for_series(case, str(row.get("series")))
        if stack is not None:
            ref = refs.nearest(stack, row.get("position_lps"))
            if ref is not None:
                images.append(hd.sr.SourceImageForMeasurement(ref.SOPClassUID, ref.SOPInstanceUID))
        algorithm = (hd.sr.AlgorithmIdentification(name="lumbarview", version=str(
            row.get("engine_version") or engine_version)) if source == "engine" else None)
        measurement = hd.sr.Measurement(
            name=hd.sr.CodedConcept(str(quantity), SCHEME, str(quantity).replace("_", " ")),
            value=float(value), unit=hd.sr.CodedConcept(unit[0], "UCUM", unit[1]),
            algorithm_id=algorithm, referenced_images=images or None)
        n += 1
        frame = str(ref.get("FrameOfReferenceUID", "")) if ref is not None else ""
        region = _region(str(quantity), row["points_lps"], frame) if frame and row.get("points_lps") else None
        if region is not None:
            name = " ".join(str(p) for p in (row.get("level"), row.get("side"), quantity) if p)
            regions.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(),
                                                             identifier=f"{name} [{source}]"[:64]),
                referenced_region=region, method=hd.sr.CodedConcept(source[:16], SCHEME, f"{source} measurement"),
                measurements=[measurement]))
            continue
        groups.setdefault(_group_key({**row, "source": source}), []).append(measurement)
    imaging = []
    for (series, level, part, side, source), measurements in groups.items():
        name = " ".join(p for p in (level, part, side) if p) + (f" ({series})" if series else "")
        imaging.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{name} [{source}]"[:64]),
            method=hd.sr.CodedConcept(source.split()[0][:16] or "engine", SCHEME,
                                      f"{source.split()[0]} measurement"),
            measurements=measurements))
    imaging.extend(_grade_groups(grades))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="lumbarview", model_name=engine_version))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=[*imaging, *regions] or None)
    evidence = list(refs.datasets.values())
    synthetic = not evidence
    if synthetic:
        evidence = [_evidence(case, case_id)]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=generate_uid(), series_number=990,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="lumbarview",
        series_description="lumbarview measurements", record_evidence=not synthetic)
    if synthetic and "CurrentRequestedProcedureEvidenceSequence" in sr:
        del sr.CurrentRequestedProcedureEvidenceSequence  # the stand-in is no evidence
    notes = list(refs.notes)
    if skipped:
        notes.append(f"{skipped} row(s) without a value (not measured) are not in the report")
    if synthetic:
        notes.append("the images are not DICOM: the report references no image (new study, patient ID = case)")
    return sr, SrResult(Path(), n, len(refs.datasets), notes)


def write_sr(path: str | Path, rows: Sequence[dict[str, Any]], case: Case | None, case_id: str,
             engine_version: str = ENGINE_VERSION, grades: Sequence[Grade] = ()) -> SrResult:
    """Build the SR (see :func:`build_sr`) and write it atomically to ``path``."""
    sr, result = build_sr(rows, case, case_id, engine_version, grades)
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())
    result.path = Path(path)
    return result


def _algorithm_version(measurement: Any) -> str | None:
    """The TID 4019 algorithm version (DCM 111003) under a measurement, if any."""
    item = measurement[0]  # a template is a sequence: its first item is the NUM content item
    for child in item.get("ContentSequence", []):
        names = child.get("ConceptNameCodeSequence") or []
        if names and names[0].CodeValue == "111003":
            return str(child.TextValue)
    return None


def read_sr(path: str | Path) -> list[dict[str, Any]]:
    """The measurements of a report written by :func:`write_sr`: ``group`` (tracking
    identifier), ``quantity``, ``value``, ``unit`` (UCUM), ``algorithm_version``, the
    ``referenced_sop_instance_uids`` and, for a planar ROI group, ``graphic_type`` and
    ``points_lps`` of its SCOORD3D region (None elsewhere)."""
    try:
        sr = hd.sr.srread(path)
        content = sr.content
        report = hd.sr.MeasurementReport.from_sequence(content)
        groups = [*report.get_image_measurement_groups(), *report.get_planar_roi_measurement_groups()]
    except Exception as exc:  # a damaged or foreign file is one clear error
        raise CorruptFileError(path, f"not a readable measurement report ({type(exc).__name__}: {exc})",
                               "choose a report written by lumbarview") from exc
    out = []
    for group in groups:
        roi = getattr(group, "roi", None)
        graphic = None if roi is None else str(roi.graphic_type.value)
        points = None if roi is None else np.asarray(roi.value, dtype=np.float64).reshape(-1, 3).tolist()
        for m in group.get_measurements():
            refs = [str(img.referenced_sop_instance_uid) for img in (m.referenced_images or [])]
            out.append({"group": group.tracking_identifier, "quantity": m.name.value, "value": float(m.value),
                        "unit": m.unit.value, "algorithm_version": _algorithm_version(m),
                        "referenced_sop_instance_uids": refs, "graphic_type": graphic, "points_lps": points})
    return out


def read_sr_grades(path: str | Path) -> list[Grade]:
    """The grades of a report written by :func:`write_sr` (the case is the report's patient ID).

    Raises
    ------
    CorruptFileError
        Not a readable measurement report, or a grade it holds that lumbarview does not know.
    """
    grading_of = {code: key for key, code in SR_CODES.items()}
    try:
        sr = hd.sr.srread(path)
        report = hd.sr.MeasurementReport.from_sequence(sr.content)
        groups = report.get_image_measurement_groups()
        out = []
        for group in groups:
            words = str(group.tracking_identifier).rsplit(" [", 1)
            if len(words) != 2 or GRADES_GROUP not in words[0].split():
                continue
            source = words[1].rstrip("]")
            where = words[0].split()
            level, side = where[0], (where[1] if len(where) == 3 else None)
            for evaluation in group.get_qualitative_evaluations():
                key = grading_of.get(str(evaluation.name.value))
                if key is None:
                    raise ValueError(f"unknown grading code {evaluation.name.value!r}")
                value = getattr(evaluation.value, "value", evaluation.value)  # a CodedConcept's code value
                out.append(Grade.create(key, level, str(value), side, source, case=str(sr.PatientID)))
    except Exception as exc:  # a damaged or foreign file is one clear error
        raise CorruptFileError(path, f"not a readable graded report ({type(exc).__name__}: {exc})",
                               "choose a report written by lumbarview") from exc
    return out
