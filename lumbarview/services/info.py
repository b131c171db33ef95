"""Use case: describe what a path holds (``lumbarview info``)."""

from __future__ import annotations

import math
from typing import Any

from lumbarview.core.dataset import Dataset
from lumbarview.core.types import ImageStack, Series, Severity

_MAX_POINT_LABELS = 1000


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def stack_info(stack: ImageStack) -> dict[str, Any]:
    g = stack.geometry
    k, j, i = g.shape_kji
    di, dj, _ = g.spacing_mm
    meta = stack.meta
    return {
        "uid": stack.uid,
        "orientation": g.orientation.value,
        "n_slices": k,
        "rows": j,
        "cols": i,
        "spacing_mm": [_num(di), _num(dj), _num(meta.get("slice_spacing_mm") or g.slice_spacing_mm)],
        "slice_thickness_mm": _num(meta.get("slice_thickness_mm")),
        "slice_gap_mm": _num(meta.get("slice_gap_mm")),
        "normal_lps": [_num(float(v), 6) for v in g.slice_normal],
        "origin_lps": [_num(float(v)) for v in g.index_to_lps((0.0, 0.0, 0.0))],
        "patient_position": meta.get("patient_position") or None,
        "has_patient_geometry": bool(meta.get("has_patient_geometry", True)),
    }


def series_orientation(series: Series) -> str:
    names = {s.geometry.orientation.value for s in series.stacks}
    return names.pop() if len(names) == 1 else "mixed"


def _series_info(series: Series) -> dict[str, Any]:
    first = series.stacks[0].geometry.shape_kji if series.stacks else (0, 0, 0)
    return {
        "uid": series.uid,
        "number": series.number,
        "description": series.description,
        "modality": series.modality,
        "orientation": series_orientation(series),
        "rows": first[1],
        "cols": first[2],
        "n_slices": series.n_slices,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "stacks": [stack_info(s) for s in series.stacks],
    }


def _fmt(value: float | None, unit: str = " mm") -> str:
    return "?" if value is None else f"{value:g}{unit}"


def build_dataset_info(dataset: Dataset) -> dict[str, Any]:
    """The ``lumbarview info --json`` document for a dataset root: the issue-2 contract
    (``path``, ``patients`` -> ``studies`` -> ``series`` -> ``stacks``, ``issues``) plus
    ``layout`` and, per patient (case), its ``overlays`` and ``tables``."""
    patients = []
    for case in dataset.cases:
        studies: dict[str, dict[str, Any]] = {}
        for series in case.series:
            study_uid = ""
            for stack in series.stacks:
                study_uid = str(stack.meta.get("study_uid") or "")
            studies.setdefault(study_uid, {"uid": study_uid, "series": []})["series"].append(
                _series_info(series))
        overlays: dict[str, list[dict[str, Any]]] = {
            "label_maps": [{
                "name": m.name, "source": m.source, "bound_to": m.bound_to, "scheme": m.scheme.name,
                "shape_kji": list(m.stack.geometry.shape_kji), "resampled": m.resampled_from is not None,
                "guessed": m.guessed is not None,
            } for m in case.label_maps],
            "boxes": [{
                "set": b.name, "source": b.source, "n_boxes": len(b.boxes),
                "placed": sum(1 for x in b.boxes if x.corners_lps is not None),
                "items": [{"side": x.side, "level": x.level, "severity": x.severity,
                           "slice_index": x.slice_index, "stack": x.stack_uid, "source": x.source,
                           "copies": list(x.copies), "disagreement": x.disagreement} for x in b.boxes],
            } for b in case.box_sets],
            # ``labels``: the name of each point (RSNA: "L4-L5 Left Neural Foraminal Narrowing"),
            # the first _MAX_POINT_LABELS of them; ``n_points`` counts them all.
            "points": [{"name": p.name, "kind": p.kind, "n_points": int(p.points_lps.shape[0]),
                        "coordinate_system": p.coordinate_system, "source": p.source,
                        "labels": list(p.labels[:_MAX_POINT_LABELS])}
                       for p in case.point_sets],
            "meshes": [{"name": m.name, "n_triangles": m.n_triangles,
                        "n_vertices": int(m.vertices_lps.shape[0]), "source": m.source} for m in case.meshes],
        }
        patients.append({
            "id": case.id,
            "studies": list(studies.values()),
            "overlays": overlays,
            "tables": [{"name": t.name, "kind": t.kind, "n_rows": len(t.rows), "columns": t.columns,
                        "source": t.source} for t in case.tables],
            "sidecars": sorted(case.sidecars),
            "attachments": case.attachments,
        })
    return {
        "path": dataset.path,
        "layout": dataset.layout,
        "patients": patients,
        "tables": [{"name": t.name, "kind": t.kind, "n_rows": len(t.rows), "source": t.source}
                   for t in dataset.tables],
        "attachments": dataset.attachments,
        "issues": [i.to_dict() for i in dataset.all_issues()],
    }


def format_dataset_info(info: dict[str, Any]) -> str:
    """Human-readable tree of :func:`build_dataset_info`'s document."""
    lines = [f"{info['path']}", f"layout: {info['layout']}"]
    for patient in info["patients"]:
        lines.append(f"case {patient['id']}")
        for study in patient["studies"]:
            if study["uid"]:
                lines.append(f"  study {study['uid']}")
            for s in study["series"]:
                number = "" if s["number"] is None else f"#{s['number']} "
                lines.append(f"    series {number}{s['description'] or '(no description)'}  "
                             f"[{s['modality']}, {s['orientation']}, {s['n_slices']} slices, "
                             f"{len(s['stacks'])} stack(s)]")
                for k, st in enumerate(s["stacks"], 1):
                    sp = st["spacing_mm"]
                    gap = st["slice_gap_mm"]
                    gap_text = "" if gap is None or abs(gap) < 0.01 else f", gap {gap:g} mm"
                    lines.append(f"      stack {k}: {st['orientation']}, {st['n_slices']} x "
                                 f"{st['rows']}x{st['cols']}, {_fmt(sp[0], '')} x {_fmt(sp[1], '')} x "
                                 f"{_fmt(sp[2])}{gap_text}")
        ov = patient["overlays"]
        for m in ov["label_maps"]:
            lines.append(f"  labels {m['name']} ({m['scheme']}, {'x'.join(map(str, m['shape_kji']))}"
                         f"{', resampled onto its image' if m['resampled'] else ''}"
                         f"{', a label map by its values (its name does not say so)' if m.get('guessed') else ''})")
        for b in ov["boxes"]:
            marked = sum(1 for x in b["items"] if x.get("disagreement"))
            lines.append(f"  boxes {b['set']}: {b['n_boxes']} ({b['placed']} placed on a slice"
                         f"{f'; {marked} marked: copies disagree' if marked else ''})")
        for p in ov["points"]:
            lines.append(f"  points {p['name']}: {p['kind']}, {p['n_points']} point(s), from {p['coordinate_system']}")
        for m in ov["meshes"]:
            lines.append(f"  mesh {m['name']}: {m['n_triangles']} triangles")
        for t in patient["tables"]:
            lines.append(f"  table {t['name']} ({t['kind']}): {t['n_rows']} row(s)")
        for sidecar in patient["sidecars"]:
            lines.append(f"  sidecar {sidecar}")
    for t in info["tables"]:
        lines.append(f"dataset table {t['name']} ({t['kind']}): {t['n_rows']} row(s)")
    for a in info["attachments"]:
        lines.append(f"attachment {a}")
    issues = info["issues"]
    if issues:
        lines.append(f"issues ({len(issues)}):")
        for issue in sorted(issues, key=lambda i: -Severity[i["severity"].upper()]):
            where = f"  [{issue['path']}]" if issue["path"] else ""
            lines.append(f"  {issue['severity']:7s} {issue['code']}: {issue['message']}{where}")
    return "\n".join(lines)
