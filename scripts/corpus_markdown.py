"""The Markdown subset that the corpus sources are written in, and the parsed source model.

Shared by ``scripts/build_corpus_formats.py`` and the renderers it imports
(``corpus_office.py``, ``corpus_scans.py``), so each renderer sees the same blocks.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter

# Output formats, and the file suffix each is written with when it is not the format's name.
FORMATS = ("html", "pdf", "docx", "pptx", "xlsx", "scan")
SUFFIXES = {"scan": "pdf"}
# Formats whose sources may hold one table per slide or sheet rather than one in all.
MANY_TABLES = ("pptx", "xlsx")
# Front-matter keys every source must have (plus "format"); "client" is optional.
REQUIRED_KEYS = ("title", "doc_type", "author", "date", "tags")


Segment = tuple[str, bool]  # (text, is_bold)


@dataclass
class Block:
    """One block of the document body.

    kind is "heading" (level 1-3), "paragraph", "bullets", "numbers" or "table". Paragraphs
    and headings use ``items[0]``; lists have one item per entry; tables have one item per
    cell in ``rows`` (the first row is the header).
    """

    kind: str
    level: int = 0
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    """A parsed source: metadata from the front matter and the body as blocks."""

    path: Path
    folder: str
    name: str
    fmt: str
    title: str
    doc_type: str
    author: str
    date: dt.date
    tags: list[str]
    client: str | None
    blocks: list[Block]

    def output_path(self, out: Path) -> Path:
        """Where the rendered file goes under the output root (``corpus/`` by default)."""
        return out / self.folder / f"{self.name}.{SUFFIXES.get(self.fmt, self.fmt)}"

    @property
    def timestamp(self) -> dt.datetime:
        """The document date at midnight UTC: the only time any output records."""
        return dt.datetime(self.date.year, self.date.month, self.date.day, tzinfo=dt.UTC)


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^[-*+]\s+(.+)$")
_NUMBER = re.compile(r"^\d+[.)]\s+(.+)$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def load_source(path: Path) -> Source:
    """Read one source file and check its front matter."""
    post = frontmatter.load(str(path))
    meta: dict[str, Any] = dict(post.metadata)
    missing = [key for key in (*REQUIRED_KEYS, "format") if not meta.get(key)]
    if missing:
        raise ValueError(f"{path}: front matter lacks {', '.join(missing)}")
    fmt = str(meta["format"]).strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path}: format must be one of {FORMATS}, not {fmt!r}")
    date = meta["date"]
    if isinstance(date, dt.datetime):
        date = date.date()
    elif isinstance(date, str):
        date = dt.date.fromisoformat(date.strip())
    if not isinstance(date, dt.date):
        raise ValueError(f"{path}: date must be YYYY-MM-DD")
    tags = meta["tags"]
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    client = str(meta["client"]).strip() if meta.get("client") else None
    return Source(
        path=path,
        folder=path.parent.name,
        name=path.stem,
        fmt=fmt,
        title=str(meta["title"]).strip(),
        doc_type=str(meta["doc_type"]).strip(),
        author=str(meta["author"]).strip(),
        date=date,
        tags=[str(t).strip() for t in tags if str(t).strip()],
        client=client,
        blocks=parse_markdown(post.content, path, many_tables=fmt in MANY_TABLES),
    )


def parse_markdown(text: str, path: Path, *, many_tables: bool = False) -> list[Block]:
    """Split the supported Markdown subset into blocks; reject anything outside it.

    A document has at most one table unless ``many_tables`` (decks and workbooks, where each
    slide or sheet may carry its own).
    """
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(Block("paragraph", items=[" ".join(paragraph)]))
            paragraph.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path}:{number} (body line)"
        if not line:
            flush_paragraph()
            continue
        if heading := _HEADING.match(line):
            flush_paragraph()
            level = len(heading.group(1))
            if level > 3:
                raise ValueError(f"{where}: only #, ## and ### headings are supported")
            blocks.append(Block("heading", level=level, items=[heading.group(2)]))
        elif line.startswith("|"):
            flush_paragraph()
            if _TABLE_RULE.match(line):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if blocks and blocks[-1].kind == "table":
                blocks[-1].rows.append(cells)
            elif not many_tables and any(b.kind == "table" for b in blocks):
                raise ValueError(f"{where}: at most one table per document is supported")
            else:
                blocks.append(Block("table", rows=[cells]))
        elif (bullet := _BULLET.match(line)) or (numbered := _NUMBER.match(line)):
            flush_paragraph()
            kind, item = ("bullets", bullet.group(1)) if bullet else ("numbers", numbered.group(1))
            if blocks and blocks[-1].kind == kind:
                blocks[-1].items.append(item)
            else:
                blocks.append(Block(kind, items=[item]))
        elif raw[:1].isspace() and blocks and blocks[-1].kind in ("bullets", "numbers") \
                and not paragraph:
            blocks[-1].items[-1] += " " + line  # continuation of a wrapped list item
        else:
            if line.startswith((">", "```", "<")):
                raise ValueError(f"{where}: quotes, code and raw HTML are not supported")
            paragraph.append(line)
    flush_paragraph()
    for block in blocks:
        if block.kind == "table" and len({len(row) for row in block.rows}) != 1:
            raise ValueError(f"{path}: every table row must have the same number of cells")
    return blocks


def segments(text: str) -> list[Segment]:
    """Split inline text into plain and **bold** runs."""
    out: list[Segment] = []
    pos = 0
    for match in _BOLD.finditer(text):
        if match.start() > pos:
            out.append((text[pos:match.start()], False))
        out.append((match.group(1), True))
        pos = match.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def plain(text: str) -> str:
    """Inline text without bold markers."""
    return "".join(part for part, _ in segments(text))


