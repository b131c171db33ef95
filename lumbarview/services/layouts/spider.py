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
    """List every case from the file names alone; each case's headers are read when it is first
    needed (:meth:`Case.ensure_open`: at once unless the dataset is opened lazily), so that a
    500-case dataset lists as fast as a 5-case one."""
    scheme = ctx.user_scheme or spider_scheme()
    images = [p for p in sorted((ctx.root / "images").glob("*")) if is_volume_file(p)]
    masks = {volume_stem(p): p for p in (ctx.root / "masks").glob("*") if is_volume_file(p)}
    by_case: dict[str, Case] = {}
    files: dict[str, list[tuple[Path, Path | None]]] = defaultdict(list)
    for path in images:
        stem = volume_stem(path)
        case_id = stem.split("_")[0]
        by_case.setdefault(case_id, Case(id=case_id))
        files[case_id].append((path, masks.pop(stem, None)))
    for case_id, pairs in files.items():
        by_case[case_id].opener = partial(_open_case, ctx, scheme, pairs)
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


def _open_case(ctx: OpenContext, scheme: LabelScheme, pairs: list[tuple[Path, Path | None]], case: Case) -> None:
    """Read one case's images and masks (headers; pixels on first use), each file guarded."""
    for path, mask_path in pairs:
        stem = volume_stem(path)
        stack = ctx.guarded(case, partial(open_volume, path, uid=f"spider:{stem}", description=stem,
                                          root=ctx.root))
        if stack is None:
            continue
        seq = stem.split("_", 1)[1] if "_" in stem else stem
        case.series.append(Series(uid=stack.uid, description=seq, modality="MR", number=None,
                                  stacks=[stack]))
        if mask_path is None:
            ctx.issue(Severity.INFO, "spider.no-mask", f"no mask for {stem}", path, case)
            continue
        bind_label_volume(ctx, case, mask_path, stack, scheme)


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
