"""`lumbarview measure` on a Dask cluster: the same rows as the local run, a worker killed mid-run,
the client killed and rerun with --csv, the failure budget, and clear messages.

The cluster is a LocalCluster of two worker processes on loopback, closed at the end of the module
(its processes with it); the client that is killed runs in a child process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.batch.runners import ClusterError, DaskRunner
from lumbarview.services.measure_all import jobs_for
from lumbarview.services.open_dataset import open_path

distributed = pytest.importorskip("distributed", reason="the cluster extra (distributed) is not installed")

REPO = Path(__file__).resolve().parents[2]
N_CASES = 2  # x 2 label maps (t1, t2)


def _copy_case(root: Path, n: int) -> None:
    for folder in ("images", "masks"):
        for seq in ("t1", "t2"):
            shutil.copy(root / folder / f"1_{seq}.mha", root / folder / f"{n}_{seq}.mha")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    write_spider(root, LumbarPhantom(), Sizes.small(), patient=1)
    for n in range(2, N_CASES + 1):
        _copy_case(root, n)
    return root


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


@pytest.fixture(scope="module")
def local_rows(root: Path) -> list[str]:
    jobs, _ = jobs_for(open_path(str(root), use_cache=False))
    from lumbarview.services.batch.runners import LocalProcessRunner

    rows = [r for _, rs in LocalProcessRunner(2).run(jobs) for r in rs]
    assert len({r["case"] for r in rows}) == N_CASES
    return sorted(map(_key, rows))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_cluster_rows_equal_the_local_rows(root: Path, cluster: Any, local_rows: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(root), "--json", "--scheduler", cluster.scheduler_address, "--no-cache"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(map(_key, rows)) == local_rows  # row by row, nothing lost, nothing twice


def test_a_worker_killed_mid_run_has_its_cases_finish_elsewhere(root: Path, cluster: Any,
                                                                local_rows: list[str]) -> None:
    jobs, _ = jobs_for(open_path(str(root), use_cache=False))
    killed_keys: list[str] = []
    yielded: list[str] = []
    rows: list[dict[str, Any]] = []
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as spy:
        for job, job_rows in DaskRunner(cluster.scheduler_address, str(root)).run(jobs):
            yielded.append(job.key)
            rows.extend(job_rows)
            if not killed_keys:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    busy = {w: list(keys) for w, keys in spy.processing().items() if keys}
                    if busy:
                        break
                    time.sleep(0.05)
                assert busy, "no worker was measuring anything"
                worker, keys = next(iter(busy.items()))
                pid = spy.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed_keys.extend(str(k) for k in keys)
    assert killed_keys
    assert sorted(yielded) == sorted(j.key for j in jobs)  # every case once
    assert sorted(map(_key, rows)) == local_rows  # the killed worker's cases were measured elsewhere
    assert not any(r["quantity"] is None for r in rows)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LUMBARVIEW_TEST_CRASH_AT"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _csv_rows(path: Path) -> Counter[tuple[str, ...]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        return Counter(tuple(r) for r in reader)


def test_the_client_killed_and_rerun_resumes(root: Path, cluster: Any, local_rows: list[str],
                                             tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    done = tmp_path / "m.csv.done"
    command = [sys.executable, "-m", "lumbarview", "measure", str(root), "--csv", str(out), "--no-cache",
               "--scheduler", cluster.scheduler_address]
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not (done.exists() and done.read_bytes()):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {err}"
    n_done = len(done.read_text().splitlines())
    assert 1 <= n_done < 2 * N_CASES
    proc = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {n_done} case(s)" in proc.stderr
    rows = _csv_rows(out)
    assert set(rows.values()) == {1}  # nothing twice (every row of this dataset is distinct)
    assert sum(rows.values()) == len(local_rows)  # nothing lost
    assert len(done.read_text().splitlines()) == 2 * N_CASES
    meta = json.loads((tmp_path / "m.csv.meta.json").read_text())
    assert [r["status"] for r in meta["runs"]] == ["running", "finished"]  # the killed run never finished
    assert meta["runs"][1]["runner"]["name"] == "dask" and meta["runs"][1]["runner"]["workers"] == 2
    assert meta["runs"][0]["inputs_fingerprint"] == meta["runs"][1]["inputs_fingerprint"]
    assert meta["runs"][1]["measured"] == 2 * N_CASES - n_done


def test_a_worker_that_cannot_see_the_data_is_a_clear_message(root: Path, cluster: Any, tmp_path: Path) -> None:
    jobs, _ = jobs_for(open_path(str(root), use_cache=False))
    with pytest.raises(ClusterError, match=r"cannot see .* at the same path"):
        list(DaskRunner(cluster.scheduler_address, str(tmp_path / "not-on-the-workers")).run(jobs))


def test_an_unreachable_scheduler_is_a_clear_message(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(root), "--json", "--scheduler", "tcp://127.0.0.1:9", "--no-cache"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_without_distributed_a_clear_message(root: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["measure", str(root), "--json", "--scheduler", "tcp://127.0.0.1:9", "--no-cache"]) == 2
    assert "pip install 'lumbarview[cluster]'" in capsys.readouterr().err


def _break_voxels(path: Path) -> None:
    """Keep the header, replace the compressed voxels by bytes of the same length that zlib refuses."""
    data = path.read_bytes()
    start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    path.write_bytes(data[:start] + b"\xff" * (len(data) - start))


def test_failure_budget_stops_new_cases_and_a_rerun_finishes(root: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    for n in (1,):
        for seq in ("t1", "t2"):
            _break_voxels(broken / "masks" / f"{n}_{seq}.mha")
    out = tmp_path / "m.csv"
    code = main(["measure", str(broken), "--csv", str(out), "--jobs", "1", "--no-cache", "--max-failures", "1"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "more than --max-failures 1 allows; 2 case(s) were not started" in err
    assert len((tmp_path / "m.csv.done").read_text().splitlines()) == 2  # stopped after the 2nd failure
    meta = json.loads((tmp_path / "m.csv.meta.json").read_text())
    assert meta["runs"][-1]["status"] == "stopped: failure budget spent"
    # The rest is measured on a rerun (with a budget that allows everything), and summarised.
    code = main(["measure", str(broken), "--csv", str(out), "--jobs", "1", "--no-cache", "--max-failures", "100%",
                 "--summary"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "resuming: 2 case(s)" in captured.err
    assert "legend:" in captured.out and "case 2  series 2_t1" in captured.out and "L4-L5" in captured.out
    assert len((tmp_path / "m.csv.done").read_text().splitlines()) == 2 * N_CASES
