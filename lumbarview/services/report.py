"""A per-case HTML report: the levels table and one key image per level with what was measured.

The key image of a level is the engine's canal plane (the level plane through the thecal sac,
seen as a radiological axial) reformatted from the image the label map annotates, 60 mm wide,
with the canal contour (yellow) and the AP and transverse chords (cyan) drawn; a level without
a canal measurement shows its mid-sagittal disc plane with the disc height lines instead. The
images are PNGs (numpy + Pillow) embedded in the one HTML file, written atomically into the
user's workspace (``$LUMBARVIEW_WORKSPACE`` or the user data folder, ``reports/``) or a chosen
path; never into the dataset.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from lumbarview.core.dataset import Case
from lumbarview.core.fs import atomic_write_text, refuse_inside
from lumbarview.core.types import ImageStack
from lumbarview.services.engine_view import EngineResult, PartGeometry
from lumbarview.slicing.planes import ViewPlane
from lumbarview.slicing.reformat import reformat

FIELD_MM = 60.0
PIXEL_MM = 0.25
CONTOUR_RGB = (255, 220, 0)
CHORD_RGB = (0, 230, 255)
COLUMNS = ("level", "side", "quantity", "value", "unit", "confidence", "flag", "dataset_grade", "source", "note")


def default_report_path(dataset_path: str, case_id: str, workspace: str | Path | None = None) -> Path:
    """Where a case's report goes by default: the user's workspace, one file per dataset and case."""
    if workspace is None:
        workspace = os.environ.get("LUMBARVIEW_WORKSPACE")
    if workspace is None:
        import platformdirs

        workspace = platformdirs.user_data_dir("lumbarview", appauthor=False)
    digest = hashlib.sha1(os.path.abspath(dataset_path).encode("utf-8")).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)[:80]
    return Path(workspace) / "reports" / f"{Path(dataset_path).name}-{digest}-{safe}.html"


def image_stack(case: Case, series: str) -> ImageStack | None:
    """The image a label map's rows name (by description), the label map's own stack else."""
    for label_map in case.label_maps:
        image = case.stack(label_map.bound_to or "")
        if image is not None and str(image.meta.get("description")) == series:
            return image
    return next((s for s in case.stacks() if str(s.meta.get("description")) == series), None)


def key_plane(part: PartGeometry, field_mm: float = FIELD_MM, pixel_mm: float = PIXEL_MM) -> ViewPlane:
    n = round(field_mm / pixel_mm)
    return ViewPlane.centred(part.centre_lps, part.right_lps, part.down_lps, (pixel_mm, pixel_mm), (n, n))


def _grey(pixels: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    finite = np.asarray(pixels, dtype=np.float64)
    lo, hi = (np.percentile(finite, (1, 99)) if finite.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    return np.asarray(np.clip((finite - lo) / (hi - lo) * 255.0, 0, 255), dtype=np.uint8)


def draw_part(stack: ImageStack, part: PartGeometry) -> tuple[Image.Image, ViewPlane]:
    """The part's plane reformatted from ``stack`` with its polylines drawn (an RGB image)."""
    plane = key_plane(part)
    grey = _grey(reformat(stack.pixels(), stack.geometry, plane).pixels)
    image = Image.fromarray(grey, "L").convert("RGB")
    draw = ImageDraw.Draw(image)
    for line in part.polylines:
        colour = CONTOUR_RGB if ("contour" in line.name or "outline" in line.name) else CHORD_RGB
        cr = plane.lps_to_pixel(line.points_lps)
        pts = [(float(c), float(r)) for c, r in cr]
        if len(pts) >= 2:
            draw.line(pts + ([pts[0]] if line.closed else []), fill=colour, width=2)
    return image, plane


def _png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "value" and value is None:
        return "—"
    if key == "value" and isinstance(value, float):  # to the engine rows' precision (4 decimals)
        return str(round(value, 4))
    return "" if value is None else html.escape(str(value))


def build_html(case: Case | None, result: EngineResult | None, rows: Sequence[dict[str, Any]] | None = None,
               dataset_path: str = "", case_id: str | None = None) -> str:
    """The report's HTML text (see the module). ``rows``: what to list (default the engine's),
    per series and level, each with its source; without an engine result, no key images."""
    rows = list((result.rows if result is not None else []) if rows is None else rows)
    name = case_id or (case.id if case is not None else "")
    engine = (f"Engine: {html.escape(result.engine_version)}." if result is not None
              else "The engine was not run: the measurements drawn by hand are listed.")
    out = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
           f"<title>lumbarview report — case {html.escape(name)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:90%}"
           "td,th{border:1px solid #bbb;padding:2px 6px}th{background:#eee}.flag{color:#a33}"
           "figure{display:inline-block;margin:0 1em 1em 0}</style></head><body>",
           f"<h1>Case {html.escape(name)}</h1>",
           f"<p>Dataset: {html.escape(dataset_path)}<br>{engine} "
           "Flags are literature cut-offs with their source, never a diagnosis.</p>"]
    notes = list(result.notes) if result is not None else []
    parts = result.parts if result is not None else []
    for series in dict.fromkeys(str(r.get("series")) for r in rows):
        out.append(f"<h2>Series {html.escape(series)}</h2>")
        stack = image_stack(case, series) if case is not None else None
        for level in dict.fromkeys(str(r.get("level")) for r in rows if str(r.get("series")) == series):
            level_rows = [r for r in rows if str(r.get("series")) == series and str(r.get("level")) == level]
            out.append(f"<h3>{html.escape(level if level != 'None' else 'no level')}</h3>")
            part = next((p for p in parts if p.series == series and p.level == level and p.part == "canal"),
                        None) or next((p for p in parts if p.series == series and p.level == level
                                       and p.part == "disc"), None)
            if part is not None and stack is not None:
                try:
                    image, _plane = draw_part(stack, part)
                    caption = ("canal plane: contour (yellow), AP and transverse chords (cyan)" if part.part == "canal"
                               else "mid-sagittal disc plane: disc height lines (cyan)")
                    out.append(f"<figure><img alt='{html.escape(level)} key image' "
                               f"src='{_png_data_uri(image)}'><figcaption>{caption}</figcaption></figure>")
                except (ValueError, MemoryError, OSError) as exc:
                    notes.append(f"{series} {level}: no key image ({exc})")
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>")
            for row in level_rows:
                cls = " class='flag'" if row.get("flag") else ""
                out.append(f"<tr{cls}>" + "".join(f"<td>{_cell(row, c)}</td>" for c in COLUMNS) + "</tr>")
            out.append("</table>")
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(path: str | Path, case: Case | None, result: EngineResult | None,
                 rows: Sequence[dict[str, Any]] | None = None, dataset_path: str = "",
                 case_id: str | None = None) -> Path:
    """Write the report atomically to ``path`` (refused inside the dataset: the user's data is
    read-only to lumbarview)."""
    target = refuse_inside(path, dataset_path, "the report") if dataset_path else Path(path).resolve()
    atomic_write_text(target, build_html(case, result, rows, dataset_path, case_id))
    return target
