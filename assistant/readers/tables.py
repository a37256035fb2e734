"""Tables as one line per data row, each value next to its column header.

A consultant asks "what was the NPS for Q3 at Verdant?" and the answer quotes one chunk; a
bare `| Verdant | 41 |` row means nothing once split from its header, so every row carries
it: `| Client: Verdant | Quarter: Q3 | NPS: 41 |`. DOCX, PPTX, PDF, XLSX and CSV tables all
go through `TableRenderer`, so a row reads the same whatever file it came from.

Header detection: the first non-empty row is the header, except that leading *caption*
rows (only the first cell filled, or one merged value repeated across the row: a sheet's
"Q3 NPS by client" above the real table) are written as plain lines when a later row has
two or more values. A table with a single row is written as `| v1 | v2 |`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

Key = TypeVar("Key")

# Leading caption rows looked at before deciding the table is a one-column list.
_MAX_CAPTIONS = 5


def cell_text(value: object) -> str:
    """A cell's text with its whitespace (line breaks included) collapsed to single spaces."""
    return " ".join(str(value).split()) if value is not None else ""


def row_line(header: Sequence[str], cells: Sequence[str]) -> str:
    """`| Header: value | ... |` for the non-empty cells; a cell without a header is bare."""
    parts = []
    for i, value in enumerate(cells):
        if not value:
            continue
        name = header[i] if i < len(header) else ""
        parts.append(f"{name}: {value}" if name else value)
    return "| " + " | ".join(parts) + " |" if parts else ""


def plain_row(cells: Sequence[str]) -> str:
    """`| v1 | v2 |`: a table that is only one row has no header to carry."""
    values = [c for c in cells if c]
    return "| " + " | ".join(values) + " |" if values else ""


def _is_caption(cells: Sequence[str]) -> bool:
    filled = [c for c in cells if c]
    if len(filled) == 1:
        return bool(cells[0])
    return len(filled) > 1 and len(set(filled)) == 1  # one merged value across the row


class TableRenderer:
    """Streams rows → lines. `limit` bounds the data rows written; `data_rows` counts all
    of them (written or not), so a caller can say how many were left out."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.data_rows = 0

    @property
    def past_limit(self) -> bool:
        """True once a data row beyond the limit was seen: the caller may stop feeding."""
        return self.limit is not None and self.data_rows > self.limit

    def lines(self, rows: Iterable[tuple[Key, Sequence[object]]]) -> Iterator[tuple[Key, str]]:
        """(key, line) for each line of output; key is the caller's (row number, index)."""
        pending: list[tuple[Key, list[str]]] = []  # caption candidates, header not yet known
        header: list[str] | None = None
        header_key: Key | None = None
        for key, raw in rows:
            cells = [cell_text(c) for c in raw]
            if not any(cells):
                continue
            if header is None:
                pending.append((key, cells))
                if _is_caption(cells) and len(pending) <= _MAX_CAPTIONS:
                    continue
                # This row ends the captions: the ones before it are captions, it is the
                # header, unless all rows so far look like captions (a one-column list).
                first = len(pending) - 1 if not _is_caption(cells) else 0
                yield from ((k, " ".join(dict.fromkeys(c for c in cs if c)))
                            for k, cs in pending[:first])
                header_key, header = pending[first]
                data, pending = pending[first + 1 :], []
                for k, cs in data:
                    yield from self._data(k, header, cs)
                continue
            yield from self._data(key, header, cells)
        if header is None and pending:  # the input ended before a header was settled
            header_key, header = pending[0]
            for k, cs in pending[1:]:
                yield from self._data(k, header, cs)
        if header is not None and header_key is not None and self.data_rows == 0:
            yield header_key, plain_row(header)  # a one-row table: no header to carry

    def _data(self, key: Key, header: list[str], cells: list[str]) -> Iterator[tuple[Key, str]]:
        if cells == header:  # the header repeated (a table continued across pages)
            return
        self.data_rows += 1
        if self.past_limit:
            return
        line = row_line(header, cells)
        if line:
            yield key, line


def render_table(rows: Iterable[Sequence[object]]) -> str:
    """A whole table as its lines joined by newlines (one block for the chunker)."""
    renderer = TableRenderer()
    return "\n".join(line for _, line in renderer.lines(enumerate(rows)))
