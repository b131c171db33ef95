"""The assembly cache: a cached re-open gives exactly what a fresh assembly gives, any change
of a file invalidates it, and a damaged cache is rebuilt with an INFO issue, never a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from lumbarview.core.types import StudyCollection
from lumbarview.io.dicom.assemble import (
    _ASSEMBLY_MAGIC,
    ASSEMBLY_REBUILT_CODE,
    AssemblyCache,
    _assembly_head,
    assemble,
)
from lumbarview.io.dicom.scan import IndexCache, scan_paths
from lumbarview.services.open_study import open_dicom
from tests.dicom_helpers import axial_block, ramp, sagittal, write_series


def _tree(root: Path) -> Path:
    """Two patients; an angled axial series (three blocks), a sagittal series with a missing
    slice, a duplicate position and an irregular slice, and a series without geometry."""
    p1 = root / "P1"
    write_series(p1 / "sag", sagittal(n=8), "sag")
    os.remove(p1 / "sag" / "IM0004.dcm")
    shutil.copy(p1 / "sag" / "IM0002.dcm", p1 / "sag" / "copy_of_2.dcm")
    ds = pydicom.dcmread(p1 / "sag" / "copy_of_2.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(p1 / "sag" / "copy_of_2.dcm")
    ds = pydicom.dcmread(p1 / "sag" / "IM0007.dcm")
    ds.ImagePositionPatient = [float(v) + (1.0 if i == 0 else 0.0)
                               for i, v in enumerate(ds.ImagePositionPatient)]
    ds.save_as(p1 / "sag" / "IM0007.dcm")
    instance = 1
    for n, block in enumerate([axial_block(-60, 18), axial_block(-20, 5), axial_block(20, -8)]):
        write_series(p1 / "ax", block, "ax", number=2, first_instance=instance,
                     pixels=ramp(block.shape_kji, n), name_pattern="AX_{instance:03d}.ima")
        instance += 4
    p2 = root / "P2"
    write_series(p2 / "flat", sagittal(n=3), "flat", number=3, patient_id="P2")
    for f in (p2 / "flat").iterdir():
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        del ds.ImageOrientationPatient
        ds.save_as(f)
    (root / "notes.txt").write_text("not dicom")
    return root


def _describe(c: StudyCollection) -> Any:
    """Everything an assembly decides, as plain data (pixels aside)."""
    return {
        "path": c.path,
        "issues": [i.to_dict() for i in c.issues],
        "patients": [(p.id, p.name, [(st.uid, st.description, st.date, [
            (s.uid, s.description, s.modality, s.number, s.frame_of_reference_uid,
             [i.to_dict() for i in s.issues],
             [(k.uid, k.series_uid, k.geometry.shape_kji, k.geometry.ijk_to_lps.tolist(),
               dict(k.meta), [i.to_dict() for i in k.issues]) for k in s.stacks])
            for s in st.series]) for st in p.studies]) for p in c.patients],
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _tree(tmp_path / "data")


def _cached(tree: Path, cache: IndexCache, folder: str | None = None) -> tuple[StudyCollection, int]:
    scan = scan_paths(tree, cache=cache)
    store = AssemblyCache(scan, cache)
    collection = store.assemble(str(folder or tree), folder, scan.issues)
    store.save()
    return collection, store.n_hits


def _fresh(tree: Path, folder: str | None = None) -> StudyCollection:
    scan = scan_paths(tree)
    headers = scan.headers if folder is None else scan.headers_under(folder)
    return assemble(headers, str(folder or tree), scan.issues)


def test_a_cached_assembly_equals_a_fresh_one(tree: Path, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "cache")
    first, hits_first = _cached(tree, cache)
    second, hits_second = _cached(tree, cache)
    assert (hits_first, hits_second) == (0, 1)
    fresh = _fresh(tree)
    codes = {i["code"] for i in str_issues(fresh)}
    # The tree exercises the assembly's findings, so the comparison covers them.
    assert {"dicom.missing-slices", "dicom.duplicate-position", "dicom.uneven-spacing",
            "dicom.angled-blocks", "dicom.no-geometry", "dicom.not-dicom"} <= codes
    assert _describe(second) == _describe(fresh) == _describe(first)
    assert isinstance(dict(second.all_stacks()[0].meta)["window"], tuple | type(None))
    for cached_stack, fresh_stack in zip(second.all_stacks(), fresh.all_stacks(), strict=True):
        assert np.array_equal(cached_stack.pixels(), fresh_stack.pixels())
        assert cached_stack.decode_issues == fresh_stack.decode_issues


def str_issues(c: StudyCollection) -> list[dict[str, Any]]:
    return [i.to_dict() for i in c.all_issues()]


def test_open_dicom_reopens_from_the_cache_with_lazy_pixels(tree: Path, tmp_path: Path) -> None:
    first = open_dicom(tree, cache_dir=tmp_path / "cache")
    assert any(tmp_path.joinpath("cache").glob("assembly-*.json"))
    second = open_dicom(tree, cache_dir=tmp_path / "cache")
    assert _describe(second) == _describe(first) == _describe(open_dicom(tree, use_cache=False))
    stack = second.all_stacks()[0]
    assert type(stack._loader).__name__ == "_LazySources"
    assert np.array_equal(stack.pixels(), first.all_stacks()[0].pixels())


def test_a_case_folder_is_cached_apart(tree: Path, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "cache")
    folder = str(tree / "P2")
    _cached(tree, cache, folder)
    again, hits = _cached(tree, cache, folder)
    assert hits == 1
    assert _describe(again) == _describe(_fresh(tree, folder))
    # A change in another case folder leaves this one's entry valid.
    os.utime(tree / "P1" / "sag" / "IM0001.dcm", ns=(1, 1_000_000_000))
    _, hits = _cached(tree, cache, folder)
    assert hits == 1


def _touch(tree: Path) -> None:
    target = tree / "P1" / "sag" / "IM0002.dcm"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000))


def _delete(tree: Path) -> None:
    (tree / "P1" / "sag" / "IM0001.dcm").unlink()


def _add(tree: Path) -> None:
    write_series(tree / "P1" / "more", sagittal(n=2), "more", number=9)


def _replace_same_size(tree: Path) -> None:
    """New content in a file of the same size, with a new modification time."""
    target = tree / "P1" / "sag" / "IM0005.dcm"
    ds = pydicom.dcmread(target)
    ds.SeriesDescription = "sbg"
    st = target.stat()
    ds.save_as(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 9_000_000))


@pytest.mark.parametrize("change", [_touch, _delete, _add, _replace_same_size])
def test_any_change_of_a_file_invalidates_the_cache(tree: Path, tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    cache = IndexCache(tmp_path / "cache")
    _cached(tree, cache)
    change(tree)
    after, hits = _cached(tree, cache)
    assert hits == 0
    assert _describe(after) == _describe(_fresh(tree))
    # ... and the new state is cached in turn.
    again, hits = _cached(tree, cache)
    assert hits == 1 and _describe(again) == _describe(after)


def _assembly_file(cache_dir: Path) -> Path:
    (found,) = cache_dir.glob("assembly-*.json")
    return found


def _resign(body: bytes) -> bytes:
    return _assembly_head(body) + body


def _damages() -> list[Any]:
    import orjson

    def edit(data: bytes, change: Any) -> bytes:
        doc = orjson.loads(data.partition(b"\n")[2])
        change(doc)
        return _resign(orjson.dumps(doc))

    def first_stack(doc: dict[str, Any]) -> dict[str, Any]:
        entry = next(iter(doc["entries"].values()))
        stack: dict[str, Any] = entry["collection"]["patients"][0]["studies"][0]["series"][0]["stacks"][0]
        return stack

    def set_in_stack(key: str, value: Any) -> Any:
        return lambda doc: first_stack(doc).__setitem__(key, value)

    def set_meta(key: str, value: Any) -> Any:
        return lambda doc: first_stack(doc)["meta"].__setitem__(key, value)

    return [
        ("truncated", lambda d: d[: len(d) // 2]),
        ("flipped byte", lambda d: d[:-20] + bytes([d[-20] ^ 0x20]) + d[-19:]),
        ("empty", lambda d: b""),
        ("not ours", lambda d: b"GARBAGE\n" + d),
        ("body not json", lambda d: _resign(b"{not json")),
        ("entries a list", lambda d: edit(d, lambda doc: doc.__setitem__("entries", []))),
        ("affine singular", lambda d: edit(d, set_in_stack("affine", [0.0] * 16))),
        ("affine short", lambda d: edit(d, set_in_stack("affine", [1.0] * 3))),
        ("shape negative", lambda d: edit(d, set_in_stack("shape", [-1, 4, 4]))),
        ("shape strings", lambda d: edit(d, set_in_stack("shape", ["8", "24", "20"]))),
        ("files too few", lambda d: edit(d, set_meta("files", []))),
        ("file not scanned", lambda d: edit(
            d, lambda doc: first_stack(doc)["meta"]["files"].__setitem__(0, "/etc/passwd"))),
        ("meta extra key", lambda d: edit(d, set_meta("evil", 1))),
        ("window three", lambda d: edit(d, set_meta("window", [1, 2, 3]))),
        ("issue severity", lambda d: edit(
            d, set_in_stack("issues", [[99, "x", "y", None]]))),
        ("patients not list", lambda d: edit(d, lambda doc: next(iter(doc["entries"].values()))
                                             ["collection"].__setitem__("patients", {}))),
        ("deep nesting", lambda d: _resign(b"[" * 100_000 + b"]" * 100_000)),
    ]


@pytest.mark.parametrize(("name", "damage"), _damages(), ids=[d[0] for d in _damages()])
def test_a_damaged_cache_is_rebuilt_with_an_info_issue(tree: Path, tmp_path: Path,
                                                       name: str, damage: Any) -> None:
    cache = IndexCache(tmp_path / "cache")
    _cached(tree, cache)
    target = _assembly_file(tmp_path / "cache")
    target.write_bytes(damage(target.read_bytes()))
    after, hits = _cached(tree, cache)
    assert hits == 0
    rebuilt = [i for i in after.issues if i.code == ASSEMBLY_REBUILT_CODE]
    assert len(rebuilt) == 1 and rebuilt[0].severity.name == "INFO"
    fresh = _fresh(tree)
    assert _describe(after)["patients"] == _describe(fresh)["patients"]
    assert [i for i in after.issues if i.code != ASSEMBLY_REBUILT_CODE] == fresh.issues
    # The rebuilt cache is whole again.
    again, hits = _cached(tree, cache)
    assert hits == 1 and _describe(again) == _describe(fresh)
    assert _assembly_file(tmp_path / "cache").read_bytes().startswith(_ASSEMBLY_MAGIC)


def test_an_unwritable_cache_folder_is_not_a_failure(tree: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    first, hits = _cached(tree, IndexCache(blocker))
    fresh = _fresh(tree)
    assert hits == 0 and _describe(first)["patients"] == _describe(fresh)["patients"]
    # The header index and the assembly cache each say they could not be used; nothing else
    # differs.
    said = [i for i in first.issues if i.code in ("index.rebuilt", ASSEMBLY_REBUILT_CODE)]
    assert [i.severity.name for i in said] == ["INFO", "INFO"]
    assert [i for i in first.issues if i not in said] == fresh.issues
