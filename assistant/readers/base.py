"""What every reader returns (`LoadedFile`), the page separator, and the shared helpers:
text decoding that refuses binary, and Office core properties → our metadata keys."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import ReadError

PAGE_BREAK = "\f"


@dataclass
class LoadedFile:
    """What a reader produced: the text to chunk and the document-level metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # Where each part of `text` sits in the original: (offset, location) pairs sorted by
    # offset, each holding until the next. A location is {"page": n} (PDF, 1-based),
    # {"slide": n} (deck) or {"sheet": name, "row": n} (workbook; CSV rows have no sheet).
    locations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # What the reader could not read but did not stop for ("page 3: OCR found no text").
    warnings: list[str] = field(default_factory=list)


class TextBuilder:
    """Accumulates blocks of text joined by blank lines and records where each location
    starts, so offsets are taken from the text actually written, never recomputed."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.locations: list[tuple[int, dict[str, Any]]] = []

    def add(self, block: str, location: dict[str, Any] | None = None, sep: str = "\n\n") -> None:
        if self._parts:
            self._parts.append(sep)
            self._length += len(sep)
        if location is not None:
            self.locations.append((self._length, location))
        self._parts.append(block)
        self._length += len(block)

    @property
    def text(self) -> str:
        return "".join(self._parts)


# Bytes that text files do not contain (C0 controls bar tab, newlines, form feed and escape).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\v\f\r\x1b")


def _decode(raw: bytes, path: object = None) -> str:
    """Bytes → text: UTF-16 by BOM, else UTF-8, else cp1252/latin-1; binary is refused."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows "Unicode" text
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise ReadError("invalid UTF-16 text") from None
    sample = raw[:8192]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    # NUL, or more than 5% control bytes: binary (random or compressed bytes have ~10%), which
    # the cp1252/latin-1 fallback below would otherwise index as garbage text.
    if b"\x00" in sample or controls > 0.05 * len(sample):
        raise ReadError("binary content, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # cp1252 decodes any byte sequence bar five; latin-1 catches the rest.
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


# What python-docx, python-pptx and openpyxl write as the author of a file they created.
_LIBRARY_AUTHORS = {"python-docx", "python-pptx", "openpyxl"}


def core_metadata(props: Any) -> dict[str, Any]:
    """Office core properties (python-docx, python-pptx, openpyxl) → our metadata keys.

    Word, PowerPoint and Excel share the same property set, so a consultant fills in
    Category (doc_type) and Subject (client) once and every format reads them alike.
    """
    created = getattr(props, "created", None)
    meta: dict[str, Any] = {
        "title": getattr(props, "title", None),
        # python-docx/pptx call it author, openpyxl creator.
        "author": getattr(props, "author", None) or getattr(props, "creator", None),
        "tags": getattr(props, "keywords", None),
        "doc_type": getattr(props, "category", None),
        "client": getattr(props, "subject", None),
        "date": created.date().isoformat() if created else None,
    }
    if str(meta["author"] or "").strip().lower() in _LIBRARY_AUTHORS:
        meta["author"] = None  # the writing library's default, not a person
    return {k: v for k, v in meta.items() if v}


def humanise_stem(stem: str) -> str:
    """`q3-nps_results` → `q3 nps results`: the title a file without one is known by."""
    return stem.replace("-", " ").replace("_", " ")
