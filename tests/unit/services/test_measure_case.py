"""measure_case(case): a case already in memory gives the rows of `lumbarview measure`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumbarview.cli import main
from lumbarview.phantom.layouts import Sizes, write_spider
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.batch.plan import FailureBudget
from lumbarview.services.batch.summary import format_summary
from lumbarview.services.measure_case import EXTRA_KEYS, ROW_KEYS, is_failure, measure_case, series_name
from lumbarview.services.open_dataset import open_path


@pytest.fixture(scope="module")
def spider_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    write_spider(root, LumbarPhantom(), Sizes.small(), patient=1)
    return root


def _key(row: dict[str, object]) -> str:
    return json.dumps(row, sort_keys=True)


def test_measure_case_rows_equal_the_cli_rows(spider_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(spider_root), "--json", "--jobs", "1", "--no-cache"]) == 0
    cli_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    dataset = open_path(str(spider_root), use_cache=False)
    (case,) = dataset.cases
    rows = measure_case(case)
    assert len(rows) == len(cli_rows) > 100  # two series (t1, t2), five levels
    assert all(set(r) == {*ROW_KEYS, *EXTRA_KEYS} for r in rows)
    assert sorted(map(_key, rows)) == sorted(map(_key, cli_rows))
    assert any("SPIDER gradings" in (r["dataset_grade"] or "") for r in rows)


def test_a_label_map_that_cannot_be_read_is_one_row_saying_why(spider_root: Path, tmp_path: Path) -> None:
    dataset = open_path(str(spider_root), use_cache=False)
    (case,) = dataset.cases
    label_map = case.label_maps[0]
    broken = tmp_path / "broken.mha"
    data = Path(label_map.source).read_bytes()
    broken.write_bytes(data)
    from lumbarview.core.dataset import LabelMap
    from lumbarview.io.volume import open_label_volume

    case.label_maps = [LabelMap("broken", open_label_volume(broken), label_map.scheme, str(broken),
                                label_map.bound_to)]
    broken.write_bytes(data[: len(data) // 2])  # the voxels are cut off after the header was read
    rows = measure_case(case)
    assert is_failure(rows)
    assert "could not be measured" in rows[0]["reason"]


def test_failure_budget() -> None:
    assert FailureBudget.parse("2").exceeded(2, 10) is False
    assert FailureBudget.parse("2").exceeded(3, 10) is True
    assert FailureBudget.parse("10%").limit(50) == 5
    assert FailureBudget.parse("0").exceeded(1, 1) is True
    assert FailureBudget().exceeded(100, 100) is False
    for bad in ("x", "-1", "150%", "1.5"):
        with pytest.raises(ValueError, match="max-failures"):
            FailureBudget.parse(bad)


def test_summary_marks_flags_and_low_confidence(spider_root: Path) -> None:
    (case,) = open_path(str(spider_root), use_cache=False).cases
    series = series_name(case, case.label_maps[0])
    rows = [r for r in measure_case(case) if r["series"] == series]
    assert rows
    text = format_summary(rows)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    l45 = [line for line in lines if line.strip().startswith("L4-L5")]
    assert len(l45) == 2  # one line per table
    ap = next(r for r in rows if r["level"] == "L4-L5" and r["quantity"] == "canal_ap")
    area = next(r for r in rows if r["level"] == "L4-L5" and r["quantity"] == "canal_area")
    assert ap["flag"] and f"{ap['value']:.1f}*" in l45[0]
    assert area["confidence"] == "low" and f"{area['value']:.1f}~" in l45[0]
    assert "mm²" in text and "* L4-L5 canal_ap" in text

