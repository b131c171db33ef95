"""Write the lumbar phantom in the layouts of the six public lumbar datasets.

Each writer follows the folder layout described in ``docs/datasets.md`` (as far as the public
cards tell) so that the readers are exercised exactly as by a downloaded dataset. Every layout
root also gets ``lumbarview-phantom-truth.json``: the phantom's ground truth in LPS.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image

from lumbarview.core.geometry import FloatArray, VolumeGeometry
from lumbarview.io.mesh import write_stl
from lumbarview.io.volume_write import write_metaimage, write_nifti
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, write_block
from lumbarview.phantom.rsna import write_rsna
from lumbarview.phantom.spine import (
    DISC_LABELS,
    LUMBAR_LEVELS,
    LumbarPhantom,
    PhantomParams,
    to_aisslab_classes,
    to_spider_labels,
)

TRUTH_FILE = "lumbarview-phantom-truth.json"
LAYOUTS = ("sudirman", "unidata", "spider", "aisslab", "bids", "rsna")


@dataclass(frozen=True)
class Sizes:
    """Image sizes; ``realistic`` follows the datasets, ``small`` keeps tests fast."""

    sag_matrix: int = 320
    sag_pixel_mm: float = 0.9375
    sag_slices: int = 15
    sag_spacing_mm: float = 3.6
    sag_thickness_mm: float = 3.3
    ax_matrix: int = 320
    ax_pixel_mm: float = 0.6875
    ax_slices: int = 4
    spider_pixel_mm: float = 0.6
    spider_matrix: int = 448
    spider_slices: int = 15
    spider_spacing_mm: float = 3.3
    bids_pixel_mm: float = 0.35
    bids_matrix: int = 686
    bids_slices: int = 17
    bids_spacing_mm: float = 3.3

    @classmethod
    def small(cls) -> Sizes:
        return cls(sag_matrix=96, sag_pixel_mm=2.5, sag_slices=11, ax_matrix=64, ax_pixel_mm=2.0,
                   spider_matrix=120, spider_pixel_mm=2.0, spider_slices=11,
                   bids_matrix=120, bids_pixel_mm=2.0, bids_slices=11)


def _write_truth(root: Path, phantom: LumbarPhantom, extra: dict[str, Any] | None = None) -> None:
    truth = phantom.ground_truth()
    if extra:
        truth.update(extra)
    (root / TRUTH_FILE).write_text(json.dumps(truth, indent=1), encoding="utf-8")


def sagittal_geometry(phantom: LumbarPhantom, matrix: int, pixel_mm: float, n_slices: int,
                      spacing_mm: float, patient_position: str = "HFS") -> VolumeGeometry:
    """A sagittal stack centred on the spine: rows head to feet, columns anterior to posterior
    (supine); for a prone position the scanner's row direction flips in patient terms."""
    centre = phantom.centre_lps()
    row = np.array([0.0, 1.0, 0.0]) if patient_position != "HFP" else np.array([0.0, -1.0, 0.0])
    col = np.array([0.0, 0.0, -1.0])
    normal = np.cross(row, col)
    fov = matrix * pixel_mm
    origin = (centre - row * (fov - pixel_mm) / 2 - col * (fov - pixel_mm) / 2
              - normal * (n_slices - 1) / 2 * spacing_mm)
    return VolumeGeometry.from_directions((n_slices, matrix, matrix), origin, row, col,
                                          (pixel_mm, pixel_mm, spacing_mm))


def axial_block_geometry(phantom: LumbarPhantom, level: str, matrix: int, pixel_mm: float,
                         n_slices: int, spacing_mm: float) -> VolumeGeometry:
    """An axial block parallel to a disc, centred on the disc and the canal."""
    truth = phantom.ground_truth()["levels"][level]
    normal = np.asarray(truth["disc_normal_lps"])
    centre = (np.asarray(truth["disc_centre_lps"]) + np.asarray(truth["canal_centre_lps"])) / 2
    row = np.array([1.0, 0.0, 0.0])
    col = np.cross(normal, row)
    col /= np.linalg.norm(col)
    fov = matrix * pixel_mm
    origin = (centre - row * (fov - pixel_mm) / 2 - col * (fov - pixel_mm) / 2
              - normal * (n_slices - 1) / 2 * spacing_mm)
    return VolumeGeometry.from_directions((n_slices, matrix, matrix), origin, row, col,
                                          (pixel_mm, pixel_mm, spacing_mm), normal)


# -- 1. Sudirman et al. ---------------------------------------------------------------------
def write_sudirman(root: Path, phantom: LumbarPhantom, sizes: Sizes = Sizes(),
                   patient: str = "0001") -> Path:
    """``01_MRI_Data/<NNNN>/L-SPINE_.../<SERIES>_<nnnn>/*.ima``: one StudyInstanceUID, one
    FrameOfReferenceUID per series, sagittal T1/T2 and axial T1/T2 blocks angled along the
    last three discs (4 mm thick every 4.4 mm)."""
    study = root / "01_MRI_Data" / patient / "L-SPINE_LSS_20160309_091629_240000"
    study_uid = make_uid("sudirman", patient, "study")
    common: dict[str, Any] = {"patient_id": patient, "study_uid": study_uid, "patient_name": f"ANON^{patient}",
              "study_description": "L-SPINE^LSS", "study_date": "20160309"}

    def spec(number: int, description: str, thickness: float, window: tuple[float, float]) -> SeriesSpec:
        return SeriesSpec(series_uid=make_uid("sudirman", patient, description),
                          series_number=number, description=description,
                          frame_of_reference_uid=make_uid("sudirman", patient, description, "for"),
                          slice_thickness_mm=thickness, window=window, **common)

    sag = sagittal_geometry(phantom, sizes.sag_matrix, sizes.sag_pixel_mm, sizes.sag_slices,
                            sizes.sag_spacing_mm)
    images, _ = phantom.render(sag, ("T2", "T1"))
    write_block(study / "T2_TSE_SAG_384_0002", images["T2"], sag,
                spec(2, "T2_TSE_SAG_384", sizes.sag_thickness_mm, (1000, 2000)),
                name_pattern="T2_TSE_SAG__" + patient + "_{instance:03d}.ima")
    write_block(study / "T1_TSE_SAG_320_0003", images["T1"], sag,
                spec(3, "T1_TSE_SAG_320", sizes.sag_thickness_mm, (800, 1600)),
                name_pattern="T1_TSE_SAG__" + patient + "_{instance:03d}.ima")
    # Localizer: three orthogonal single slices in one series (split into three stacks).
    loc_spec = spec(1, "LOCALIZER", 8.0, (800, 1600))
    centre = phantom.centre_lps()
    instance = 1
    for row, col in (((0, 1, 0), (0, 0, -1)), ((1, 0, 0), (0, 0, -1)), ((1, 0, 0), (0, 1, 0))):
        n = 64
        px = 300.0 / n
        r, c = np.asarray(row, float), np.asarray(col, float)
        g = VolumeGeometry.from_directions((1, n, n), centre - r * (150 - px / 2) - c * (150 - px / 2),
                                           r, c, (px, px, 8.0))
        img, _ = phantom.render(g, ("T2",), noise_sigma=10.0)
        write_block(study / "LOCALIZER_0001", img["T2"], g, loc_spec, first_instance=instance,
                    name_pattern="LOCALIZER_0_" + patient + "_{instance:03d}.ima")
        instance += 1
    for number, contrast, name in ((4, "T2", "T2_TSE_TRA_384"), (5, "T1", "T1_TSE_TRA")):
        ax_spec = spec(number, name, 4.0, (1000, 2000) if contrast == "T2" else (800, 1600))
        instance = 1
        folder = study / f"{name}_{number:04d}"
        for level in ("L3-L4", "L4-L5", "L5-S1"):
            block = axial_block_geometry(phantom, level, sizes.ax_matrix, sizes.ax_pixel_mm,
                                         sizes.ax_slices, 4.4)
            img, _ = phantom.render(block, (contrast,))
            write_block(folder, img[contrast], block, ax_spec, first_instance=instance,
                        name_pattern=name.split("_TRA")[0] + "_TRA__" + patient + "_{instance:03d}.ima")
            instance += block.shape_kji[0]
    _write_truth(root, phantom)
    return root


# -- 2. UniData DICOMDIR export -------------------------------------------------------------
_REPORT_LINES = (
    "Lumbar spine MRI - report (lumbarview phantom)",
    "Patient UD0001, study 2023-05-12, MR LUMBAR SPINE",
    "Sequences: T2 SAG, T1 SAG, T2 AX (L4-L5 block)",
    "Findings: L4-L5 central canal narrowing (AP 7.5 mm).",
    "L4-L5 left foramen narrowed (width 4 mm).",
    "L5-S1 right foramen mildly narrowed (width 5 mm).",
    "Disc heights preserved; no listhesis.",
    "Synthetic data for testing: not a diagnosis.",
)


def report_pdf(lines: tuple[str, ...] = _REPORT_LINES) -> bytes:
    """A one-page A4 PDF with ``lines`` of text in Helvetica (a standard font: nothing embedded),
    with a correct cross-reference table, as a radiology report export would be."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    body = ["BT /F1 16 Tf 56 780 Td (" + escape(lines[0]) + ") Tj ET"]
    for n, line in enumerate(lines[1:]):
        body.append(f"BT /F1 11 Tf 56 {740 - 22 * n} Td ({escape(line)}) Tj ET")
    stream = "\n".join(body).encode("latin-1", errors="replace")
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>",
        b"<</Length " + str(len(stream)).encode() + b">>stream\n" + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj".encode() + obj + b"endobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer<</Size {len(objects) + 1}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_unidata(root: Path, phantom: LumbarPhantom, sizes: Sizes = Sizes()) -> Path:
    """``DICOMDIR`` + a tree of extension-less files (pydicom's FileSet naming), a PDF report
    and a CSV, as a disc-burning export writes them."""
    from pydicom.fileset import FileSet

    root.mkdir(parents=True, exist_ok=True)
    study_uid = make_uid("unidata", "study")
    common: dict[str, Any] = {"patient_id": "UD0001", "study_uid": study_uid, "patient_name": "ANON^UNIDATA",
              "study_description": "MR LUMBAR SPINE", "study_date": "20230512"}
    sag = sagittal_geometry(phantom, sizes.sag_matrix, sizes.sag_pixel_mm, sizes.sag_slices,
                            sizes.sag_spacing_mm)
    images, _ = phantom.render(sag, ("T2", "T1"))
    fs = FileSet()
    for number, contrast in ((1, "T2"), (2, "T1")):
        spec = SeriesSpec(series_uid=make_uid("unidata", contrast), series_number=number,
                          description=f"{contrast} SAG", slice_thickness_mm=sizes.sag_thickness_mm,
                          frame_of_reference_uid=make_uid("unidata", "for"), **common)
        staging = root / ".staging" / f"SE{number:06d}"
        for path in write_block(staging, images[contrast], sag, spec, name_pattern="{instance}.dcm"):
            fs.add(pydicom.dcmread(path))
    block = axial_block_geometry(phantom, "L4-L5", sizes.ax_matrix, sizes.ax_pixel_mm,
                                 sizes.ax_slices, 4.4)
    ax_images, _ = phantom.render(block, ("T2",))
    spec = SeriesSpec(series_uid=make_uid("unidata", "ax"), series_number=3, description="T2 AX",
                      slice_thickness_mm=4.0, frame_of_reference_uid=make_uid("unidata", "for"),
                      **common)
    for path in write_block(root / ".staging" / "SE000003", ax_images["T2"], block, spec,
                            name_pattern="{instance}.dcm"):
        fs.add(pydicom.dcmread(path))
    # pydicom's FileSet names the tree PT000000/ST000000/SE000000/IM000000; the real export
    # starts at ST000001. Readers must follow the DICOMDIR, not the names, so either will do.
    fs.write(root)
    import shutil

    shutil.rmtree(root / ".staging")
    (root / "Lumbar_Spine_MRI.pdf").write_bytes(report_pdf())
    (root / "lumbar_spine_mri.csv").write_text("file_name,type,description\nDICOMDIR,MRI,lumbar spine\n",
                                               encoding="utf-8")
    _write_truth(root, phantom)
    return root


# -- 3. SPIDER ------------------------------------------------------------------------------
def write_spider(root: Path, phantom: LumbarPhantom, sizes: Sizes = Sizes(), patient: int = 1) -> Path:
    """``images/<id>_t1.mha``, ``images/<id>_t2.mha``, ``masks/<id>_t?.mha`` (SPIDER labels),
    ``overview.csv`` and ``radiological_gradings.csv`` for this case. Sagittal and
    anisotropic, with a direction that is not the identity."""
    geometry = sagittal_geometry(phantom, sizes.spider_matrix, sizes.spider_pixel_mm,
                                 sizes.spider_slices, sizes.spider_spacing_mm)
    images, labels = phantom.render(geometry, ("T1", "T2"))
    mask = to_spider_labels(labels).astype(np.uint8 if to_spider_labels(labels).max() < 256 else np.int16)
    for seq, contrast in (("t1", "T1"), ("t2", "T2")):
        write_metaimage(root / "images" / f"{patient}_{seq}.mha", images[contrast].astype(np.int16), geometry)
        write_metaimage(root / "masks" / f"{patient}_{seq}.mha", mask, geometry)
    with open(root / "overview.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["new_file_name", "subset", "sex", "age", "Manufacturer", "SliceThickness"])
        for seq in ("t1", "t2"):
            w.writerow([f"{patient}_{seq}", "training", "F", 54, "phantom", sizes.spider_spacing_mm])
    with open(root / "radiological_gradings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Patient", "IVD label", "Modic", "UP endplate", "LOW endplate",
                    "Spondylolisthesis", "Disc herniation", "Disc narrowing", "Disc bulging",
                    "Pfirrman grade"])
        for level in LUMBAR_LEVELS[::-1]:
            lp = phantom.disc(level).params
            narrow = int(lp.disc_height_mm < 9.5)
            w.writerow([patient, DISC_LABELS[level] - 200, 0, 0, 0, int(lp.slip_mm > 0),
                        int(lp.canal_ap_mm < 10), narrow, int(lp.canal_ap_mm < 12), 3 + narrow])
    _write_truth(root, phantom)
    return root


# -- 4. LSS-MRI-AISSLab ---------------------------------------------------------------------
def _voc_xml(filename: str, width: int, height: int, objects: list[dict[str, Any]]) -> str:
    parts = [f"<annotation><folder>Sagittal</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>1</depth></size>",
             "<segmented>0</segmented>"]
    for obj in objects:
        extra = "".join(f"<{k}>{v}</{k}>" for k, v in obj.get("extra", {}).items())
        b = obj["box"]
        parts.append(f"<object><name>{obj['name']}</name><level>{obj['level']}</level>"
                     f"<pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>{extra}"
                     f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                     f"<ymax>{b[3]}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "".join(parts)


def foramen_box_px(phantom: LumbarPhantom, geometry: VolumeGeometry, k: int, level: str,
                   side: str) -> tuple[int, int, int, int]:
    """Pixel bounding box (xmin, ymin, xmax, ymax; columns, rows) of a foramen on slice k."""
    truth = phantom.ground_truth()["levels"][level]["foramen"][side]
    d = phantom.disc(level)
    width, _height = truth["width_mm"], truth["height_mm"]
    plane = geometry.slice_plane(k)
    x_spine = phantom.to_spine(plane.origin_lps)[0]
    corners = []
    for a in (16.0, 16.0 + width):
        for u in (-d.hl[side], d.hu[side]):
            corners.append(phantom.to_lps(d.frame.point(x_spine, a, u)))
    # VOC image coordinates put the image's top-left corner at (0, 0): pixel centres at +0.5.
    px = plane.lps_to_pixel(np.array(corners)) + 0.5
    return (math.floor(px[:, 0].min()), math.floor(px[:, 1].min()),
            math.ceil(px[:, 0].max()), math.ceil(px[:, 1].max()))


def write_aisslab(root: Path, phantom: LumbarPhantom, sizes: Sizes = Sizes(),
                  patient: str = "1", severities: dict[tuple[str, str], int] | None = None) -> Path:
    """``DICOM/<id>/Sagittal/*.dcm`` padded to 18 slices with black ``pad_NNN.dcm``, VOC XML with
    ``<level>`` beside the slices through the foramina, ``Segmentation/Masks/<id>_<stem>.png``
    (six classes) for the middle slice, and ``Foramina_Detection/{Images,Annotations}``."""
    geometry = sagittal_geometry(phantom, sizes.sag_matrix, sizes.sag_pixel_mm, sizes.sag_slices,
                                 sizes.sag_spacing_mm)
    images, labels = phantom.render(geometry, ("T2",))
    folder = root / "DICOM" / patient / "Sagittal"
    spec = SeriesSpec(patient_id=patient, study_uid=make_uid("aisslab", patient, "study"),
                      series_uid=make_uid("aisslab", patient, "sag"), series_number=1,
                      description="Sag T2 frFSE", frame_of_reference_uid=make_uid("aisslab", patient),
                      study_description="MR, VERTEBRA, LOMBER", slice_thickness_mm=sizes.sag_thickness_mm,
                      patient_name=f"PATIENT{patient}")
    paths = write_block(folder, images["T2"], geometry, spec, name_pattern="IM{instance:04d}.dcm")
    # Black padding up to 18 slices: copies of the last header with new UIDs and no pixels.
    last = pydicom.dcmread(paths[-1])
    for n in range(len(paths) + 1, 19):
        pad = last.copy()
        pad.SOPInstanceUID = make_uid("aisslab", patient, "pad", n)
        pad.file_meta.MediaStorageSOPInstanceUID = pad.SOPInstanceUID
        pad.InstanceNumber = n
        pad.PixelData = bytes(len(last.PixelData))
        pad.save_as(folder / f"pad_{n:03d}.dcm", enforce_file_format=True)
    sev = severities or {("L4-L5", "left"): 2, ("L5-S1", "right"): 1, ("L4-L5", "right"): 0,
                         ("L5-S1", "left"): 0, ("L3-L4", "left"): 0, ("L3-L4", "right"): 0}
    boxes: list[dict[str, Any]] = []
    rows, cols = geometry.shape_kji[1:]
    for side in ("left", "right"):
        truth_x = np.mean(phantom.ground_truth()["levels"]["L4-L5"]["foramen"][side]["parasagittal_x_range_mm"])
        k = geometry.nearest_slice(np.array([truth_x, *phantom.centre_lps()[1:]]))
        if k is None:
            continue
        stem = paths[k].stem
        objects = []
        for (level, s), grade in sorted(sev.items()):
            if s != side:
                continue
            box = foramen_box_px(phantom, geometry, k, level, side)
            code = "LFS" if side == "left" else "RFS"
            # Both encodings seen in VOC files: a separate field, and side+grade in <name>.
            if level == "L4-L5":
                objects.append({"name": f"{code}_{grade}", "level": level, "box": box,
                                "extra": {"comment": "combined"}})
            else:
                objects.append({"name": code, "level": level, "box": box,
                                "extra": {"severity": grade}})
            boxes.append({"slice_file": paths[k].name, "k": k, "level": level, "side": side,
                          "severity": grade, "box_px": list(box)})
        (folder / f"{stem}.xml").write_text(_voc_xml(f"{stem}.png", cols, rows, objects),
                                            encoding="utf-8")
        fd = root / "Foramina_Detection"
        (fd / "Images").mkdir(parents=True, exist_ok=True)
        (fd / "Annotations").mkdir(parents=True, exist_ok=True)
        _save_png(fd / "Images" / f"{patient}_{stem}.png", _to_8bit(images["T2"][k]))
        (fd / "Annotations" / f"{patient}_{stem}.xml").write_text(
            _voc_xml(f"{patient}_{stem}.png", cols, rows, objects), encoding="utf-8")
    mid = geometry.shape_kji[0] // 2
    stem = paths[mid].stem
    seg = root / "Segmentation"
    (seg / "Masks").mkdir(parents=True, exist_ok=True)
    (seg / "Middle_Slice").mkdir(parents=True, exist_ok=True)
    _save_png(seg / "Masks" / f"{patient}_{stem}.png", to_aisslab_classes(labels[mid]))
    _save_png(seg / "Middle_Slice" / f"{patient}_{stem}.png", _to_8bit(images["T2"][mid]))
    _write_truth(root, phantom, {"aisslab_boxes": boxes, "aisslab_mask_slice": paths[mid].name})
    return root


def _to_8bit(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    lo, hi = np.percentile(image, (1, 99))
    out: npt.NDArray[np.uint8] = np.clip((image - lo) / max(hi - lo, 1) * 255, 0, 255).astype(np.uint8)
    return out


def _save_png(path: Path, array: npt.NDArray[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# -- 5. Liu et al. BIDS ---------------------------------------------------------------------
def _markup(points_lps: FloatArray, kind: str, system: str, name: str) -> dict[str, Any]:
    pts = np.asarray(points_lps, dtype=np.float64)
    if system == "RAS":
        pts = pts * np.array([-1.0, -1.0, 1.0])
    return {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
        "markups": [{
            "type": kind, "coordinateSystem": system, "coordinateUnits": "mm", "name": name,
            "controlPoints": [{"id": str(i + 1), "label": f"{name}-{i + 1}",
                               "position": [round(float(v), 4) for v in p],
                               "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                               "selected": True, "locked": False, "visibility": True,
                               "positionStatus": "defined"} for i, p in enumerate(pts)],
        }],
    }


def tube_mesh(path_points: FloatArray, radius: float | FloatArray,
              n_around: int = 16) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Triangle mesh (vertices, faces) of a closed tube along a polyline."""
    pts = np.asarray(path_points, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(pts),))
    tangents = np.gradient(pts, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    ref = np.array([1.0, 0.0, 0.0]) if abs(tangents[0, 0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    rings = []
    angles = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    for p, t, r in zip(pts, tangents, radii, strict=True):
        n1 = np.cross(t, ref)
        n1 /= np.linalg.norm(n1)
        n2 = np.cross(t, n1)
        rings.append(p + r * (np.cos(angles)[:, None] * n1 + np.sin(angles)[:, None] * n2))
    return loft_mesh(rings, pts[0], pts[-1])


def loft_mesh(rings: list[FloatArray], first_cap: FloatArray, last_cap: FloatArray) -> tuple[
        FloatArray, npt.NDArray[np.int64]]:
    """A closed surface through ``rings`` (each ``(n, 3)``, the same ``n``, in order along the
    surface), capped by fans to ``first_cap`` and ``last_cap``."""
    n_around = len(rings[0])
    v = np.concatenate([*rings, np.asarray(first_cap)[None], np.asarray(last_cap)[None]])
    faces = []
    m = len(rings)
    for i in range(m - 1):
        for j in range(n_around):
            a, b = i * n_around + j, i * n_around + (j + 1) % n_around
            c, d = a + n_around, b + n_around
            faces += [(a, b, d), (a, d, c)]
    cap0, cap1 = m * n_around, m * n_around + 1
    for j in range(n_around):
        faces.append((cap0, (j + 1) % n_around, j))
        base = (m - 1) * n_around
        faces.append((cap1, base + j, base + (j + 1) % n_around))
    return v, np.asarray(faces, dtype=np.int64)


def dura_mesh(phantom: LumbarPhantom) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The thecal sac from L5-S1 up to L1-L2 as a surface: the sac's outline at and around each
    disc (where it narrows), lofted from one to the next (the same sac the labels draw)."""
    rings, centres = [], []
    for level in reversed(LUMBAR_LEVELS):  # from the bottom up
        for u_mm in (-12.0, -6.0, -2.0, 0.0, 2.0, 6.0, 12.0):
            ring = phantom.sac_outline_lps(level, u_mm)
            rings.append(ring)
            centres.append(ring.mean(axis=0))
    return loft_mesh(rings, centres[0], centres[-1])


_SIDECAR = {
    "Modality": "MR", "MagneticFieldStrength": 3, "Manufacturer": "Siemens",
    "ManufacturersModelName": "Prisma", "BodyPartExamined": "LSPINE",
    "ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM", "COMPOSED"],
    "ConversionSoftware": "dcm2niix", "PhaseEncodingDirection": "j-",
}


def write_bids(root: Path, phantom: LumbarPhantom, sizes: Sizes = Sizes(), subject: str = "01") -> Path:
    """``rawdata/sub-XX/anat/sub-XX_{T2TSE,CISS}.nii.gz`` + JSON sidecars, participants files,
    ``derivatives/markers`` (Slicer markups, LPS and RAS), ``derivatives/model`` (binary and
    ASCII STL) and ``derivatives/anatqc`` (MRIQC-style CSVs)."""
    sub = f"sub-{subject}"
    anat = root / "rawdata" / sub / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    raw = root / "rawdata"
    (raw / "dataset_description.json").write_text(json.dumps(
        {"Name": "lumbarview phantom (Liu et al. layout)", "BIDSVersion": "1.8.0"}), encoding="utf-8")
    (raw / "participants.tsv").write_text(f"participant_id\tsex\tage\n{sub}\tM\t29\n", encoding="utf-8")
    (raw / "participants.json").write_text(json.dumps({"sex": {"Description": "sex"}}), encoding="utf-8")
    t2 = sagittal_geometry(phantom, sizes.bids_matrix, sizes.bids_pixel_mm, sizes.bids_slices,
                           sizes.bids_spacing_mm)
    images, _ = phantom.render(t2, ("T2",))
    write_nifti(anat / f"{sub}_T2TSE.nii.gz", images["T2"].astype(np.int16), t2)
    (anat / f"{sub}_T2TSE.json").write_text(json.dumps({
        **_SIDECAR, "SeriesDescription": "I_t2_tse_sag_384_C1-C8_COMP_SP_1",
        "ProtocolName": "IV_t2_tse_sag_384_L2-S", "SliceThickness": sizes.bids_spacing_mm,
        "SpacingBetweenSlices": sizes.bids_spacing_mm,
        "ImageOrientationPatientDICOM": [0, 1, 0, 0, 0, -1]}, indent=1), encoding="utf-8")
    # CISS: axial-ish 3D slab over L4-S1, finer slices.
    ciss = axial_block_geometry(phantom, "L4-L5", max(48, sizes.bids_matrix // 2),
                                sizes.bids_pixel_mm * 1.5, 24, 1.5)
    ciss_img, _ = phantom.render(ciss, ("T2",))
    write_nifti(anat / f"{sub}_CISS.nii.gz", ciss_img["T2"].astype(np.int16), ciss)
    (anat / f"{sub}_CISS.json").write_text(json.dumps({
        **_SIDECAR, "SeriesDescription": "ciss_3d_tra", "SliceThickness": 1.5}), encoding="utf-8")
    markers = root / "derivatives" / "markers" / sub
    markers.mkdir(parents=True, exist_ok=True)
    truth_markers: dict[str, Any] = {}
    # Dura: one closed curve per CISS slice, the outline of the phantom's sac on that slice (the
    # slab is parallel to the L4-L5 disc, so each slice is at one distance along its normal).
    disc = phantom.ground_truth()["levels"]["L4-L5"]
    disc_centre, disc_normal = np.asarray(disc["disc_centre_lps"]), np.asarray(disc["disc_normal_lps"])
    for i in range(0, ciss.shape_kji[0], 6):
        u_mm = float((ciss.slice_plane(i).origin_lps - disc_centre) @ disc_normal)
        ring = phantom.sac_outline_lps("L4-L5", u_mm)
        system = "LPS" if i % 12 == 0 else "RAS"
        name = f"{sub}_dura_{i}.json" if i % 12 == 0 else f"{sub}dura{i}.json"
        (markers / name).write_text(json.dumps(_markup(ring, "ClosedCurve", system, "dura")),
                                    encoding="utf-8")
        truth_markers[name] = {"first_point_lps": ring[0].tolist(), "system": system, "level": "L4-L5",
                               "offset_from_disc_mm": u_mm, "slice_index": i}
    for d in phantom.discs:
        root_name = d.level.split("-")[0]
        if root_name not in ("L1", "L2", "L3", "L4", "L5"):
            continue
        segs = [s for s in phantom.root_segments_spine()]
        idx = phantom.discs.index(d) * 4
        for side_i, side in enumerate(("L", "R")):
            start, mid, _ = segs[idx + side_i * 2]
            _, end, _ = segs[idx + side_i * 2 + 1]
            pts = phantom.to_lps(np.array([start, mid, end]))
            pts = pts[np.argsort(-pts[:, 2])]  # sorted by descending z, as the dataset does
            system = "RAS" if side == "L" else "LPS"
            name = f"{sub}_nerveroots_{root_name}_{side}.json"
            (markers / name).write_text(json.dumps(_markup(pts, "Fiducial", system, "root")),
                                        encoding="utf-8")
            truth_markers[name] = {"points_lps": pts.tolist(), "system": system}
            gang = f"{sub}_ganglions_{root_name}_{side}.json"
            (markers / gang).write_text(json.dumps(_markup(pts[1:2], "Fiducial", "LPS", "ganglion")),
                                        encoding="utf-8")
    # STL models: the dura (the sac's surface), the cord as a tube along the canal, roots as
    # tubes (binary and ASCII).
    model = root / "derivatives" / "model" / sub
    levels = phantom.ground_truth()["levels"]
    path = np.array([levels[lv]["canal_centre_lps"] for lv in LUMBAR_LEVELS])
    dura_v, dura_f = dura_mesh(phantom)
    write_stl(model / f"{sub}_Dura.stl", dura_v, dura_f, binary=True, header=f"{sub}_Dura SPACE=LPS")
    cord_v, cord_f = tube_mesh(path[:2], 3.0)
    ras = cord_v * np.array([-1.0, -1.0, 1.0])
    write_stl(model / f"{sub}_Cord.stl", ras, cord_f, binary=False, header=f"{sub}_Cord SPACE=RAS")
    root_meshes = []
    for start, end, r in phantom.root_segments_spine():
        v, f = tube_mesh(phantom.to_lps(np.array([start, end])), r, 8)
        root_meshes.append((v, f))
    offset = 0
    all_v, all_f = [], []
    for v, f in root_meshes:
        all_v.append(v)
        all_f.append(f + offset)
        offset += len(v)
    write_stl(model / f"{sub}_Nerveroots.stl", np.concatenate(all_v), np.concatenate(all_f),
              binary=True, header=f"{sub}_Nerveroots SPACE=LPS")
    qc = root / "derivatives" / "anatqc" / sub / "anat"
    qc.mkdir(parents=True, exist_ok=True)
    for seq in ("CISS", "T2TSE"):
        (qc / f"{sub}_{seq}_SNR.csv").write_text("roi,snr\ncsf,41.2\ncord,18.9\n", encoding="utf-8")
        (qc / f"{sub}_{seq}_CNR.csv").write_text("pair,cnr\ncsf-cord,12.5\n", encoding="utf-8")
    _write_truth(root, phantom, {"markers": truth_markers,
                                 "meshes": {"Dura": {"first_vertex_lps": dura_v[0].tolist()},
                                            "Cord": {"first_vertex_lps": cord_v[0].tolist()}}})
    return root


WRITERS = {"sudirman": write_sudirman, "unidata": write_unidata, "spider": write_spider,
           "aisslab": write_aisslab, "bids": write_bids, "rsna": write_rsna}


def write_all(root: str | Path, params: PhantomParams | None = None, sizes: Sizes = Sizes(),
              layouts: tuple[str, ...] = LAYOUTS) -> dict[str, Path]:
    """Write the phantom in each layout under ``root/<layout>``."""
    phantom = LumbarPhantom(params)
    out = {}
    for name in layouts:
        target = Path(root) / name
        target.mkdir(parents=True, exist_ok=True)
        out[name] = WRITERS[name](target, phantom, sizes)
    return out


def level_roi_geometry(phantom: LumbarPhantom, level: str, in_plane_mm: float, slice_mm: float,
                       margin_mm: tuple[float, float, float] = (27.0, 45.0, 47.0)) -> VolumeGeometry:
    """A sagittal stack around one disc level (its discs, bodies, canal and foramina), for
    measurement tests: columns run anterior to posterior, rows head to feet, slices right to left
    every ``slice_mm`` (equal to ``in_plane_mm`` for an isotropic grid)."""
    truth = phantom.ground_truth()["levels"][level]
    centre = np.asarray(truth["disc_centre_lps"]) + np.array([0.0, 12.0, 0.0])
    mx, my, mz = margin_mm
    n_slices = int(2 * mx / slice_mm) + 1
    n_cols = int(2 * my / in_plane_mm) + 1
    n_rows = int(2 * mz / in_plane_mm) + 1
    origin = centre + np.array([mx, -my, mz])
    return VolumeGeometry.from_directions((n_slices, n_rows, n_cols), origin, (0, 1, 0), (0, 0, -1),
                                          (in_plane_mm, in_plane_mm, slice_mm), slice_direction_lps=(-1, 0, 0))


def render_labels(phantom: LumbarPhantom, geometry: VolumeGeometry) -> npt.NDArray[np.int16]:
    """The phantom's labels (SPIDER numbering) at every voxel centre of ``geometry``."""
    k, j, i = geometry.shape_kji
    out = np.zeros(geometry.shape_kji, dtype=np.int16)
    jj, ii = np.meshgrid(np.arange(j, dtype=np.float64), np.arange(i, dtype=np.float64), indexing="ij")
    for kk in range(k):
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, float(kk))], axis=1)
        out[kk] = to_spider_labels(phantom.labels_at(geometry.index_to_lps(ijk))).reshape(j, i)
    return out
