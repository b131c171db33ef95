"""SPIDER: ``images/`` and ``masks/`` (``.mha``), overview and radiological gradings joined per case and disc."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case, Table
from lumbarview.core.labels import LabelScheme, spider_scheme
from lumbarview.core.types import Series, Severity
from lumbarview.io.annotations import (
    SPIDER_GRADING_COLUMNS,
    SPIDER_OVERVIEW_COLUMNS,
    read_table,
)
from lumbarview.io.volume import is_volume_file, open_volume, volume_stem
from lumbarview.services.binding import bind_label_volume
from lumbarview.services.layouts.context import OpenContext, natural_key


def detect(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def open_layout(ctx: OpenContext) -> None:
    scheme = ctx.user_scheme or spider_scheme()
    images = sorted((ctx.root / "images").glob("*"))
    masks = {volume_stem(p): p for p in (ctx.root / "masks").glob("*") if is_volume_file(p)}
    by_case: dict[str, Case] = {}
    for path in images:
        if not is_volume_file(path):
            continue
        stem = volume_stem(path)
        case_id = stem.split("_")[0]
        case = by_case.setdefault(case_id, Case(id=case_id))
        stack = ctx.guarded(case, partial(open_volume, path, uid=f"spider:{stem}", description=stem,
                                                   root=ctx.root))
        if stack is None:
            continue
        seq = stem.split("_", 1)[1] if "_" in stem else stem
        case.series.append(Series(uid=stack.uid, description=seq, modality="MR", number=None,
                                  stacks=[stack]))
        mask_path = masks.pop(stem, None)
        if mask_path is None:
            ctx.issue(Severity.INFO, "spider.no-mask", f"no mask for {stem}", path, case)
            continue
        bind_label_volume(ctx, case, mask_path, stack, scheme)
    for stem, mask_path in masks.items():
        case = by_case.setdefault(stem.split("_")[0], Case(id=stem.split("_")[0]))
        ctx.issue(Severity.WARNING, "spider.orphan-mask", f"mask {stem} has no image", mask_path, case)
    ctx.dataset.cases = sorted(by_case.values(), key=lambda c: natural_key(c.id))
    overview = ctx.root / "overview.csv"
    if overview.is_file():
        result = ctx.guarded(None, partial(read_table, overview, "spider-overview", SPIDER_OVERVIEW_COLUMNS))
        if result is not None:
            table, issues = result
            ctx.dataset.tables.append(table)
            ctx.dataset.issues.extend(issues)
            for case in ctx.dataset.cases:
                rows = [r for r in table.rows if str(r.get("new_file_name", "")).split("_")[0] == case.id]
                if rows:
                    case.tables.append(Table("overview", "spider-overview", table.columns, rows, table.source))
    gradings = ctx.root / "radiological_gradings.csv"
    if gradings.is_file():
        join_spider_gradings(ctx, gradings, scheme)
    ctx.attachments(ctx.root, exclude={ctx.root / "images", ctx.root / "masks"},
                     known={"overview.csv", "radiological_gradings.csv"})


def join_spider_gradings(ctx: OpenContext, path: Path, scheme: LabelScheme) -> None:
    result = ctx.guarded(None, partial(read_table, path, "spider-gradings", SPIDER_GRADING_COLUMNS))
    if result is None:
        return
    table, issues = result
    ctx.dataset.tables.append(table)
    ctx.dataset.issues.extend(issues)
    joined: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.rows:
        ivd = row.get("IVD label")
        patient = row.get("Patient")
        if not isinstance(ivd, int) or ivd < 1:
            ctx.issue(Severity.WARNING, "spider.ivd-label",
                       f"patient {patient}: IVD label {ivd!r} names no disc (discs are 1 = "
                       "L5-S1 upward); the row is kept but not joined to a disc", path)
            level = None
        else:
            level = scheme.entry(200 + ivd).level
        joined[str(patient)].append({**row, "level": level, "disc_label": None if level is None else 200 + ivd})
    for case in ctx.dataset.cases:
        rows = joined.get(case.id)
        if rows:
            case.tables.append(Table("radiological gradings", "spider-gradings",
                                     [*table.columns, "level", "disc_label"], rows, table.source))
