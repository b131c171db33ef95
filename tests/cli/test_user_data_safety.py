"""What the user owns is never lost: `demo --out` writes only where it may, and `measure` answers
bad data with rows that say why, never with "internal error"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import LAYOUTS, Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services import demo as demo_service
from lumbarview.services.measure_all import ROW_KEYS, Job, run_jobs


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- demo --out --------------------------------------------------------------------------------
def test_demo_into_a_folder_with_a_user_file_refuses_and_keeps_it(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "thesis"
    (out / "chapter").mkdir(parents=True)
    (out / "notes.txt").write_bytes(b"my notes \x00\xff")
    (out / "chapter" / "spider").write_bytes(b"not a demo")
    before = _tree(out)
    assert main(["demo", "--small", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "choose a new or empty folder" in err
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no staging left beside it


def test_demo_onto_a_file_refuses_and_keeps_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.csv"
    out.write_bytes(b"a,b\n1,2\n")
    assert main(["demo", "--small", "--out", str(out)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert out.read_bytes() == b"a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_demo_into_an_empty_folder_writes_it_and_a_rerun_reuses_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    old_style_staging = tmp_path / "empty.partial"  # the staging name of earlier versions: may be the user's
    old_style_staging.mkdir()
    (old_style_staging / "keep.txt").write_text("mine")
    assert main(["demo", "--small", "--out", str(out)]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == list(LAYOUTS)
    marker = json.loads((out / demo_service.MARKER).read_text())
    written = _tree(out)
    assert set(marker["files"]) == set(written) - {demo_service.MARKER}
    assert all(len(written[rel]) == size for rel, size in marker["files"].items())
    assert (old_style_staging / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "empty.partial"]
    # Rerun on its own output: fine, and nothing is rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["demo", "--small", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def _fake_write_all(root: str | Path, *args: Any, **kwargs: Any) -> dict[str, Path]:
    """A fast stand-in for the phantom writer (the folder logic is what is tested here)."""
    out = {}
    for name in LAYOUTS:
        (Path(root) / name / "sub").mkdir(parents=True)
        (Path(root) / name / "sub" / "image.mha").write_bytes(b"x" * (3 if kwargs or args else 5))
        out[name] = Path(root) / name
    return out


def test_demo_of_another_size_is_replaced_only_when_all_of_it_is_ours(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo_service, "write_all", _fake_write_all)
    out = tmp_path / "demo"
    demo_service.ensure_demo(out, small=True)
    (out / "spider" / "my_result.csv").write_text("keep me")
    # Another size with a user file inside: refused, nothing changed.
    before = _tree(out)
    assert main(["demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "spider/my_result.csv" in err and "nothing was changed" in err
    assert _tree(out) == before
    # A file of the demo edited by the user counts as the user's too.
    (out / "spider" / "my_result.csv").unlink()
    (out / "bids" / "sub" / "image.mha").write_bytes(b"edited by hand")
    assert main(["demo", "--out", str(out)]) == 2
    assert "bids/sub/image.mha" in capsys.readouterr().err
    assert (out / "bids" / "sub" / "image.mha").read_bytes() == b"edited by hand"
    # All of it ours: replaced by the other size.
    (out / "bids" / "sub" / "image.mha").write_bytes(b"xxx")
    assert main(["demo", "--out", str(out)]) == 0
    assert json.loads((out / demo_service.MARKER).read_text())["small"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_of_an_earlier_version_without_a_file_list_is_not_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo_service, "write_all", _fake_write_all)
    out = tmp_path / "demo"
    (out / "spider").mkdir(parents=True)
    (out / "spider" / "scan.mha").write_bytes(b"old")
    (out / demo_service.MARKER).write_text(json.dumps({"version": demo_service._DEMO_VERSION, "small": True}))
    assert main(["demo", "--out", str(out)]) == 2
    assert "earlier lumbarview" in capsys.readouterr().err
    assert (out / "spider" / "scan.mha").read_bytes() == b"old"
    # ... but reused as it is when it is the size asked for.
    assert main(["demo", "--small", "--out", str(out)]) == 0
    assert (out / "spider" / "scan.mha").read_bytes() == b"old"


def test_stale_staging_of_a_killed_run_is_swept_and_nothing_else(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_service, "write_all", _fake_write_all)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True, timeout=60)
    stale = tmp_path / ".demo.abc.lumbarview-partial"
    stale.mkdir()
    (stale / ".lumbarview-demo-staging").write_text(dead.stdout.strip())
    live = tmp_path / ".demo.def.lumbarview-partial"
    live.mkdir()
    (live / ".lumbarview-demo-staging").write_text(str(os.getppid()))  # a process that runs
    lookalike = tmp_path / ".demo.ghi.lumbarview-partial"  # no staging marker: not ours
    lookalike.mkdir()
    (lookalike / "data.txt").write_text("mine")
    demo_service.ensure_demo(tmp_path / "demo")
    assert not stale.exists()
    assert live.is_dir() and (lookalike / "data.txt").read_text() == "mine"


def test_a_failing_writer_leaves_the_target_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(root: str | Path, *args: Any, **kwargs: Any) -> None:
        (Path(root) / "half").mkdir()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo_service, "write_all", broken)
    out = tmp_path / "demo"
    out.mkdir()
    with pytest.raises(demo_service.DemoFolderError, match="No space left on device"):
        demo_service.ensure_demo(out)
    assert out.is_dir() and not any(out.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


# -- measure survives bad data -----------------------------------------------------------------
@pytest.fixture(scope="module")
def damaged_spider(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SPIDER-like dataset: case 1 good, case 2 with its T2 mask truncated (its T1 map good)."""
    root = tmp_path_factory.mktemp("spider")
    sizes = Sizes(spider_matrix=150, spider_pixel_mm=1.0, spider_slices=15, spider_spacing_mm=3.3)
    write_spider(root, LumbarPhantom(), sizes, patient=1)
    for folder in ("images", "masks"):
        for seq in ("t1", "t2"):
            shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"2_{seq}.mha")
    damaged = root / "masks" / "2_t2.mha"
    # Damage the compressed voxel data, not the header: the file opens, its pixels cannot be
    # decoded (a truncated file is refused earlier, when the dataset opens).
    data = bytearray(damaged.read_bytes())
    start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    for i in range(start + 40, len(data) - 8, 97):
        data[i] ^= 0x5A
    damaged.write_bytes(bytes(data))
    return root


def test_a_damaged_mask_is_a_row_with_the_reason_and_the_rest_is_measured(
        damaged_spider: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(damaged_spider), "--json", "--jobs", "2", "--no-cache"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert all(set(ROW_KEYS) <= set(r) for r in rows)
    failed = [r for r in rows if r["quantity"] is None]
    assert len(failed) == 1 and failed[0]["case"] == "2" and failed[0]["series"] == "2_t2"
    assert "2_t2.mha" in failed[0]["reason"] and failed[0]["value"] is None
    measured = {(r["case"], r["series"]) for r in rows if r["quantity"] is not None}
    assert measured == {("1", "1_t1"), ("1", "1_t2"), ("2", "2_t1")}
    assert "internal error" not in captured.err
    assert "1 of 4 label map(s) could not be measured" in captured.err
    # The same through the resumable CSV: the failed case is committed once, like any other.
    out = tmp_path / "m.csv"
    assert main(["measure", str(damaged_spider), "--csv", str(out), "--jobs", "1", "--no-cache"]) == 0
    assert len(out.with_name("m.csv.done").read_text().splitlines()) == 4
    assert "2_t2.mha" in out.read_text()


def test_an_engine_failure_is_a_row_not_an_internal_error(
        damaged_spider: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from lumbarview.services import measure_case

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("an engine bug")

    monkeypatch.setattr(measure_case, "measure_label_map", boom)  # --jobs 1 measures in this process
    assert main(["measure", str(damaged_spider), "--json", "--jobs", "1", "--no-cache"]) == 2  # nothing measured
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 4 and all(r["quantity"] is None for r in rows)
    assert sum("TypeError: an engine bug" in r["reason"] for r in rows) == 3  # the 4th: its damaged mask
    assert "internal error" not in captured.err


class _KillsTheWorker:
    """Unpickled in a worker, it ends that process, as a native crash in a reader would."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return os._exit, (139,)


def test_a_worker_that_dies_costs_only_its_case(tmp_path: Path) -> None:
    from lumbarview.core.labels import LabelScheme

    scheme = LabelScheme.__new__(LabelScheme)
    jobs = [Job(str(n), "t2", str(tmp_path / f"missing_{n}.mha"), None, scheme, ()) for n in range(4)]
    jobs.insert(2, Job("killer", "t2", str(tmp_path / "k.mha"), None, _KillsTheWorker(), ()))  # type: ignore[arg-type]
    results = dict((job.case, rows) for job, rows in run_jobs(jobs, workers=2))
    assert set(results) == {"0", "1", "2", "3", "killer"}
    assert "stopped abruptly" in results["killer"][0]["reason"]
    for n in range(4):
        assert results[str(n)][0]["quantity"] is None
        assert "stopped abruptly" not in results[str(n)][0]["reason"]
