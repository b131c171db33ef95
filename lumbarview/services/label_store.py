"""Corrected label maps: applying an edit log, saving beside a sidecar, replaying, autosave.

A corrected map is saved as a new file, never over the dataset's: by default into the user's
workspace (``label-edits/<dataset>-<hash>/<source path inside the dataset>``), or to a path or
folder the user gives. It has the source's format, pixel type, label values and header
(:func:`lumbarview.io.label_write.write_like`). Beside it, ``<name>.edits.json``: the edit log
(the contract, README "Label editing"): ``format`` ``"lumbarview-label-edits"``, ``version`` 1,
``source_sha256``, ``operations`` in patient coordinates, with the editor version, the times,
the per-label change report and the interpolated slices.

The log replays: :func:`apply_log` runs each operation through the same tools
(:mod:`lumbarview.measure.label_tools`) and the same commands (:mod:`lumbarview.model.label_edits`)
the viewer uses, so a map corrected in the viewer and one corrected by ``lumbarview labels apply``
from its log are the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview import __version__
from lumbarview.core.errors import LoadError
from lumbarview.core.fs import atomic_write_text
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.io.label_write import read_stored, write_like
from lumbarview.io.volume import read_volume_header, same_grid
from lumbarview.io.volume_headers import read_voxels
from lumbarview.measure import label_tools as lt
from lumbarview.model.commands import UndoStack
from lumbarview.model.label_edits import ArrayTarget, LabelEditor

FORMAT = "lumbarview-label-edits"
VERSION = 1
OPS = ("paint", "erase", "fill", "polygon", "islands", "interpolate", "relabel")
SIDECAR_SUFFIX = ".edits.json"


class LabelStoreError(ValueError):
    """Bad input to apply, save or replay: the message says what is wrong and what to do.
    Nothing has been written when it is raised."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_of(path: str | Path) -> Path:
    """The sidecar beside a corrected map: ``<name>.edits.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


@dataclass
class LabelSource:
    """A label file opened for editing: its stored voxels (a private writable copy), grid and hash."""

    path: Path
    array: npt.NDArray[Any]
    geometry: VolumeGeometry
    sha256: str

    @classmethod
    def open(cls, path: str | Path) -> LabelSource:
        path = Path(path)
        if not path.is_file():
            raise LabelStoreError(f"{path}: no such label file; check the path")
        try:
            _header, geometry = read_volume_header(path)
            stored, _dtype = read_stored(path)
        except (LoadError, ValueError) as exc:
            raise LabelStoreError(f"{path.name}: {exc}") from None
        return cls(path, np.array(stored, copy=True, order="C"), geometry, sha256_of(path))


def intensities_for(image: str | Path, labels: LabelSource) -> npt.NDArray[Any]:
    """The image's voxels, which must lie on the label map's grid (threshold-limited tools)."""
    try:
        header, geometry = read_volume_header(image)
        voxels = read_voxels(header)
    except (LoadError, ValueError, OSError) as exc:
        raise LabelStoreError(f"{Path(image).name}: the image cannot be read ({exc})") from None
    if not same_grid(geometry, labels.geometry):
        raise LabelStoreError(f"the mask {labels.path.name} is on another grid than the image {Path(image).name} "
                              f"({labels.geometry.shape_kji[::-1]} vs {geometry.shape_kji[::-1]} voxels, or "
                              "placed elsewhere); give the image the mask was drawn on")
    return voxels.reshape(labels.array.shape)


# -- the edit log ----------------------------------------------------------------------------------
def _need(op: Mapping[str, Any], key: str, n: int) -> Any:
    if key not in op:
        raise LabelStoreError(f"operation {n} ({op.get('op')}) has no '{key}'; the log is incomplete")
    return op[key]


def _label(op: Mapping[str, Any], n: int, key: str = "label", dtype: np.dtype[Any] | None = None) -> int:
    value = _need(op, key, n)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabelStoreError(f"operation {n}: '{key}' must be an integer label value, got {value!r}")
    if dtype is not None and not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
        raise LabelStoreError(f"operation {n}: label {value} does not fit the map's {dtype} voxels "
                              f"({np.iinfo(dtype).min} to {np.iinfo(dtype).max})")
    return value


def _points(op: Mapping[str, Any], n: int, geometry: VolumeGeometry) -> npt.NDArray[np.float64]:
    raw = op.get("points_lps", [op["center_lps"]] if "center_lps" in op else None)
    if raw is None:
        raise LabelStoreError(f"operation {n} ({op.get('op')}) has neither 'points_lps' nor 'center_lps'")
    try:
        points = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise LabelStoreError(f"operation {n}: the points must be [x, y, z] triples in LPS mm") from None
    try:
        lt.check_inside(geometry, points, f"operation {n}'s point")
    except lt.ToolError as exc:
        raise LabelStoreError(str(exc)) from None
    return points


def _plane(op: Mapping[str, Any], n: int, required: bool) -> lt.EditPlane | None:
    data = op.get("plane")
    if data is None:
        if required:
            raise LabelStoreError(f"operation {n} ({op.get('op')}) has no 'plane'")
        return None
    try:
        return lt.EditPlane.from_dict(dict(data))
    except (KeyError, TypeError, lt.ToolError) as exc:
        raise LabelStoreError(f"operation {n}: the plane is not valid ({exc}); give origin_lps, right_lps, "
                              "down_lps, normal_lps") from None


def _threshold(op: Mapping[str, Any], n: int) -> tuple[float, float] | None:
    value = op.get("threshold")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise LabelStoreError(f"operation {n}: 'threshold' must be [low, high]")
    return float(value[0]), float(value[1])


def run_operation(editor: LabelEditor, geometry: VolumeGeometry, op: Mapping[str, Any], n: int,
                  intensity: npt.NDArray[Any] | None) -> dict[str, Any]:
    """Apply one logged operation as one undo step; returns the operation as recorded (with the
    interpolated slices filled in for ``interpolate``)."""
    kind = op.get("op")
    if kind not in OPS:
        raise LabelStoreError(f"operation {n}: unknown op {kind!r}; known: {', '.join(OPS)}")
    array = editor.target.array
    if "label" in op:
        _label(op, n, dtype=array.dtype)
    preserve = bool(op.get("preserve", True))
    threshold = _threshold(op, n)
    record = dict(op)
    if threshold is not None and intensity is None:
        raise LabelStoreError(f"operation {n} ({kind}) is threshold-limited: give the image (--image)")
    try:
        if kind in ("paint", "erase"):
            label = _label(op, n)
            shape = op.get("shape", "disk")
            radius = float(_need(op, "radius_mm", n))
            points = _points(op, n, geometry)
            plane = _plane(op, n, required=shape == "disk")
            if shape not in ("disk", "sphere"):
                raise LabelStoreError(f"operation {n}: shape must be 'disk' or 'sphere', got {shape!r}")
            editor.begin_stroke(record)
            for p in points:
                flat = (lt.disk_voxels(geometry, plane, p, radius) if plane is not None and shape == "disk"
                        else lt.sphere_voxels(geometry, p, radius))
                sel = lt.paint(array, flat, label, preserve=preserve, erase=kind == "erase",
                               intensity=intensity, threshold=threshold)
                editor.stamp(sel.flat, sel.values)
                array = editor.target.array
            editor.end_stroke()
            return record
        if kind == "fill":
            label = _label(op, n)
            seed = _points(op, n, geometry)[0]
            sel = lt.fill(array, geometry, seed, label, plane=_plane(op, n, required=False),
                          contiguous=bool(op.get("contiguous", True)), preserve=preserve,
                          intensity=intensity, threshold=threshold)
        elif kind == "polygon":
            label = _label(op, n)
            plane = _plane(op, n, required=True)
            assert plane is not None
            flat = lt.polygon_voxels(geometry, plane, _points(op, n, geometry))
            sel = lt.paint(array, flat, label, preserve=preserve, intensity=intensity, threshold=threshold)
        elif kind == "islands":
            sel = lt.islands(array, _label(op, n), keep_largest=bool(op.get("keep_largest", False)),
                             min_voxels=int(op.get("min_voxels", 0)))
        elif kind == "relabel":
            sel = lt.relabel(array, _label(op, n, "from_label"), _label(op, n), preserve=preserve)
        else:  # interpolate
            plane = _plane(op, n, required=True)
            assert plane is not None
            keys = op.get("key_slices")
            sel, slices = lt.interpolate(array, geometry, _label(op, n), plane.normal_lps, preserve=preserve,
                                         key_slices=keys)
            record["axis"] = "kji"[lt.grid_axis(geometry, plane.normal_lps)]
            record["interpolated_slices"] = slices
        editor.apply(sel.flat, sel.values, record)
    except LabelStoreError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # ToolError is a ValueError
        raise LabelStoreError(f"operation {n} ({kind}): {exc}") from None
    return record


def apply_log(source: LabelSource, operations: Sequence[Mapping[str, Any]],
              intensity: npt.NDArray[Any] | None = None) -> tuple[npt.NDArray[Any], list[dict[str, Any]]]:
    """The source's voxels with every operation applied (the source's array is not changed)."""
    editor = LabelEditor(ArrayTarget(source.array.copy()), UndoStack(limit=max(1, len(operations))))
    records = []
    for n, op in enumerate(operations):
        if not isinstance(op, Mapping):
            raise LabelStoreError(f"operation {n} is not an object; the log is damaged")
        records.append(run_operation(editor, source.geometry, op, n, intensity))
    return editor.target.array, records


def read_log(path: str | Path) -> dict[str, Any]:
    """An edit log or sidecar, checked: its format, version and operations list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelStoreError(f"{path}: cannot be read ({exc.strerror or exc}); check the path") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LabelStoreError(f"{path.name}: not valid JSON ({exc}); the log is truncated or damaged; "
                              "use the saved sidecar or an autosave") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LabelStoreError(f"{path.name}: not a lumbarview edit log ('format' must be {FORMAT!r})")
    if data.get("version") != VERSION:
        raise LabelStoreError(f"{path.name}: edit-log version {data.get('version')!r}; this lumbarview reads "
                              f"version {VERSION}")
    if not isinstance(data.get("operations"), list):
        raise LabelStoreError(f"{path.name}: 'operations' must be a list")
    return data


def change_report(before: npt.NDArray[Any], after: npt.NDArray[Any]) -> dict[str, dict[str, int]]:
    """Per label value: voxels ``added`` (now this label, before another value), ``removed``
    (before this label, now another) and ``relabelled`` (of those removed, now another non-zero
    label); only labels that changed."""
    changed = before != after
    old, new = before[changed], after[changed]
    report: dict[str, dict[str, int]] = {}
    for value in np.union1d(np.unique(old), np.unique(new)).tolist():
        if value == 0:
            continue
        added = int(np.count_nonzero(new == value))
        removed_mask = old == value
        report[str(value)] = {"added": added, "removed": int(np.count_nonzero(removed_mask)),
                              "relabelled": int(np.count_nonzero(removed_mask & (new != 0)))}
    return report


def default_output(source: str | Path, dataset_root: str | Path | None = None,
                   workspace: str | Path | None = None) -> Path:
    """Where a corrected map goes by default: the workspace, keyed by dataset and source file,
    a new name (``-2``, ``-3``...) when the place is taken (nothing of the user's is replaced)."""
    if workspace is None:
        workspace = os.environ.get("LUMBARVIEW_WORKSPACE")
    if workspace is None:
        import platformdirs

        workspace = platformdirs.user_data_dir("lumbarview", appauthor=False)
    source = Path(source).resolve()
    root = Path(dataset_root).resolve() if dataset_root is not None else source.parent
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    try:
        relative = source.relative_to(root)
    except ValueError:
        relative = Path(source.name)
    base = Path(workspace) / "label-edits" / f"{root.name}-{digest}" / relative
    candidate, n = base, 1
    while candidate.exists() or sidecar_of(candidate).exists():
        n += 1
        suffix = next(s for s in (".nii.gz", base.suffix) if base.name.endswith(s))
        candidate = base.with_name(f"{base.name[: -len(suffix)]}-{n}{suffix}")
    return candidate


def save_corrected(source: LabelSource, array: npt.NDArray[Any], operations: Sequence[Mapping[str, Any]],
                   out: str | Path, *, started: float | None = None, image: str | Path | None = None,
                   folder: bool = False) -> Path:
    """Write the corrected map ``out`` (or into the folder ``out`` under the source's name) and
    its sidecar. Refuses (nothing written) to write over the source or over any existing file."""
    out = Path(out)
    if folder or out.is_dir():
        out = out / source.path.name
    if out.resolve() == source.path.resolve():
        raise LabelStoreError(f"{out}: that is the source file; a corrected map is saved as a new file")
    for target in (out, sidecar_of(out)):
        if target.exists():
            raise LabelStoreError(f"{target} exists; lumbarview never replaces a file: choose another name "
                                  "or move that one away")
    try:
        write_like(source.path, array, out)
    except (ValueError, OSError) as exc:
        raise LabelStoreError(f"{out.name}: cannot be written ({exc})") from None
    now = time.time()
    interpolated = [{"operation": n, "label": op.get("label"), "axis": op.get("axis"),
                     "slices": op.get("interpolated_slices", [])}
                    for n, op in enumerate(operations) if op.get("op") == "interpolate"]
    sidecar = {
        "format": FORMAT, "version": VERSION,
        "source": str(source.path.resolve()), "source_sha256": source.sha256,
        "output": out.name, "output_sha256": sha256_of(out),
        "image": None if image is None else {"path": str(Path(image).resolve()), "sha256": sha256_of(image)},
        "editor": f"lumbarview {__version__}",
        "started": _iso(started if started is not None else now), "saved": _iso(now),
        "changes": change_report(source.array, array.reshape(source.array.shape)),
        "interpolated": interpolated,
        "operations": [dict(op) for op in operations],
    }
    atomic_write_text(sidecar_of(out), json.dumps(sidecar, indent=1))
    return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class ReplayResult:
    identical: bool
    output: Path
    differing_voxels: int
    notes: list[str] = field(default_factory=list)


def replay(sidecar: str | Path) -> ReplayResult:
    """Re-apply a saved sidecar's log to its source and compare with the saved map, voxel by voxel."""
    sidecar = Path(sidecar)
    data = read_log(sidecar)
    source_path = Path(str(data.get("source", "")))
    if not source_path.is_file():
        raise LabelStoreError(f"{sidecar.name}: its source {source_path} is not there; restore it to replay")
    source = LabelSource.open(source_path)
    if source.sha256 != data.get("source_sha256"):
        raise LabelStoreError(f"{source_path.name} has changed since the edits were saved (sha256 "
                              f"{source.sha256[:12]}... is not the log's {str(data.get('source_sha256'))[:12]}...); "
                              "the log applies only to the file it was made on")
    intensity = None
    if data.get("image"):
        intensity = intensities_for(data["image"]["path"], source)
    replayed, _ = apply_log(source, data["operations"], intensity)
    output = sidecar.with_name(str(data.get("output", "")))
    if not output.is_file():
        raise LabelStoreError(f"{sidecar.name}: the corrected map {output.name} is not beside it")
    saved, _dtype = read_stored(output)
    saved = saved.reshape(replayed.shape)
    differing = int(np.count_nonzero(saved != replayed))
    identical = differing == 0 and saved.dtype == replayed.dtype and saved.tobytes() == replayed.tobytes()
    return ReplayResult(identical, output, differing)


class Autosave:
    """The edits in progress on one map, saved atomically after each step to ``path`` (a log in
    the sidecar's format, without the output): a crash loses at most the step in progress."""

    def __init__(self, path: str | Path, source: LabelSource) -> None:
        self.path = Path(path)
        self.source = source
        self.started = time.time()

    def save(self, operations: Sequence[Mapping[str, Any]]) -> None:
        data = {"format": FORMAT, "version": VERSION, "source": str(self.source.path.resolve()),
                "source_sha256": self.source.sha256, "editor": f"lumbarview {__version__}",
                "started": _iso(self.started), "saved": _iso(time.time()), "autosave": True,
                "operations": [dict(op) for op in operations]}
        atomic_write_text(self.path, json.dumps(data))

    def load(self) -> list[dict[str, Any]]:
        """The operations saved last (empty when there is no autosave)."""
        if not self.path.exists():
            return []
        data = read_log(self.path)
        if data.get("source_sha256") != self.source.sha256:
            raise LabelStoreError(f"{self.path.name}: the autosave is of another version of {self.source.path.name}")
        return [dict(op) for op in data["operations"]]
