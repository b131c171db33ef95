"""Documents and tables of a dataset (services.documents): PDF pages rendered as pixels, hostile
PDFs refused with a typed error (in a child process: PDFium is native code), tables gathered,
filtered and sorted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumbarview.core.dataset import Case, Dataset, Table
from lumbarview.core.errors import CorruptFileError
from lumbarview.core.limits import ResourceLimitError
from lumbarview.phantom.layouts import Sizes, report_pdf, write_all
from lumbarview.services.documents import (
    case_tables,
    filter_rows,
    open_pdf,
    pdf_attachments,
    render_page,
    sort_key,
)
from lumbarview.services.open_dataset import open_path

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile" / "pdf"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("docs-demo"), sizes=Sizes.small(), layouts=("unidata", "bids"))


def test_the_unidata_report_renders_as_dark_text_on_white(demo: dict[str, Path]) -> None:
    dataset = open_path(str(demo["unidata"]), use_cache=False)
    (pdf,) = pdf_attachments(dataset, dataset.cases[0])
    info = open_pdf(pdf)
    assert info.n_pages == 1 and info.page_sizes_pt[0] == (595.0, 842.0)
    rgb = render_page(pdf, 0, dpi=96)
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert abs(rgb.shape[0] - 842 * 96 / 72) <= 1 and abs(rgb.shape[1] - 595 * 96 / 72) <= 1
    white = (rgb.min(axis=2) > 235).mean()
    dark = rgb.max(axis=2) < 110
    assert white > 0.9  # a page, not a blank or black image
    assert 0.001 < dark.mean() < 0.05  # text: a little dark ink
    rows = np.nonzero(dark.any(axis=1))[0]
    # Text lines in the top part of the page, the heading first (56 pt margin, 16 pt heading).
    assert rows.min() < 0.1 * rgb.shape[0] and rows.max() < 0.5 * rgb.shape[0]
    assert np.nonzero(dark.any(axis=0))[0].min() == pytest.approx(56 * 96 / 72, abs=6)


def test_zoom_scales_the_page(tmp_path: Path) -> None:
    path = tmp_path / "r.pdf"
    path.write_bytes(report_pdf(("Hello",)))
    small, large = render_page(str(path), 0, 48), render_page(str(path), 0, 96)
    assert large.shape[0] == pytest.approx(2 * small.shape[0], abs=2)


@pytest.mark.parametrize("name, why", [
    ("not-a-pdf.pdf", "not a PDF"),
    ("truncated.pdf", "cannot be opened"),
    ("no-pages.pdf", "cannot be opened"),
])
def test_hostile_pdfs_are_typed_errors_in_a_child(name: str, why: str) -> None:
    """Each regression file, opened and rendered in a child process: a crash there fails the
    test instead of killing pytest; the child prints the error's class and message."""
    code = ("import json, sys\n"
            "from lumbarview.core.errors import LoadError\n"
            "from lumbarview.services.documents import open_pdf, render_page\n"
            "try:\n"
            "    open_pdf(sys.argv[1]); render_page(sys.argv[1], 0)\n"
            "    print(json.dumps(['ok', '']))\n"
            "except LoadError as exc:\n"
            "    print(json.dumps([type(exc).__name__, str(exc)]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(HOSTILE / name)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    kind, message = json.loads(done.stdout.strip().splitlines()[-1])
    assert kind == "CorruptFileError" and why in message and name in message


def test_page_out_of_range_and_image_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.pdf"
    path.write_bytes(report_pdf())
    with pytest.raises(CorruptFileError, match="no page 3"):
        render_page(str(path), 2)
    monkeypatch.setenv("LUMBARVIEW_MAX_IMAGE_PIXELS", "10000")
    with pytest.raises(ResourceLimitError, match="LUMBARVIEW_MAX_IMAGE_PIXELS"):
        render_page(str(path), 0, 96)


def test_tables_of_unidata_and_bids(demo: dict[str, Path]) -> None:
    unidata = open_path(str(demo["unidata"]), use_cache=False)
    tables, issues = case_tables(unidata, unidata.cases[0])
    assert not issues
    csv = next(t for t in tables if t.name == "lumbar_spine_mri.csv")
    assert csv.columns == ["file_name", "type", "description"] and csv.rows[0]["file_name"] == "DICOMDIR"
    bids = open_path(str(demo["bids"]), use_cache=False)
    case = bids.cases[0]
    tables, _ = case_tables(bids, case)
    kinds = {t.kind for t in tables}
    assert "bids-sidecar" in kinds and "participants" in {t.name.split(".")[0] for t in tables} | kinds
    sidecar = next(t for t in tables if t.kind == "bids-sidecar")
    doc = next(iter(case.sidecars.values()))
    assert {r["field"] for r in sidecar.rows} == set(doc)


def test_an_unreadable_csv_attachment_is_an_issue_not_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"a,b\n1,\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08" * 5)
    dataset = Dataset(str(tmp_path), "folder", attachments=[str(bad)])
    tables, issues = case_tables(dataset, Case("1"))
    assert tables == [] and [i.code for i in issues] == ["documents.table-unreadable"]


def test_filter_and_sort() -> None:
    table = Table("t", "test", ["level", "grade"], [
        {"level": "L4-L5", "grade": 10}, {"level": "L5-S1", "grade": 2}, {"level": "L3-L4", "grade": ""},
        {"level": "l4-l5 right", "grade": "1.5"}], "t.csv")
    assert [r["grade"] for r in filter_rows(table, "l4-l5")] == [10, "1.5"]
    assert [r["level"] for r in filter_rows(table, "grade: 2")] == ["L5-S1"]
    assert filter_rows(table, "nosuchcolumn: 2") == []
    assert len(filter_rows(table, "  ")) == 4
    ordered = sorted((r["grade"] for r in table.rows), key=sort_key)
    assert ordered == ["1.5", 2, 10, ""]  # numbers by value (text numbers too), empty last
