"""Write an edited label map in its source file's format, header and pixel type.

A corrected map must be the source with only its voxels changed: the same format, the same
stored pixel type and byte order, and the same geometry bit for bit. So the header is not
rebuilt from a geometry (rounding could move the origin by an ulp): it is the source's own header
with only the keys describing the stored data changed (MetaImage: the source's lines in order;
NRRD: the source's fields through pynrrd; NIfTI: the source's header through nibabel). The file
is written whole to a temporary name beside it, then renamed.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.fs import atomic_write_bytes, atomic_write_parts, atomic_write_with
from lumbarview.io.volume import check_volume_header
from lumbarview.io.volume_headers import read_voxels

LABEL_SUFFIXES = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd")


def _suffix(path: str | Path) -> str:
    name = str(path).lower()
    return next((s for s in LABEL_SUFFIXES if name.endswith(s)), "")


def read_stored(path: str | Path) -> tuple[npt.NDArray[Any], np.dtype[Any]]:
    """The ``[k, j, i]`` voxels of a label file in its stored pixel type (not widened), and that
    type (with its byte order). Raises the readers' LoadError on a damaged file."""
    header = check_volume_header(path)
    if header.rescale is not None and header.rescale != (1.0, 0.0):
        raise ValueError(f"{Path(path).name}: the label file is stored with a rescale slope/intercept "
                         f"{header.rescale}; lumbarview edits only label maps stored as plain integers")
    if header.dtype.kind not in "iu":
        raise ValueError(f"{Path(path).name}: the label file stores {header.dtype} voxels, not integers; "
                         "lumbarview edits only integer label maps")
    return read_voxels(header), header.dtype


def _cast(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if array.dtype == dtype:
        return np.ascontiguousarray(array)
    info = np.iinfo(dtype)
    if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
        raise ValueError(f"a label value is outside the source's {dtype} range ({info.min} to {info.max})")
    return np.ascontiguousarray(array, dtype=dtype)


def write_like(source: str | Path, array_kji: npt.NDArray[Any], out: str | Path) -> None:
    """Write ``array_kji`` to ``out`` (same suffix as ``source``) with ``source``'s header."""
    source, out = Path(source), Path(out)
    kind = _suffix(source)
    if not kind or _suffix(out) != kind:
        raise ValueError(f"{out.name}: a corrected map is saved in its source's format ({kind or source.name}); "
                         f"name it with the suffix {kind or '(none)'}")
    header = check_volume_header(source)
    grid = tuple(header.size_ijk[::-1])
    if int(np.prod(array_kji.shape)) != int(np.prod(grid)) or tuple(s for s in array_kji.shape if s != 1) != tuple(
            s for s in grid if s != 1):
        raise ValueError(f"the edited array {array_kji.shape} is not on the source's grid {header.size_ijk[::-1]}")
    stored = _cast(array_kji, header.dtype).reshape(tuple(header.size_ijk[::-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind in (".mha", ".mhd"):
        _write_metaimage_like(source, stored, out)
    elif kind == ".nrrd":
        _write_nrrd_like(source, stored, out)
    else:
        _write_nifti_like(source, stored, out)


def _write_metaimage_like(source: Path, stored: npt.NDArray[Any], out: Path) -> None:
    with open(source, "rb") as fh:
        head = fh.read(65536)  # the header (never the voxels)
    lines: list[str] = []
    compressed = False
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").rstrip("\r")
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "ElementDataFile":
            break
        if key == "CompressedData":
            compressed = value.lower() == "true"
        if key in ("CompressedData", "CompressedDataSize", "HeaderSize") or not line.strip():
            continue
        lines.append(line)
    data: bytes | npt.NDArray[Any] = stored
    if compressed:  # as the source was stored
        data = zlib.compress(stored.tobytes(), 1)
        lines += ["CompressedData = True", f"CompressedDataSize = {len(data)}"]
    else:
        lines += ["CompressedData = False"]
    if out.name.lower().endswith(".mha"):
        lines += ["ElementDataFile = LOCAL"]
        atomic_write_parts(out, (("\n".join(lines) + "\n").encode("latin-1"), data))
        return
    raw_name = out.name[: -len(".mhd")] + ".raw"
    if out.with_name(raw_name).exists():
        raise ValueError(f"{raw_name} exists beside {out.name}; lumbarview never replaces a file")
    atomic_write_parts(out.with_name(raw_name), (data,))
    lines += [f"ElementDataFile = {raw_name}"]
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode("latin-1"))


def _write_nrrd_like(source: Path, stored: npt.NDArray[Any], out: Path) -> None:
    import nrrd  # type: ignore[import-untyped]

    header = dict(nrrd.read_header(str(source)))
    for key in ("data file", "datafile", "line skip", "lineskip", "byte skip", "byteskip"):
        header.pop(key, None)
    header["encoding"] = "gzip"
    atomic_write_with(out, lambda tmp: nrrd.write(str(tmp), stored.transpose(2, 1, 0), header, index_order="F"),
                      ".nrrd")


def _write_nifti_like(source: Path, stored: npt.NDArray[Any], out: Path) -> None:
    import nibabel as nib

    loaded: Any = nib.load(str(source))  # nibabel is not annotated
    header = loaded.header.copy()
    header.set_data_dtype(stored.dtype)
    data = stored.transpose(2, 1, 0)
    if len(loaded.shape) == 2:
        data = data[:, :, 0]
    image = type(loaded)(data, None, header=header)
    image.header.set_slope_inter(*loaded.header.get_slope_inter())
    suffix = ".nii.gz" if out.name.lower().endswith(".nii.gz") else ".nii"
    atomic_write_with(out, lambda tmp: nib.save(image, str(tmp)), suffix)


def write_png_mask_like(source: str | Path, mask_ji: npt.NDArray[Any], out: str | Path) -> None:
    """A 2D class mask (``[j, i]``, or ``[1, j, i]``) as a PNG in the source PNG's mode (palette
    with the source's palette, greyscale 8 or 16 bit), written atomically; refuses values the
    mode cannot hold (ValueError, nothing written). The source is read with
    :func:`lumbarview.io.annotations.read_png_mask`'s checks first."""
    import io as _io

    from PIL import Image

    from lumbarview.io.annotations import read_png_mask

    source, out = Path(source), Path(out)
    if not out.name.lower().endswith(".png"):
        raise ValueError(f"{out.name}: a corrected PNG mask is saved as .png")
    reference = read_png_mask(source)  # checked: size, chunks, budget
    mask = np.asarray(mask_ji)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != reference.shape[:2]:
        raise ValueError(f"the mask {mask.shape} is not the source PNG's {reference.shape[:2]}")
    with Image.open(source, formats=["PNG"]) as original:
        mode, palette = original.mode, original.getpalette() if original.mode == "P" else None
    limit = {"P": 255, "L": 255, "1": 1}.get(mode, 65535)
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > limit):
        raise ValueError(f"a class value is outside 0 to {limit}, which the source's PNG mode {mode} holds")
    if mode in ("P", "L", "1"):
        kind = "P" if mode == "P" else "L"
        image = Image.frombytes(kind, (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, np.uint8).tobytes())
        if palette is not None:
            image.putpalette(palette)
        if mode == "1":
            image = image.point(lambda v: 255 if v else 0).convert("1")
    else:
        image = Image.fromarray(mask.astype(np.uint16))
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
