"""The neural foramen at one level, per side.

Parasagittal planes (normal to the left-right axis of the level plane) are sampled laterally;
the foramen is the closed region of unlabelled space behind the disc, between the bone labels
above and below and the posterior elements behind. Height (extent along the disc normal), width
(narrowest antero-posterior gap over its middle half) and area are taken on the middle one of
the planes where it is closed, and the posterior disc height on that plane
(``docs/measurements.md`` §3, §8). Each value carries the lines it was measured on: the region's
pixel outline (whose enclosed area is the area), the height and width lines between the walls,
and the posterior disc-height line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from lumbarview.core.geometry import FloatArray
from lumbarview.measure import cutoffs
from lumbarview.measure.measurer import BONE, LabelMapMeasurer
from lumbarview.measure.results import NAN, MeasuredGeometry, Polyline, Value, confidence, missing
from lumbarview.measure.sampling import bundle_starts, nearest_labels

_QUANTITIES = ("foramen_height", "foramen_width", "foramen_area", "posterior_disc_height")


def measure_foramen(m: LabelMapMeasurer, level: str, label: int, centre: FloatArray, normal: FloatArray,
                    e_lr: FloatArray, e_ap: FloatArray, side: str) -> list[Value]:
    """The foramen's values on one side (see the module), each with its geometry on the
    parasagittal plane it was measured on (screen right = posterior, down = inferior)."""
    bone = m.values_of(BONE)
    walls = bone | {label}
    if not bone:
        return [v for v in missing(level, label, "the mask has no bone labels", _QUANTITIES) if v.side == side]
    sign = 1.0 if side == "left" else -1.0
    step = max(m.fine * 1.5, 0.25)
    detect = max(step, 0.5)  # the search for closed planes runs on a coarser grid
    lateral_step = min(0.5, m.resolution_along(e_lr) / 2)
    found: list[Any] = []
    offsets = np.arange(8.0, 35.0, lateral_step)
    for first in range(0, len(offsets), _PLANES_AT_ONCE):
        batch = offsets[first:first + _PLANES_AT_ONCE]
        origins = [centre + sign * offset * e_lr for offset in batch]
        closed = _foramen_planes(m, origins, e_ap, normal, walls, label, detect).closed
        past = False
        for offset, origin, is_closed in zip(batch, origins, closed, strict=True):
            if found and found[-1][0] < offset - 1.5 * lateral_step:
                past = True  # the foramen's planes are contiguous: past them, stop looking
                break
            if is_closed:
                found.append((offset, origin))
        if past:
            break
    r_in = max(m.resolution_along(e_ap), m.resolution_along(normal))
    if not found:
        reason = ("no closed foramen on the parasagittal planes: the mask must label the posterior "
                  "elements (pedicles, facets) as well as the bodies and discs")
        return [v for v in missing(level, label, reason, _QUANTITIES) if v.side == side]
    offset, origin = found[len(found) // 2]
    fine_region = _closed_foramen(m, origin, e_ap, normal, walls, label, step)
    if fine_region is None:
        reason = "the foramen closes on the coarse search grid but not on the fine one (a gap under 0.5 mm)"
        return [v for v in missing(level, label, reason, _QUANTITIES) if v.side == side]
    region, s_ap, s_u, is_disc, a_post = fine_region
    area = float(region.sum() * step * step)
    coords = np.argwhere(region)
    a_lo, a_hi = s_ap[coords[:, 0]].min(), s_ap[coords[:, 0]].max()
    u_lo, u_hi = s_u[coords[:, 1]].min(), s_u[coords[:, 1]].max()
    centroid = origin + s_ap[coords[:, 0]].mean() * e_ap + s_u[coords[:, 1]].mean() * normal
    # Height and width with sub-voxel edges: partial-volume run lengths of free space (1 - walls)
    # along lines across the middle half of the region, averaged.
    # Each line starts in the middle of the region's own pixels on that column / row.
    height_starts: list[FloatArray] = []
    width_starts: list[FloatArray] = []
    width_centres: list[FloatArray] = []
    across = (np.cross(e_ap, normal), normal)
    for frac in np.linspace(0.25, 0.75, 7):
        col = int(np.argmin(np.abs(s_ap - (a_lo + frac * (a_hi - a_lo)))))
        in_col = np.nonzero(region[col, :])[0]
        if in_col.size:
            height_starts.append(origin + s_ap[col] * e_ap + s_u[in_col].mean() * normal)
        row = int(np.argmin(np.abs(s_u - (u_lo + frac * (u_hi - u_lo)))))
        in_row = np.nonzero(region[:, row])[0]
        if in_row.size:
            p = origin + s_ap[in_row].mean() * e_ap + s_u[row] * normal
            width_starts.append(bundle_starts(p, across, (0.6, 0.3), 3))
            width_centres.append(p)
    # All lines in one call: a height is the exits up and down the normal from its start, a width
    # the mean exit of a 3 x 3 bundle forwards plus that of the same bundle backwards along A-P.
    n_h, n_w = len(height_starts), len(width_starts)
    h_starts = np.reshape(height_starts, (n_h, 3))
    w_starts = np.reshape(width_starts, (n_w * 9, 3))
    starts = np.concatenate([h_starts, h_starts, w_starts, w_starts])
    directions = np.concatenate([np.broadcast_to(v, (n, 3)) for v, n in
                                 ((normal, n_h), (-normal, n_h), (e_ap, 9 * n_w), (-e_ap, 9 * n_w))])
    # Free space is sampled on the walls within the box these lines reach only.
    reach = 40.0 + m.fine
    free = m.soft_within(walls, np.concatenate([starts, starts + reach * directions]), complement=True)
    exits = m.exits(free, starts, directions, 40.0)
    heights = exits[:n_h] + exits[n_h:2 * n_h]
    bundles = exits[2 * n_h:].reshape(2, n_w, 9).mean(axis=2)
    widths = bundles[0] + bundles[1]
    height = float(np.nanmean(heights)) if np.isfinite(heights).any() else NAN
    # Width is the narrowest gap (a slipped body or a bulge narrows one part only): the mean of
    # the lines within 0.5 mm of the narrowest, so that one line's voxel phase does not decide.
    # A gap that varies by less than 0.75 mm is uniform: then all lines count.
    finite_w = np.asarray(widths)[np.isfinite(widths)]
    if finite_w.size == 0:
        width = NAN
    elif np.ptp(finite_w) <= 0.75:
        width = float(finite_w.mean())
    else:
        width = float(finite_w[finite_w <= finite_w.min() + 0.5].mean())
    # Posterior disc height on this plane, 10 % of the disc's depth in from its posterior margin.
    row0 = int(np.argmin(np.abs(s_u)))
    cols = np.nonzero(is_disc[:, row0])[0]
    depth = (cols.max() - cols.min() + 1) * step
    a_pdh = s_ap[a_post] + step / 2 - 0.1 * depth
    disc = m.soft({label})
    pdh = m.bundle_run_length(disc, origin + a_pdh * e_ap, normal, (-25.0, 25.0),
                              (np.cross(e_ap, normal), e_ap), (0.5, 0.5), 3)
    # The lines the values were measured on: the middle height line and the narrowest width
    # line (their ends where the free space ends, from the exits above), the posterior disc
    # height line, and the region's outline (its pixel edges: it encloses the area exactly).
    plane = MeasuredGeometry(centroid, e_ap, -normal)
    outline = _polyline("foramen outline", _pixel_outline(region, origin, e_ap, normal, s_ap, s_u, step), True)
    mid_h = int(np.argmin(np.where(np.isfinite(heights), np.abs(np.arange(n_h) - (n_h - 1) / 2), np.inf))) \
        if np.isfinite(heights).any() else None
    height_line = None if mid_h is None else _polyline("foramen height", np.array(
        [h_starts[mid_h] - exits[n_h + mid_h] * normal, h_starts[mid_h] + exits[mid_h] * normal]))
    centre_exits = exits[2 * n_h:].reshape(2, n_w, 9)[:, :, 4]  # each bundle's middle line
    narrow = int(np.nanargmin(np.where(np.isfinite(widths), widths, np.nan))) if finite_w.size else None
    width_line = None if narrow is None or not np.isfinite(centre_exits[:, narrow]).all() else _polyline(
        "foramen width", np.array([width_centres[narrow] - centre_exits[1, narrow] * e_ap,
                                   width_centres[narrow] + centre_exits[0, narrow] * e_ap]))
    pdh_line = _polyline("posterior disc height", m.chord_ends(disc, origin + a_pdh * e_ap, normal, 25.0))
    lines = tuple(p for p in (outline, height_line, width_line, pdh_line) if p is not None)
    conf, why = confidence(r_in, "the parasagittal plane")
    method = (f"closed unlabelled region behind the disc on parasagittal planes (nearest-label reslice, "
              f"{step:.2f} mm grid); the middle of {len(found)} plane(s) where it is closed, "
              f"{offset:.1f} mm {side} of the disc centre")
    plane_note = (f"; planes {lateral_step:.2f} mm apart, the mask samples left-right every "
                  f"{m.resolution_along(e_lr):.1f} mm")
    height_flag, pdh_flag = cutoffs.hasegawa_flags(height, pdh)
    where = centroid.tolist()
    return [
        Value(level, "foramen_height", height, "mm",
              method + "; extent along the disc normal (partial-volume edges, mean over its middle half)",
              conf, why + plane_note, side, label, height_flag, position_lps=where,
              geometry=plane.with_lines(height_line, rest=lines)),
        Value(level, "foramen_width", width, "mm",
              method + "; narrowest antero-posterior gap over its middle half (partial-volume edges)",
              conf, why + plane_note, side, label, cutoffs.flag("foramen_width", width), position_lps=where,
              geometry=plane.with_lines(width_line, rest=lines)),
        Value(level, "foramen_area", area, "mm2", method + "; region area", conf, why + plane_note, side, label,
              position_lps=where, geometry=plane.with_lines(outline, rest=lines)),
        Value(level, "posterior_disc_height", pdh, "mm",
              method + "; disc extent along the normal at 10 % of its depth from the posterior margin",
              conf, why + plane_note, side, label, pdh_flag, position_lps=where,
              geometry=plane.with_lines(pdh_line, rest=lines)),
    ]


def _polyline(name: str, points: FloatArray | None, closed: bool = False) -> Polyline | None:
    if points is None or len(points) < (3 if closed else 2):
        return None
    return Polyline(name, np.asarray(points, dtype=np.float64), closed)


def pixel_loop(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """The outer boundary of a pixel region along its pixel edges, as a closed polygon of
    corner coordinates ``(N, 2)`` in pixel units (pixel ``(i, j)`` spans ``[i - ½, i + ½] x
    [j - ½, j + ½]``), collinear corners dropped. Without holes it encloses exactly
    ``region.sum()`` pixels; with holes, the holes too. Where two parts of the region touch
    at a corner only, the loop passes through that corner once for each."""
    padded = np.pad(region.astype(bool), 1)
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # Each pixel's four edges counter-clockwise (corner (a, b) is the pixel corner at a - 1.5,
    # b - 1.5 in the padded grid's pixel units); an edge shared by two pixels cancels.
    ii, jj = np.nonzero(padded)
    steps = ((0, 0, 1, 0), (1, 0, 1, 1), (1, 1, 0, 1), (0, 1, 0, 0))
    edges = set()
    for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
        for a0, b0, a1, b1 in steps:
            edge = ((i + a0, j + b0), (i + a1, j + b1))
            back = (edge[1], edge[0])
            if back in edges:
                edges.discard(back)
            else:
                edges.add(edge)
    for start, end in edges:
        nxt.setdefault(start, []).append(end)
    loops: list[list[tuple[int, int]]] = []
    while nxt:
        first = next(iter(nxt))
        loop, here = [first], first
        heading: tuple[int, int] | None = None
        while True:
            options = nxt[here]
            if heading is None or len(options) == 1:
                end = options[0]
            else:  # a corner the region touches twice: cross over to the other part (turn right),
                # so that one loop goes round both parts
                came, at = heading, here
                end = min(options, key=lambda e: _cross(came, (e[0] - at[0], e[1] - at[1])))
            options.remove(end)
            if not options:
                del nxt[here]
            heading = (end[0] - here[0], end[1] - here[1])
            here = end
            if here == first:
                break
            loop.append(here)
        loops.append(loop)
    best = max(loops, key=lambda lp: abs(_shoelace(np.asarray(lp, dtype=np.float64))))
    pts = np.asarray(best, dtype=np.float64)
    before, after = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    into, out = pts - before, after - pts
    turn = into[:, 0] * out[:, 1] - into[:, 1] * out[:, 0]
    corners: npt.NDArray[np.float64] = pts[turn != 0] - 1.5
    return corners


def _cross(u: tuple[int, int], v: tuple[int, int]) -> int:
    return u[0] * v[1] - u[1] * v[0]


def _shoelace(pts: npt.NDArray[np.float64]) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _pixel_outline(region: npt.NDArray[np.bool_], origin: FloatArray, e1: FloatArray, e2: FloatArray,
                   s1: FloatArray, s2: FloatArray, step: float) -> FloatArray:
    """:func:`pixel_loop` of a region on a plane grid (first axis along ``e1`` at ``s1``,
    second along ``e2`` at ``s2``, both ``step`` apart) in LPS."""
    corners = pixel_loop(region)
    a = s1[0] + corners[:, 0] * step
    b = s2[0] + corners[:, 1] * step
    return np.asarray(origin + a[:, None] * e1 + b[:, None] * e2, dtype=np.float64)


_PLANES_AT_ONCE = 4  # parasagittal planes sampled and labelled together in the foramen search
# Connected within each plane of a stack of planes, never across: one labelling for the stack.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass
class _Planes:
    """Parasagittal planes of :func:`_foramen_planes`, each ``(n_ap, n_u)`` on the grid ``s_ap``
    x ``s_u``: where the disc is (nearest label), connected components of the unlabelled space (numbered across
    the stack), the component behind the disc (0 where there is none) and whether it is closed."""

    s_ap: FloatArray
    s_u: FloatArray
    is_disc: npt.NDArray[np.bool_]
    comps: npt.NDArray[np.int32]
    seeds: npt.NDArray[np.intp]
    a_post: npt.NDArray[np.intp]
    closed: npt.NDArray[np.bool_]


def _foramen_planes(m: LabelMapMeasurer, origins: list[FloatArray], e_ap: FloatArray, normal: FloatArray,
                    walls: set[int], label: int, step: float) -> _Planes:
    """The unlabelled region behind the disc on parasagittal planes through ``origins`` (on a
    grid of ``step`` mm), sampled and labelled together: it is closed on a plane when the disc
    crosses the plane's middle row, some space is free behind it on that row, and the
    component of that space touches none of the plane's edges."""
    planes = [m.plane_lines(origin, e_ap, normal, (-20.0, 45.0), (-25.0, 25.0), step) for origin in origins]
    _starts, steps, s_ap, s_u = planes[0]  # the steps and grid are the same on every plane
    starts = np.stack([p[0] for p in planes], axis=1)  # (3, planes, n_ap)
    coords = starts[:, :, :, None] + s_u[None, None, None, :] * steps[:, None, :, None]
    if m.label_index is None:
        lab = nearest_labels(m.labels, coords)
        is_wall = np.isin(lab, list(walls))
        disc = label
    else:
        # Label indices (0 -> label_min), so that the wall table takes them as they are.
        lab = nearest_labels(m.label_index, coords, outside=-m.label_min)
        is_wall = m.label_table(walls)[lab]
        disc = label - m.label_min
    n_ap = len(s_ap)
    row0 = int(np.argmin(np.abs(s_u)))
    disc_row = lab[:, :, row0] == disc
    has_disc = disc_row.any(axis=1)
    a_post = n_ap - 1 - np.argmax(disc_row[:, ::-1], axis=1)  # the disc's last column on the row
    free_after = ~is_wall[:, :, row0] & (np.arange(n_ap) >= a_post[:, None])
    has_free = free_after.any(axis=1)
    comps, n_comps = ndimage.label(~is_wall, structure=_IN_PLANE)
    rows = np.arange(len(origins))
    seeds = np.where(has_disc & has_free, comps[rows, np.argmax(free_after, axis=1), row0], 0)
    on_edge = np.zeros(n_comps + 1, dtype=bool)
    for edge in (comps[:, 0, :], comps[:, -1, :], comps[:, :, 0], comps[:, :, -1]):
        on_edge[edge] = True
    closed = (seeds > 0) & ~on_edge[seeds]
    return _Planes(s_ap, s_u, lab == disc, comps, seeds, a_post, closed)


def _closed_foramen(m: LabelMapMeasurer, origin: FloatArray, e_ap: FloatArray, normal: FloatArray,
                    walls: set[int], label: int, step: float) -> tuple[Any, FloatArray, FloatArray, Any, int] | None:
    """The closed unlabelled region behind the disc on one parasagittal plane (on a grid of
    ``step`` mm), or None when the region behind the disc is open on this plane."""
    planes = _foramen_planes(m, [origin], e_ap, normal, walls, label, step)
    if not planes.closed[0]:
        return None  # open: not a foramen on this plane
    return (planes.comps[0] == planes.seeds[0], planes.s_ap, planes.s_u, planes.is_disc[0],
            int(planes.a_post[0]))
