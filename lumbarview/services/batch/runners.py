"""One runner interface for ``lumbarview measure``: local worker processes or a Dask cluster.

Both take the same :class:`~lumbarview.services.measure_all.Job` list and yield ``(job, rows)``
as cases finish, every job exactly once; a case that fails yields one row saying why. Once
``should_stop()`` is true (the failure budget is spent) no new case is started; those already
started finish and are yielded. The output side (the resumable CSV and the other sinks) is the
caller's and the same for both.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from lumbarview import __version__
from lumbarview.core.errors import LumbarviewError
from lumbarview.services.measure_all import Job, failed_job_rows, measure_job, run_jobs

Rows = list[dict[str, Any]]


class ClusterError(LumbarviewError):
    """The cluster cannot run this measurement (not reachable, no workers, a worker cannot see the data)."""


class Runner(Protocol):
    def describe(self) -> dict[str, Any]:
        """Its name and parameters, for the provenance file."""
        ...

    def run(self, jobs: Sequence[Job], should_stop: Callable[[], bool]) -> Iterator[tuple[Job, Rows]]:
        ...


def _never() -> bool:
    return False


class LocalProcessRunner:
    """Worker processes on this machine (``--jobs N``; a dying worker is handled by run_jobs)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))

    def describe(self) -> dict[str, Any]:
        return {"name": "local-processes", "jobs": self.workers}

    def run(self, jobs: Sequence[Job], should_stop: Callable[[], bool] = _never) -> Iterator[tuple[Job, Rows]]:
        yield from run_jobs(list(jobs), workers=self.workers, should_stop=should_stop)


# -- the Dask side ----------------------------------------------------------------------------
_README_HINT = ("every worker must see the dataset at the same path as this machine (mount or copy it "
                "there); see `Measuring on a cluster` in the README")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError("--scheduler needs the optional package `distributed`, which is not installed: "
                           "install it with `pip install 'lumbarview[cluster]'`, or measure on this machine "
                           "with --jobs N") from None
    return distributed


def worker_probe(root: str) -> dict[str, Any]:
    """Runs on a worker: whether it sees ``root`` and which lumbarview it runs."""
    return {"sees_root": os.path.exists(root), "host": socket.gethostname(), "version": __version__}


def remote_measure(job: Job, root: str) -> tuple[str, Any]:
    """The task run on a worker: ``("rows", rows)``, or ``("path-missing", host)`` when this worker
    cannot see the dataset root (a worker that joined after the first check)."""
    if not os.path.exists(root):
        return "path-missing", socket.gethostname()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return "rows", measure_job(job)


def task_key(job: Job) -> str:
    """The task's name on the cluster: one per job, so a lost worker's task is recomputed under
    the same key and a result can only arrive once."""
    digest = hashlib.sha256(f"{__version__}\n{job.key}".encode()).hexdigest()[:16]
    return f"lumbarview-measure-{job.case}-{digest}"


class DaskRunner:
    """The jobs as tasks on an existing Dask distributed cluster (``--scheduler tcp://HOST:PORT``).

    A worker lost mid-run has its tasks rescheduled on the others by the scheduler (same key, so
    never twice in the output); a case whose workers keep dying (the scheduler's
    ``allowed-failures``) yields a row saying so. ``retries`` re-runs a task that raised.
    """

    def __init__(self, address: str, root: str, *, retries: int = 2, connect_timeout_s: float = 20.0,
                 workers_timeout_s: float = 60.0) -> None:
        self.address = address
        self.root = os.path.abspath(root)
        self.retries = retries
        self.connect_timeout_s = connect_timeout_s
        self.workers_timeout_s = workers_timeout_s
        self.n_workers = 0
        self.n_threads = 0

    def describe(self) -> dict[str, Any]:
        distributed = _distributed()
        return {"name": "dask", "scheduler": self.address, "workers": self.n_workers, "threads": self.n_threads,
                "retries": self.retries, "distributed_version": distributed.__version__}

    def _connect(self) -> Any:
        distributed = _distributed()
        try:
            client = distributed.Client(self.address, timeout=self.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.address} ({exc}); check the address "
                               f"(tcp://HOST:PORT) and that `dask scheduler` runs there") from None
        try:
            client.wait_for_workers(1, timeout=self.workers_timeout_s)
        except (TimeoutError, OSError):
            client.close()
            raise ClusterError(f"the Dask scheduler at {self.address} has no workers (waited "
                               f"{self.workers_timeout_s:.0f} s); start some with `dask worker {self.address}`"
                               ) from None
        return client

    def _check_workers(self, client: Any) -> None:
        """The first thing sent to the workers: does each see the dataset at our path?"""
        answers: dict[str, dict[str, Any]] = client.run(worker_probe, self.root)
        blind = [f"{address} (host {a['host']})" for address, a in sorted(answers.items()) if not a["sees_root"]]
        if blind:
            raise ClusterError(f"the Dask worker(s) {', '.join(blind)} cannot see {self.root}: {_README_HINT}")
        other = sorted({a["version"] for a in answers.values()} - {__version__})
        if other:
            raise ClusterError(f"the Dask workers run lumbarview {', '.join(other)} but this is {__version__}; "
                               f"install the same version on every worker so that the rows are comparable")
        info = client.scheduler_info()
        workers = info.get("workers", {})
        self.n_workers = len(workers)
        self.n_threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1

    def run(self, jobs: Sequence[Job], should_stop: Callable[[], bool] = _never) -> Iterator[tuple[Job, Rows]]:
        distributed = _distributed()
        from distributed.scheduler import KilledWorker

        client = self._connect()
        pending: dict[str, tuple[Any, Job]] = {}
        try:
            self._check_workers(client)
            queue = list(jobs)
            seen: set[str] = set()
            window = max(2, 2 * self.n_threads)

            def submit_next() -> Any:
                job = queue.pop(0)
                future = client.submit(remote_measure, job, self.root, key=task_key(job), retries=self.retries)
                pending[future.key] = (future, job)
                return future

            first = [submit_next() for _ in range(min(window, len(queue)))]
            with client.as_current():  # as_completed finds its client there (ours is not the default)
                completed = distributed.as_completed(first)
            for future in completed:
                _, job = pending.pop(future.key, (None, None))
                if job is None or job.key in seen:
                    continue  # never twice (cannot happen with one future per key; a guard)
                try:
                    kind, payload = future.result()
                except KilledWorker:
                    kind, payload = "rows", failed_job_rows(
                        job, "the Dask workers measuring it died again and again (a crash "
                                              "while reading its files, or out of memory); check its files, or "
                                              "measure it alone with --jobs 1 to see the error")
                except Exception as exc:  # a task that raised after its retries: the row says why
                    why = f"the cluster task failed ({type(exc).__name__}: {exc})"
                    kind, payload = "rows", failed_job_rows(job, why)
                future.release()
                if kind == "path-missing":
                    raise ClusterError(f"a Dask worker on host {payload} cannot see {self.root}: {_README_HINT}")
                seen.add(job.key)
                yield job, payload
                if queue and not should_stop():
                    completed.add(submit_next())
        finally:
            for future, _ in pending.values():
                future.cancel()
            client.close()
