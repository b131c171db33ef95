"""Use case: measure every case of a dataset (``lumbarview measure``), in parallel, streaming.

Each case's label maps are measured in a worker process from their files; rows come back as
plain dicts (the output contract) as soon as a case is done, so an interrupted run keeps what it
finished and a rerun can skip it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.labels import LabelScheme, Role
from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.measure.lumbar import Value, measure_label_map
from lumbarview.services.binding import labels_on_image

#: The keys of a measurement row: a contract other tools read.
ROW_KEYS = ("case", "series", "level", "label", "side", "quantity", "value", "unit", "method",
            "confidence", "flag")
EXTRA_KEYS = ("confidence_reason", "reason", "dataset_grade", "position_lps")


@dataclass(frozen=True)
class Job:
    """One label map to measure, described by files so that a worker process can open it."""

    case: str
    series: str
    labels_path: str
    image_path: str | None
    scheme: LabelScheme
    grades: tuple[tuple[str, str | None, str], ...]  # (level, side or None, text)


def _grades(case: Case) -> list[tuple[str, str | None, str]]:
    """Dataset grades to report beside the measurements (never used to compute them)."""
    out: list[tuple[str, str | None, str]] = []
    for table in case.tables:
        if table.kind == "spider-gradings":
            for row in table.rows:
                if row.get("level"):
                    fields = ", ".join(f"{k} {row[k]}" for k in ("Pfirrman grade", "Modic", "Disc narrowing",
                                                                  "Disc herniation", "Disc bulging",
                                                                  "Spondylolisthesis") if k in row)
                    out.append((str(row["level"]), None, f"SPIDER gradings: {fields}"))
    for box_set in case.box_sets:
        for box in box_set.boxes:
            if box.level and box.side and box.severity is not None:
                out.append((box.level, box.side, f"LSS-MRI-AISSLab foraminal severity {box.severity} (0-3)"))
    return out


def jobs_for(dataset: Dataset) -> tuple[list[Job], list[str]]:
    """The measurable label maps of every case, and why others are skipped."""
    jobs, skipped = [], []
    for case in dataset.cases:
        grades = tuple(_grades(case))
        for label_map in case.label_maps:
            if not label_map.scheme.values_with_role(Role.DISC) or not any(
                    e.level for e in label_map.scheme.entries.values() if e.role is Role.DISC):
                skipped.append(f"case {case.id}: {label_map.name}: its labels do not name disc levels")
                continue
            if label_map.stack.geometry.shape_kji[0] < 2 or Path(label_map.source).suffix.lower() not in (
                    ".mha", ".mhd", ".nii", ".gz", ".nrrd", ".nhdr"):
                skipped.append(f"case {case.id}: {label_map.name}: a 2D mask; the engine measures 3D label maps")
                continue
            image = case.stack(label_map.bound_to or "")
            image_path = image.meta.get("source") if image is not None else None
            series = image.meta.get("description") if image is not None else label_map.name
            jobs.append(Job(case.id, str(series), label_map.source, image_path, label_map.scheme, grades))
    return jobs, skipped


def _row(job: Job, v: Value, unit: str | None = None, value: float | None = None) -> dict[str, Any]:
    val = v.value if value is None else value
    grade = "; ".join(text for level, side, text in job.grades
                      if level == v.level and (side is None or side == v.side))
    return {
        "case": job.case, "series": job.series, "level": v.level, "label": v.label, "side": v.side,
        "quantity": v.quantity, "value": None if not math.isfinite(val) else round(val, 4),
        "unit": unit or v.unit, "method": v.method, "confidence": v.confidence, "flag": v.flag,
        "confidence_reason": v.confidence_reason, "reason": v.reason, "dataset_grade": grade or None,
        "position_lps": None if v.position_lps is None else [round(c, 3) for c in v.position_lps],
    }


def _measure(job: Job) -> list[dict[str, Any]]:
    labels_stack = open_label_volume(job.labels_path)
    labels, geometry = labels_stack.pixels(), labels_stack.geometry
    if job.image_path:
        # The same binding rule as the dataset opener (services.binding), never a second copy.
        labels, geometry = labels_on_image(labels_stack, open_volume(job.image_path).geometry)
    rows = []
    for v in measure_label_map(labels, geometry, job.scheme):
        rows.append(_row(job, v))
        if v.quantity == "slip":
            pct = v.extra.get("slip_percent", float("nan"))
            rows.append(_row(job, v, unit="%", value=pct))
    return rows


def measure_job(job: Job) -> list[dict[str, Any]]:
    """Measure one label map (runs in a worker process). Never raises for the case's data: a
    label map or image that cannot be read, or a failure inside the engine, becomes one row with
    ``quantity`` null and the ``reason``, so the other cases go on."""
    try:
        return _measure(job)
    except LumbarviewError as exc:
        return _failed_rows(job, str(exc))
    except MemoryError:
        return _failed_rows(job, "not enough memory to measure this label map; close other programs or "
                                 "measure with fewer --jobs")
    except RecursionError:
        return _failed_rows(job, "the label map is too complex to measure (recursion limit)")
    except Exception as exc:  # one case's failure must not stop the others; its row says why
        return _failed_rows(job, f"the measurement failed ({type(exc).__name__}: {exc}); please report this "
                                 f"with the files of this case")


def _failed_rows(job: Job, why: str) -> list[dict[str, Any]]:
    reason = f"the case could not be measured: {why}"
    return [{"case": job.case, "series": job.series, "level": None, "label": None, "side": None,
             "quantity": None, "value": None, "unit": None, "method": "", "confidence": "none", "flag": None,
             "confidence_reason": reason, "reason": reason, "dataset_grade": None, "position_lps": None}]


def is_failure(rows: list[dict[str, Any]]) -> bool:
    """Whether ``rows`` are the single row of a label map that could not be measured."""
    return len(rows) == 1 and rows[0]["quantity"] is None and rows[0]["level"] is None


_WORKER_DIED = ("the process measuring it stopped abruptly (a crash while reading its files, or the system "
                "ran out of memory); check its files, or measure it alone with --jobs 1 to see the error")


def _single_threaded_worker() -> None:
    """Each worker process computes on one thread: numpy's BLAS would otherwise start a thread
    per core in every process, and two processes on two cores would fight over four threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _measure_alone(job: Job) -> list[dict[str, Any]]:
    """Measure ``job`` in a process of its own: after a worker died, this finds which case killed it."""
    with ProcessPoolExecutor(max_workers=1, initializer=_single_threaded_worker) as pool:
        try:
            return pool.submit(measure_job, job).result()
        except BrokenProcessPool:
            return _failed_rows(job, _WORKER_DIED)


def run_jobs(jobs: list[Job], workers: int | None = None,
             on_progress: Callable[[int, int, Job], None] | None = None) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    """Measure ``jobs``; yields each job's rows as soon as it finishes (in completion order).

    Every job yields rows: a case that cannot be measured yields one row saying why. If a worker
    process dies (a native crash in a reader), the cases it may have held are measured again one
    by one, each in a process of its own, and the one that dies again is reported; the rest go on.
    """
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    done = 0

    def finished(job: Job) -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, len(jobs), job)

    if n_workers == 1 or len(jobs) <= 1:
        for job in jobs:
            rows = measure_job(job)
            finished(job)
            yield job, rows
        return
    queue = list(jobs)
    while queue:
        suspects: list[Job] = []
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_single_threaded_worker) as pool:
            pending: dict[Future[list[dict[str, Any]]], Job] = {}
            try:
                while (queue or pending) and not suspects:
                    while queue and len(pending) < 2 * n_workers:
                        job = queue.pop(0)
                        try:
                            pending[pool.submit(measure_job, job)] = job
                        except BrokenProcessPool:
                            queue.insert(0, job)
                            break
                    if not pending:
                        break
                    completed, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in completed:
                        job = pending.pop(future)
                        error = future.exception()
                        if isinstance(error, BrokenProcessPool):
                            suspects.append(job)
                            continue
                        rows = _failed_rows(job, str(error)) if error is not None else future.result()
                        finished(job)
                        yield job, rows
                if suspects:
                    suspects.extend(pending.values())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        for job in suspects:
            rows = _measure_alone(job)
            finished(job)
            yield job, rows
