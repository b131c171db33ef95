"""A big dataset lists every case at once and reads each case's files when first needed: the
cases read lazily are the same as those read at once, a bad file in a case not read yet becomes
that case's issue when it is read, and nothing is read twice."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from lumbarview.core.dataset import Case, Dataset
from lumbarview.core.types import Severity
from lumbarview.services.case_loader import load_case
from lumbarview.services.open_dataset import open_path
from tests.spider_helpers import damage, spider_cases


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five SPIDER cases, the fifth's T1 damaged, and a mask whose image is missing."""
    source = tmp_path_factory.mktemp("spider-source")
    root = spider_cases(source, tmp_path_factory.mktemp("spider-lazy"), 5)
    damage(root / "images" / "5_t1.mha")
    shutil.copy(source / "masks" / "1_t2.mha", root / "masks" / "6_t2.mha")
    return root


def _summary(dataset: Dataset) -> list[tuple[str, list[str], list[tuple[str, str | None]], list[str]]]:
    return [(c.id, [s.uid for s in c.series], [(m.name, m.bound_to) for m in c.label_maps],
             sorted(f"{i.severity.name} {i.code} {i.message}" for i in c.issues)) for c in dataset.cases]


def test_lazy_listing_reads_nothing_until_asked(spider_root: Path) -> None:
    lazy = open_path(spider_root, use_cache=False, lazy=True)
    assert [c.id for c in lazy.cases] == ["1", "2", "3", "4", "5", "6"]
    assert [c.id for c in lazy.pending_cases] == ["1", "2", "3", "4", "5"]  # 6 has no image to read
    assert all(not c.series and not c.label_maps for c in lazy.pending_cases)
    assert lazy.case("3") is not None and lazy.case("3").ensure_open() is True  # type: ignore[union-attr]
    assert lazy.case("3").ensure_open() is False  # type: ignore[union-attr]
    assert [c.id for c in lazy.pending_cases] == ["1", "2", "4", "5"]


def test_lazy_cases_are_those_read_at_once(spider_root: Path) -> None:
    eager = open_path(spider_root, use_cache=False)
    assert not eager.pending_cases
    lazy = open_path(spider_root, use_cache=False, lazy=True)
    lazy.open_all()
    assert not lazy.pending_cases
    assert _summary(lazy) == _summary(eager)
    assert len(lazy.cases[0].series) == 2 and len(lazy.cases[0].label_maps) == 2
    assert sorted(map(str, lazy.all_issues())) == sorted(map(str, eager.all_issues()))


def test_a_bad_file_in_a_case_not_read_yet_is_that_cases_issue(spider_root: Path) -> None:
    lazy = open_path(spider_root, use_cache=False, lazy=True)
    bad = lazy.case("5")
    assert bad is not None and not bad.issues
    bad.ensure_open()
    errors = [i for i in bad.issues if i.severity is Severity.ERROR]
    assert len(errors) == 1 and errors[0].path is not None and errors[0].path.endswith("5_t1.mha")
    assert [s.description for s in bad.series] == ["t2"]  # the rest of the case still opened
    orphan = lazy.case("6")
    assert orphan is not None and any(i.code == "spider.orphan-mask" for i in orphan.issues)


def test_loading_a_case_reads_it_first(spider_root: Path) -> None:
    lazy = open_path(spider_root, use_cache=False, lazy=True)
    case = lazy.cases[1]
    view = load_case(case)
    assert case.is_open and any(s is not None for s in view.series.values())


def test_a_case_is_read_once_when_two_threads_ask(spider_root: Path) -> None:
    calls: list[int] = []
    gate = threading.Barrier(4)

    def opener(case: Case) -> None:
        calls.append(1)

    case = Case(id="x", opener=opener)

    def ask() -> None:
        gate.wait()
        case.ensure_open()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and case.is_open


def test_eager_open_reports_progress_over_the_cases(spider_root: Path) -> None:
    seen: list[tuple[int, int]] = []
    open_path(spider_root, use_cache=False, progress=lambda n, total: seen.append((n, total)))
    assert seen[-1] == (5, 5)
