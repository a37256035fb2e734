"""File readers: turn .md/.txt/.html/.pdf/.docx into plain text plus metadata.

Every reader returns text whose headings (where the format has them) are written as Markdown
`#` lines, so one header-aware chunker serves every format and `section` means the same thing
everywhere. PDF pages are joined with form feeds so the chunker can name the page.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ReadError  # noqa: F401 (re-exported)

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")
DOC_TYPES = ("article", "playbook", "finding")
# Folder names that imply a doc_type when a file's own metadata does not give one.
_FOLDER_DOC_TYPES = {"articles": "article", "playbooks": "playbook", "findings": "finding"}
PAGE_BREAK = "\f"


@dataclass
class LoadedFile:
    """What a reader produced: the text to chunk and the document-level metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def read_file(path: Path, doc_id: str) -> LoadedFile:
    """Read one file by its suffix, normalise its metadata and refuse empty text."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".md", ".markdown"):
            loaded = _read_markdown(path)
        elif suffix == ".txt":
            loaded = LoadedFile(_decode(path.read_bytes(), path))
        elif suffix in (".html", ".htm"):
            loaded = _read_html(path)
        elif suffix == ".pdf":
            loaded = _read_pdf(path)
        elif suffix == ".docx":
            loaded = _read_docx(path)
        else:
            raise ReadError(f"unsupported file type {suffix!r}")
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


# Bytes that text files do not contain (C0 controls bar tab, newlines, form feed and escape).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\v\f\r\x1b")


def _decode(raw: bytes, path: Path) -> str:
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


def _read_markdown(path: Path) -> LoadedFile:
    import frontmatter
    import yaml

    text = _decode(path.read_bytes(), path)
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ReadError(f"invalid YAML front matter: {exc}".splitlines()[0]) from None
    if not isinstance(post.metadata, dict):
        raise ReadError("front matter must be a YAML mapping")
    return LoadedFile(post.content, dict(post.metadata))


_BLOCK_TAGS = ("p", "li", "td", "th", "pre", "blockquote", "dt", "dd", "figcaption")
_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form",
              "template", "svg", "iframe", "button")


def _read_html(path: Path) -> LoadedFile:
    """Parse with BeautifulSoup; drop scripts, styles and navigation boilerplate."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path.read_bytes(), path), "html.parser")
    meta: dict[str, Any] = {}
    for tag in soup.find_all("meta"):
        name = str(tag.get("name") or tag.get("property") or "").lower().removeprefix("cx:")
        if name in ("title", "doc_type", "client", "author", "date", "tags", "keywords"):
            meta["tags" if name == "keywords" else name] = tag.get("content", "")
    if soup.title and soup.title.string and "title" not in meta:
        meta["title"] = soup.title.string.strip()
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "tr", *_BLOCK_TAGS]):
        if el.name in ("p", "li", "td", "th") and el.find_parent(["li", "tr"]) is not None:
            continue  # nested inside a list item or table row already emitted
        if el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            line = "| " + " | ".join(cells) + " |"
        else:
            line = " ".join(el.get_text(" ", strip=True).split())
            if el.name in ("h1", "h2", "h3", "h4"):
                line = "#" * int(el.name[1]) + " " + line
            elif el.name == "li":
                line = "- " + line
        if line.strip("|- "):
            lines.append(line)
    return LoadedFile("\n\n".join(lines), meta)


def _read_pdf(path: Path) -> LoadedFile:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        info: dict[str, Any] = dict(reader.metadata or {})
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ReadError(f"PDF could not be parsed: {exc}") from None
    meta: dict[str, Any] = {}
    for key, name in (("/Title", "title"), ("/Author", "author"), ("/Keywords", "tags"),
                      ("/DocType", "doc_type"), ("/Client", "client"), ("/Date", "date")):
        value = info.get(key)
        if value:
            meta[name] = str(value)
    return LoadedFile(PAGE_BREAK.join(p.strip() for p in pages), meta)


def _read_docx(path: Path) -> LoadedFile:
    """python-docx keeps paragraph styles, so Word headings become sections."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ReadError(f"DOCX could not be parsed: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, lxml errors: all mean a broken file
        raise ReadError(f"DOCX could not be parsed: {type(exc).__name__}") from None
    props = document.core_properties
    meta: dict[str, Any] = {
        "title": props.title, "author": props.author, "tags": props.keywords,
        "doc_type": props.category, "client": props.subject,
        "date": props.created.date().isoformat() if props.created else None,
    }
    lines: list[str] = []
    for block in _docx_blocks(document):
        lines.append(block)
    return LoadedFile("\n\n".join(lines), {k: v for k, v in meta.items() if v})


def _docx_blocks(document: Any) -> list[str]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = " ".join(item.text.split())
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            match = re.match(r"Heading (\d)", style)
            if match:
                text = "#" * min(int(match.group(1)), 4) + " " + text
            elif style == "Title":
                text = "# " + text
            elif "List" in style:
                text = "- " + text
            out.append(text)
        elif isinstance(item, Table):
            for row in item.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                out.append("| " + " | ".join(cells) + " |")
    return out


def normalise_metadata(raw: dict[str, Any], doc_id: str, text: str) -> dict[str, Any]:
    """Front-matter keys → our metadata: strings, tags as a list, ISO date, known doc_type."""
    meta: dict[str, Any] = {}
    title = str(raw.get("title") or "").strip() or _first_heading(text)
    meta["title"] = title or Path(doc_id).stem.replace("-", " ").replace("_", " ")
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
