"""Word and PowerPoint: python-docx and python-pptx keep the structure (heading styles,
slide titles, tables), which becomes `#` sections and header-carrying table rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from assistant.errors import ReadError
from assistant.readers.base import LoadedFile, TextBuilder, core_metadata, humanise_stem
from assistant.readers.tables import cell_text, render_table


def read_docx(path: Path) -> LoadedFile:
    """python-docx keeps paragraph styles, so Word headings become sections."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ReadError(f"DOCX could not be parsed: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, lxml errors: all mean a broken file
        raise ReadError(f"DOCX could not be parsed: {type(exc).__name__}") from None
    return LoadedFile("\n\n".join(_docx_blocks(document)),
                      core_metadata(document.core_properties))


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
            rendered = render_table([c.text for c in row.cells] for row in item.rows)
            if rendered:
                out.append(rendered)
    return out


def read_pptx(path: Path) -> LoadedFile:
    """A deck → `# deck title`, then one `## slide title` section per slide.

    Text boxes are read top to bottom, then left to right (the order a reader's eye takes),
    tables and charts as header-carrying rows, speaker notes last as `Notes: ...`.
    """
    from pptx import Presentation

    try:
        deck = Presentation(str(path))
    except Exception as exc:  # PackageNotFoundError, BadZipFile, KeyError, lxml errors
        raise ReadError(f"PPTX could not be parsed: {type(exc).__name__}") from None
    meta = core_metadata(deck.core_properties)
    slides = list(deck.slides)
    first_title = _slide_title(slides[0]) if slides else ""
    out = TextBuilder()
    out.add("# " + (meta.get("title") or first_title or humanise_stem(path.stem)))
    for number, slide in enumerate(slides, start=1):
        title = _slide_title(slide)
        body = _slide_body(slide)
        if not title and not body:
            continue  # an empty slide: nothing to find, and its number stays its own
        out.add(f"## {title or f'Slide {number}'}", {"slide": number})
        for block in body:
            out.add(block)
    return LoadedFile(out.text, meta, out.locations)


def _slide_title(slide: Any) -> str:
    shape = slide.shapes.title
    return cell_text(shape.text_frame.text) if shape is not None else ""


def _slide_body(slide: Any) -> list[str]:
    title = slide.shapes.title
    title_id = title.shape_id if title is not None else None
    blocks = [b for shape in _reading_order(slide.shapes) if shape.shape_id != title_id
              for b in _shape_blocks(shape)]
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = cell_text(notes.text) if notes is not None else ""
        if text:
            blocks.append(f"Notes: {text}")
    return blocks


def _reading_order(shapes: Any) -> list[Any]:
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_blocks(shape: Any) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [b for child in _reading_order(shape.shapes) for b in _shape_blocks(child)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = ([cell.text for cell in row.cells] for row in shape.table.rows)
        return [t for t in [render_table(rows)] if t]
    if getattr(shape, "has_chart", False) and shape.has_chart:
        return _chart_blocks(shape.chart)
    if shape.has_text_frame:
        bulleted = _is_body_placeholder(shape)
        lines = []
        for para in shape.text_frame.paragraphs:
            text = cell_text("".join(run.text for run in para.runs) or para.text)
            if text:
                bullet = bulleted or para.level > 0
                lines.append("  " * para.level + "- " + text if bullet else text)
        return ["\n".join(lines)] if lines else []
    return []


def _is_body_placeholder(shape: Any) -> bool:
    """Body and content placeholders are bulleted by the slide layout, not by the text."""
    from pptx.enum.shapes import PP_PLACEHOLDER

    if not shape.is_placeholder:
        return False
    return shape.placeholder_format.type in (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT)


def _chart_blocks(chart: Any) -> list[str]:
    """A chart's data as a table (category, then one column per series): the numbers a
    slide shows only as bars are often the very figures a consultant asks for."""
    try:
        plot = chart.plots[0]
        categories = list(plot.categories)
        series = list(plot.series)
        header = ["", *[s.name or "" for s in series]]
        rows = [header] + [[str(cat), *[_chart_value(s.values, i) for s in series]]
                           for i, cat in enumerate(categories)]
        title = cell_text(chart.chart_title.text_frame.text) if chart.has_title else ""
    except Exception:  # a chart without cached data, or one python-pptx cannot parse
        return []
    table = render_table(rows)
    return [b for b in (title, table) if b]


def _chart_value(values: Any, index: int) -> str:
    value = values[index] if index < len(values) else None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
