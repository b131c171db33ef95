"""Use case: measure every case of a dataset (``lumbarview measure``), in parallel, streaming.

Each case's label maps are measured in a worker process from their files; rows come back as
plain dicts (the output contract) as soon as a case is done, so an interrupted run keeps what it
finished and a rerun can skip it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from lumbarview.core.dataset import Case, Dataset, LabelMap
from lumbarview.core.errors import LumbarviewError
from lumbarview.core.geometry import VolumeGeometry
from lumbarview.core.labels import LabelScheme
from lumbarview.core.types import ImageStack, Series
from lumbarview.io.annotations import read_markups, read_png_mask
from lumbarview.io.volume import open_label_volume, open_volume
from lumbarview.measure.results import MeasuredGeometry
from lumbarview.model.markers import parse_marker_name
from lumbarview.services.measure_2d import is_2d_mask
from lumbarview.services.measure_case import (
    EXTRA_KEYS,
    GEOMETRY_KEY,
    ROW_KEYS,
    Grade,
    case_grades,
    failed_rows,
    is_failure,
    measurable_label_maps,
    measure_case,
    series_name,
)

__all__ = ["EXTRA_KEYS", "ROW_KEYS", "Job", "failed_job_rows", "is_failure", "jobs_for", "measure_job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One label map to measure, described by files so that a worker process can open it."""

    case: str
    series: str
    labels_path: str
    image_path: str | None
    scheme: LabelScheme
    grades: tuple[Grade, ...]  # (level, side or None, text)
    #: A 2D mask (PNG) has no geometry of its own: its slice's shape and ijk_to_lps rows.
    mask_geometry: tuple[tuple[int, ...], tuple[tuple[float, ...], ...]] | None = None
    #: Markups files of a case measured from its closed dura curves (services.measure_2d).
    curve_paths: tuple[str, ...] = ()
    #: Each row gets ``geometry``: ``{"polylines_lps": ...}`` or None (``measure --geometry``).
    geometry: bool = False

    @property
    def key(self) -> str:
        """Names the job in the resume journal and as a cluster task (see batch_sinks.job_key)."""
        return f"{self.case}\t{self.labels_path}"


def jobs_for(dataset: Dataset, geometry: bool = False) -> tuple[list[Job], list[str]]:
    """The measurable label maps of every case, and why others are skipped; with ``geometry``,
    their rows carry the lines each value was measured on."""
    jobs, skipped = [], []
    for case in dataset.cases:
        grades = tuple(case_grades(case))
        label_maps, notes = measurable_label_maps(case)
        skipped.extend(notes)
        for label_map in label_maps:
            image = case.stack(label_map.bound_to or "")
            image_path = image.meta.get("source") if image is not None else None
            mask_geometry = None
            if is_2d_mask(label_map):  # measured on its own slice's geometry, no image needed
                g = label_map.stack.geometry
                image_path, mask_geometry = None, (tuple(g.shape_kji), tuple(map(tuple, g.ijk_to_lps.tolist())))
            jobs.append(Job(case.id, series_name(case, label_map), label_map.source, image_path,
                            label_map.scheme, grades, mask_geometry, geometry=geometry))
        if has_dura_curves(case):
            first = next(p.source for p in case.point_sets if parse_marker_name(p.name).kind == "dura")
            sources = tuple(dict.fromkeys(p.source for p in case.point_sets))
            jobs.append(Job(case.id, "dura curves", first, None, LabelScheme("markers"), grades, None, sources,
                            geometry=geometry))
    return jobs, skipped


def has_dura_curves(case: Case) -> bool:
    return any(p.kind == "closed-curve" and parse_marker_name(p.name).kind == "dura" for p in case.point_sets)


def minimal_case(job: Job) -> Case:
    """The case of one job rebuilt from its files in a worker: its image (headers only until the
    pixels are needed) and its label map bound to it. Chosen over opening the dataset again in
    every worker: the opener reads every header of the dataset root and knows the layouts, while a
    worker needs two files, and the parent already did that work once."""
    if job.mask_geometry is not None:
        return _minimal_2d_case(job, job.mask_geometry)
    if job.curve_paths:
        curves = Case(job.case)
        for path in job.curve_paths:
            curves.point_sets.extend(read_markups(path)[0])
        return curves
    labels = open_label_volume(job.labels_path)
    case = Case(job.case)
    bound_to = None
    if job.image_path:
        image = open_volume(job.image_path, uid=f"image:{job.image_path}", description=job.series)
        case.series.append(Series(image.series_uid, job.series, "MR", None, [image]))
        bound_to = image.uid
    case.label_maps.append(LabelMap(job.series, labels, job.scheme, job.labels_path, bound_to))
    return case


def _minimal_2d_case(job: Job, mask_geometry: tuple[tuple[int, ...], tuple[tuple[float, ...], ...]]) -> Case:
    """A 2D mask's case: the PNG on its slice's geometry (from the parent's binding)."""
    import numpy as np

    shape, affine = mask_geometry
    array = read_png_mask(job.labels_path)[np.newaxis]
    geometry = VolumeGeometry((int(shape[0]), int(shape[1]), int(shape[2])), np.array(affine, dtype=np.float64))

    def load() -> tuple[Any, list[Any]]:
        return array, []

    stack = ImageStack(f"mask:{job.labels_path}", "", geometry, {"source": job.labels_path}, load)
    case = Case(job.case)
    case.label_maps.append(LabelMap(job.series, stack, job.scheme, job.labels_path, None))
    return case


def _measure(job: Job) -> list[dict[str, Any]]:
    rows = measure_case(minimal_case(job), grades=job.grades, geometry=job.geometry)
    if job.geometry:  # JSON-ready in the worker: only the lines cross the process boundary
        for row in rows:
            found = row.get(GEOMETRY_KEY)
            row[GEOMETRY_KEY] = found.to_json() if isinstance(found, MeasuredGeometry) else None
    return rows or failed_job_rows(job, "the label map has nothing the engine can measure")


def measure_job(job: Job) -> list[dict[str, Any]]:
    """Measure one label map (runs in a worker process). Never raises for the case's data: a
    label map or image that cannot be read, or a failure inside the engine, becomes one row with
    ``quantity`` null and the ``reason``, so the other cases go on."""
    try:
        return _measure(job)
    except LumbarviewError as exc:
        return failed_job_rows(job, str(exc))
    except MemoryError:
        return failed_job_rows(job, "not enough memory to measure this label map; close other programs or "
                                 "measure with fewer --jobs")
    except RecursionError:
        return failed_job_rows(job, "the label map is too complex to measure (recursion limit)")
    except Exception as exc:  # one case's failure must not stop the others; its row says why
        return failed_job_rows(job, f"the measurement failed ({type(exc).__name__}: {exc}); please report this "
                                 f"with the files of this case")


def failed_job_rows(job: Job, why: str) -> list[dict[str, Any]]:
    """The one row of a job that could not be measured (with ``geometry`` None when asked for)."""
    rows = failed_rows(job.case, job.series, why)
    return [row | {GEOMETRY_KEY: None} for row in rows] if job.geometry else rows


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
            return failed_job_rows(job, _WORKER_DIED)


def run_jobs(jobs: list[Job], workers: int | None = None,
             on_progress: Callable[[int, int, Job], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> Iterator[tuple[Job, list[dict[str, Any]]]]:
    """Measure ``jobs``; yields each job's rows as soon as it finishes (in completion order).

    Every job yields rows: a case that cannot be measured yields one row saying why. If a worker
    process dies (a native crash in a reader), the cases it may have held are measured again one
    by one, each in a process of its own, and the one that dies again is reported; the rest go on.
    Once ``should_stop()`` is true no new job is started; those already started finish and yield.
    """
    stop = should_stop or (lambda: False)
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    done = 0

    def finished(job: Job) -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, len(jobs), job)

    if n_workers == 1 or len(jobs) <= 1:
        for job in jobs:
            if stop():
                return
            rows = measure_job(job)
            finished(job)
            yield job, rows
        return
    queue = list(jobs)
    while queue and not stop():
        suspects: list[Job] = []
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_single_threaded_worker) as pool:
            pending: dict[Future[list[dict[str, Any]]], Job] = {}
            try:
                while (queue or pending) and not suspects:
                    while queue and len(pending) < 2 * n_workers and not stop():
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
                        rows = failed_job_rows(job, str(error)) if error is not None else future.result()
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
