"""Scrolling two studies in step (compare mode): which slice of the other stack shows the anatomy
of a slice of this one.

Only parallel stacks scroll in step (row and column direction cosines within 0.99 once the
alignment's rotation is applied; cornerstoneTools #980, issue 28). Within one frame of reference
the alignment is the identity (by patient position); across frames it is a manual offset (align
a point once, then lock: :func:`offset_alignment`) or a per-level registration (its 4x4 matrix,
current LPS -> prior LPS). A point of the scrolled slice (the cursor, else the slice's centre) is
carried through the alignment and the other stack's nearest slice is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lumbarview.core.geometry import FloatArray, VolumeGeometry

PARALLEL_COSINE = 0.99


def offset_alignment(point_lps: npt.ArrayLike, other_point_lps: npt.ArrayLike) -> FloatArray:
    """The manual offset: a translation taking a point of this study to the same anatomy in the
    other (the user aligns one point in both, then locks)."""
    m = np.eye(4)
    m[:3, 3] = np.asarray(other_point_lps, dtype=np.float64).reshape(3) - np.asarray(
        point_lps, dtype=np.float64).reshape(3)
    return m


def parallel_reason(source: VolumeGeometry, target: VolumeGeometry, matrix: npt.ArrayLike) -> str | None:
    """None when ``source``'s slices, turned by ``matrix``, are parallel to ``target``'s."""
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    dr = abs(float((r @ source.row_direction_lps) @ target.row_direction_lps))
    dc = abs(float((r @ source.column_direction_lps) @ target.column_direction_lps))
    if dr >= PARALLEL_COSINE and dc >= PARALLEL_COSINE:
        return None
    return (f"the two series are not parallel (row cosines agree to {dr:.3f}, columns to {dc:.3f}; "
            f"at least {PARALLEL_COSINE} is needed): they are shown unsynchronised")


@dataclass(frozen=True)
class StackSync:
    """Slice k of ``source`` -> the slice of ``target`` showing the same anatomy."""

    source: VolumeGeometry
    target: VolumeGeometry
    #: source LPS -> target LPS
    matrix: FloatArray
    #: Why the two cannot scroll in step (None when they can).
    reason: str | None

    @classmethod
    def build(cls, source: VolumeGeometry, target: VolumeGeometry, *, same_frame: bool,
              alignment: npt.ArrayLike | None = None) -> StackSync:
        """``alignment`` (source LPS -> target LPS) is needed when the frames of reference differ."""
        if alignment is None and not same_frame:
            return cls(source, target, np.eye(4), "the two studies have different frames of reference: align a "
                                                  "point once (then lock) or register the level to scroll in step")
        m = np.eye(4) if alignment is None else np.asarray(alignment, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            return cls(source, target, np.eye(4), "the alignment is not a finite 4x4 matrix")
        return cls(source, target, m, parallel_reason(source, target, m))

    def inverse(self) -> StackSync:
        """The other direction (scrolling the target moves the source)."""
        inverse = np.asarray(np.linalg.inv(self.matrix), dtype=np.float64)
        return StackSync(self.target, self.source, inverse, self.reason)

    def carry(self, lps: npt.ArrayLike) -> FloatArray:
        p = np.asarray(lps, dtype=np.float64)
        return np.asarray(p @ self.matrix[:3, :3].T + self.matrix[:3, 3], dtype=np.float64)

    def target_slice(self, k: int, at_lps: npt.ArrayLike | None = None) -> int | None:
        """The target slice for source slice ``k``: through the point ``at_lps`` (the cursor,
        projected onto slice k), else the slice's centre. None when the pair is not in step or
        the anatomy lies outside the target stack."""
        if self.reason is not None:
            return None
        plane = self.source.slice_plane(k)
        if at_lps is None:
            _, rows, cols = self.source.shape_kji
            point = plane.pixel_to_lps(((cols - 1) / 2.0, (rows - 1) / 2.0))
        else:
            p = np.asarray(at_lps, dtype=np.float64).reshape(3)
            point = p - plane.signed_distance_mm(p) * plane.normal_lps
        return self.target.nearest_slice(self.carry(point))
