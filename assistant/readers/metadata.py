"""Reader metadata → the keys every chunk carries: strings, tags as a list, ISO date, a
known doc_type (from the file, else from its folder)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from assistant.readers.base import humanise_stem

DOC_TYPES = ("article", "playbook", "finding")
# Folder names that imply a doc_type when a file's own metadata does not give one.
_FOLDER_DOC_TYPES = {"articles": "article", "playbooks": "playbook", "findings": "finding"}


def normalise_metadata(raw: dict[str, Any], doc_id: str, text: str) -> dict[str, Any]:
    """Front-matter keys → our metadata: strings, tags as a list, ISO date, known doc_type."""
    meta: dict[str, Any] = {}
    title = str(raw.get("title") or "").strip() or _first_heading(text)
    meta["title"] = title or humanise_stem(Path(doc_id).stem)
    doc_type = str(raw.get("doc_type") or "").strip().lower()
    if not doc_type:
        folder = doc_id.split("/")[0] if "/" in doc_id else ""
        doc_type = _FOLDER_DOC_TYPES.get(folder, "")
    meta["doc_type"] = doc_type or "other"
    for key in ("client", "author"):
        if raw.get(key):
            meta[key] = str(raw[key]).strip()
    date = _iso_date(raw.get("date"))
    if date:
        meta["date"] = date
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,;]", tags)]
    meta["tags"] = sorted({str(t).strip().lower() for t in tags if str(t).strip()})
    # Set by the PDF reader when scanned pages were read by OCR, so answers quoting them
    # can say the text may hold recognition errors.
    if isinstance(raw.get("ocr"), bool):
        meta["ocr"] = raw["ocr"]
    pages = raw.get("ocr_pages")
    if isinstance(pages, int) and not isinstance(pages, bool):
        meta["ocr_pages"] = pages
    return meta


def _first_heading(text: str) -> str:
    match = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, flags=re.M)
    return match.group(1).strip() if match else ""


def _iso_date(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        match = re.match(r"^\s*(\d{4})-(\d{2})-(\d{2})", value)
        if match:
            return "-".join(match.groups())
        match = re.match(r"^\s*D:(\d{4})(\d{2})(\d{2})", value)  # PDF date string
        if match:
            return "-".join(match.groups())
    return None
