"""Use case: open a dataset root as downloaded, whatever its layout.

Recognises the Sudirman tree, a DICOMDIR export, SPIDER, LSS-MRI-AISSLab and BIDS (Liu et al.),
and falls back to "a folder of files", opening what it can. Every overlay is bound to the image
it belongs to, through patient space; every problem is an issue and the rest still opens.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Box, BoxSet, Case, Dataset, LabelMap, Table
from lumbarview.core.errors import Cancelled, LoadError, NothingToOpenError
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import (
    LabelScheme,
    aisslab_scheme,
    load_scheme,
    sct_scheme,
    spider_scheme,
)
from lumbarview.core.limits import ResourceLimitError
from lumbarview.core.types import ImageStack, LoadIssue, Series, Severity, StudyCollection
from lumbarview.io.annotations import (
    SPIDER_GRADING_COLUMNS,
    SPIDER_OVERVIEW_COLUMNS,
    is_markups,
    read_json,
    read_markups,
    read_png_mask,
    read_table,
    read_voc,
)
from lumbarview.io.dicom.assemble import assemble
from lumbarview.io.dicom.dicomdir import is_dicomdir
from lumbarview.io.dicom.scan import IndexCache, ProgressCallback, scan_paths
from lumbarview.io.mesh import read_stl
from lumbarview.io.volume import (
    is_volume_file,
    open_label_volume,
    open_volume,
    resample_labels_to,
    same_grid,
    volume_stem,
)
from lumbarview.services.open_study import open_dicom

LAYOUT_NAMES = {
    "sudirman": "Sudirman et al. Lumbar Spine MRI (DICOM .ima studies)",
    "dicomdir": "DICOMDIR export (UniData style)",
    "spider": "SPIDER (.mha images and masks)",
    "aisslab": "LSS-MRI-AISSLab (DICOM, PNG masks, VOC boxes)",
    "bids": "BIDS (Liu et al. lumbosacral)",
    "folder": "a folder of files",
}
USER_SCHEME_FILE = "lumbarview-labels.json"


def detect_layout(root: Path) -> str:
    """Name of the layout of ``root`` (see :data:`LAYOUT_NAMES`)."""
    if root.is_file():
        return "dicomdir" if is_dicomdir(root) else "folder"
    if (root / "01_MRI_Data").is_dir() or root.name == "01_MRI_Data":
        return "sudirman"
    if (root / "rawdata").is_dir() or (root / "dataset_description.json").is_file():
        base = root / "rawdata" if (root / "rawdata").is_dir() else root
        if any(p.name.startswith("sub-") for p in base.iterdir() if p.is_dir()):
            return "bids"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "spider"
    if (root / "DICOM").is_dir() and ((root / "Segmentation").is_dir()
                                      or (root / "Foramina_Detection").is_dir()):
        return "aisslab"
    if any(p.is_dir() and re.match(r"PATIENT\d+", p.name) for p in root.iterdir()):
        return "aisslab"
    if (root / "DICOMDIR").is_file():
        return "dicomdir"
    return "folder"


class _Opener:
    def __init__(self, root: Path, cache_dir: str | Path | None, use_cache: bool,
                 progress: ProgressCallback | None, cancel: threading.Event | None,
                 scheme: LabelScheme | None) -> None:
        self.root = root
        self.cache = IndexCache(cache_dir) if use_cache else None
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.progress = progress
        self.cancel = cancel
        self.user_scheme = scheme
        self.dataset = Dataset(path=str(root), layout="folder")
        self.dicom_error: NothingToOpenError | None = None

    def issue(self, severity: Severity, code: str, message: str, path: str | Path | None,
              case: Case | None = None) -> None:
        target = case.issues if case is not None else self.dataset.issues
        target.append(LoadIssue(severity, code, message, None if path is None else str(path)))

    def guarded(self, case: Case | None, what: Callable[[], Any], path: str | Path | None = None) -> Any:
        r"""Run one reader for one file: whatever goes wrong with that file becomes one ERROR
        issue and the rest of the dataset goes on. Readers raise typed LoadErrors;
        anything else (a reader bug met by a hostile file) is caught here too, as the last line."""
        if path is None:
            path = getattr(what, "args", (None,))[0] if isinstance(what, partial) and what.args else None
        try:
            return what()
        except Cancelled:
            raise
        except LoadError as exc:
            code = "load.limit" if isinstance(exc, ResourceLimitError) else "load.failed"
            self.issue(Severity.ERROR, code, f"{exc.problem}. {exc.action}".strip(". ") + ".",
                       exc.path or path, case)
            return None
        except MemoryError:
            self.issue(Severity.ERROR, "load.memory", "there is not enough memory to read this file. "
                       "Close other programs or raise the machine's memory; the rest of the dataset opened",
                       path, case)
            return None
        except (Exception, RecursionError) as exc:
            self.issue(Severity.ERROR, "load.unreadable",
                       f"the file cannot be read ({type(exc).__name__}: {str(exc)[:160]}). It is damaged or "
                       "in a variant lumbarview does not read; the rest of the dataset opened", path, case)
            return None

    # -- DICOM helpers --------------------------------------------------------------------
    def dicom_cases(self, folder: Path, case_folders: Iterable[Path] | None = None) -> list[Case]:
        """Scan ``folder`` once and assemble each case folder (or each patient) apart."""
        scan = scan_paths(folder, cache=self.cache, progress=self.progress, cancel=self.cancel)
        self.dataset.issues.extend(scan.issues)
        cases: list[Case] = []
        if case_folders is not None:
            for case_dir in case_folders:
                headers = scan.headers_under(str(case_dir))
                case = Case(id=case_dir.name)
                if not headers:
                    self.issue(Severity.WARNING, "case.no-images",
                               "this case folder holds no DICOM image", case_dir, case)
                else:
                    collection = assemble(headers, str(case_dir))
                    case.series = collection.all_series()
                    case.issues.extend(collection.issues)
                cases.append(case)
            return cases
        collection = assemble(scan.headers, str(folder))
        return self.cases_from_collection(collection)

    @staticmethod
    def cases_from_collection(collection: StudyCollection) -> list[Case]:
        cases = []
        for patient in collection.patients:
            case = Case(id=patient.id or "(no patient id)")
            case.series = [s for st in patient.studies for s in st.series]
            cases.append(case)
        if cases:
            cases[0].issues.extend(collection.issues)
        return cases

    # -- layouts --------------------------------------------------------------------------
    def open_sudirman(self) -> None:
        data = self.root if self.root.name == "01_MRI_Data" else self.root / "01_MRI_Data"
        case_dirs = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.dataset.cases = self.dicom_cases(data, case_dirs)
        self.attachments(self.root, exclude={data})

    def open_dicomdir(self) -> None:
        target = self.root if self.root.is_file() else self.root / "DICOMDIR"
        collection = open_dicom(target, use_cache=self.use_cache, cache_dir=self.cache_dir,
                                progress=self.progress, cancel=self.cancel)
        self.dataset.cases = self.cases_from_collection(collection)
        folder = target.parent
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".csv", ".tsv"):
                table = self.guarded(None, partial(read_table, path, "export"))
                if table is not None:
                    self.dataset.tables.append(table[0])
                    self.dataset.issues.extend(table[1])
            elif path.suffix.lower() == ".pdf":
                self.dataset.attachments.append(str(path))

    def open_spider(self) -> None:
        scheme = self.user_scheme or spider_scheme()
        images = sorted((self.root / "images").glob("*"))
        masks = {volume_stem(p): p for p in (self.root / "masks").glob("*") if is_volume_file(p)}
        by_case: dict[str, Case] = {}
        for path in images:
            if not is_volume_file(path):
                continue
            stem = volume_stem(path)
            case_id = stem.split("_")[0]
            case = by_case.setdefault(case_id, Case(id=case_id))
            stack = self.guarded(case, partial(open_volume, path, uid=f"spider:{stem}", description=stem,
                                                       root=self.root))
            if stack is None:
                continue
            seq = stem.split("_", 1)[1] if "_" in stem else stem
            case.series.append(Series(uid=stack.uid, description=seq, modality="MR", number=None,
                                      stacks=[stack]))
            mask_path = masks.pop(stem, None)
            if mask_path is None:
                self.issue(Severity.INFO, "spider.no-mask", f"no mask for {stem}", path, case)
                continue
            self.bind_label_volume(case, mask_path, stack, scheme)
        for stem, mask_path in masks.items():
            case = by_case.setdefault(stem.split("_")[0], Case(id=stem.split("_")[0]))
            self.issue(Severity.WARNING, "spider.orphan-mask", f"mask {stem} has no image", mask_path, case)
        self.dataset.cases = sorted(by_case.values(), key=lambda c: _natural_key(c.id))
        overview = self.root / "overview.csv"
        if overview.is_file():
            result = self.guarded(None, partial(read_table, overview, "spider-overview", SPIDER_OVERVIEW_COLUMNS))
            if result is not None:
                table, issues = result
                self.dataset.tables.append(table)
                self.dataset.issues.extend(issues)
                for case in self.dataset.cases:
                    rows = [r for r in table.rows if str(r.get("new_file_name", "")).split("_")[0] == case.id]
                    if rows:
                        case.tables.append(Table("overview", "spider-overview", table.columns, rows, table.source))
        gradings = self.root / "radiological_gradings.csv"
        if gradings.is_file():
            self.join_spider_gradings(gradings, scheme)
        self.attachments(self.root, exclude={self.root / "images", self.root / "masks"},
                         known={"overview.csv", "radiological_gradings.csv"})

    def join_spider_gradings(self, path: Path, scheme: LabelScheme) -> None:
        result = self.guarded(None, partial(read_table, path, "spider-gradings", SPIDER_GRADING_COLUMNS))
        if result is None:
            return
        table, issues = result
        self.dataset.tables.append(table)
        self.dataset.issues.extend(issues)
        joined: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in table.rows:
            ivd = row.get("IVD label")
            patient = row.get("Patient")
            if not isinstance(ivd, int) or ivd < 1:
                self.issue(Severity.WARNING, "spider.ivd-label",
                           f"patient {patient}: IVD label {ivd!r} names no disc (discs are 1 = "
                           "L5-S1 upward); the row is kept but not joined to a disc", path)
                level = None
            else:
                level = scheme.entry(200 + ivd).level
            joined[str(patient)].append({**row, "level": level, "disc_label": None if level is None else 200 + ivd})
        for case in self.dataset.cases:
            rows = joined.get(case.id)
            if rows:
                case.tables.append(Table("radiological gradings", "spider-gradings",
                                         [*table.columns, "level", "disc_label"], rows, table.source))

    def open_aisslab(self) -> None:
        scheme = self.user_scheme or aisslab_scheme()
        if (self.root / "DICOM").is_dir():
            base = self.root / "DICOM"
            case_dirs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))
        else:
            base = self.root
            case_dirs = sorted((p for p in base.iterdir() if p.is_dir() and re.match(r"PATIENT\d+", p.name)),
                               key=lambda p: _natural_key(p.name))
        cases = self.dicom_cases(base, case_dirs)
        for case, case_dir in zip(cases, case_dirs, strict=True):
            case.id = re.sub(r"^PATIENT", "", case.id)
            slices = _slice_index(case)
            for xml in sorted(case_dir.rglob("*.xml")):
                self.bind_voc(case, xml, slices, xml.stem, "boxes beside the slices")
        # The renamed tree: PNG masks and detection annotations named <patient>_<stem>.
        by_id = {c.id: (c, _slice_index(c)) for c in cases}
        for folder, kind in ((self.root / "Segmentation" / "Masks", "mask"),
                             (self.root / "Foramina_Detection" / "Annotations", "voc")):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                case_id, _, stem = path.stem.partition("_")
                found = by_id.get(case_id)
                if found is None:
                    self.issue(Severity.WARNING, "aisslab.unknown-case",
                               f"no DICOM case {case_id!r} for this file", path)
                    continue
                case, slices = found
                if kind == "mask" and path.suffix.lower() == ".png":
                    self.bind_png_mask(case, path, slices, stem, scheme)
                elif kind == "voc" and path.suffix.lower() == ".xml":
                    self.bind_voc(case, path, slices, stem, "Foramina_Detection")
        self.dataset.cases = cases

    def open_bids(self) -> None:
        raw = self.root / "rawdata" if (self.root / "rawdata").is_dir() else self.root
        deriv = self.root / "derivatives"
        for name in ("participants.tsv",):
            if (raw / name).is_file():
                result = self.guarded(None, partial(read_table, raw / name, "participants"))
                if result is not None:
                    self.dataset.tables.append(result[0])
        subjects = sorted({p.name for p in raw.iterdir() if p.is_dir() and p.name.startswith("sub-")}
                          | ({p.name for base in deriv.glob("*") if base.is_dir() for p in base.iterdir()
                              if p.is_dir() and p.name.startswith("sub-")} if deriv.is_dir() else set()),
                          key=_natural_key)
        for sub in subjects:
            case = Case(id=sub)
            anat = raw / sub / "anat"
            sidecars = {p.name[: -len(".json")]: p for p in anat.glob("*.json")} if anat.is_dir() else {}
            for path in sorted(anat.glob("*")) if anat.is_dir() else []:
                if not is_volume_file(path):
                    continue
                stem = volume_stem(path)
                stack = self.guarded(case, partial(open_volume, path, uid=f"{sub}:{stem}", description=stem,
                                                           root=self.root))
                if stack is None:
                    continue
                case.series.append(Series(uid=stack.uid, description=stem.removeprefix(f"{sub}_"),
                                          modality="MR", number=None, stacks=[stack]))
                sidecar = sidecars.pop(stem, None)
                if sidecar is not None:
                    doc = self.guarded(case, partial(read_json, sidecar))
                    if isinstance(doc, dict):
                        case.sidecars[stack.uid] = doc
                        self.sidecar_notes(case, sidecar, doc)
            for stem, sidecar in sidecars.items():
                doc = self.guarded(case, partial(read_json, sidecar))
                if isinstance(doc, dict):
                    case.sidecars[f"{sub}:{stem}"] = doc
                    self.sidecar_notes(case, sidecar, doc)
                self.issue(Severity.WARNING, "bids.missing-image",
                           f"sidecar {sidecar.name} has no image beside it", sidecar, case)
            for path in sorted((deriv / "markers" / sub).glob("*.json")) if deriv.is_dir() else []:
                result = self.guarded(case, partial(read_markups, path))
                if result is not None:
                    case.point_sets.extend(result[0])
                    case.issues.extend(result[1])
            for path in sorted((deriv / "model" / sub).glob("*")) if deriv.is_dir() else []:
                if path.suffix.lower() == ".stl":
                    result = self.guarded(case, partial(read_stl, path))
                    if result is not None:
                        case.meshes.append(result[0])
                        case.issues.extend(result[1])
            for path in sorted((deriv / "anatqc" / sub).rglob("*.csv")) if deriv.is_dir() else []:
                result = self.guarded(case, partial(read_table, path, "mriqc"))
                if result is not None:
                    case.tables.append(result[0])
                    case.issues.extend(result[1])
            self.dataset.cases.append(case)

    def sidecar_notes(self, case: Case, path: Path, doc: dict[str, Any]) -> None:
        image_type = doc.get("ImageType") or []
        if isinstance(image_type, list) and "COMPOSED" in image_type:
            self.issue(Severity.INFO, "bids.composed",
                       f"a composed multi-station image (SeriesDescription {doc.get('SeriesDescription')!r}, "
                       f"ProtocolName {doc.get('ProtocolName')!r})", path, case)

    def open_folder(self) -> None:
        root = self.root
        case = Case(id=root.stem if root.is_file() else root.name)
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
        volumes = [p for p in files if is_volume_file(p)]
        label_like = [p for p in volumes if re.search(r"(seg|label|mask)", p.name, re.IGNORECASE)]
        image_vols = [p for p in volumes if p not in label_like]
        cases: list[Case] = []
        others = [p for p in files if p not in volumes]
        if any(not is_volume_file(p) and p.suffix.lower() not in (".json", ".stl", ".csv", ".tsv", ".xml",
                                                                    ".png", ".txt", ".md", ".pdf")
               for p in others):
            try:
                collection = open_dicom(root, use_cache=self.use_cache, cache_dir=self.cache_dir,
                                        progress=self.progress, cancel=self.cancel)
                cases = self.cases_from_collection(collection)
            except NothingToOpenError as exc:
                self.dicom_error = exc
        stacks: dict[Path, ImageStack] = {}
        for path in image_vols:
            stack = self.guarded(case, partial(open_volume, path, uid=f"file:{path}",
                                                       description=volume_stem(path), root=self.root))
            if stack is not None:
                stacks[path] = stack
                case.series.append(Series(uid=stack.uid, description=volume_stem(path), modality="MR",
                                          number=None, stacks=[stack]))
        scheme = self.user_scheme or sct_scheme()
        for path in label_like:
            image_path = _best_image_for(path, list(stacks))
            image = stacks.get(image_path) if image_path else None
            if image is None:
                self.issue(Severity.WARNING, "labels.no-image",
                           "a label volume with no image it could belong to", path, case)
                continue
            self.bind_label_volume(case, path, image, scheme)
        for path in others:
            suffix = path.suffix.lower()
            if suffix == ".stl":
                result = self.guarded(case, partial(read_stl, path))
                if result is not None:
                    case.meshes.append(result[0])
                    case.issues.extend(result[1])
            elif suffix == ".json" and path.name != USER_SCHEME_FILE:
                doc = self.guarded(case, partial(read_json, path))
                if is_markups(doc):
                    result = self.guarded(case, partial(read_markups, path))
                    if result is not None:
                        case.point_sets.extend(result[0])
                        case.issues.extend(result[1])
            elif suffix in (".csv", ".tsv"):
                result = self.guarded(case, partial(read_table, path))
                if result is not None:
                    case.tables.append(result[0])
                    case.issues.extend(result[1])
            elif suffix == ".pdf":
                case.attachments.append(str(path))
        if case.series or case.meshes or case.point_sets or case.tables or case.label_maps:
            cases.append(case)
        else:
            self.dataset.issues.extend(case.issues)
        self.dataset.cases = cases

    # -- binding overlays to images -------------------------------------------------------
    def bind_label_volume(self, case: Case, path: Path, image: ImageStack, scheme: LabelScheme) -> None:
        labels = self.guarded(case, partial(open_label_volume, path, uid=f"labels:{path}", root=self.root))
        if labels is None:
            return
        if same_grid(labels.geometry, image.geometry):
            case.label_maps.append(LabelMap(volume_stem(path), labels, scheme, str(path), image.uid))
            return
        # Never assume alignment: resample through patient space onto the image's grid.
        self.issue(Severity.WARNING, "labels.grid-mismatch",
                   f"the labels' grid differs from the image {image.meta.get('description')}'s; "
                   "they were resampled through patient space (nearest neighbour) onto the image "
                   "grid", path, case)
        source = labels

        def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
            return resample_labels_to(source, image.geometry), []

        resampled = ImageStack(f"labels:{path}@{image.uid}", image.uid, image.geometry,
                               {**labels.meta, "resampled_from": str(path)}, load)
        case.label_maps.append(LabelMap(volume_stem(path), resampled, scheme, str(path), image.uid,
                                        resampled_from=str(path)))

    def bind_png_mask(self, case: Case, path: Path, slices: dict[str, tuple[ImageStack, int]],
                      stem: str, scheme: LabelScheme) -> None:
        target = slices.get(stem)
        if target is None:
            self.issue(Severity.WARNING, "labels.unbound-mask",
                       f"no DICOM slice named {stem!r} in case {case.id}; the mask is not shown", path, case)
            return
        stack, k = target
        mask = self.guarded(case, partial(read_png_mask, path))
        if mask is None:
            return
        rows, cols = stack.geometry.shape_kji[1:]
        if mask.shape != (rows, cols):
            self.issue(Severity.ERROR, "labels.png-size-mismatch",
                       f"the mask is {mask.shape[1]}x{mask.shape[0]} pixels but its slice is "
                       f"{cols}x{rows}; it is not shown (it would land in the wrong place)", path, case)
            return
        geometry = single_slice_geometry(stack.geometry, k)
        array = mask[np.newaxis].astype(np.int32)

        def load() -> tuple[npt.NDArray[Any], list[LoadIssue]]:
            return array.copy(), []

        label_stack = ImageStack(f"png:{path}", stack.uid, geometry,
                                 {"kind": "labels", "source": str(path), "slice_index": k}, load)
        case.label_maps.append(LabelMap(path.stem, label_stack, scheme, str(path), stack.uid))

    def bind_voc(self, case: Case, path: Path, slices: dict[str, tuple[ImageStack, int]], stem: str,
                 set_name: str) -> None:
        voc = self.guarded(case, partial(read_voc, path))
        if voc is None:
            return
        case.issues.extend(voc.issues)
        target = slices.get(stem)
        if target is None:
            self.issue(Severity.WARNING, "voc.unbound",
                       f"no DICOM slice named {stem!r} in case {case.id}; the boxes are listed but not "
                       "placed", path, case)
        stack, k = target if target is not None else (None, None)
        if stack is not None and voc.width and voc.height:
            rows, cols = stack.geometry.shape_kji[1:]
            if (voc.width, voc.height) != (cols, rows):
                self.issue(Severity.ERROR, "voc.size-mismatch",
                           f"the annotation is for a {voc.width}x{voc.height} image but the slice is "
                           f"{cols}x{rows}; the boxes are listed but not placed", path, case)
                stack, k = None, None
        box_set = next((b for b in case.box_sets if b.name == set_name), None)
        if box_set is None:
            box_set = BoxSet(set_name, str(path.parent))
            case.box_sets.append(box_set)
        for obj in voc.objects:
            corners = None
            if stack is not None and k is not None:
                plane = stack.geometry.slice_plane(k)
                # VOC coordinates are image coordinates with the image's top-left corner at
                # (0, 0); pixel centres are at +0.5, lumbarview's pixel centres at integers.
                edge = np.array([[obj.xmin, obj.ymin], [obj.xmax, obj.ymin],
                                 [obj.xmax, obj.ymax], [obj.xmin, obj.ymax]]) - 0.5
                corners = plane.pixel_to_lps(edge)
            box_set.boxes.append(Box(obj.name, obj.side, obj.level, obj.severity, obj.xmin, obj.ymin,
                                     obj.xmax, obj.ymax, None if stack is None else stack.uid, k,
                                     corners, str(path)))

    def attachments(self, folder: Path, exclude: set[Path], known: set[str] | None = None) -> None:
        for path in sorted(folder.iterdir()):
            if path in exclude or path.name.startswith(".") or path.is_dir():
                continue
            if known and path.name in known:
                continue
            self.dataset.attachments.append(str(path))


def single_slice_geometry(geometry: VolumeGeometry, k: int) -> VolumeGeometry:
    """The grid of slice ``k`` alone (a one-slice stack in the same place)."""
    affine = np.array(geometry.ijk_to_lps)
    affine[:3, 3] = geometry.index_to_lps((0.0, 0.0, float(k)))
    return VolumeGeometry((1, geometry.shape_kji[1], geometry.shape_kji[2]), affine)


def _slice_index(case: Case) -> dict[str, tuple[ImageStack, int]]:
    """File stem -> (stack, slice index) for every DICOM slice of a case."""
    out: dict[str, tuple[ImageStack, int]] = {}
    for stack in case.stacks():
        for k, path in enumerate(stack.meta.get("files") or []):
            if path:
                out.setdefault(Path(path).stem, (stack, k))
    return out


def _best_image_for(label_path: Path, images: list[Path]) -> Path | None:
    """The image a label volume belongs to: same folder, longest common name prefix."""
    candidates = [p for p in images if p.parent == label_path.parent] or images
    if not candidates:
        return None
    # A character-wise common prefix of the file names (t2 / t2_seg-manual), not of path components.
    return max(candidates, key=lambda p: (len(os.path.commonprefix([p.name, label_path.name])),  # noqa: RUF071
                                          -len(p.name)))


def _natural_key(text: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def open_path(
    path: str | Path,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    scheme_path: str | Path | None = None,
) -> Dataset:
    """Open a dataset root (or a single file) as downloaded.

    Raises
    ------
    NothingToOpenError
        The path does not exist or nothing in it could be opened.
    """
    root = Path(os.path.abspath(str(path)))
    if not root.exists():
        raise NothingToOpenError(root, "no such file or folder", "Check the path and try again")
    scheme = None
    scheme_file = Path(scheme_path) if scheme_path else (root / USER_SCHEME_FILE if root.is_dir() else None)
    opener = _Opener(root, cache_dir, use_cache, progress, cancel, None)
    if scheme_file is not None and scheme_file.is_file():
        scheme = opener.guarded(None, partial(load_scheme, scheme_file))
        opener.user_scheme = scheme
    layout = detect_layout(root)
    opener.dataset.layout = layout
    handlers = {"sudirman": opener.open_sudirman, "dicomdir": opener.open_dicomdir,
                "spider": opener.open_spider, "aisslab": opener.open_aisslab, "bids": opener.open_bids,
                "folder": opener.open_folder}
    # Each file is guarded where it is read; this is the last line for the layout's own logic,
    # so that a surprise in one place still leaves what opened before it.
    opener.guarded(None, handlers[layout], root)
    dataset = opener.dataset
    if not dataset.cases:
        if opener.dicom_error is not None and not dataset.issues:
            raise opener.dicom_error
        problems = "; ".join(sorted({i.message for i in dataset.issues if i.severity >= Severity.WARNING})[:3])
        empty = root.is_dir() and not any(p.is_file() for p in root.rglob("*"))
        what = "the folder is empty" if empty else f"nothing could be opened (read as {LAYOUT_NAMES[layout]})"
        raise NothingToOpenError(root, what + (f" ({problems})" if problems else ""),
                                 "Point lumbarview at a dataset root, a DICOM folder, a DICOMDIR or an "
                                 "image file (.dcm, .ima, .mha, .nii.gz, .nrrd)")
    return replace(dataset)
