"""Render the sample corpus's non-Markdown documents from their Markdown sources.

The sample knowledge base under ``corpus/`` is mostly Markdown, but a handful of documents are
kept as HTML, PDF and DOCX so that every reader in ``assistant/readers.py`` is exercised by real
files. Their sources live in ``scripts/corpus_sources/<folder>/<name>.md``, each with YAML front
matter that names the output ``format`` (``html``, ``pdf`` or ``docx``). This script renders each
source to ``corpus/<folder>/<name>.<format>``:

* HTML: a full page whose metadata sits in ``<title>`` and ``<meta name=...>`` tags, with a site
  menu, footer and analytics stub outside ``<main>`` (boilerplate the reader must drop).
* PDF (fpdf2, core Helvetica font): title, author and keywords in the document information
  dictionary, plus the custom keys ``/DocType``, ``/Client`` and ``/Date`` added with pypdf.
* DOCX (python-docx): title, author, keywords, category (doc_type), subject (client) and created
  date in the core properties; Word heading, list and table styles in the body.

Only a small Markdown subset is supported, and anything else is an error: ``#``/``##``/``###``
headings, paragraphs, bullet and numbered lists, ``**bold**`` and at most one pipe table.

Output is deterministic: dates come from the front matter's ``date`` (never "now"), PDF file
identifiers are content hashes, and DOCX zip entries get fixed timestamps, so re-running the
script produces the same bytes.

Run from the repository root::

    .venv/bin/python scripts/build_corpus_formats.py
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import sys
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "corpus_sources"
CORPUS = ROOT / "corpus"
FORMATS = ("html", "pdf", "docx")
# Front-matter keys every source must have (plus "format"); "client" is optional.
REQUIRED_KEYS = ("title", "doc_type", "author", "date", "tags")


# --------------------------------------------------------------------------------------------
# Source documents and the Markdown subset
# --------------------------------------------------------------------------------------------

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

    @property
    def output_path(self) -> Path:
        return CORPUS / self.folder / f"{self.name}.{self.fmt}"

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
        blocks=parse_markdown(post.content, path),
    )


def parse_markdown(text: str, path: Path) -> list[Block]:
    """Split the supported Markdown subset into blocks; reject anything outside it."""
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
            elif any(b.kind == "table" for b in blocks):
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


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def _html_inline(text: str) -> str:
    return "".join(
        f"<strong>{html.escape(part, quote=False)}</strong>" if bold
        else html.escape(part, quote=False)
        for part, bold in segments(text)
    )


def render_html(src: Source) -> bytes:
    """A complete page: metadata in <head>, content in <main>, boilerplate around it."""
    esc = html.escape
    head = [
        f"<title>{esc(src.title)}</title>",
        f'<meta name="doc_type" content="{esc(src.doc_type)}">',
        f'<meta name="author" content="{esc(src.author)}">',
        f'<meta name="date" content="{src.date.isoformat()}">',
        f'<meta name="tags" content="{esc(", ".join(src.tags))}">',
    ]
    if src.client:
        head.append(f'<meta name="client" content="{esc(src.client)}">')
    body: list[str] = []
    for block in src.blocks:
        if block.kind == "heading":
            tag = f"h{block.level}"
            body.append(f"<{tag}>{_html_inline(block.items[0])}</{tag}>")
        elif block.kind == "paragraph":
            body.append(f"<p>{_html_inline(block.items[0])}</p>")
        elif block.kind in ("bullets", "numbers"):
            tag = "ul" if block.kind == "bullets" else "ol"
            body.append(f"<{tag}>")
            body.extend(f"  <li>{_html_inline(item)}</li>" for item in block.items)
            body.append(f"</{tag}>")
        elif block.kind == "table":
            body.append("<table>")
            for index, row in enumerate(block.rows):
                cell = "th" if index == 0 else "td"
                cells = "".join(f"<{cell}>{_html_inline(c)}</{cell}>" for c in row)
                body.append(f"  <tr>{cells}</tr>")
            body.append("</table>")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        *head,
        "</head>",
        "<body>",
        '<nav class="site-menu"><a href="/">Home</a> | <a href="/articles/">Articles</a>'
        ' | <a href="/playbooks/">Playbooks</a></nav>',
        "<main>",
        *body,
        "</main>",
        f"<footer><p>&copy; {src.date.year} Cx Practice shared drive. Internal use only."
        " All rights reserved.</p></footer>",
        "<script>",
        "  window.dataLayer = window.dataLayer || [];",
        "  function track(name) {",
        "    window.dataLayer.push({event: name, page: location.pathname});",
        "  }",
        '  track("page_view");',
        "</script>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(page).encode("utf-8")


# --------------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------------

_LATIN1_FIXES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u2022": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    "\u2192": "->", "\u2190": "<-", "\u2264": "<=", "\u2265": ">=", "\u2248": "~",
    "\u2122": "(TM)", "\u20ac": "EUR ",
}
_FPDF_MARKERS = ("**", "__", "~~", "--")


def to_latin1(text: str) -> str:
    """Make text printable in a core PDF font: ASCII stand-ins for typographic characters."""
    text = "".join(_LATIN1_FIXES.get(ch, ch) for ch in text)
    if all(ord(ch) < 256 for ch in text):
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return text.encode("latin-1", "replace").decode("latin-1")


def _pdf_markdown(text: str) -> str:
    """fpdf2 markdown for our inline text: bold runs marked, every other marker escaped."""
    out: list[str] = []
    for part, bold in segments(text):
        part = to_latin1(part).replace("\\", "\\\\")
        for marker in _FPDF_MARKERS:
            part = part.replace(marker, "\\" + marker)
        out.append(f"**{part}**" if bold else part)
    return "".join(out)


def render_pdf(src: Source) -> bytes:
    """fpdf2 lays the text out; pypdf then adds the custom document-information keys."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos
    from pypdf import PdfReader, PdfWriter

    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(to_latin1(src.title))
    pdf.set_author(to_latin1(src.author))
    pdf.set_keywords(to_latin1(", ".join(src.tags)))
    pdf.set_creator("scripts/build_corpus_formats.py")
    pdf.set_creation_date(src.timestamp)
    pdf.add_page()
    line_h = 5.5
    sizes = {1: 17, 2: 13.5, 3: 11.5}

    def text_cell(text: str, *, indent: float = 0.0, bold: bool = False) -> None:
        pdf.set_font("Helvetica", "B" if bold else "", 10.5)
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(pdf.epw - indent, line_h, _pdf_markdown(text), markdown=True,
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    for block in src.blocks:
        if block.kind == "heading":
            title = to_latin1(plain(block.items[0]))
            pdf.ln(3 if block.level > 1 else 0)
            pdf.start_section(title, level=block.level - 1, strict=False)
            pdf.set_font("Helvetica", "B", sizes[block.level])
            pdf.multi_cell(0, sizes[block.level] * 0.5, title,
                           new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2)
        elif block.kind == "paragraph":
            text_cell(block.items[0])
            pdf.ln(2.5)
        elif block.kind in ("bullets", "numbers"):
            for number, item in enumerate(block.items, start=1):
                marker = "-" if block.kind == "bullets" else f"{number}."
                pdf.set_font("Helvetica", "", 10.5)
                pdf.set_x(pdf.l_margin + 3)
                pdf.cell(7, line_h, marker)
                pdf.multi_cell(pdf.epw - 10, line_h, _pdf_markdown(item), markdown=True,
                               new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
            pdf.ln(1.5)
        elif block.kind == "table":
            # Simple rows, cells separated by " | ", header row in bold.
            for index, row in enumerate(block.rows):
                text_cell(" | ".join(plain(c) for c in row), indent=3, bold=index == 0)
                pdf.ln(1)
            pdf.ln(1.5)

    reader = PdfReader(io.BytesIO(bytes(pdf.output())))
    writer = PdfWriter(clone_from=reader)
    custom = {"/DocType": src.doc_type, "/Date": src.date.isoformat()}
    if src.client:
        custom["/Client"] = to_latin1(src.client)
    writer.add_metadata(custom)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------------------------

def render_docx(src: Source) -> bytes:
    """python-docx document with core properties; zip entries re-stamped with the doc date."""
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = src.title
    props.author = src.author
    props.keywords = ", ".join(src.tags)
    props.category = src.doc_type
    props.subject = src.client or ""
    props.created = src.timestamp
    props.modified = src.timestamp
    props.last_modified_by = src.author
    props.revision = 1
    props.comments = ""

    def add_runs(paragraph: Any, text: str) -> None:
        for part, bold in segments(text):
            run = paragraph.add_run(part)
            if bold:
                run.bold = True

    for block in src.blocks:
        if block.kind == "heading":
            document.add_heading(plain(block.items[0]), level=block.level)
        elif block.kind == "paragraph":
            add_runs(document.add_paragraph(), block.items[0])
        elif block.kind in ("bullets", "numbers"):
            style = "List Bullet" if block.kind == "bullets" else "List Number"
            for item in block.items:
                add_runs(document.add_paragraph(style=style), item)
        elif block.kind == "table":
            table = document.add_table(rows=len(block.rows), cols=len(block.rows[0]))
            table.style = "Table Grid"
            for row_index, (table_row, row) in enumerate(zip(table.rows, block.rows,
                                                                 strict=True)):
                for cell, text in zip(table_row.cells, row, strict=True):
                    paragraph = cell.paragraphs[0]
                    add_runs(paragraph, text)
                    if row_index == 0:  # header row
                        for run in paragraph.runs:
                            run.bold = True
    raw = io.BytesIO()
    document.save(raw)
    return _restamp_zip(raw.getvalue(), src.timestamp)


def _restamp_zip(data: bytes, when: dt.datetime) -> bytes:
    """Rewrite a zip with fixed entry timestamps and attributes (python-docx uses "now")."""
    stamp = (when.year, when.month, when.day, 0, 0, 0)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as old, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            new.writestr(entry, old.read(info.filename))
    return out.getvalue()


# --------------------------------------------------------------------------------------------

RENDERERS = {"html": render_html, "pdf": render_pdf, "docx": render_docx}


def build(sources_dir: Path = SOURCES) -> list[Path]:
    """Render every source; return the files written (unchanged files are not rewritten)."""
    written: list[Path] = []
    paths = sorted(sources_dir.glob("*/*.md"))
    if not paths:
        raise SystemExit(f"no sources found under {sources_dir}")
    for path in paths:
        src = load_source(path)
        data = RENDERERS[src.fmt](src)
        target = src.output_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == data:
            status = "unchanged"
        else:
            target.write_bytes(data)
            written.append(target)
            status = "written"
        print(f"{status:9} {target.relative_to(ROOT)} ({len(data):,} bytes)")
    return written


def main() -> int:
    try:
        build()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
