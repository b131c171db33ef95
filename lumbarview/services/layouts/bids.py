"""BIDS (Liu et al. lumbosacral): NIfTI with sidecars, Slicer markups, STL models, MRIQC tables."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case
from lumbarview.core.types import Series, Severity
from lumbarview.io.annotations import (
    read_json,
    read_markups,
    read_table,
)
from lumbarview.io.mesh import read_stl
from lumbarview.io.volume import is_volume_file, open_volume, volume_stem
from lumbarview.services.layouts.context import OpenContext, natural_key
from lumbarview.services.mesh_parts import split_by_markers


def detect(root: Path) -> bool:
    if (root / "rawdata").is_dir() or (root / "dataset_description.json").is_file():
        base = root / "rawdata" if (root / "rawdata").is_dir() else root
        return any(p.name.startswith("sub-") for p in base.iterdir() if p.is_dir())
    return False


def open_layout(ctx: OpenContext) -> None:
    raw = ctx.root / "rawdata" if (ctx.root / "rawdata").is_dir() else ctx.root
    deriv = ctx.root / "derivatives"
    for name in ("participants.tsv",):
        if (raw / name).is_file():
            result = ctx.guarded(None, partial(read_table, raw / name, "participants"))
            if result is not None:
                ctx.dataset.tables.append(result[0])
    subjects = sorted({p.name for p in raw.iterdir() if p.is_dir() and p.name.startswith("sub-")}
                      | ({p.name for base in deriv.glob("*") if base.is_dir() for p in base.iterdir()
                          if p.is_dir() and p.name.startswith("sub-")} if deriv.is_dir() else set()),
                      key=natural_key)
    for sub in subjects:  # each subject's files read when it is first needed (Case.ensure_open)
        ctx.dataset.cases.append(Case(id=sub, opener=partial(_open_subject, ctx, raw, deriv, sub)))


def _open_subject(ctx: OpenContext, raw: Path, deriv: Path, sub: str, case: Case) -> None:
    """Read one subject's images, sidecars, markers, models and quality tables, each file guarded."""
    anat = raw / sub / "anat"
    sidecars = {p.name[: -len(".json")]: p for p in anat.glob("*.json")} if anat.is_dir() else {}
    for path in sorted(anat.glob("*")) if anat.is_dir() else []:
        if not is_volume_file(path):
            continue
        stem = volume_stem(path)
        stack = ctx.guarded(case, partial(open_volume, path, uid=f"{sub}:{stem}", description=stem,
                                                   root=ctx.root))
        if stack is None:
            continue
        case.series.append(Series(uid=stack.uid, description=stem.removeprefix(f"{sub}_"),
                                  modality="MR", number=None, stacks=[stack]))
        sidecar = sidecars.pop(stem, None)
        if sidecar is not None:
            doc = ctx.guarded(case, partial(read_json, sidecar))
            if isinstance(doc, dict):
                case.sidecars[stack.uid] = doc
                sidecar_notes(ctx, case, sidecar, doc)
    for stem, sidecar in sidecars.items():
        doc = ctx.guarded(case, partial(read_json, sidecar))
        if isinstance(doc, dict):
            case.sidecars[f"{sub}:{stem}"] = doc
            sidecar_notes(ctx, case, sidecar, doc)
        ctx.issue(Severity.WARNING, "bids.missing-image",
                   f"sidecar {sidecar.name} has no image beside it", sidecar, case)
    for path in sorted((deriv / "markers" / sub).glob("*.json")) if deriv.is_dir() else []:
        result = ctx.guarded(case, partial(read_markups, path))
        if result is not None:
            case.point_sets.extend(result[0])
            case.issues.extend(result[1])
    for path in sorted((deriv / "model" / sub).glob("*")) if deriv.is_dir() else []:
        if path.suffix.lower() == ".stl":
            result = ctx.guarded(case, partial(read_stl, path))
            if result is not None:
                mesh, issues = result
                if "nerveroot" in mesh.name.lower():  # every root in one file: one mesh per root
                    roots = [p for p in case.point_sets if "nerveroot" in p.name.lower()]
                    parts = ctx.guarded(case, partial(split_by_markers, mesh, roots), path)
                    case.meshes.extend(parts if parts is not None else [mesh])
                else:
                    case.meshes.append(mesh)
                case.issues.extend(issues)
    for path in sorted((deriv / "anatqc" / sub).rglob("*.csv")) if deriv.is_dir() else []:
        result = ctx.guarded(case, partial(read_table, path, "mriqc"))
        if result is not None:
            case.tables.append(result[0])
            case.issues.extend(result[1])


def sidecar_notes(ctx: OpenContext, case: Case, path: Path, doc: dict[str, Any]) -> None:
    image_type = doc.get("ImageType") or []
    if isinstance(image_type, list) and "COMPOSED" in image_type:
        ctx.issue(Severity.INFO, "bids.composed",
                   f"a composed multi-station image (SeriesDescription {doc.get('SeriesDescription')!r}, "
                   f"ProtocolName {doc.get('ProtocolName')!r})", path, case)
