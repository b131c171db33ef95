"""The disc at one level: its heights, the disc height index and the slip of the bodies.

Disc heights are taken along the disc normal at 10 % of the disc depth from its anterior and
posterior margins and at the middle, on the mid-sagittal plane; DHI = mean height / mean height
of the adjacent bodies (method M6 of Chen 2022, ``docs/measurements.md`` §4); slip = offset
between the posterior walls of the bodies above and below (§6). The body below L5-S1 is the
sacrum (S1) where the layout labels it. Each value carries the lines it was measured on.
"""

from __future__ import annotations

import math

import numpy as np

from lumbarview.core.geometry import FloatArray
from lumbarview.core.labels import Role
from lumbarview.measure import cutoffs
from lumbarview.measure.measurer import LabelMapMeasurer
from lumbarview.measure.results import NAN, MeasuredGeometry, Polyline, Value, confidence, missing
from lumbarview.measure.sampling import SoftMask

_HEIGHTS = ("disc_height_anterior", "disc_height_middle", "disc_height_posterior")


def measure_disc(m: LabelMapMeasurer, level: str, label: int, disc: SoftMask, centre: FloatArray,
                 normal: FloatArray, e_ap: FloatArray) -> list[Value]:
    """The disc's heights, DHI and slip (see the module), each with its geometry on the
    mid-sagittal plane through the disc centre (screen right = posterior, down = inferior)."""
    e_lr0 = np.cross(e_ap, normal)
    post = m.bundle_exit(disc, centre, e_ap, 60.0, (e_lr0, normal), (1.0, 1.0))
    ant = m.bundle_exit(disc, centre, -e_ap, 60.0, (e_lr0, normal), (1.0, 1.0))
    res = m.resolution_along(normal)
    conf, why = confidence(res, "the disc normal")
    method = ("disc mask sampled along the disc normal (linear interpolation; mean of 25 parallel lines "
              "within ±1 mm left-right and ±2 mm antero-posterior), at 10 % of the disc depth from its "
              "anterior and posterior margins and at the middle, on the mid-sagittal plane")
    if not (math.isfinite(post) and math.isfinite(ant)):
        return missing(level, label, "the disc's antero-posterior margins were not found", (*_HEIGHTS, "dhi", "slip"))
    depth = post + ant
    positions = {"disc_height_anterior": -ant + 0.1 * depth, "disc_height_middle": (post - ant) / 2,
                 "disc_height_posterior": post - 0.1 * depth}
    plane = MeasuredGeometry(centre, e_ap, -normal)
    heights: dict[str, float] = {}
    starts: dict[str, FloatArray] = {}
    lines: dict[str, Polyline | None] = {}
    e_lr = np.cross(e_ap, normal)
    for q, a in positions.items():
        start = centre + a * e_ap
        # The bundle spreads ±2 mm along A-P (the height varies linearly there, so the mean is
        # the centre's) to sample the grid at different phases.
        heights[q] = m.bundle_run_length(disc, start, normal, (-25.0, 25.0), (e_lr, e_ap), (1.0, 2.0))
        starts[q] = start
        ends = m.chord_ends(disc, start, normal, 25.0)
        lines[q] = None if ends is None else Polyline(q.replace("_", " "), ends)
    height_lines = tuple(p for p in lines.values() if p is not None)
    rows = [Value(level, q, heights[q], "mm", method, conf, why, None, label, position_lps=starts[q].tolist(),
                  geometry=plane.with_lines(lines[q], rest=height_lines)) for q in positions]
    # Adjacent body heights along the normal from the disc's middle: vertebral bodies only (the
    # sacrum's extent along the normal is the whole fused sacrum, not a body height).
    vertebrae = m.values_of({Role.VERTEBRA})
    bone_values = vertebrae | m.values_of({Role.SACRUM})
    bodies = m.soft(bone_values) if bone_values else None
    vertebral = m.soft(vertebrae) if vertebrae else None
    body_heights = []
    body_lines: list[Polyline] = []
    mid = starts["disc_height_middle"]
    if vertebral is not None:
        for sign in (1.0, -1.0):
            h_half = heights["disc_height_middle"] / 2
            enter = mid + sign * (h_half + 1.5) * normal
            length = m.bundle_exit(vertebral, enter, sign * normal, 60.0, (e_lr, e_ap), (1.0, 2.0))
            back = m.bundle_exit(vertebral, enter, -sign * normal, 10.0, (e_lr, e_ap), (1.0, 2.0))
            ends = np.array([enter - sign * back * normal, enter + sign * length * normal])
            if math.isfinite(length) and math.isfinite(back) and not m.at_edge(ends):
                body_heights.append(length + back)
                body_lines.append(Polyline("body height above" if sign > 0 else "body height below", ends))
    mean_h = float(np.mean([heights[q] for q in positions]))
    if body_heights:
        dhi = mean_h / float(np.mean(body_heights))
        rows.append(Value(level, "dhi", dhi, "ratio",
                          "mean(anterior, middle, posterior disc height) / mean height of the adjacent "
                          f"vertebral bodies along the disc normal ({len(body_heights)} body/bodies in the mask)",
                          conf, why, None, label, cutoffs.dhi_flag(dhi),
                          geometry=plane.with_lines(*height_lines, *body_lines)))
    else:
        rows.append(missing(level, label, "no adjacent vertebral body in the mask", ("dhi",))[0])
    rows.append(_slip(m, level, label, bodies, mid, normal, e_ap, heights["disc_height_middle"], plane))
    return rows


def _slip(m: LabelMapMeasurer, level: str, label: int, bodies: SoftMask | None, mid: FloatArray,
          normal: FloatArray, e_ap: FloatArray, disc_h: float, plane: MeasuredGeometry) -> Value:
    reason = "the vertebral bodies above and below are not both in the mask"
    if bodies is None or not math.isfinite(disc_h):
        return missing(level, label, reason, ("slip",))[0]
    walls = []
    points = []
    depth_below = NAN
    e_lr = np.cross(e_ap, normal)
    for sign in (1.0, -1.0):
        inside = mid + sign * (disc_h / 2 + 6.0) * normal
        post = m.bundle_exit(bodies, inside, e_ap, 60.0, (e_lr, normal), (1.0, 1.0))
        walls.append(post)
        points.append(inside + post * e_ap)
        if sign < 0:
            ant = m.bundle_exit(bodies, inside, -e_ap, 60.0, (e_lr, normal), (1.0, 1.0))
            depth_below = post + ant
    if not all(math.isfinite(w) for w in walls):
        return missing(level, label, reason, ("slip",))[0]
    if m.at_edge(np.array(points)):
        return missing(level, label, "a vertebral body next to the disc is cut by the edge of the image (its "
                       "posterior wall there is where the image ends)", ("slip",))[0]
    if math.isfinite(depth_below) and m.at_edge(points[1] - depth_below * e_ap):
        depth_below = NAN  # the lower body's front is cut by the image: no percentage
    slip = walls[1] - walls[0]  # positive: the upper body sits anterior to the lower one
    percent = 100.0 * slip / depth_below if math.isfinite(depth_below) and depth_below > 0 else NAN
    conf, why = confidence(m.resolution_along(e_ap), "the antero-posterior direction")
    # The two posterior-wall points the offset is taken between (upper body, lower body).
    line = Polyline("slip (posterior walls)", np.array(points))
    return Value(level, "slip", slip, "mm",
                 "offset between the posterior walls of the bodies above and below, along the disc's "
                 "antero-posterior axis, 6 mm from the disc", conf, why, None, label, cutoffs.slip_flag(slip, percent),
                 extra={"slip_percent": percent}, geometry=plane.with_lines(line))

