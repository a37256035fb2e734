"""Render the sample corpus's non-Markdown documents from their Markdown sources.

The sample knowledge base under ``corpus/`` is mostly Markdown, but a handful of documents are
kept as HTML, PDF, DOCX, PPTX, XLSX and scanned (image-only) PDF so that every reader in
``assistant/readers`` is exercised by real files. Their sources live in
``scripts/corpus_sources/<folder>/<name>.md``, each with YAML front matter that names the output
``format``. This script renders each source to ``corpus/<folder>/<name>.<suffix>``:

* HTML: a full page whose metadata sits in ``<title>`` and ``<meta name=...>`` tags, with a site
  menu, footer and analytics stub outside ``<main>`` (boilerplate the reader must drop).
* PDF (fpdf2, core Helvetica font): title, author and keywords in the document information
  dictionary, plus the custom keys ``/DocType``, ``/Client`` and ``/Date`` added with pypdf.
* DOCX (python-docx): title, author, keywords, category (doc_type), subject (client) and created
  date in the core properties; Word heading, list and table styles in the body.
* PPTX and XLSX (``corpus_office.py``): a deck with one slide per ``##`` heading, or a workbook
  with one sheet per ``##`` heading; core properties as for DOCX.
* ``scan`` (``corpus_scans.py``): the body drawn as page images and saved as a PDF with no text
  layer, as a scanner would; information dictionary as for PDF.

The Markdown subset (``corpus_markdown.py``) is small, and anything else is an error:
``#``/``##``/``###`` headings, paragraphs, bullet and numbered lists, ``**bold**`` and at most
one pipe table (one per slide or sheet in decks and workbooks).

Output is deterministic: dates come from the front matter's ``date`` (never "now"), PDF file
identifiers are content hashes, and zip entries get fixed timestamps, so re-running the
script produces the same bytes.

Run from the repository root (``--out DIR`` renders elsewhere, ``--formats pptx,xlsx`` only
those formats)::

    .venv/bin/python scripts/build_corpus_formats.py
"""

from __future__ import annotations

import argparse
import html
import io
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, however it is run

from corpus_markdown import FORMATS, Source, load_source, plain, segments  # noqa: E402
from corpus_office import (  # noqa: E402
    render_pptx,
    render_xlsx,
    restamp_zip,
    set_core_properties,
)
from corpus_scans import render_scan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "corpus_sources"
CORPUS = ROOT / "corpus"

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
    set_core_properties(document.core_properties, src, src.timestamp)

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
    return restamp_zip(raw.getvalue(), src.timestamp)


# --------------------------------------------------------------------------------------------

RENDERERS: dict[str, Callable[[Source], bytes]] = {
    "html": render_html, "pdf": render_pdf, "docx": render_docx,
    "pptx": render_pptx, "xlsx": render_xlsx, "scan": render_scan,
}


def build(sources_dir: Path = SOURCES, out: Path = CORPUS,
          formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Render every source in ``formats`` under ``out``; return the files written.

    Unchanged files are not rewritten, so a re-run leaves the corpus's timestamps alone.
    """
    written: list[Path] = []
    paths = sorted(sources_dir.glob("*/*.md"))
    if not paths:
        raise SystemExit(f"no sources found under {sources_dir}")
    for path in paths:
        src = load_source(path)
        if src.fmt not in formats:
            continue
        data = RENDERERS[src.fmt](src)
        target = src.output_path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == data:
            status = "unchanged"
        else:
            target.write_bytes(data)
            written.append(target)
            status = "written"
        shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        print(f"{status:9} {shown} ({len(data):,} bytes)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS,
                        help="output root (default: corpus/)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated formats to render (default: {','.join(FORMATS)})")
    args = parser.parse_args(argv)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {FORMATS}")
    try:
        build(out=args.out.resolve(), formats=formats)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
