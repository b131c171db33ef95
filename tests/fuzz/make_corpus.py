"""Build the seed corpus under tests/fuzz/corpus/<target>/ (small files; see SOURCES.md).

    python -m tests.fuzz.make_corpus [--shared ../shared/data]

Seeds come from the phantom layouts (lumbarview.phantom, small sizes; DICOM images further cut
down to 16 x 16 pixels so that each input reads in a millisecond or two), from a few tiny files
written here with SimpleITK, Pillow and pydicom, and from small real files in ../shared/data
(licences in its MANIFEST.md). Deterministic: running it again rewrites the same files,
apart from the generated UIDs' and zlib streams' dependence on library versions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tests.fuzz.targets import CORPUS, ENVELOPE, FIXED_MTIME_NS, ROOT_PLACEHOLDER

SOURCES: list[tuple[str, str]] = []


def _put(target: str, name: str, data: bytes, source: str) -> Path:
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    SOURCES.append((f"{target}/{name}", source))
    return path


def _envelope(key: str, data: bytes) -> bytes:
    return ENVELOPE + key.encode() + b"\n" + data


def _small_dicom(path: Path, size: int = 16, implicit: bool = False) -> bytes:
    """A phantom slice cut down to ``size`` x ``size`` pixels (geometry kept consistent)."""
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    step = max(1, arr.shape[0] // size)
    small = np.ascontiguousarray(arr[::step, ::step][:size, :size])
    ds.Rows, ds.Columns = small.shape
    if "PixelSpacing" in ds:
        ds.PixelSpacing = [float(v) * step for v in ds.PixelSpacing]
    ds.PixelData = small.tobytes()
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return buf.getvalue()


def _sitk_bytes(array: np.ndarray, suffix: str, compress: bool = False) -> dict[str, bytes]:
    """Files SimpleITK writes for ``array`` (several for detached headers)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 3.3))
    image.SetOrigin((-10.0, 20.0, 5.5))
    image.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        sitk.WriteImage(image, str(Path(tmp) / f"tiny{suffix}"), useCompression=compress)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir()}


def build(shared: Path | None) -> None:
    from lumbarview.core.labels import aisslab_scheme, spider_scheme
    from lumbarview.model.flags import FlagStore
    from lumbarview.phantom.layouts import Sizes, write_all

    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    tmp = Path(tempfile.mkdtemp(prefix="lvfuzz-corpus-"))
    try:
        lay = tmp / "layouts"
        write_all(lay, sizes=Sizes.small())
        phantom = "phantom layout (lumbarview.phantom, Sizes.small())"
        sud = lay / "sudirman" / "01_MRI_Data" / "0001"
        study = next(sud.iterdir())
        axial = sorted((study / next(p.name for p in study.iterdir() if p.name.startswith("T2_TSE_TRA"))).iterdir())
        sag = sorted((study / next(p.name for p in study.iterdir() if p.name.startswith("T1_TSE_SAG"))).iterdir())

        # -- DICOM file ------------------------------------------------------------------------
        _put("dicom_file", "axial.ima", _small_dicom(axial[0]), f"{phantom}, sudirman axial slice cut to 16x16")
        _put("dicom_file", "sagittal_implicit.dcm", _small_dicom(sag[3], implicit=True),
             f"{phantom}, sudirman sagittal slice cut to 16x16, implicit VR")
        _put("dicom_file", "aisslab.dcm", _small_dicom(sorted((lay / "aisslab" / "DICOM").rglob("IM0006.dcm"))[0]),
             f"{phantom}, aisslab slice cut to 16x16")
        if shared is not None:
            pdt = shared / "pydicom-testfiles" / "pydicom-3.0.2"
            for name in ("image_dfl.dcm", "badVR.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_16.dcm"):
                src = pdt / name
                if src.is_file() and src.stat().st_size < 20_000:
                    _put("dicom_file", name, src.read_bytes(),
                         f"shared/data/pydicom-testfiles/pydicom-3.0.2/{name} (MIT; pydicom test files)")

        # -- DICOM series: four slices, one replaced per input -----------------------------------
        for k, f in enumerate(axial[:4]):
            data = _small_dicom(f)
            name = f"slice{k}.ima"
            (CORPUS / "dicom_series" / "_base").mkdir(parents=True, exist_ok=True)
            (CORPUS / "dicom_series" / "_base" / name).write_bytes(data)
            _put("dicom_series", f"slice{k}.env", _envelope(name, data),
                 f"{phantom}, sudirman axial slice {k} cut to 16x16 (envelope: replaces _base/{name})")
        SOURCES.append(("dicom_series/_base/", f"{phantom}, the four axial slices the inputs replace"))

        # -- DICOMDIR --------------------------------------------------------------------------
        uni = lay / "unidata"
        refs = sorted((uni / "PT000000" / "ST000000" / "SE000000").iterdir())[:3]
        for f in refs:
            dest = CORPUS / "dicomdir" / "_base" / f.relative_to(uni)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(_small_dicom(f))
        SOURCES.append(("dicomdir/_base/", f"{phantom}, unidata: three of the referenced images, cut to 16x16 "
                        "(the others are missing on purpose)"))
        _put("dicomdir", "DICOMDIR", (uni / "DICOMDIR").read_bytes(), f"{phantom}, unidata DICOMDIR")
        if shared is not None:
            ddt = shared / "pydicom-testfiles" / "pydicom-3.0.2" / "dicomdirtests"
            for name in ("DICOMDIR-empty.dcm", "DICOMDIR-implicit", "DICOMDIR-bigEnd"):
                if (ddt / name).is_file():
                    _put("dicomdir", name, (ddt / name).read_bytes(),
                         f"shared/data/pydicom-testfiles/pydicom-3.0.2/dicomdirtests/{name} (MIT)")

        # -- volumes ---------------------------------------------------------------------------
        rng = np.random.default_rng(7)
        tiny16 = rng.integers(0, 400, size=(4, 8, 8)).astype(np.int16)
        labels8 = (rng.integers(0, 4, size=(4, 8, 8))).astype(np.uint8)
        _put("mha", "mask_spider.mha", (lay / "spider" / "masks" / "1_t2.mha").read_bytes(),
             f"{phantom}, spider mask (compressed MetaImage)")
        _put("mha", "tiny.mha", _sitk_bytes(tiny16, ".mha")["tiny.mha"], "written here with SimpleITK, 8x8x4 int16")
        _put("mha", "tiny_z.mha", _sitk_bytes(labels8, ".mha", compress=True)["tiny.mha"],
             "written here with SimpleITK, compressed labels")
        mhd = _sitk_bytes(tiny16, ".mhd")
        _put("mha", "tiny.mhd", mhd["tiny.mhd"], "written here with SimpleITK (detached header)")
        (CORPUS / "mha" / "_base").mkdir(parents=True, exist_ok=True)
        (CORPUS / "mha" / "_base" / "tiny.raw").write_bytes(mhd["tiny.raw"])
        SOURCES.append(("mha/_base/tiny.raw", "the data file of tiny.mhd"))

        _put("nifti", "tiny.nii", _sitk_bytes(tiny16, ".nii")["tiny.nii"], "written here with SimpleITK")
        _put("nifti", "tiny_labels.nii.gz", _sitk_bytes(labels8, ".nii.gz")["tiny.nii.gz"],
             "written here with SimpleITK")
        if shared is not None:
            for rel in ("sct-testing-spine/t2/labels.nii.gz", "sct-testing-spine/t2/t2_seg-manual.nii.gz"):
                src = shared / rel
                if src.is_file() and src.stat().st_size < 30_000:
                    _put("nifti", Path(rel).name, src.read_bytes(), f"shared/data/{rel} (MIT, NeuroPoly)")

        nrrd = _sitk_bytes(tiny16, ".nrrd")
        _put("nrrd", "tiny.nrrd", nrrd["tiny.nrrd"], "written here with SimpleITK (raw encoding)")
        _put("nrrd", "tiny_gz.nrrd", _sitk_bytes(labels8, ".nrrd", compress=True)["tiny.nrrd"],
             "written here with SimpleITK (gzip encoding)")
        nhdr = _sitk_bytes(tiny16, ".nhdr")
        for name, data in nhdr.items():
            if name.endswith(".nhdr"):
                _put("nrrd", "tiny.nhdr", data, "written here with SimpleITK (detached header)")
            else:
                (CORPUS / "nrrd" / "_base").mkdir(parents=True, exist_ok=True)
                (CORPUS / "nrrd" / "_base" / name).write_bytes(data)
                SOURCES.append((f"nrrd/_base/{name}", "the data file of tiny.nhdr"))

        # -- annotations, tables, meshes ---------------------------------------------------------
        ais = lay / "aisslab"
        for xml in sorted(ais.rglob("*.xml"))[:3]:
            _put("voc", f"{xml.parent.name}_{xml.name}", xml.read_bytes(), f"{phantom}, aisslab {xml.relative_to(ais)}")
        for png in sorted((ais / "Segmentation" / "Masks").glob("*.png"))[:1]:
            _put("png_mask", png.name, png.read_bytes(), f"{phantom}, aisslab mask")
        from PIL import Image

        for mode, name in (("P", "tiny_palette.png"), ("L", "tiny_grey.png")):
            image = Image.fromarray(labels8[0] * 60 if mode == "L" else labels8[0], mode="L")
            if mode == "P":
                image = image.convert("P")
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            _put("png_mask", name, buf.getvalue(), "written here with Pillow, 8x8")

        markers = lay / "bids" / "derivatives" / "markers" / "sub-01"
        for name in ("sub-01_ganglions_L4_L.json", "sub-01_nerveroots_L5_R.json", "sub-01_dura_0.json"):
            _put("markups", name, (markers / name).read_bytes(), f"{phantom}, bids markers")

        _put("csv", "gradings_phantom.csv", (lay / "spider" / "radiological_gradings.csv").read_bytes(),
             f"{phantom}, spider radiological_gradings.csv")
        _put("csv", "overview_phantom.csv", (lay / "spider" / "overview.csv").read_bytes(),
             f"{phantom}, spider overview.csv")
        _put("csv", "participants.tsv", (lay / "bids" / "rawdata" / "participants.tsv").read_bytes(),
             f"{phantom}, bids participants.tsv")
        _put("csv", "table_export.csv", (uni / "lumbar_spine_mri.csv").read_bytes(), f"{phantom}, unidata csv")
        if shared is not None:
            src = shared / "spider-gradings" / "radiological_gradings.csv"
            if src.is_file():
                head = b"\n".join(src.read_bytes().split(b"\n")[:30]) + b"\n"
                _put("csv", "gradings_spider_head.csv", head,
                     "shared/data/spider-gradings/radiological_gradings.csv, first 30 lines (CC BY 4.0, SPIDER, "
                     "van der Graaf et al. 2024, doi:10.5281/zenodo.10159290)")

        from lumbarview.phantom.layouts import write_stl

        tet_v = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
        tet_f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
        for binary, name in ((True, "tet_binary.stl"), (False, "tet_ascii.stl")):
            path = tmp / name
            write_stl(path, tet_v, tet_f, binary=binary, header="tet SPACE=LPS")
            _put("stl", name, path.read_bytes(), "written here with lumbarview.phantom.layouts.write_stl")
        _put("stl", "dura_phantom.stl", (lay / "bids" / "derivatives" / "model" / "sub-01" / "sub-01_Dura.stl")
             .read_bytes(), f"{phantom}, bids Dura.stl")

        for scheme, name in ((spider_scheme(), "spider_scheme.json"), (aisslab_scheme(), "aisslab_scheme.json")):
            _put("label_scheme", name, json.dumps(scheme.to_json(), indent=1).encode(),
                 "written here from lumbarview.core.labels")

        flags_path = tmp / "flags.json"
        store = FlagStore(flags_path, "/data/spider")
        store.flag("1|disc|masks/1_t2.mha|L4-L5", "1", "the disc label looks shifted")
        store.flag("2|box|1_IM0006.xml|L5-S1 left", "2", "")
        _put("flags", "flags.json", flags_path.read_bytes(), "written here with lumbarview.model.flags.FlagStore")

        # -- index cache: the index of a two-slice folder, its root replaced by a placeholder -----
        from lumbarview.io.dicom.scan import IndexCache, scan_paths

        root = tmp / "idx" / "root"
        root.mkdir(parents=True)
        base = CORPUS / "index_cache" / "_base" / "root"
        base.mkdir(parents=True)
        for f in axial[:2]:
            data = _small_dicom(f)
            for where in (root, base):
                (where / f.name).write_bytes(data)
                os.utime(where / f.name, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        (root / "notes.txt").write_bytes(b"not DICOM\n")
        (base / "notes.txt").write_bytes(b"not DICOM\n")
        os.utime(root / "notes.txt", ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        cache = IndexCache(tmp / "idx" / "cache")
        scan_paths(root, cache=cache, workers=1)
        index = cache._file_for(str(root)).read_bytes().replace(str(root).encode(), ROOT_PLACEHOLDER.encode())
        _put("index_cache", "index.json", index, "written here by lumbarview.io.dicom.scan.IndexCache for the "
             "two-slice folder in _base/root (root path replaced by @@ROOT@@)")
        SOURCES.append(("index_cache/_base/root/", f"{phantom}, two axial slices cut to 16x16 and a text file"))

        # -- whole layouts: one file of a small phantom layout, replaced per input -------------------
        picks = {
            "sudirman": [sag[3].relative_to(lay / "sudirman"), axial[1].relative_to(lay / "sudirman")],
            "unidata": [Path("DICOMDIR"), Path("lumbar_spine_mri.csv"),
                        refs[1].relative_to(uni)],
            "spider": [Path("masks/1_t2.mha"), Path("radiological_gradings.csv"), Path("overview.csv")],
            "aisslab": [p.relative_to(ais) for p in sorted(ais.rglob("*.xml"))[:1]]
            + [p.relative_to(ais) for p in sorted((ais / "Segmentation" / "Masks").glob("*.png"))[:1]]
            + [p.relative_to(ais) for p in sorted((ais / "DICOM").rglob("IM0006.dcm"))[:1]],
            "bids": [Path("derivatives/markers/sub-01/sub-01_ganglions_L4_L.json"),
                     Path("derivatives/model/sub-01/sub-01_Dura.stl"), Path("rawdata/participants.tsv"),
                     Path("rawdata/sub-01/anat/sub-01_T2TSE.json")],
        }
        for layout, rels in picks.items():
            for rel in rels:
                data = (lay / layout / rel).read_bytes()
                key = f"{layout}/{rel.as_posix()}"
                name = f"{layout}--{rel.as_posix().replace('/', '--')}.env"
                _put("layout", name, _envelope(key, data), f"{phantom}, {key} (envelope: the file it replaces)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    lines = ["# Where the seed corpus comes from", "",
             "Written by `python -m tests.fuzz.make_corpus` (do not edit by hand). Files from `../shared/data` are",
             "copied byte for byte (or, where said, cut to their first lines); their licences are in",
             "`shared/data/MANIFEST.md`. Everything else is written by lumbarview's own phantom or by the script.",
             "", f"Total: {total:,} bytes.", "", "| file | source |", "| --- | --- |"]
    lines += [f"| `{name}` | {source} |" for name, source in SOURCES]
    (CORPUS / "SOURCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"corpus: {len(SOURCES)} entries, {total:,} bytes in {CORPUS}")


def build_special_and_session() -> None:
    """Seeds of the special-file target (two bytes: which special file, under which name; a good
    volume in ``_base``) and of the session target (sessions of the phantom's Sudirman layout:
    every measurement kind, a custom plane, windows and layers; a minimal one; nine distances).
    Their rows are added to SOURCES.md (replacing earlier rows of these targets)."""
    from lumbarview.phantom.layouts import Sizes, write_all
    from lumbarview.services.session_store import snapshot
    from tests.fuzz.targets import SPECIAL_KINDS, SPECIAL_NAMES
    from tests.unit.services.test_session_store import _measure, _show

    rows: list[tuple[str, str]] = []
    for folder in (CORPUS / "special", CORPUS / "session"):
        shutil.rmtree(folder, ignore_errors=True)
    for k in range(len(SPECIAL_KINDS)):
        name = f"{k}-{re.sub(r'[^a-z]+', '_', SPECIAL_KINDS[k]).strip('_')}.bin"
        (CORPUS / "special").mkdir(parents=True, exist_ok=True)
        as_name = SPECIAL_NAMES[(5 * k) % len(SPECIAL_NAMES)]
        (CORPUS / "special" / name).write_bytes(bytes([k, (5 * k) % len(SPECIAL_NAMES)]))
        rows.append((f"special/{name}", f"two bytes: {SPECIAL_KINDS[k]} as {as_name}"))
    tiny = np.arange(8 * 8 * 4, dtype=np.int16).reshape(4, 8, 8)
    (CORPUS / "special" / "_base").mkdir(parents=True)
    (CORPUS / "special" / "_base" / "good.mha").write_bytes(_sitk_bytes(tiny, ".mha")["tiny.mha"])
    rows.append(("special/_base/good.mha", "written here with SimpleITK, 8x8x4 int16 (the dataset's good file)"))
    tmp = Path(tempfile.mkdtemp(prefix="lvcorpus-session-"))
    try:
        root = write_all(tmp, sizes=Sizes.small(), layouts=("sudirman",))["sudirman"]
        session = _show(root)
        _measure(session)
        sag = session.views["sagittal"]
        sag.set_custom_plane(sag.plane)
        session.layout = "2x2"
        full = snapshot(session)
        docs = {"full.json": full.to_json()}
        minimal = full.to_json()
        minimal.update(views=[], layers=[], measurements=minimal["measurements"][:1])
        docs["minimal.json"] = minimal
        nine = full.to_json()
        first = nine["measurements"][0]
        nine["measurements"] = [{**first, "id": f"d{n}"} for n in range(9)]
        docs["nine.json"] = nine
        for name, doc in docs.items():
            doc["dataset"]["path"] = "/lumbarview-phantom/sudirman"  # not this machine's folder
            (CORPUS / "session").mkdir(parents=True, exist_ok=True)
            (CORPUS / "session" / name).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
            rows.append((f"session/{name}", "a session of the phantom's Sudirman layout written here through "
                         "lumbarview.services.session_store.snapshot"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sources = CORPUS / "SOURCES.md"
    kept = [line for line in sources.read_text(encoding="utf-8").splitlines()
            if not line.startswith(("| `special/", "| `session/"))]
    kept += [f"| `{name}` | {source} |" for name, source in rows]
    sources.write_text("\n".join(kept) + "\n", encoding="utf-8")


def main() -> None:
    from tests.conftest import shared_data_dir

    p = argparse.ArgumentParser(prog="python -m tests.fuzz.make_corpus")
    p.add_argument("--shared", default=None, help="../shared/data (default: found beside the checkout)")
    p.add_argument("--only-special-and-session", action="store_true",
                   help="write only the seeds of the special and session targets")
    opts = p.parse_args()
    if not opts.only_special_and_session:
        shared = Path(opts.shared) if opts.shared else shared_data_dir()
        build(shared)
    build_special_and_session()


if __name__ == "__main__":
    main()
