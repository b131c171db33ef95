"""`measure --csv OUT` resumes exactly once: killed at any commit point, a rerun ends with every
row of an uninterrupted run, none lost and none duplicated.

The writer is killed in child processes (``os._exit`` from the fault-injection hook, and a real
SIGKILL), so pytest itself never dies.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.batch_sinks import CRASH_POINTS, CsvSink

REPO = Path(__file__).resolve().parents[2]
N_CASES = 5

# A writer driving the real CsvSink with synthetic rows (awkward CSV cells included), so every
# commit point can be hit in a fraction of a second.
_DRIVER = textwrap.dedent("""
    import sys
    from lumbarview.services.batch_sinks import CsvSink, job_key
    out, n = sys.argv[1], int(sys.argv[2])
    keys = ["case", "series", "quantity", "value", "reason", "position_lps"]
    sink = CsvSink(out, keys)
    done = sink.open()
    for i in range(n):
        case, labels = str(i), f"/data/masks/{i}_t2, \\u00e9\\"q\\".mha"
        if job_key(case, labels) in done:
            continue
        rows = [{"case": case, "series": "t2", "quantity": f"q{j}", "value": i * 10 + j,
                 "reason": 'comma, "quote"\\nnewline' if j == 1 else None, "position_lps": [1.5, -2.0, j]}
                for j in range(i % 3 + 1)]
        sink.commit(case, labels, rows)
    sink.close()
""")


def _env(crash: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LUMBARVIEW_TEST_CRASH_AT"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if crash:
        env["LUMBARVIEW_TEST_CRASH_AT"] = crash
    return env


def _drive(out: Path, crash: str | None = None) -> int:
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(out), str(N_CASES)], env=_env(crash),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode in (0, 137), proc.stderr
    return proc.returncode


def _rows(path: Path) -> tuple[list[str], Counter[tuple[str, ...]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, Counter(tuple(r) for r in reader)


def _check_same(out: Path, reference: Path) -> None:
    header, rows = _rows(out)
    ref_header, ref_rows = _rows(reference)
    assert header == ref_header
    assert rows == ref_rows  # as multisets: nothing lost, nothing duplicated (a second header would show)
    done = out.with_name(out.name + ".done").read_text().splitlines()
    assert len(done) == len(set(done)) == len(reference.with_name(reference.name + ".done").read_text().splitlines())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    assert _drive(out) == 0
    header, rows = _rows(out)
    assert header[0] == "case" and sum(rows.values()) == sum(i % 3 + 1 for i in range(N_CASES))
    return out


# (point, n): every commit point, at the first, a middle and the last case where it repeats.
_CASES = [(p, 1) for p in ("done-created", "header-partial", "header-written")] + [
    (p, n) for p in ("rows-partial", "rows-synced", "done-partial", "done-synced") for n in (1, 3, N_CASES)]


@pytest.mark.parametrize(("point", "nth"), _CASES)
def test_killed_at_each_commit_point_resumes_exactly_once(point: str, nth: int, reference: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    assert _drive(out, f"{point}:{nth}") == 137  # the hook really killed the writer there
    if point in ("rows-partial", "rows-synced", "done-partial"):
        assert sum(_rows(out)[1].values()) > 0 or nth == 1
    assert _drive(out) == 0
    _check_same(out, reference)
    assert _drive(out) == 0  # a run with nothing left to do changes nothing
    _check_same(out, reference)


def test_every_point_is_covered() -> None:
    assert {p for p, _ in _CASES} == set(CRASH_POINTS)


def test_killed_again_and_again(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    for crash in ("rows-partial:2", "done-partial:1", "rows-synced:1", "done-synced:1", "rows-partial:1"):
        assert _drive(out, crash) == 137
    assert _drive(out, "header-partial:1") == 0  # the header is written once: not again on resume
    assert _drive(out) == 0
    _check_same(out, reference)


# -- refusing what is not ours, and a damaged journal ------------------------------------------
def test_a_file_that_is_not_ours_is_never_written(tmp_path: Path) -> None:
    out = tmp_path / "mine.csv"
    out.write_bytes(b"a,b\r\n1,2\r\n")
    with pytest.raises(Exception, match="not a run of `lumbarview measure`"):
        CsvSink(out, ["case", "value"]).open()
    assert out.read_bytes() == b"a,b\r\n1,2\r\n"
    assert not out.with_name("mine.csv.done").exists()
    # With a journal beside it but other columns: still not ours.
    out.with_name("mine.csv.done").write_text("")
    with pytest.raises(Exception, match="does not start with the columns"):
        CsvSink(out, ["case", "value"]).open()
    assert out.read_bytes() == b"a,b\r\n1,2\r\n"


def test_damaged_journal_is_a_clear_message(tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    sink = CsvSink(out, ["case", "value"])
    sink.open()
    sink.commit("1", "/x/1.mha", [{"case": "1", "value": 3}])
    sink.close()
    done = out.with_name("m.csv.done")
    good = done.read_bytes()
    done.write_bytes(b"\x00\xffgarbage\n" + good)
    before = out.read_bytes()
    with pytest.raises(Exception, match=r"m\.csv\.done line 1 is damaged"):
        CsvSink(out, ["case", "value"]).open()
    assert out.read_bytes() == before
    # A journal promising more rows than OUT holds (OUT cut by hand): refused, nothing cut.
    done.write_bytes(good)
    out.write_bytes(before[:-3])
    with pytest.raises(Exception, match="rows of finished cases are missing"):
        CsvSink(out, ["case", "value"]).open()
    assert out.read_bytes() == before[:-3]


# -- the real command ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    sizes = Sizes(spider_matrix=150, spider_pixel_mm=1.0, spider_slices=15, spider_spacing_mm=3.3)
    write_spider(root, LumbarPhantom(), sizes, patient=1)
    for n in (2,):
        for folder in ("images", "masks"):
            for seq in ("t1", "t2"):
                shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"{n}_{seq}.mha")
    return root


@pytest.fixture(scope="module")
def measured(spider_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("measured") / "ref.csv"
    t0 = time.perf_counter()
    assert main(["measure", str(spider_root), "--csv", str(out), "--jobs", "1", "--no-cache"]) == 0
    return out, time.perf_counter() - t0


def _measure(spider_root: Path, out: Path, crash: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lumbarview", "measure", str(spider_root), "--csv", str(out),
                             "--jobs", "1", "--no-cache"], env=_env(crash), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_measure_killed_by_the_hook_resumes(spider_root: Path, measured: tuple[Path, float],
                                            tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    proc = _measure(spider_root, out, "rows-synced:2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 137, err
    assert len(out.with_name("m.csv.done").read_text().splitlines()) == 1  # the 2nd map's rows are not committed
    # ... but they are in OUT: the resume must cut them (4 label maps of equal row counts).
    assert sum(_rows(out)[1].values()) == 2 * sum(_rows(measured[0])[1].values()) // 4
    proc = _measure(spider_root, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming: 1 case(s)" in err
    _check_same(out, measured[0])


def test_measure_sigkilled_at_a_random_moment_resumes(spider_root: Path, measured: tuple[Path, float],
                                                      tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    out = tmp_path / "m.csv"
    done = out.with_name("m.csv.done")
    proc = _measure(spider_root, out)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not (done.exists() and done.read_bytes()):
            time.sleep(0.02)
        # After the first commit, 3 of the 4 label maps remain: kill somewhere in the next one or two.
        time.sleep(rng.uniform(0.0, measured[1] / 2))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill (seed {seed})"
    proc = _measure(spider_root, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _check_same(out, measured[0])
