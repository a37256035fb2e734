"""Workbooks (.xlsx) and CSV: every data row one line carrying its column headers, with a
location naming the row as the spreadsheet numbers it, so a citation can say "row 14".

Hidden sheets are skipped (with a warning): they usually hold lookup lists and scratch
work the author chose not to show. Each sheet is bounded to MAX_SHEET_ROWS data rows; a
sheet of raw survey responses would otherwise swamp the index with near-identical rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import ReadError
from assistant.readers.base import LoadedFile, TextBuilder, _decode, core_metadata, humanise_stem
from assistant.readers.tables import TableRenderer

MAX_SHEET_ROWS = 5000
_CSV_DELIMITERS = ",;\t|"


def format_value(value: Any, number_format: str = "") -> str:
    """A cell value as a person reads it in Excel: 41 not 41.0, 41% for 0.41 formatted as a
    percentage, ISO dates, other floats to at most four decimals."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if "%" in (number_format or ""):
        return _number(value * 100) + "%"
    return _number(value)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer():
        return str(int(value))
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    # A value too small for four decimals keeps four significant digits instead of "0".
    return text if text not in ("0", "-0") else f"{value:.4g}"


def read_xlsx(path: Path) -> LoadedFile:
    """`# title`, then a `## sheet` section per visible sheet with its rows."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:  # InvalidFileException, BadZipFile, KeyError, lxml errors
        raise ReadError(f"XLSX could not be parsed: {type(exc).__name__}") from None
    try:
        meta = core_metadata(workbook.properties)
        out = TextBuilder()
        out.add("# " + (meta.get("title") or humanise_stem(path.stem)))
        warnings: list[str] = []
        for sheet in workbook.worksheets:
            if sheet.sheet_state != "visible":
                warnings.append(f"sheet {sheet.title!r} is hidden: not indexed")
                continue
            _add_sheet(sheet, out, warnings)
    finally:
        workbook.close()  # read-only mode keeps the archive open until closed
    return LoadedFile(out.text, meta, out.locations, warnings)


def _add_sheet(sheet: Any, out: TextBuilder, warnings: list[str]) -> None:
    declared = sheet.max_row  # from the file's <dimension>; None when it has none
    sheet.reset_dimensions()  # a stale <dimension> would cut rows off while reading
    renderer = TableRenderer(limit=MAX_SHEET_ROWS)
    last = 0

    def rows() -> Iterator[tuple[int, list[str]]]:
        nonlocal last
        for number, row in enumerate(sheet.iter_rows(), start=1):
            if renderer.past_limit:
                return  # parsing the rest would cost seconds per 10,000 rows, for nothing
            last = number
            yield number, [format_value(c.value, getattr(c, "number_format", "")) for c in row]

    lines = list(renderer.lines(rows()))
    if not lines:
        return
    name = sheet.title
    out.add(f"## {name}", {"sheet": name})
    for i, (number, line) in enumerate(lines):
        out.add(line, {"sheet": name, "row": number}, sep="\n\n" if i == 0 else "\n")
    if renderer.past_limit:
        # Rows from the first one left out to the declared last row (blank ones included).
        total = MAX_SHEET_ROWS + declared - last + 1 if declared and declared >= last else None
        _warn_cut(f"sheet {name!r}", total, warnings)


def _warn_cut(what: str, total: int | None, warnings: list[str]) -> None:
    count = f"{total:,}" if total else f"more than {MAX_SHEET_ROWS:,}"
    warnings.append(f"{what}: {count} rows, only the first {MAX_SHEET_ROWS:,} indexed")


def read_csv(path: Path) -> LoadedFile:
    """Rows with the first row as header; the delimiter is sniffed (`,` `;` tab `|`)."""
    text = _decode(path.read_bytes(), path)
    try:
        delimiter = csv.Sniffer().sniff(text[:65536], delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:  # one column, or too irregular to tell
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    renderer = TableRenderer(limit=MAX_SHEET_ROWS)
    out = TextBuilder()
    try:
        for number, line in renderer.lines(_numbered(reader)):
            out.add(line, {"row": number}, sep="\n")
    except csv.Error as exc:
        raise ReadError(f"CSV could not be parsed: {exc}") from None
    warnings: list[str] = []
    if renderer.past_limit:
        _warn_cut(path.name, renderer.data_rows, warnings)
    return LoadedFile(out.text, {}, out.locations, warnings)


def _numbered(reader: Any) -> Iterator[tuple[int, Sequence[str]]]:
    """(line number where the record starts, cells): a quoted cell may span lines."""
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1
