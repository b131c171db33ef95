"""Browsing cases without Qt: the next and previous case wrap around; the case after the one
on screen is decoded ahead; decoded cases stay within the byte budget, never the one on screen
or the one ahead; a series picked in the browser reaches its view once decoded, or says why not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.errors import CorruptFileError
from lumbarview.core.types import ImageStack, Series
from lumbarview.model.session import Session
from lumbarview.services.case_browser import CaseBrowser, find_series, neighbour_case
from lumbarview.services.case_loader import CaseView
from tests.dicom_helpers import sagittal


def _series(name: str, loader: Callable[[], tuple[np.ndarray, list[Any]]] | None = None) -> Series:
    geometry = sagittal(n=6, rows=32, cols=32)
    stack = ImageStack(f"{name}#1", name, geometry, {"source": None},
                       loader or (lambda: (np.ones(geometry.shape_kji, dtype=np.int16), [])))
    return Series(name, "T2", "MR", 1, [stack])


def _dataset(n: int) -> Dataset:
    return Dataset("/nowhere", "folder", cases=[Case(id=str(k), series=[_series(f"s{k}")]) for k in range(n)])


def _now(job: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
    """A submit that runs at once (the viewer's runs in a thread and answers on the GUI thread)."""
    try:
        result = job()
    except Exception as exc:
        failed(exc)
    else:
        done(result)


def _show(browser: CaseBrowser, case: Case) -> None:
    def shown(view: CaseView) -> None:
        browser.session.show_case(view.case, view.series, view.cursor_lps, view.disc_planes, view.shown_stacks)
        browser.shown(view.case)

    browser.load(case, shown, lambda error: pytest.fail(str(error)))


def _loaded(case: Case) -> bool:
    return all(stack.is_loaded for stack in case.stacks())


def test_next_and_previous_wrap_around() -> None:
    dataset = _dataset(3)
    first, second, third = dataset.cases
    assert neighbour_case(dataset, first, 1) is second
    assert neighbour_case(dataset, third, 1) is first
    assert neighbour_case(dataset, first, -1) is third
    assert neighbour_case(dataset, Case(id="elsewhere", series=[_series("x")]), 1) is second  # from the first
    assert neighbour_case(Dataset("/nowhere", "folder"), None, 1) is None
    assert neighbour_case(None, first, 1) is None


def test_the_next_case_is_decoded_ahead() -> None:
    dataset = _dataset(3)
    session = Session()
    session.set_dataset(dataset)
    browser = CaseBrowser(session, _now, max_bytes=2**30)
    _show(browser, dataset.cases[0])
    assert session.case is dataset.cases[0]
    assert _loaded(dataset.cases[1]) and not _loaded(dataset.cases[2])
    assert browser.memory.cases == [dataset.cases[0], dataset.cases[1]]


def test_decoded_cases_stay_within_the_budget_but_never_the_shown_or_the_next() -> None:
    dataset = _dataset(4)
    session = Session()
    session.set_dataset(dataset)
    browser = CaseBrowser(session, _now, max_bytes=0)
    for case in dataset.cases[:3]:
        _show(browser, case)
    shown, ahead = dataset.cases[2], dataset.cases[3]
    assert browser.memory.cases == [shown, ahead]
    assert _loaded(shown) and _loaded(ahead)
    assert not _loaded(dataset.cases[0]) and not _loaded(dataset.cases[1])


def test_a_single_case_is_not_decoded_twice_ahead() -> None:
    dataset = _dataset(1)
    session = Session()
    session.set_dataset(dataset)
    calls: list[Any] = []

    def counting(job: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        calls.append(job)
        _now(job, done, failed)

    browser = CaseBrowser(session, counting, 2**30)
    _show(browser, dataset.cases[0])
    assert len(calls) == 1  # the load itself; nothing to prefetch


def test_a_picked_series_reaches_its_view_once_decoded() -> None:
    dataset = _dataset(1)
    case = dataset.cases[0]
    extra = _series("extra")
    case.series.append(extra)
    session = Session()
    session.set_dataset(dataset)
    browser = CaseBrowser(session, _now, max_bytes=2**30)
    _show(browser, case)
    failures: list[tuple[Series, BaseException]] = []
    browser.show_series("axial", "extra", lambda series, error: failures.append((series, error)))
    assert session.views["axial"].series is extra and _loaded(case) and not failures
    browser.show_series("axial", "no-such-series", lambda series, error: failures.append((series, error)))
    assert session.views["axial"].series is extra and not failures
    assert find_series(case, "extra") is extra and find_series(case, None) is None and find_series(None, "x") is None


def test_a_series_that_cannot_be_decoded_says_so_and_the_view_keeps_its_own() -> None:
    def damaged() -> tuple[np.ndarray, list[Any]]:
        raise CorruptFileError("/nowhere/x.dcm", "the pixel data is truncated", "re-copy it")

    dataset = _dataset(1)
    case = dataset.cases[0]
    bad = _series("bad", damaged)
    case.series.append(bad)
    session = Session()
    session.set_dataset(dataset)
    browser = CaseBrowser(session, _now, max_bytes=2**30)
    _show(browser, case)
    before = session.views["axial"].series
    failures: list[tuple[Series, BaseException]] = []
    browser.show_series("axial", "bad", lambda series, error: failures.append((series, error)))
    assert session.views["axial"].series is before
    assert len(failures) == 1 and failures[0][0] is bad and isinstance(failures[0][1], CorruptFileError)
