"""Write the lumbar phantom as one study of the RSNA 2024 Lumbar Spine Degenerative Classification
layout (``docs/datasets.md`` section 6).

``train_images/<study_id>/<series_id>/<instance_number>.dcm`` for a sagittal T1, a sagittal T2 and
an axial T2 series (one block per disc), ``train_series_descriptions.csv``, ``train.csv`` (the 25
grades) and ``train_label_coordinates.csv``. Ids are numeric and random-looking (but fixed); the
instance numbers are shuffled against the slice positions, as readers must sort by position.

The coordinates and grades come from the phantom's truth:

- spinal canal stenosis: the canal centre of each level, on the sagittal T2 slice nearest to it;
- neural foraminal narrowing: the centre of each foramen, on the sagittal T1 slice nearest to it;
- subarticular stenosis: the canal centre moved half the canal's transverse width to that side
  (the phantom has no lateral recess of its own), on the nearest slice of that level's axial block;
- grades: canal and subarticular from the canal's AP diameter (>= 10 mm Normal/Mild, >= 7 mm
  Moderate, else Severe), foramina from their width (>= 6 mm, >= 4.5 mm, else Severe).

``x``, ``y`` are the column and row of the pixel with integer values at pixel centres (the
convention of the reader, ``services/layouts/rsna.py``). The truth file records every point with the
LPS position it was taken from.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import VolumeGeometry
from lumbarview.phantom.dicom_writer import SeriesSpec, make_uid, slice_dataset
from lumbarview.phantom.spine import LUMBAR_LEVELS, LumbarPhantom

if TYPE_CHECKING:
    from lumbarview.phantom.layouts import Sizes

CONDITIONS = (("Spinal Canal Stenosis", "spinal_canal_stenosis"),
              ("Left Neural Foraminal Narrowing", "left_neural_foraminal_narrowing"),
              ("Right Neural Foraminal Narrowing", "right_neural_foraminal_narrowing"),
              ("Left Subarticular Stenosis", "left_subarticular_stenosis"),
              ("Right Subarticular Stenosis", "right_subarticular_stenosis"))


def numeric_id(*parts: object, digits: int = 9) -> int:
    """A fixed, random-looking id of ``digits`` digits (no leading zero) from ``parts``."""
    value = int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest(), 16)
    low: int = 10 ** (digits - 1)
    return low + value % (9 * low)


def _grade(value_mm: float, normal_mm: float, moderate_mm: float) -> str:
    return "Normal/Mild" if value_mm >= normal_mm else "Moderate" if value_mm >= moderate_mm else "Severe"


def _write_series(folder: Path, pixels_kji: npt.NDArray[Any], geometry: VolumeGeometry, spec: SeriesSpec,
                  instances: list[int]) -> None:
    """Slice ``k`` is written as ``<instances[k]>.dcm`` with that InstanceNumber."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, instance in enumerate(instances):
        ds = slice_dataset(pixels_kji[k], geometry, k, spec, instance)
        ds.save_as(folder / f"{instance}.dcm", enforce_file_format=True)


def _on_slice(geometry: VolumeGeometry, point_lps: npt.NDArray[np.float64]) -> tuple[int, float, float]:
    k = geometry.nearest_slice(point_lps)
    if k is None:
        raise ValueError(f"the point {point_lps} lies outside the stack")
    x, y = geometry.slice_plane(k).lps_to_pixel(point_lps)
    return k, float(x), float(y)


def write_rsna(root: Path, phantom: LumbarPhantom, sizes: Sizes) -> Path:
    """The RSNA layout under ``root`` (one training study); returns ``root``."""
    from lumbarview.phantom.layouts import _write_truth, axial_block_geometry, sagittal_geometry

    study_id = numeric_id("rsna", "study", digits=10)
    images = root / "train_images" / str(study_id)
    common: dict[str, Any] = {"patient_id": str(study_id), "study_uid": make_uid("rsna", study_id),
                              "patient_name": "", "study_description": "", "study_date": "20240101"}
    rng = np.random.default_rng(study_id % 2**32)
    truth_levels = phantom.ground_truth()["levels"]
    series_ids: dict[str, int] = {}
    geometries: dict[str, list[VolumeGeometry]] = {}
    instance_of: dict[tuple[str, int, int], int] = {}  # (series, block, k) -> instance number

    def spec(description: str, dicom_description: str, number: int, thickness: float) -> SeriesSpec:
        series_ids[description] = numeric_id("rsna", study_id, description, digits=9)
        return SeriesSpec(series_uid=make_uid("rsna", study_id, description), series_number=number,
                          description=dicom_description, slice_thickness_mm=thickness,
                          frame_of_reference_uid=make_uid("rsna", study_id, "for"), **common)

    sag = sagittal_geometry(phantom, sizes.sag_matrix, sizes.sag_pixel_mm, sizes.sag_slices,
                            sizes.sag_spacing_mm)
    rendered, _ = phantom.render(sag, ("T1", "T2"))
    for number, (description, dicom_description, contrast) in enumerate(
            (("Sagittal T1", "t1_tse_sag", "T1"), ("Sagittal T2/STIR", "t2_tse_sag", "T2")), start=1):
        s = spec(description, dicom_description, number, sizes.sag_thickness_mm)
        instances = [int(i) + 1 for i in rng.permutation(sag.shape_kji[0])]
        _write_series(images / str(series_ids[description]), rendered[contrast], sag, s, instances)
        geometries[description] = [sag]
        instance_of.update({(description, 0, k): i for k, i in enumerate(instances)})
    ax_spec = spec("Axial T2", "t2_tse_tra", 3, 4.0)
    blocks = [axial_block_geometry(phantom, level, sizes.ax_matrix, sizes.ax_pixel_mm, sizes.ax_slices, 4.4)
              for level in LUMBAR_LEVELS]
    total = sum(b.shape_kji[0] for b in blocks)
    numbers = [int(i) + 1 for i in rng.permutation(total)]
    geometries["Axial T2"] = blocks
    for b, block in enumerate(blocks):
        img, _ = phantom.render(block, ("T2",))
        # One series: every block continues the instance numbers (shuffled across blocks).
        mine = numbers[b * sizes.ax_slices:(b + 1) * sizes.ax_slices]
        _write_series(images / str(series_ids["Axial T2"]), img["T2"], block, ax_spec, mine)
        instance_of.update({("Axial T2", b, k): i for k, i in enumerate(mine)})

    points: list[dict[str, Any]] = []
    grades: dict[str, str] = {}
    for b, level in enumerate(LUMBAR_LEVELS):
        t = truth_levels[level]
        canal = np.asarray(t["canal_centre_lps"], dtype=np.float64)
        suffix = level.lower().replace("-", "_")
        ap = float(t["canal_ap_mm"])
        wanted: list[tuple[str, str, int, npt.NDArray[np.float64]]] = [
            ("Spinal Canal Stenosis", "Sagittal T2/STIR", 0, canal)]
        grades[f"spinal_canal_stenosis_{suffix}"] = _grade(ap, 10.0, 7.0)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            foramen = t["foramen"][side]
            wanted.append((f"{side.title()} Neural Foraminal Narrowing", "Sagittal T1", 0,
                           np.asarray(foramen["centre_lps"], dtype=np.float64)))
            grades[f"{side}_neural_foraminal_narrowing_{suffix}"] = _grade(float(foramen["width_mm"]), 6.0, 4.5)
            recess = canal + np.array([sign * float(t["canal_transverse_mm"]) / 2, 0.0, 0.0])
            wanted.append((f"{side.title()} Subarticular Stenosis", "Axial T2", b, recess))
            grades[f"{side}_subarticular_stenosis_{suffix}"] = _grade(ap, 10.0, 7.0)
        for condition, description, block_index, point in wanted:
            geometry = geometries[description][block_index]
            k, x, y = _on_slice(geometry, point)
            points.append({"condition": condition, "level": level.replace("-", "/"),
                           "series_description": description, "series_id": series_ids[description],
                           "instance_number": instance_of[(description, block_index, k)],
                           "x": round(x, 4), "y": round(y, 4), "truth_lps": point.tolist()})

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "train_series_descriptions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["study_id", "series_id", "series_description"])
        for description, series_id in series_ids.items():
            w.writerow([study_id, series_id, description])
    with open(root / "train.csv", "w", newline="", encoding="utf-8") as fh:
        columns = [f"{prefix}_{level.lower().replace('-', '_')}" for _, prefix in CONDITIONS
                   for level in LUMBAR_LEVELS]
        w = csv.writer(fh)
        w.writerow(["study_id", *columns])
        w.writerow([study_id, *(grades[c] for c in columns)])
    with open(root / "train_label_coordinates.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["study_id", "series_id", "instance_number", "condition", "level", "x", "y"])
        for p in points:
            w.writerow([study_id, p["series_id"], p["instance_number"], p["condition"], p["level"],
                        p["x"], p["y"]])
    _write_truth(root, phantom, {"rsna": {"study_id": study_id, "series": series_ids,
                                          "points": points, "grades": grades}})
    return root
