"""A mesh file that holds several structures (the Liu et al. ``sub-XX_Nerveroots.stl``: every
nerve root in one file) split into its connected parts, each named after the marker set it lies
along (``sub-01_nerveroots_L4_L``: "L4 left root" in the layer panel), so that each root can be
shown, hidden and coloured on its own. The triangles are not changed: the parts together are the
file's mesh, in the same place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Mesh, PointSet

#: A part is named after a marker set when its vertices lie within this median distance (mm) of
#: the set's polyline: a root is a few millimetres thick, neighbouring roots centimetres apart.
MAX_MARKER_DISTANCE_MM = 8.0


def connected_parts(mesh: Mesh) -> list[npt.NDArray[np.int64]]:
    """The faces (indices into ``mesh.faces``) of each connected part, vertices that coincide
    exactly counted as one (an STL repeats each vertex in every triangle), largest part first."""
    faces = mesh.faces
    if faces.shape[0] == 0:
        return []
    _unique, welded = np.unique(mesh.vertices_lps, axis=0, return_inverse=True)
    welded = welded.reshape(-1)[faces]  # (F, 3) welded vertex ids
    label_of_vertex = _components(welded, int(welded.max()) + 1)
    face_label = label_of_vertex[welded[:, 0]]
    parts = [np.nonzero(face_label == label)[0] for label in np.unique(face_label)]
    return sorted(parts, key=lambda p: -p.size)


def _components(faces: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """The connected component of each of ``n`` vertices (the smallest vertex id in it), by
    label propagation over the faces with pointer jumping (numpy only: the app leaves
    scipy.sparse out)."""
    label = np.arange(n, dtype=np.int64)
    while True:
        low = label[faces].min(axis=1)  # each face's smallest label
        changed = label.copy()
        for corner in range(3):
            np.minimum.at(changed, label[faces[:, corner]], low)  # roots take their faces' lowest
            np.minimum.at(changed, faces[:, corner], low)
        while True:  # pointer jumping: every vertex to its root's label
            jumped = changed[changed]
            if np.array_equal(jumped, changed):
                break
            changed = jumped
        if np.array_equal(changed, label):
            return label
        label = changed


def _distance_to_polyline(points: npt.NDArray[np.float64], line: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Distance of each of ``points`` (N, 3) to the polyline through ``line`` (M, 3)."""
    if line.shape[0] == 1:
        single: npt.NDArray[np.float64] = np.sqrt(((points - line[0]) ** 2).sum(axis=1))
        return single
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((points[:, None, :] - a[None]) * ab[None]).sum(axis=2) / length2, 0.0, 1.0)
    nearest = a[None] + t[:, :, None] * ab[None]
    distance: npt.NDArray[np.float64] = np.sqrt(((points[:, None, :] - nearest) ** 2).sum(axis=2)).min(axis=1)
    return distance


def _sub_mesh(mesh: Mesh, face_ids: npt.NDArray[np.int64], name: str) -> Mesh:
    faces = mesh.faces[face_ids]
    used, inverse = np.unique(faces, return_inverse=True)
    return Mesh(name, mesh.vertices_lps[used], inverse.reshape(-1, 3).astype(np.int64), mesh.source)


def split_by_markers(mesh: Mesh, markers: list[PointSet]) -> list[Mesh]:
    """``mesh`` as one mesh per marker set its parts lie along (named as the set), and the parts
    near none of them as one mesh under the file's name; ``[mesh]`` when it is one part or no
    part lies along a marker set."""
    parts = connected_parts(mesh)
    usable = [m for m in markers if m.points_lps.shape[0] > 0]
    if len(parts) < 2 or not usable:
        return [mesh]
    # Each set's points in order along the root (descending z, as the dataset writes them).
    lines = [m.points_lps[np.argsort(-m.points_lps[:, 2], kind="stable")] for m in usable]
    by_marker: dict[int, list[npt.NDArray[np.int64]]] = {}
    rest: list[npt.NDArray[np.int64]] = []
    for part in parts:
        vertices = mesh.vertices_lps[np.unique(mesh.faces[part])]
        distances = [float(np.median(_distance_to_polyline(vertices, line))) for line in lines]
        best = int(np.argmin(distances))
        if distances[best] <= MAX_MARKER_DISTANCE_MM:
            by_marker.setdefault(best, []).append(part)
        else:
            rest.append(part)
    if not by_marker:
        return [mesh]
    out = [_sub_mesh(mesh, np.concatenate(found), usable[i].name) for i, found in sorted(by_marker.items())]
    if rest:
        out.append(_sub_mesh(mesh, np.concatenate(rest), mesh.name))
    return out
