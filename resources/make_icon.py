"""Draw resources/lumbarview.png (256x256) and resources/lumbarview.svg: the app's icon.

Five lumbar vertebral bodies (rounded blocks) with discs between them, stacked on a gentle
lordotic curve, and the crosshair of the viewer, on a dark rounded square. Drawn here, with
Pillow for the PNG and by hand for the SVG. Run: .venv/bin/python resources/make_icon.py
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 256
BACKGROUND = (30, 34, 46)
BONE = (232, 220, 190)
DISC = (110, 170, 220)
CROSS = (240, 192, 96)


def _bodies() -> list[tuple[float, float, float, float]]:
    """(centre x, centre y, half width, half height) of the five bodies, top (L1) first."""
    out = []
    for k in range(5):
        y = 44 + k * 38
        x = 120 + 14 * math.sin(math.pi * k / 4)  # lordosis: the middle bulges forward
        out.append((x, y, 40 + 2 * k, 14))
    return out


def draw_png(path: Path) -> None:
    scale = 4  # drawn large and shrunk: smooth edges
    image = Image.new("RGBA", (SIZE * scale, SIZE * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, SIZE * scale - 1, SIZE * scale - 1), radius=40 * scale, fill=BACKGROUND)
    bodies = _bodies()
    for (x0, y0, _, h0), (x1, y1, w1, _) in itertools.pairwise(bodies):
        mx, my = (x0 + x1) / 2, (y0 + h0 + y1 - 14) / 2
        draw.ellipse(((mx - w1 + 4) * scale, (my - 4) * scale, (mx + w1 - 4) * scale, (my + 4) * scale), fill=DISC)
    for x, y, w, h in bodies:
        draw.rounded_rectangle(((x - w) * scale, (y - h) * scale, (x + w) * scale, (y + h) * scale),
                               radius=7 * scale, fill=BONE)
    cx, cy = 184, 158
    width = 3 * scale
    draw.line((cx * scale, 24 * scale, cx * scale, 232 * scale), fill=CROSS, width=width)
    draw.line((24 * scale, cy * scale, 232 * scale, cy * scale), fill=CROSS, width=width)
    image.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(path)


def draw_svg(path: Path) -> None:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">',
             f'<rect width="{SIZE}" height="{SIZE}" rx="40" fill="rgb{BACKGROUND}"/>']
    bodies = _bodies()
    for (x0, y0, _, h0), (x1, y1, w1, _) in itertools.pairwise(bodies):
        mx, my = (x0 + x1) / 2, (y0 + h0 + y1 - 14) / 2
        parts.append(f'<ellipse cx="{mx:.1f}" cy="{my:.1f}" rx="{w1 - 4:.1f}" ry="4" fill="rgb{DISC}"/>')
    for x, y, w, h in bodies:
        parts.append(f'<rect x="{x - w:.1f}" y="{y - h:.1f}" width="{2 * w:.1f}" height="{2 * h:.1f}" rx="7" '
                     f'fill="rgb{BONE}"/>')
    parts.append(f'<path d="M184 24V232M24 158H232" stroke="rgb{CROSS}" stroke-width="3"/>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    draw_png(HERE / "lumbarview.png")
    draw_svg(HERE / "lumbarview.svg")
    print(f"wrote {HERE / 'lumbarview.png'} and {HERE / 'lumbarview.svg'}")
