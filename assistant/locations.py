"""Where a chunk or a quote sits in its original file: a PDF page, a slide, a sheet and row.

Readers give (offset, location) breakpoints over a document's text. Each chunk stores the
location at its start as flat metadata (`page`, `slide`, `sheet`, `row`: listings and filters
read them) and the breakpoints that fall inside it as compact JSON under `locations`, so a
quote anywhere in the chunk resolves to its own page or row, not the chunk's first one.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.schemas import Location

LOCATION_KEYS = ("page", "slide", "sheet", "row")
LOCATIONS_KEY = "locations"

Breakpoints = Sequence[tuple[int, Mapping[str, Any]]]


def chunk_locations(breakpoints: Breakpoints, start: int, end: int) -> dict[str, Any]:
    """Chunk metadata for the text span [start, end) of a document with these breakpoints."""
    if not breakpoints:
        return {}
    offsets = [offset for offset, _ in breakpoints]
    at = bisect_right(offsets, start) - 1
    # Text before the first breakpoint (a deck's title line) belongs to the first location.
    inside: list[tuple[int, Mapping[str, Any]]] = [(start, breakpoints[max(at, 0)][1])]
    inside += [(o, loc) for o, loc in breakpoints[at + 1:] if start < o < end]
    meta: dict[str, Any] = {k: v for k, v in inside[0][1].items() if k in LOCATION_KEYS}
    if len(inside) > 1 or meta:
        meta[LOCATIONS_KEY] = json.dumps(
            [[o, {k: v for k, v in loc.items() if k in LOCATION_KEYS}] for o, loc in inside],
            separators=(",", ":"))
    return meta


def location_at(meta: Mapping[str, Any], offset: int | None = None) -> Location | None:
    """The location of document offset `offset` (default: the chunk's start), or None."""
    entries: list[tuple[int, dict[str, Any]]] = []
    raw = meta.get(LOCATIONS_KEY)
    if isinstance(raw, str) and raw:
        try:
            entries = [(int(o), dict(loc)) for o, loc in json.loads(raw)]
        except (ValueError, TypeError):
            entries = []  # a damaged value costs the precise location, not the answer
    if entries and offset is not None:
        at = max(bisect_right([o for o, _ in entries], offset) - 1, 0)
        return make_location(entries[at][1])
    if entries:
        return make_location(entries[0][1])
    return make_location({k: meta[k] for k in LOCATION_KEYS if k in meta})


def make_location(fields: Mapping[str, Any]) -> Location | None:
    """A Location with its display label, or None when `fields` names no place."""
    page, slide, sheet, row = (fields.get(k) for k in LOCATION_KEYS)
    page = _positive(page)
    slide = _positive(slide)
    row = _positive(row)
    sheet = str(sheet) if sheet not in (None, "") else None
    if page:
        label = f"p. {page}"
    elif slide:
        label = f"slide {slide}"
    elif sheet and row:
        label = f"{sheet}, row {row}"
    elif sheet:
        label = sheet
    elif row:
        label = f"row {row}"
    else:
        return None
    return Location(page=page, slide=slide, sheet=sheet, row=row, label=label)


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
