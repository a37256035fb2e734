"""PPTX and XLSX renderers for the sample corpus (used by ``build_corpus_formats.py``).

* PPTX (python-pptx): the part of the source before the first ``##`` heading is a title slide
  (``#`` heading as title, paragraphs as subtitle); each ``##`` heading opens a slide with that
  title. Paragraphs and lists go into one text box (real bullets and numbering), a pipe table
  becomes a slide table, and a paragraph starting ``Notes:`` becomes the slide's speaker notes.
* XLSX (openpyxl): each ``##`` heading is a sheet and the pipe table under it that sheet's rows,
  the first row headers. Numbers are written as numbers (``12,500`` as 12500, ``41.5`` as a
  float, ``62%`` as 0.62 shown as a percentage) so the workbook behaves like a real one.

Both carry the document's metadata in their core properties (title, author, keywords = tags,
category = doc_type, subject = client, created = date) and are re-zipped with fixed entry
timestamps: the libraries stamp "now" into the zip and into the modified date otherwise.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from corpus_markdown import Block, Source, plain, segments

# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------


def restamp_zip(data: bytes, when: dt.datetime) -> bytes:
    """Rewrite a zip with fixed entry timestamps and attributes (the writers use "now")."""
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


@dataclass
class Section:
    """The blocks under one ``##`` heading (or before the first one: ``title`` is None)."""

    title: str | None
    blocks: list[Block] = field(default_factory=list)


def set_core_properties(props: Any, src: Source, when: dt.datetime) -> None:
    """The Office core properties our readers map to metadata, for DOCX and PPTX alike:
    title, author, keywords (tags), category (doc_type), subject (client), fixed dates."""
    props.title = src.title
    props.author = src.author
    props.keywords = ", ".join(src.tags)
    props.category = src.doc_type
    props.subject = src.client or ""
    props.created = when
    props.modified = when
    props.last_modified_by = src.author
    props.revision = 1
    props.comments = ""


def sections(src: Source) -> list[Section]:
    """Split the body at its ``##`` headings; the part before the first one comes first."""
    out = [Section(None)]
    for block in src.blocks:
        if block.kind == "heading" and block.level == 2:
            out.append(Section(plain(block.items[0])))
        else:
            out[-1].blocks.append(block)
    return out


# --------------------------------------------------------------------------------------------
# PPTX
# --------------------------------------------------------------------------------------------

_NOTES = re.compile(r"^Notes:\s*", re.IGNORECASE)
_EMU_PER_INCH = 914400


def _inches(value: float) -> int:
    return int(round(value * _EMU_PER_INCH))


def _set_list_style(paragraph: Any, kind: str) -> None:
    """Give a text-box paragraph a real bullet or number (text boxes have none by default)."""
    from lxml import etree
    from pptx.oxml.ns import qn

    p_pr = paragraph._p.get_or_add_pPr()
    p_pr.set("marL", str(_inches(0.3)))
    p_pr.set("indent", str(-_inches(0.3)))
    if kind == "bullets":
        etree.SubElement(p_pr, qn("a:buChar")).set("char", "\u2022")
    else:
        etree.SubElement(p_pr, qn("a:buAutoNum")).set("type", "arabicPeriod")


def _add_runs(paragraph: Any, text: str, size: int, *, bold: bool = False) -> None:
    from pptx.util import Pt

    for part, is_bold in segments(text):
        run = paragraph.add_run()
        run.text = part
        run.font.size = Pt(size)
        if bold or is_bold:
            run.font.bold = True


def _text_items(blocks: list[Block]) -> list[tuple[str, str]]:
    """(kind, text) for each paragraph of a slide's text box, in order."""
    items: list[tuple[str, str]] = []
    for block in blocks:
        if block.kind == "paragraph":
            items.append(("paragraph", block.items[0]))
        elif block.kind == "heading":
            items.append(("subheading", block.items[0]))
        elif block.kind in ("bullets", "numbers"):
            items.extend((block.kind, item) for item in block.items)
    return items


def _fill_slide(slide: Any, section: Section, width: float) -> None:
    """Text box, then table, below the title; ``Notes:`` paragraphs go to the notes page."""
    from pptx.util import Pt

    notes = [b.items[0] for b in section.blocks
             if b.kind == "paragraph" and _NOTES.match(b.items[0])]
    body = [b for b in section.blocks
            if not (b.kind == "paragraph" and _NOTES.match(b.items[0]))]
    tables = [b for b in body if b.kind == "table"]
    if len(tables) > 1:
        raise ValueError(f"slide {section.title!r}: at most one table per slide")
    items = _text_items(body)
    size = 18 if len(items) <= 6 else 15
    top = 1.55
    if items:
        height = 0.1 + len(items) * size / 40
        box = slide.shapes.add_textbox(_inches(0.6), _inches(top), _inches(width),
                                       _inches(height))
        frame = box.text_frame
        frame.word_wrap = True
        for index, (kind, text) in enumerate(items):
            paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
            paragraph.space_after = Pt(6)
            if kind in ("bullets", "numbers"):
                _set_list_style(paragraph, kind)
            _add_runs(paragraph, text, size, bold=kind == "subheading")
        top += height + 0.2
    if tables:
        rows = tables[0].rows
        shape = slide.shapes.add_table(len(rows), len(rows[0]), _inches(0.6), _inches(top),
                                       _inches(width), _inches(0.4 * len(rows)))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                paragraph = shape.table.cell(r, c).text_frame.paragraphs[0]
                _add_runs(paragraph, text, 12, bold=r == 0)
    if notes:
        frame = slide.notes_slide.notes_text_frame
        frame.text = "\n".join(_NOTES.sub("", note) for note in notes)


def render_pptx(src: Source) -> bytes:
    """A 16:9 deck: title slide, then one "Title Only" slide per ``##`` section."""
    from pptx import Presentation
    from pptx.util import Emu

    deck = Presentation()
    deck.slide_width, deck.slide_height = Emu(12192000), Emu(6858000)  # 13.333 x 7.5 inches
    width = 13.333 - 1.2
    parts = sections(src)
    opening = parts[0]
    title_slide = deck.slides.add_slide(deck.slide_layouts[0])
    heading = next((b.items[0] for b in opening.blocks if b.kind == "heading"), src.title)
    title_slide.shapes.title.text = plain(heading)
    subtitle = [b.items[0] for b in opening.blocks if b.kind == "paragraph"]
    title_slide.placeholders[1].text = "\n".join(plain(s) for s in subtitle) or src.author
    for section in parts[1:]:
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = section.title or ""
        _fill_slide(slide, section, width)

    set_core_properties(deck.core_properties, src, src.timestamp.replace(tzinfo=None))
    raw = io.BytesIO()
    deck.save(raw)
    return restamp_zip(raw.getvalue(), src.timestamp)


# --------------------------------------------------------------------------------------------
# XLSX
# --------------------------------------------------------------------------------------------

_INT = re.compile(r"^-?\d{1,3}(,\d{3})+$|^-?\d+$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")
_PERCENT = re.compile(r"^(-?\d+(?:\.(\d+))?)%$")


def cell_value(text: str) -> tuple[Any, str | None]:
    """A table cell as (value, number_format): numbers as numbers, anything else as text."""
    text = plain(text).strip()
    if _INT.match(text):
        number = int(text.replace(",", ""))
        return number, "#,##0" if abs(number) >= 1000 else None
    if _FLOAT.match(text):
        decimals = len(text.split(".")[1])
        return float(text), "0." + "0" * decimals
    if match := _PERCENT.match(text):
        decimals = len(match.group(2) or "")
        value = round(float(match.group(1)) / 100, decimals + 2)
        return value, "0%" if not decimals else "0." + "0" * decimals + "%"
    return text, None


def render_xlsx(src: Source) -> bytes:
    """One sheet per ``##`` section, its table as rows (header row bold, frozen)."""
    from openpyxl import Workbook
    from openpyxl.packaging.core import DocumentProperties
    from openpyxl.styles import Font
    from openpyxl.writer.excel import ExcelWriter

    book = Workbook()
    book.remove(book.active)
    parts = sections(src)
    for section in parts[1:]:
        kinds = {b.kind for b in section.blocks}
        if kinds != {"table"} or len(section.blocks) != 1:
            raise ValueError(f"sheet {section.title!r}: must hold exactly one table, nothing else")
        sheet = book.create_sheet((section.title or "Sheet")[:31])
        rows = section.blocks[0].rows
        for r, row in enumerate(rows, start=1):
            for c, text in enumerate(row, start=1):
                value, number_format = (plain(text), None) if r == 1 else cell_value(text)
                cell = sheet.cell(row=r, column=c, value=value)
                if r == 1:
                    cell.font = Font(bold=True)
                if number_format:
                    cell.number_format = number_format
        for c in range(1, len(rows[0]) + 1):
            longest = max(len(plain(row[c - 1])) for row in rows)
            sheet.column_dimensions[sheet.cell(row=1, column=c).column_letter].width = \
                min(60, longest + 3)
        sheet.freeze_panes = "A2"
    if not book.worksheets:
        raise ValueError(f"{src.path}: a workbook needs at least one ## sheet")
    description = " ".join(plain(b.items[0]) for b in parts[0].blocks if b.kind == "paragraph")
    when = src.timestamp.replace(tzinfo=None)
    book.properties = DocumentProperties(
        creator=src.author, title=src.title, keywords=", ".join(src.tags),
        category=src.doc_type, subject=src.client or "", description=description or None,
        created=when, modified=when, lastModifiedBy=src.author,
    )
    raw = io.BytesIO()
    # ExcelWriter directly: openpyxl's save_workbook() would stamp "now" as the modified date.
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(book, archive).save()
    return restamp_zip(raw.getvalue(), src.timestamp)
