"""``lumbarview measure --summary``: per case (label map), a table of levels by quantity that a
person can read in a 120-column terminal; flagged values marked ``*``, low confidence ``~``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

from lumbarview.services.measure_case import is_failure

# (quantity, unit of the rows, header, header unit)
_CANAL_DISC = (
    ("canal_ap", "mm", "canal AP", "mm"), ("canal_transverse", "mm", "canal LR", "mm"),
    ("canal_area", "mm2", "canal area", "mm²"), ("canal_area_min", "mm2", "area min", "mm²"),
    ("disc_height_anterior", "mm", "disc ant", "mm"), ("disc_height_middle", "mm", "disc mid", "mm"),
    ("disc_height_posterior", "mm", "disc post", "mm"), ("dhi", "ratio", "DHI", "ratio"),
    ("slip", "mm", "slip", "mm"), ("slip", "%", "slip", "%"),
)
_FORAMEN = (
    ("foramen_height", "mm", "foramen height", "mm"), ("foramen_width", "mm", "foramen width", "mm"),
    ("foramen_area", "mm2", "foramen area", "mm²"), ("posterior_disc_height", "mm", "post. disc height", "mm"),
)
_LEVEL_ORDER = ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
LEGEND = ("legend:  *  flagged by a literature cut-off (listed under each table; never a diagnosis)\n"
          "         ~  low confidence (the mask is sampled too coarsely along that direction)\n"
          "         -  not measured (the rows of --csv or --json say why)")


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row.get("value") is None:
        return "-"
    value = float(row["value"])
    text = f"{value:.2f}" if row.get("unit") == "ratio" else f"{value:.1f}"
    if row.get("flag"):
        text += "*"
    if row.get("confidence") == "low":
        text += "~"
    return text


def _levels(rows: Sequence[dict[str, Any]]) -> list[str]:
    found = {str(r["level"]) for r in rows if r.get("level")}
    return sorted(found, key=lambda lv: (_LEVEL_ORDER.index(lv) if lv in _LEVEL_ORDER else len(_LEVEL_ORDER), lv))


def format_summary(rows: Sequence[dict[str, Any]], width: int = 120) -> str:
    """The tables of one label map's rows (one case and series)."""
    if not rows:
        return ""
    head = f"case {rows[0].get('case')}  series {rows[0].get('series')}"
    if is_failure(rows):
        return f"{head}\n  not measured: {rows[0].get('reason')}\n"
    index: dict[tuple[str | None, str | None, str | None, str | None], dict[str, Any]] = {}
    for r in rows:
        index[(r.get("level"), r.get("quantity"), r.get("unit"), r.get("side"))] = r
    levels = _levels(rows)
    out = [head]
    col = 11
    out.append(f"  {'level':<7}" + "".join(f"{h:>{col}}" for _, _, h, _ in _CANAL_DISC))
    out.append(f"  {'':<7}" + "".join(f"{u:>{col}}" for _, _, _, u in _CANAL_DISC))
    for level in levels:
        cells = [_cell(index.get((level, q, u, None))) for q, u, _, _ in _CANAL_DISC]
        out.append(f"  {level:<7}" + "".join(f"{c:>{col}}" for c in cells))
    fcol = 20
    out.append(f"  {'level':<7}" + "".join(f"{h:>{fcol}}" for _, _, h, _ in _FORAMEN))
    out.append(f"  {'':<7}" + "".join(f"{'left / right ' + u:>{fcol}}" for _, _, _, u in _FORAMEN))
    for level in levels:
        cells = [f"{_cell(index.get((level, q, u, 'left')))} / {_cell(index.get((level, q, u, 'right')))}"
                 for q, u, _, _ in _FORAMEN]
        out.append(f"  {level:<7}" + "".join(f"{c:>{fcol}}" for c in cells))
    flags = []
    for r in rows:
        if r.get("flag") and r.get("level"):
            side = f" {r['side']}" if r.get("side") else ""
            note = f"  * {r['level']} {r['quantity']}{side}: {r['flag']}"
            flags.append(note if len(note) <= width else note[: width - 3] + "...")
    out.extend(dict.fromkeys(flags))
    return "\n".join(line.rstrip() for line in out) + "\n"


class SummarySink:
    """Prints each finished label map's table (the legend once, first)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._legend_written = False

    def commit(self, case: str, labels_path: str, rows: Sequence[dict[str, Any]]) -> None:
        if not self._legend_written:
            self.stream.write(LEGEND + "\n\n")
            self._legend_written = True
        self.stream.write(format_summary(rows) + "\n")
        self.stream.flush()
