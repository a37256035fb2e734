"""PDF: pypdf's text layer page by page, pages joined with PAGE_BREAK and located by number.

Two kinds of page get more than pypdf gives:
- a page with a ruled table (pdfplumber finds one of at least 2 rows and 2 columns) is
  re-read with pdfplumber so the table becomes header-carrying rows at its place on the
  page, the text around it kept in reading order;
- a page with no text layer (a scan) is OCR'd (ocr.py).
Every other page keeps pypdf's text exactly, so re-reading a text PDF changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.errors import ReadError
from assistant.readers.base import PAGE_BREAK, LoadedFile, TextBuilder
from assistant.readers.ocr import TESSERACT_MISSING, needs_ocr, ocr_pages
from assistant.readers.tables import render_table

Box = tuple[float, float, float, float]  # pdfplumber's (x0, top, x1, bottom)
_INFO_KEYS = (("/Title", "title"), ("/Author", "author"), ("/Keywords", "tags"),
              ("/DocType", "doc_type"), ("/Client", "client"), ("/Date", "date"))


def read_pdf(path: Path) -> LoadedFile:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        info: dict[str, Any] = dict(reader.metadata or {})
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ReadError(f"PDF could not be parsed: {exc}") from None
    meta: dict[str, Any] = {name: str(info[key]) for key, name in _INFO_KEYS if info.get(key)}
    warnings: list[str] = []
    scanned = [i for i, text in enumerate(pages) if needs_ocr(text)]
    for index, text in _table_pages(path, skip=set(scanned), warnings=warnings).items():
        pages[index] = text
    ocr = ocr_pages(path, scanned)
    warnings += ocr.warnings
    for index, text in ocr.texts.items():
        pages[index] = text
    if ocr.texts:
        meta["ocr"] = True
        meta["ocr_pages"] = len(ocr.texts)
    if scanned and not any(p.strip() for p in pages):
        raise ReadError(TESSERACT_MISSING if ocr.tesseract_missing
                        else "no text could be extracted (scanned pages: OCR found none)")
    out = TextBuilder()
    for number, text in enumerate(pages, start=1):
        out.add(text, {"page": number}, sep=PAGE_BREAK)
    return LoadedFile(out.text, meta, out.locations, warnings)


def _table_pages(path: Path, skip: set[int], warnings: list[str]) -> dict[int, str]:
    """0-based index → text, for the pages holding a table; the others are left to pypdf."""
    import pdfplumber

    candidates = [i for i in _pages_with_paths(path) if i not in skip]
    if not candidates:
        return {}
    found: dict[int, str] = {}
    try:
        with pdfplumber.open(str(path), pages=[i + 1 for i in candidates]) as pdf:
            for index, page in zip(candidates, pdf.pages, strict=True):
                try:
                    tables = [(t.bbox, rows) for t in page.find_tables()
                              if _is_table(rows := t.extract())]
                    if tables:
                        found[index] = _page_with_tables(page, tables)
                finally:
                    page.close()  # pdfplumber caches each page's objects until closed
    except Exception as exc:  # pdfminer failing where pypdf did not: keep pypdf's text
        warnings.append(f"tables could not be read ({type(exc).__name__}); kept as plain text")
        return {}
    return found


def _pages_with_paths(path: Path) -> list[int]:
    """Pages that draw any line or box: a ruled table needs them. pdfium tells in
    milliseconds what pdfplumber needs most of a second a page to find out."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(str(path))
    except Exception:  # pdfium refuses the file: let pdfplumber look at every page
        from pypdf import PdfReader

        return list(range(len(PdfReader(str(path)).pages)))
    try:
        return [i for i, page in enumerate(document)
                if next(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_PATH,)), None)]
    finally:
        document.close()


def _is_table(rows: Sequence[Sequence[Any]]) -> bool:
    filled = [r for r in rows if any(c and str(c).strip() for c in r)]
    return len(filled) >= 2 and max(len(r) for r in filled) >= 2


def _page_with_tables(page: Any, tables: list[tuple[Box, list[list[Any]]]]) -> str:
    """The page's text top to bottom: plain text between the tables, each table as rows.

    Characters are placed by their centre: text beside a table (a side note) follows the
    table, and nothing inside a table is read twice.
    """
    tables = sorted(tables, key=lambda t: t[0][1])
    boxes = [bbox for bbox, _ in tables]

    def band(top: float, bottom: float) -> str:
        def keep(obj: dict[str, Any]) -> bool:
            if obj.get("object_type") != "char":
                return False
            x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
            return top <= y < bottom and not any(
                x0 <= x <= x1 and t <= y <= b for x0, t, x1, b in boxes)

        if top >= bottom:
            return ""
        return str(page.filter(keep).extract_text() or "").strip()

    blocks: list[str] = []
    cursor = float("-inf")
    for (_, top, _, bottom), rows in tables:
        blocks.append(band(cursor, top))
        blocks.append(render_table(rows))
        blocks.append(band(max(cursor, top), bottom))  # beside the table
        cursor = max(cursor, bottom)
    blocks.append(band(cursor, float("inf")))
    return "\n".join(b for b in blocks if b)
