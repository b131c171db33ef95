"""Export a dataset, a case, a study or a series, de-identified or as it is, into a new folder.

:func:`export` opens ``source`` with lumbarview's own readers (any layout), then writes, per
case, into a temporary folder beside ``out`` that is renamed to ``out`` once everything is
written (``out`` must be missing or empty: nothing is ever overwritten):

* DICOM instances (the case's images, and every other DICOM object in their folders: SR, SEG,
  presentation states...) through :mod:`~lumbarview.services.deidentify.dicom`, pixel data
  untouched, as ``<case>/dicom/<study>/<series>/<instance>.dcm``;
* volumes (``.mha``, ``.nii.gz``, ``.nrrd``) and label maps re-written from their voxels and
  geometry alone (so no header text and no original file name leaves), as
  ``<case>/volumes/<n>.<ext>`` and ``<case>/labels/<n>_label.<ext>``; JSON sidecars keep the
  acquisition keys of :data:`SIDECAR_KEYS` only;
* or a public layout (``layout="spider"``: :mod:`~lumbarview.services.deidentify.layouts_out`);
* an export report, ``export-report.json`` and ``export-report.txt`` (:mod:`.report`).

Instances with burned-in text (and secondary captures, screen saves, encapsulated documents)
are held back and listed in the report. With ``deidentify=False`` the same files are copied
unchanged (names still generated).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset as DicomDataset

from lumbarview import __version__
from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import Cancelled, LoadError, LumbarviewError
from lumbarview.core.fs import atomic_write_text, fsync_dir
from lumbarview.core.types import ImageStack
from lumbarview.io.dicom.files import read_instance, write_instance
from lumbarview.io.mesh import write_stl
from lumbarview.io.session_file import MeasurementRecord, SessionFile, dumps, read_session
from lumbarview.io.volume_write import write_volume
from lumbarview.services.deidentify.dicom import clean_text, deidentify, held_back_reason
from lumbarview.services.deidentify.identity import Identities
from lumbarview.services.deidentify.profile import Profile, ProfileOptions
from lumbarview.services.open_dataset import open_path
from lumbarview.services.session_store import default_session_file

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
REPORT_FORMAT = "lumbarview-export-report"
REPORT_VERSION = 1
LAYOUTS = ("spider", "rsna")
# BIDS sidecar keys that describe the acquisition and never the person (everything else is dropped).
SIDECAR_KEYS = frozenset({
    "Modality", "MagneticFieldStrength", "Manufacturer", "ManufacturersModelName", "MRAcquisitionType",
    "SeriesDescription", "ProtocolName", "ScanningSequence", "SequenceVariant", "ScanOptions",
    "SequenceName", "ImageType", "SliceThickness", "SpacingBetweenSlices", "EchoTime", "RepetitionTime",
    "InversionTime", "FlipAngle", "PartialFourier", "PixelBandwidth", "PhaseEncodingDirection",
    "PercentPhaseFOV", "PercentSampling", "AcquisitionMatrixPE", "ReconMatrixPE", "EchoTrainLength",
    "BodyPartExamined", "PatientPosition", "ImageOrientationPatientDICOM", "InPlanePhaseEncodingDirectionDICOM",
    "ReceiveCoilName", "SAR", "ConversionSoftware", "ConversionSoftwareVersion"})
_DESCRIPTOR_KEYS = ("SeriesDescription", "ProtocolName")
# Sidecar keys whose values identify (struck from the descriptions kept by Clean Descriptors).
_IDENTIFYING_KEY = re.compile(r"Name|Institution|Station|Serial|Address|Procedure|Physician|Operator|Patient|"
                              r"Date|Accession|Study|Requesting|Referring|Performing|Device")


class ExportError(LumbarviewError):
    """The export cannot be done safely (nothing was written)."""


@dataclass(frozen=True)
class ExportRequest:
    source: Path
    out: Path
    deidentify: bool = True
    options: ProfileOptions = field(default_factory=ProfileOptions)
    key: bytes | None = None
    layout: str | None = None  # None: lumbarview's own folder layout; "spider" | "rsna"
    cases: tuple[str, ...] = ()
    series_uid: str | None = None  # only this series (its stacks, label maps and DICOM instances)


@dataclass
class ExportReport:
    """What an export wrote and held back, and by which rules (the report's JSON, key by key)."""

    source: str
    out: str
    deidentified: bool
    profile: dict[str, Any]
    layout: str
    exported: list[dict[str, Any]] = field(default_factory=list)
    held_back: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)  # case folder -> files written

    def to_json(self, with_sources: bool = True) -> dict[str, Any]:
        """The report; ``with_sources=False`` (what a de-identified export writes into its folder)
        leaves out every source path, which may name the patient."""
        withheld = "(not written into a de-identified export: source paths may name the patient)"
        held = [item if with_sources else {**item, "source": withheld} for item in self.held_back]
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "lumbarview": __version__,
                "source": self.source if with_sources else withheld, "deidentified": self.deidentified,
                "profile": self.profile, "layout": self.layout, "exported": self.exported,
                "held_back": held, "notes": self.notes}


Progress = Callable[[int, int, str], None]


def check_out_dir(out: Path, source: Path) -> None:
    """Refuse an output folder that holds anything, is a file, or lies inside the source."""
    out_abs, source_abs = Path(os.path.abspath(out)), Path(os.path.abspath(source))
    if out_abs.exists():
        if not out_abs.is_dir():
            raise ExportError(f"{out}: this is a file; the output must be a missing or empty folder")
        if any(out_abs.iterdir()):
            raise ExportError(f"{out}: the folder is not empty; give a new or empty folder (nothing is "
                              "ever overwritten)")
    if out_abs == source_abs or source_abs in out_abs.parents:
        raise ExportError(f"{out}: the output lies inside the source {source}; give a folder outside it "
                          "(the source is never written to)")
    if not out_abs.parent.is_dir():
        raise ExportError(f"{out}: its parent folder does not exist; create it first")


def export(request: ExportRequest, progress: Progress | None = None,
           cancel: threading.Event | None = None) -> ExportReport:
    """Run one export (see the module's notes).

    Raises
    ------
    ExportError
        When it cannot be done safely; ``out`` is then left as it was.
    LoadError
        When ``source`` cannot be opened.
    Cancelled
        When ``cancel`` is set; nothing is left behind.
    """
    if request.layout is not None and request.layout not in LAYOUTS:
        raise ExportError(f"unknown layout {request.layout!r}; choose one of {', '.join(LAYOUTS)}")
    check_out_dir(request.out, request.source)
    dataset = open_path(request.source, cancel=cancel)
    cases = _chosen_cases(dataset, request.cases)
    out = Path(os.path.abspath(request.out))
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".lvtmp", dir=out.parent))
    try:
        report = _export_into(staging, dataset, cases, request, progress, cancel)
        report.out = str(out)
        _write_report(staging, report)
        if out.exists():
            out.rmdir()  # empty (checked again here): the rename needs the name free
        os.replace(staging, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _chosen_cases(dataset: Dataset, wanted: Sequence[str]) -> list[Case]:
    if not wanted:
        return list(dataset.cases)
    missing = [c for c in wanted if dataset.case(c) is None]
    if missing:
        known = ", ".join(c.id for c in dataset.cases[:10])
        raise ExportError(f"no case {', '.join(missing)} in {dataset.path} (cases: {known}"
                          f"{', ...' if len(dataset.cases) > 10 else ''})")
    return [c for c in dataset.cases if c.id in wanted]


def profile_summary(request: ExportRequest) -> dict[str, Any]:
    profile = Profile(request.options)
    return {"name": "basic" if request.deidentify else "none",
            "standard": "DICOM PS3.15 Annex E, Table E.1-1", "table_version": profile.table.version,
            "table_source": profile.table.source,
            "options": list(request.options.chosen) if request.deidentify else [],
            "codes": [{"value": v, "scheme": "DCM", "meaning": m} for v, m in profile.method_codes()]
            if request.deidentify else [],
            "project_key": request.key is not None,
            "private_allow_list": sorted(f"{c}:{e:02x}" for c, e in request.options.private_allow_list)}


class _Writer:
    """One export's state: identities, the files written, the report."""

    def __init__(self, root: Path, request: ExportRequest, report: ExportReport,
                 cancel: threading.Event | None) -> None:
        self.root = root
        self.request = request
        self.report = report
        self.cancel = cancel
        self.profile = Profile(request.options)
        self.identities = Identities(request.key)
        self.out = Path(os.path.abspath(request.out))
        #: original series uid -> the uid lumbarview's readers give the exported copy
        self.series_map: dict[str, str] = {}

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def case_name(self, case: Case) -> str:
        return self.identities.pseudonym(case.id) if self.request.deidentify else _safe_name(case.id)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def hold(self, what: str, source: str, why: str) -> None:
        self.report.held_back.append({"what": what, "source": source, "why": why})

    def dicom(self, case: Case, path: Path, target: Path | None = None) -> tuple[Path, DicomDataset] | None:
        """One DICOM file de-identified (or copied) into the case's folder; None when held back
        or not DICOM."""
        try:
            ds = read_instance(path)
        except LoadError as exc:
            self.hold("a damaged DICOM file", str(path), exc.problem)
            return None
        if ds is None:
            return None
        reason = held_back_reason(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
            reason = "a DICOMDIR: it names the source's patients and files; the copy is read without one"
        if reason is not None:
            self.hold("a DICOM instance", str(path), reason)
            return None
        original_series = str(ds.get("SeriesInstanceUID", ""))
        if self.request.deidentify:
            deidentify(ds, self.profile, self.identities, case.id)
        self.series_map[original_series] = str(ds.get("SeriesInstanceUID", ""))
        if target is None:
            study = self.identities.name("study", str(ds.get("StudyInstanceUID", "")), 8)
            series = self.identities.name("series", str(ds.get("SeriesInstanceUID", "")), 8)
            instance = self.identities.name("instance", str(ds.get("SOPInstanceUID", path)), 12)
            target = self.root / self.case_name(case) / "dicom" / study / series / f"{instance}.dcm"
        if target.exists():
            self.hold("a DICOM instance", str(path), "another file holds the same SOP Instance UID (a duplicate)")
            return None
        write_instance(target, ds)
        self.report.exported.append({"kind": "dicom", "modality": str(ds.get("Modality", "")),
                                     "sop_class": str(ds.get("SOPClassUID", "")), "file": self.rel(target)})
        return target, ds

    def volume(self, stack: ImageStack, target: Path, kind: str, new_uid: str | None = None) -> None:
        """``stack`` re-written from its voxels and geometry; ``new_uid``: the series uid the
        layout's reader gives the copy (default: the folder layout's ``file:<path>``)."""
        write_volume(target, stack.pixels(), stack.geometry)
        self.series_map[stack.series_uid] = new_uid or f"file:{self.out / self.rel(target)}"
        self.report.exported.append({"kind": kind, "file": self.rel(target),
                                     "shape_kji": list(stack.geometry.shape_kji)})


def _safe_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("._")
    return cleaned[:64] or "case"


def _volume_suffix(source: str) -> str:
    name = source.lower()
    if name.endswith((".nii", ".nii.gz")):
        return ".nii.gz"
    if name.endswith((".nrrd", ".nhdr")):
        return ".nrrd"
    return ".mha"


def _export_into(root: Path, dataset: Dataset, cases: list[Case], request: ExportRequest,
                 progress: Progress | None, cancel: threading.Event | None) -> ExportReport:
    report = ExportReport(source=str(request.source), out=str(request.out), deidentified=request.deidentify,
                          profile=profile_summary(request), layout=request.layout or "lumbarview")
    writer = _Writer(root, request, report, cancel)
    if request.layout == "spider":
        from lumbarview.services.deidentify.layouts_out import write_spider

        write_spider(writer, dataset, cases, progress)
        export_session(writer, dataset, cases)
        return report
    if request.layout == "rsna":
        from lumbarview.services.deidentify.layouts_out import write_rsna

        write_rsna(writer, dataset, cases, progress)
        export_session(writer, dataset, cases)
        return report
    for n, case in enumerate(cases, 1):
        writer.check_cancel()
        if progress is not None:
            progress(n - 1, len(cases), f"case {n} of {len(cases)}")
        case.ensure_open()
        _export_case(writer, case)
    if progress is not None:
        progress(len(cases), len(cases), "done")
    export_session(writer, dataset, cases)
    held_sources = {item["source"] for item in report.held_back}
    for table in dataset.tables:
        if table.source in held_sources:
            continue
        report.held_back.append({"what": f"table {table.name}", "source": table.source,
                                 "why": "dataset tables may name patients; export gradings with --layout spider"
                                        " or rsna"})
    return report


def clean_sidecar(sidecar: dict[str, Any], request: ExportRequest) -> dict[str, Any]:
    """A JSON sidecar with the acquisition keys of :data:`SIDECAR_KEYS` only; the descriptions
    (series, protocol) only with the Clean Descriptors option, cleaned of every text the sidecar
    drops (institution, station, procedure step with the patient's name...) and of dates."""
    kept = {k: v for k, v in sidecar.items() if k in SIDECAR_KEYS and k not in _DESCRIPTOR_KEYS}
    if request.options.clean_descriptors:
        known = sorted({part for k, v in sidecar.items() if k not in SIDECAR_KEYS and isinstance(v, str)
                        and _IDENTIFYING_KEY.search(k) for part in (v, *re.split(r"[\^\s,;]+", v))
                        if len(part) >= 3}, key=len, reverse=True)
        for key in _DESCRIPTOR_KEYS:
            if isinstance(sidecar.get(key), str):
                kept[key] = clean_text(sidecar[key], known)
    return kept


def _stack_selected(request: ExportRequest, stack: ImageStack) -> bool:
    return request.series_uid is None or stack.series_uid == request.series_uid


_MARKUP_TYPES = {"points": "Fiducial", "curve": "Curve", "closed-curve": "ClosedCurve", "line": "Line"}


def _export_points_and_models(writer: _Writer, case: Case, case_dir: Path) -> None:
    """Point sets as Slicer markups in LPS (``points/NNN.mrk.json``, positions exact, labels
    cleaned of the case's identifiers) and meshes as binary STL in LPS (``models/NNN.stl``,
    float32 as STL stores them), under generated names."""
    known = [case.id, *(p for p in re.split(r"[\^\s_]+", case.id) if len(p) >= 3)]
    for n, points in enumerate(case.point_sets, 1):
        labels = [clean_text(label, known) if writer.request.deidentify else label for label in points.labels]
        doc = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                          "Resources/Schema/markups-schema-v1.0.3.json#",
               "markups": [{"type": _MARKUP_TYPES.get(points.kind, "Fiducial"), "coordinateSystem": "LPS",
                            "controlPoints": [{"label": label, "position": [float(c) for c in xyz]}
                                              for label, xyz in zip(labels, points.points_lps, strict=True)]}]}
        target = case_dir / "points" / f"{n:03d}.mrk.json"
        atomic_write_text(target, json.dumps(doc, indent=1) + "\n")
        writer.report.exported.append({"kind": "points", "file": writer.rel(target), "points": len(labels)})
    for n, mesh in enumerate(case.meshes, 1):
        target = case_dir / "models" / f"{n:03d}.stl"
        write_stl(target, mesh.vertices_lps, mesh.faces, binary=True, header="lumbarview export SPACE=LPS")
        writer.report.exported.append({"kind": "mesh", "file": writer.rel(target), "triangles": mesh.n_triangles})


def _export_case(writer: _Writer, case: Case) -> None:
    request = writer.request
    case_dir = writer.root / writer.case_name(case)
    dicom_files: list[Path] = []
    folders: set[Path] = set()
    names = {stack.uid: f"{k:03d}" for k, stack in enumerate(case.stacks(), 1)}
    for stack in case.stacks():
        if not _stack_selected(request, stack):
            continue
        files = [Path(f) for f in (stack.meta.get("files") or []) if f]
        if files:
            dicom_files.extend(files)
            folders.update(f.parent for f in files)
            continue
        source = str(stack.meta.get("source") or "")
        target = case_dir / "volumes" / f"{names[stack.uid]}{_volume_suffix(source)}"
        writer.check_cancel()
        writer.volume(stack, target, "volume")
        sidecar = case.sidecars.get(stack.uid)
        if sidecar:
            kept = clean_sidecar(sidecar, request) if request.deidentify else dict(sidecar)
            side = target.with_name(f"{names[stack.uid]}.json")
            atomic_write_text(side, json.dumps(kept, indent=1, sort_keys=True) + "\n")
            writer.report.exported.append({"kind": "sidecar", "file": writer.rel(side),
                                           "kept_keys": sorted(kept), "dropped": len(sidecar) - len(kept)})
    for m, label_map in enumerate(case.label_maps, 1):
        files = [Path(f) for f in (label_map.stack.meta.get("files") or []) if f]
        if files:  # a DICOM SEG: exported with the DICOM objects
            dicom_files.extend(files)
            continue
        bound = names.get(label_map.bound_to or "")
        if request.series_uid is not None and (label_map.bound_to is None or not _stack_selected(
                request, case.stack(label_map.bound_to) or label_map.stack)):
            continue
        writer.check_cancel()
        writer.volume(label_map.stack, case_dir / "labels" / f"{bound or 'unbound'}_{m}_label"
                      f"{_volume_suffix(label_map.source)}", "label-map")
    # The other DICOM objects beside the images (SR, SEG, presentation states, captures...).
    listed = set(dicom_files)
    for folder in sorted(folders):
        dicom_files.extend(p for p in sorted(folder.iterdir()) if p.is_file() and p not in listed)
    seen: set[Path] = set()
    for path in dicom_files:
        if path in seen:
            continue
        seen.add(path)
        writer.check_cancel()
        writer.dicom(case, path)
    _export_points_and_models(writer, case, case_dir)
    for box_set in case.box_sets:
        writer.hold(f"box set {box_set.name}", box_set.source, "not exported yet: boxes are drawn on slices of files "
                    "whose names change; lumbarview does not write them")
    for table in case.tables:
        writer.hold(f"table {table.name}", table.source,
                    "tables may name patients; export gradings with --layout spider or rsna")
    writer.report.cases[writer.case_name(case)] = (sum(1 for p in case_dir.rglob("*") if p.is_file())
                                                   if case_dir.exists() else 0)


SESSION_FILE = "lumbarview-session.json"


def export_session(writer: _Writer, dataset: Dataset, cases: list[Case]) -> None:
    """The measurements of the dataset's saved session (the viewer's autosave in the workspace)
    on the exported cases, as a session file of the export (``lumbarview-session.json``: ``view
    OUT --session`` opens it): points and planes as they were (the geometry is kept), case and
    series renamed as exported; with de-identification the free texts (note, label) are kept only
    under Clean Descriptors, cleaned of the case's identifiers."""
    path = default_session_file(dataset.path)
    if not path.is_file():
        return
    try:
        doc = read_session(path)
    except LoadError as exc:
        writer.hold("the saved session's measurements", str(path), f"the session file cannot be read: {exc.problem}")
        return
    names = {c.id: writer.case_name(c) for c in cases}
    request = writer.request
    kept: list[MeasurementRecord] = []
    for record in doc.measurements:
        case_id = record.case or doc.case
        if case_id not in names:
            continue
        if record.series is not None and record.series not in writer.series_map:
            writer.hold(f"measurement {record.kind} {record.level or ''}".strip(), str(path),
                        "its series was not exported")
            continue
        note, label = record.note, record.label
        if request.deidentify:
            known = [case_id, *(p for p in re.split(r"[\^\s_]+", case_id) if len(p) >= 3)]
            keep = request.options.clean_descriptors
            note, label = (clean_text(note, known) if keep else ""), (clean_text(label, known) if keep else "")
        kept.append(replace(record, case=names[case_id], note=note, label=label,
                            series=None if record.series is None else writer.series_map[record.series]))
    if not kept:
        return
    shown = names.get(doc.case or "", next(iter(names.values()), None))
    out_doc = SessionFile(dataset_path=str(writer.out), dataset_relative_path=".", case=shown, layout=doc.layout,
                          measurements=kept)
    atomic_write_text(writer.root / SESSION_FILE, dumps(out_doc))  # the dataset: the folder the file lands in
    writer.report.exported.append({"kind": "session-measurements", "file": SESSION_FILE, "measurements": len(kept)})


def summary_for_terminal(report: ExportReport) -> str:
    """The readable report with the source paths of what was held back (for the user's terminal,
    never for the export's folder)."""
    from lumbarview.services.deidentify.report import summary_text

    return f"Written to {report.out}\n" + summary_text(report, with_sources=True)


def _write_report(root: Path, report: ExportReport) -> None:
    from lumbarview.services.deidentify.report import summary_text

    with_sources = not report.deidentified
    atomic_write_text(root / "export-report.json", json.dumps(report.to_json(with_sources), indent=1) + "\n")
    atomic_write_text(root / "export-report.txt", summary_text(report, with_sources))
