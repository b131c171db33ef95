"""Use case: the documents and tables that come with a dataset, for the Report and Tables docks.

Qt-free. PDF attachments are opened and rendered with pypdfium2 (PDFium) into RGB arrays that
the Report dock shows; a page is rendered off the GUI thread (PDFium is not thread-safe, so one
lock serialises every call into it). Tables are gathered from the dataset (UniData export, SPIDER
overview, BIDS participants, RSNA grades), the case (MRIQC, gradings), BIDS JSON sidecars
(shown as key/value tables) and CSV/TSV attachments.

Only the :class:`~lumbarview.core.errors.LoadError` family leaves this module: a damaged,
encrypted or hostile PDF is a :class:`CorruptFileError` naming the file and what to do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lumbarview.core.dataset import Case, Dataset, Table
from lumbarview.core.errors import CorruptFileError, LoadError, MissingDecoderError
from lumbarview.core.fs import open_regular
from lumbarview.core.limits import limits
from lumbarview.core.types import LoadIssue, Severity

#: PDF files larger than this are refused before PDFium sees them (LUMBARVIEW_MAX_TEXT_MB
#: is the text budget; a report is a document, and the same budget keeps hostile sizes out).
_PDF_SUFFIXES = (".pdf",)
_TABLE_SUFFIXES = (".csv", ".tsv")
_POINTS_PER_INCH = 72.0
#: One lock around every PDFium call: the library keeps global state and is not thread-safe.
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class PdfInfo:
    """A PDF's page count and page sizes (points, 1/72 inch)."""

    path: str
    page_sizes_pt: tuple[tuple[float, float], ...]

    @property
    def n_pages(self) -> int:
        return len(self.page_sizes_pt)


def pdf_attachments(dataset: Dataset | None, case: Case | None) -> list[str]:
    """PDF files of the case, then of the dataset, each once, in that order."""
    paths: list[str] = []
    for source in (case.attachments if case is not None else [], dataset.attachments if dataset else []):
        for path in source:
            if path.lower().endswith(_PDF_SUFFIXES) and path not in paths:
                paths.append(path)
    return paths


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as exc:  # an install without the optional renderer
        raise MissingDecoderError(None, "PDF documents need pypdfium2, which is not installed",
                                  "install it with: pip install pypdfium2") from exc
    return pypdfium2


def _check_pdf_file(path: str) -> None:
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise CorruptFileError(path, f"the document cannot be read ({exc.strerror or exc})",
                               "check that the file exists and is readable") from exc
    limits().check_text_file(path, size)
    with open_regular(path) as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        raise CorruptFileError(path, "this is not a PDF document (no %PDF- header)",
                               "re-copy the file from its source, or remove it from the dataset folder")


def _open(path: str) -> Any:
    """A PdfDocument; the caller holds the lock and closes it."""
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise CorruptFileError(path, f"the PDF cannot be opened ({exc})",
                               "it is damaged or password-protected; re-copy it or open it in a PDF reader") from exc


def open_pdf(path: str) -> PdfInfo:
    """The page count and sizes of the PDF at ``path``.

    Raises
    ------
    CorruptFileError
        Not a PDF, damaged, or encrypted.
    ResourceLimitError
        Larger than the text-file budget (``LUMBARVIEW_MAX_TEXT_MB``).
    """
    path = str(path)
    _check_pdf_file(path)
    with _PDFIUM_LOCK:
        doc = _open(path)
        try:
            sizes = []
            for n in range(len(doc)):
                page = doc[n]
                try:
                    width, height = page.get_size()
                finally:
                    page.close()
                sizes.append((float(width), float(height)))
        except Exception as exc:  # PDFium raising on a damaged page tree
            raise CorruptFileError(path, f"the PDF's pages cannot be read ({type(exc).__name__})",
                                   "it is damaged; re-copy it or open it in a PDF reader") from exc
        finally:
            doc.close()
    if not sizes:
        raise CorruptFileError(path, "the PDF has no pages", "re-copy it from its source")
    return PdfInfo(path, tuple(sizes))


def render_page(path: str, page_index: int, dpi: float = 96.0) -> npt.NDArray[np.uint8]:
    """Page ``page_index`` of the PDF as an ``(height, width, 3)`` RGB array at ``dpi``.

    The pixel count is checked against ``LUMBARVIEW_MAX_IMAGE_PIXELS`` before rendering.

    Raises
    ------
    CorruptFileError
        Damaged PDF or page, or a page number out of range.
    ResourceLimitError
        The rendered page would exceed the image budget.
    """
    path = str(path)
    if not 1.0 <= dpi <= 1200.0:
        raise ValueError(f"dpi must be between 1 and 1200, not {dpi}")
    _check_pdf_file(path)
    scale = dpi / _POINTS_PER_INCH
    with _PDFIUM_LOCK:
        doc = _open(path)
        try:
            if not 0 <= page_index < len(doc):
                raise CorruptFileError(path, f"the PDF has no page {page_index + 1} (it has {len(doc)})",
                                       "choose a page between 1 and the page count")
            page = doc[page_index]
            try:
                width_pt, height_pt = page.get_size()
                limits().check_image(path, int(width_pt * scale + 1) * int(height_pt * scale + 1),
                                     f"page {page_index + 1} rendered at {dpi:.0f} dpi")
                bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255), rev_byteorder=True)
                try:
                    rgb = np.array(bitmap.to_numpy(), dtype=np.uint8, copy=True)
                finally:
                    bitmap.close()
            finally:
                page.close()
        except LoadError:
            raise
        except Exception as exc:  # PDFium raising on a damaged content stream
            raise CorruptFileError(path, f"page {page_index + 1} cannot be rendered ({type(exc).__name__})",
                                   "the PDF is damaged; re-copy it or open it in a PDF reader") from exc
        finally:
            doc.close()
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    return np.ascontiguousarray(rgb)  # rev_byteorder: R, G, B order


# -- tables ----------------------------------------------------------------------------------
def sidecar_table(key: str, doc: dict[str, Any]) -> Table:
    """A BIDS JSON sidecar as a two-column table (field, value); nested values as JSON text."""
    import json

    rows: list[dict[str, Any]] = []
    for field, value in doc.items():
        text = value if isinstance(value, str | int | float) and not isinstance(value, bool) else \
            json.dumps(value, ensure_ascii=False)[:2000]
        rows.append({"field": str(field), "value": text})
    name = key.split(":", 1)[-1]
    return Table(f"{name}.json", "bids-sidecar", ["field", "value"], rows, key)


def case_tables(dataset: Dataset | None, case: Case | None) -> tuple[list[Table], list[LoadIssue]]:
    """The tables to show for ``case``: the case's own, its sidecars, the dataset's, and CSV/TSV
    attachments not already read as tables. Attachments that cannot be read are issues."""
    from lumbarview.io.annotations import read_table

    out: list[Table] = []
    issues: list[LoadIssue] = []
    seen_sources: set[str] = set()

    def add(table: Table) -> None:
        out.append(table)
        seen_sources.add(str(table.source))

    if case is not None:
        for table in case.tables:
            add(table)
        for key, doc in case.sidecars.items():
            stack = case.stack(key)
            label = stack.meta.get("description") if stack is not None else None
            add(sidecar_table(str(label or key), doc))
    if dataset is not None:
        for table in dataset.tables:
            add(table)
    attachments = [*(case.attachments if case is not None else []), *(dataset.attachments if dataset else [])]
    for path in attachments:
        if not path.lower().endswith(_TABLE_SUFFIXES) or path in seen_sources:
            continue
        try:
            table, found = read_table(path, "attachment")
        except LoadError as exc:
            issues.append(LoadIssue(Severity.WARNING, "documents.table-unreadable", str(exc), path))
            continue
        add(table)
        issues.extend(found)
    return out, issues


def filter_rows(table: Table, text: str) -> list[dict[str, Any]]:
    """Rows of ``table`` with ``text`` in any cell (case-insensitive); ``column:text`` restricts
    the search to one column (an unknown column matches nothing)."""
    needle = text.strip().lower()
    if not needle:
        return list(table.rows)
    column: str | None = None
    if ":" in needle:
        head, _, rest = needle.partition(":")
        names = {c.lower(): c for c in table.columns}
        if head.strip() in names:
            column, needle = names[head.strip()], rest.strip()
    if column is not None:
        return [r for r in table.rows if needle in str(r.get(column, "")).lower()]
    return [r for r in table.rows if any(needle in str(v).lower() for v in r.values())]


def sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers before text, numbers by value, text without case; empty cells last."""
    if value is None or value == "":
        return (2, 0.0, "")
    if isinstance(value, bool):
        return (1, 0.0, str(value).lower())
    if isinstance(value, int | float):
        return (0, float(value), "")
    try:
        return (0, float(str(value)), "")
    except ValueError:
        return (1, 0.0, str(value).lower())
