"""STL surfaces (binary and ASCII) into numpy, through VTK's reader behind our own checks.

VTK only logs its errors and hands back an empty mesh, so the file is checked first: a binary
STL's triangle count must match its size; vertices must be finite. VTK is imported only here,
only the IO module (no rendering), and only when a mesh is read.

Coordinates: Slicer writes ``SPACE=RAS`` or ``SPACE=LPS`` in the header; RAS is converted to
LPS. A file that says nothing is taken as LPS, and an issue says so.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Mesh
from lumbarview.core.errors import CorruptFileError, UnsupportedFormatError
from lumbarview.core.fs import check_regular, open_regular
from lumbarview.core.limits import limits
from lumbarview.core.types import LoadIssue, Severity

_RECORD = 50  # bytes per binary STL triangle


def _header_space(header: bytes) -> str | None:
    text = header.decode("ascii", "replace").upper()
    if "SPACE=RAS" in text:
        return "RAS"
    if "SPACE=LPS" in text:
        return "LPS"
    return None


def _check(path: str, raw_head: bytes, size: int) -> tuple[bool, str | None]:
    """(is_binary, SPACE) after checking the size of a binary STL against its triangle count
    and the triangle budget."""
    if size < 84:
        if raw_head.lstrip()[:5].lower() == b"solid":
            return False, _header_space(raw_head[:200])
        raise CorruptFileError(path, f"{size} bytes is shorter than an STL header (84)",
                               "the file is truncated or not STL")
    (n,) = struct.unpack_from("<I", raw_head, 80)
    expected = 84 + n * _RECORD
    if size == expected:
        limits().check_triangles(path, n)
        return True, _header_space(raw_head[:80])
    # Binary exporters may also start the header with "solid": only call it ASCII when it
    # really reads like ASCII STL.
    if raw_head.lstrip()[:5].lower() == b"solid" and b"facet" in raw_head[:2048].lower():
        return False, _header_space(raw_head[:200].split(b"\n")[0])
    raise CorruptFileError(path, f"the header says {n:,} triangles ({expected:,} bytes) but the "
                           f"file has {size:,} bytes", "the file is truncated or damaged; re-export it")


def _check_ascii(path: str) -> None:
    """Bound an ASCII STL before VTK reads it: its facets, counted in one streaming pass
    (so never more than its size can hold), within the triangle budget; three vertices per
    facet; text only."""
    budget = limits()
    counts = {b"endfacet": 0, b"vertex": 0}
    tails = dict.fromkeys(counts, b"")
    first_line = True
    with open_regular(path) as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                break
            if b"\x00" in block:
                raise CorruptFileError(path, "the ASCII STL holds binary data (NUL bytes)",
                                       "the file is damaged; re-export the mesh")
            block = block.lower()
            if first_line:  # the "solid <name>" line may hold any word
                newline = block.find(b"\n")
                if newline < 0:
                    continue
                block, first_line = block[newline + 1:], False
            for word in counts:
                text = tails[word] + block
                counts[word] += text.count(word)
                tails[word] = text[-(len(word) - 1):]  # a word cut between blocks is counted once
            budget.check_triangles(path, counts[b"endfacet"])
    facets, vertices = counts[b"endfacet"], counts[b"vertex"]
    if vertices != 3 * facets:
        raise CorruptFileError(path, f"the ASCII STL has {facets:,} facets but {vertices:,} vertices "
                               "(three per facet are needed)", "the file is truncated or damaged; re-export it")


def read_stl(path: str | Path, name: str | None = None) -> tuple[Mesh, list[LoadIssue]]:
    """Read an STL file into a :class:`Mesh` in LPS mm.

    Raises
    ------
    CorruptFileError
        Truncated file, wrong triangle count, no triangles, or non-finite vertices.
    UnsupportedFormatError
        Not an STL file.
    """
    path = str(path)
    p = Path(path)
    size = p.stat().st_size
    with open_regular(path) as fh:
        head = fh.read(2048)
    if not head:
        raise CorruptFileError(path, "the file is empty", "re-export the mesh")
    binary, space = _check(path, head, size)
    if not binary:
        _check_ascii(path)
    if binary:
        # VTK aborts on non-finite binary vertices without saying why: look first.
        with open_regular(path) as fh:
            fh.seek(84)
            records = np.fromfile(fh, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
        bad = ~np.isfinite(records["v"]).all(axis=(1, 2))
        if bad.any():
            raise CorruptFileError(path, f"{int(bad.sum())} triangle(s) have vertices that are not "
                                   "finite numbers (NaN or infinity)",
                                   "re-export the mesh; it cannot be placed in patient space")
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkObject
    from vtkmodules.vtkIOGeometry import vtkSTLReader

    reader = vtkSTLReader()
    check_regular(path)  # VTK opens by name: the file was opened through open_regular above
    reader.SetFileName(path)
    reader.MergingOff()  # keep the file's vertices as written
    was_shown = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()  # VTK's own log lines would reach the user's terminal
    try:
        reader.Update()
    finally:
        vtkObject.SetGlobalWarningDisplay(was_shown)
    poly = reader.GetOutput()
    if poly is None or poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        if not binary and b"facet" not in head.lower():
            raise UnsupportedFormatError(path, "not an STL file", "open an STL mesh")
        raise CorruptFileError(path, "no triangles could be read (numbers that are not numbers, "
                               "or a damaged file)", "re-export the mesh")
    vertices = vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    cells = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).astype(np.int64)
    offsets = vtk_to_numpy(poly.GetPolys().GetOffsetsArray()).astype(np.int64)
    if not np.all(np.diff(offsets) == 3):
        raise CorruptFileError(path, "the mesh has faces that are not triangles", "re-export as STL")
    faces: npt.NDArray[np.int64] = cells.reshape(-1, 3)
    issues: list[LoadIssue] = []
    if not np.all(np.isfinite(vertices)):
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise CorruptFileError(path, f"{bad} vertices are not finite numbers (NaN or infinity)",
                               "re-export the mesh; it cannot be placed in patient space")
    if binary:
        (n_header,) = struct.unpack_from("<I", head, 80)
        if n_header != faces.shape[0]:
            raise CorruptFileError(path, f"the header says {n_header} triangles, {faces.shape[0]} were read",
                                   "re-export the mesh")
    if space == "RAS":
        vertices = vertices * np.array([-1.0, -1.0, 1.0])
    elif space is None:
        issues.append(LoadIssue(Severity.INFO, "mesh.space-assumed",
                                "the STL does not say its coordinate system (SPACE=LPS/RAS in the "
                                "header); it is taken as LPS", path))
    return Mesh(name or p.stem, vertices, faces, path), issues


def write_stl(path: Path, vertices: npt.NDArray[np.float64], faces: npt.NDArray[np.int64], binary: bool,
              header: str) -> None:
    """An STL of the triangles ``vertices[faces]`` (binary or ASCII); ``header`` should say
    ``SPACE=LPS`` or ``SPACE=RAS`` (:func:`read_stl` reads it)."""
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary:
        rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
        rec["n"], rec["v"] = normals, tri
        path.write_bytes(header.encode("ascii")[:80].ljust(80, b" ") + struct.pack("<I", len(tri))
                         + rec.tobytes())
        return
    lines = [f"solid {header}"]
    for n, t in zip(normals, tri, strict=True):
        lines.append(f"  facet normal {n[0]:.6e} {n[1]:.6e} {n[2]:.6e}\n    outer loop")
        lines += [f"      vertex {p[0]:.6e} {p[1]:.6e} {p[2]:.6e}" for p in t]
        lines.append("    endloop\n  endfacet")
    lines.append(f"endsolid {header}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
