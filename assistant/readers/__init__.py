"""File readers: turn .md/.txt/.html/.pdf/.docx/.pptx/.xlsx/.csv into text plus metadata.

Every reader returns text whose headings (where the format has them) are written as Markdown
`#` lines, so one header-aware chunker serves every format and `section` means the same thing
everywhere. PDF pages are joined with form feeds so the chunker can name the page; readers
also record where each part of the text sits in the original (page, slide, sheet and row).

Modules: base (LoadedFile, decoding), metadata (normalise_metadata), text (md/txt/html),
pdf and ocr, office (docx/pptx), sheets (xlsx/csv), tables (rows with their header).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.errors import ReadError
from assistant.readers.base import PAGE_BREAK, LoadedFile
from assistant.readers.metadata import DOC_TYPES, normalise_metadata
from assistant.readers.office import read_docx, read_pptx
from assistant.readers.pdf import read_pdf
from assistant.readers.sheets import read_csv, read_xlsx
from assistant.readers.text import read_html, read_markdown, read_text

__all__ = ["DOC_TYPES", "PAGE_BREAK", "SUPPORTED_SUFFIXES", "LoadedFile", "ReadError",
           "normalise_metadata", "read_file"]

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx",
                      ".pptx", ".xlsx", ".csv")

_READERS: dict[str, Callable[[Path], LoadedFile]] = {
    ".md": read_markdown, ".markdown": read_markdown, ".txt": read_text,
    ".html": read_html, ".htm": read_html, ".pdf": read_pdf, ".docx": read_docx,
    ".pptx": read_pptx, ".xlsx": read_xlsx, ".csv": read_csv,
}


def read_file(path: Path, doc_id: str) -> LoadedFile:
    """Read one file by its suffix, normalise its metadata and refuse empty text."""
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    try:
        if reader is None:
            raise ReadError(f"unsupported file type {suffix!r}")
        loaded = reader(path)
        if not loaded.text.strip():
            raise ReadError("no text could be extracted (empty file?)")
        loaded.metadata = normalise_metadata(loaded.metadata, doc_id, loaded.text)
    except ReadError:
        raise
    except Exception as exc:
        # A parser failing in a way we did not foresee (YAML's `date: 2024-13-45` raises a bare
        # ValueError) must cost this one file, reported by name, never the whole batch.
        detail = " ".join(str(exc).split())[:160]
        raise ReadError(f"could not be read ({type(exc).__name__}: {detail})") from None
    return loaded
