"""Writers for the documents tests ingest: Markdown with front matter, PDF, DOCX, decks,
workbooks, CSV, PDFs with tables or scanned pages, and a batch of files that cannot be
indexed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def write_md(path: Path, title: str, body: str, **meta: object) -> Path:
    lines = ["---", f"title: \"{title}\""]
    for key, value in meta.items():
        lines.append(f"{key}: {value}")
    lines += ["---", "", body]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_small_kb(kb: Path) -> Path:
    """Two documents several API, MCP and CLI tests share: a definition (article) and a
    client finding with a figure."""
    write_md(kb / "articles" / "faults.md", "Defining faults",
             "# Defining faults\n\nA Cx Quality Fault is a moment where the customer receives "
             "less than the organisation promised.", doc_type="article", date="2024-01-05")
    write_md(kb / "findings" / "acme.md", "Acme churn",
             "# Acme churn\n\nAcme's churn fell from 2.1% to 1.6% after the fix.",
             doc_type="finding", client="Acme")
    return kb


def write_pdf(path: Path, title: str, paragraphs: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Test Author")
    pdf.set_keywords("alpha, beta")
    for para in paragraphs:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, para)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_docx(path: Path, title: str, sections: dict[str, list[str]], **props: str) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for key, value in props.items():
        setattr(document.core_properties, key, value)
    for heading, paragraphs in sections.items():
        document.add_heading(heading, level=1)
        for para in paragraphs:
            document.add_paragraph(para)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def write_bad_files(root: Path) -> dict[str, str]:
    """Files a real batch contains that cannot be indexed; returns name → a fragment of the
    reason ingest must give. Each must be skipped by name while the rest of the batch lands."""
    from assistant.ingest import MAX_FILE_BYTES

    root.mkdir(parents=True, exist_ok=True)
    (root / "junk.md").write_bytes(b"\x00\x01\x02\x00 binary")
    # Binary with no NUL byte (what the cp1252 fallback would otherwise index as text).
    (root / "noise.md").write_bytes(bytes(b for b in os.urandom(65536) if b))
    (root / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    real = write_pdf(root / "_tmp.pdf", "Cut", ["A page about survey design. " * 20])
    (root / "truncated.pdf").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    real.unlink()
    (root / "broken.docx").write_bytes(b"PK\x03\x04 not a zip archive")
    (root / "empty.txt").write_text("", "utf-8")
    (root / "bad-date.md").write_text("---\ntitle: Dated\ndate: 2024-13-45\n---\n\nText.\n")
    with open(root / "huge.txt", "wb") as handle:  # sparse: instant, no disk used
        handle.truncate(MAX_FILE_BYTES + 1)
    return {"junk.md": "binary", "noise.md": "binary", "broken.pdf": "PDF could not be parsed",
            "truncated.pdf": "PDF could not be parsed", "broken.docx": "DOCX could not be",
            "empty.txt": "no text", "bad-date.md": "month must be in 1..12",
            "huge.txt": "larger than 50 MB"}


# --- Decks, workbooks, CSV, PDF tables and scans (tests/test_readers_formats.py) -----------


def write_docx_table(path: Path, title: str, intro: str, rows: list[list[str]]) -> Path:
    """A Word document: one paragraph, then a grid table whose first row is the header."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph(intro)
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def write_pptx(path: Path, slides: list[dict[str, Any]], **props: str) -> Path:
    """A deck from plain specs. Each slide dict may hold: title (None: a blank layout with no
    title), bullets (body placeholder paragraphs), boxes [(top_inches, text)] added in the
    given order, group [(top_inches, text)] as one group shape, table (rows), chart
    (categories, {series: values}) and notes."""
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    for key, value in props.items():
        setattr(deck.core_properties, key, value)
    for spec in slides:
        layout = deck.slide_layouts[1 if spec.get("bullets") else 5 if spec.get("title") else 6]
        slide = deck.slides.add_slide(layout)
        if spec.get("title"):
            slide.shapes.title.text = spec["title"]
        if spec.get("bullets"):
            body = slide.placeholders[1].text_frame
            body.text = spec["bullets"][0]
            for bullet in spec["bullets"][1:]:
                body.add_paragraph().text = bullet
        for top, text in spec.get("boxes", []):
            box = slide.shapes.add_textbox(Inches(1), Inches(top), Inches(6), Inches(0.5))
            box.text_frame.text = text
        if spec.get("group"):
            group = slide.shapes.add_group_shape()
            for top, text in spec["group"]:
                box = group.shapes.add_textbox(Inches(1), Inches(top), Inches(6), Inches(0.5))
                box.text_frame.text = text
        if spec.get("table"):
            rows = spec["table"]
            shape = slide.shapes.add_table(len(rows), len(rows[0]), Inches(0.5), Inches(4.5),
                                           Inches(9), Inches(2))
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    shape.table.cell(r, c).text = value
        if spec.get("chart"):
            categories, series = spec["chart"]
            data = CategoryChartData()
            data.categories = categories
            for name, values in series.items():
                data.add_series(name, values)
            slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2),
                                   Inches(6), Inches(4), data)
        if spec.get("notes"):
            slide.notes_slide.notes_text_frame.text = spec["notes"]
    path.parent.mkdir(parents=True, exist_ok=True)
    deck.save(str(path))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]], hidden: tuple[str, ...] = (),
               **props: str) -> Path:
    """A workbook: sheet name → rows from row 1 ([] leaves a blank row). A cell given as a
    (value, number_format) tuple gets that Excel number format."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for key, value in props.items():
        setattr(workbook.properties, key, value)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                fmt = None
                if isinstance(value, tuple):
                    value, fmt = value
                cell = sheet.cell(row=r, column=c, value=value)
                if fmt:
                    cell.number_format = fmt
        if name in hidden:
            sheet.sheet_state = "hidden"
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(str(path))
    return path


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",",
              encoding: str = "utf-8") -> Path:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_table_pdf(path: Path, before: str, rows: list[list[str]], after: str) -> Path:
    """One page: a paragraph, a ruled table (fpdf2's table(), header row first), a paragraph."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, before)
    pdf.ln(4)
    with pdf.table() as table:
        for row in rows:
            line = table.row()
            for value in row:
                line.cell(value)
    pdf.ln(4)
    pdf.multi_cell(0, 6, after)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


SCAN_DPI = 150


def scan_image(text: str, width: int = 1000, height: int = 400) -> Any:
    """A white "scanned page" with `text` drawn in Pillow's embedded font ("" → blank)."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    for i, line in enumerate(textwrap.wrap(text, 60)):
        draw.text((40, 40 + i * 44), line, fill=0, font=font)
    return image


def write_scanned_pdf(path: Path, pages: list[str]) -> Path:
    """An image-only PDF, one scanned page per string ("" → a blank scanned page)."""
    images = [scan_image(text) for text in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(str(path), "PDF", resolution=SCAN_DPI, save_all=True,
                   append_images=images[1:])
    return path


def write_mixed_pdf(path: Path, text_page: str, scanned_page: str) -> Path:
    """Page 1 has a text layer; page 2 is only an image of `scanned_page`."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, text_page)
    pdf.add_page()
    image = scan_image(scanned_page)
    pdf.image(image, x=10, y=10, w=image.width * 25.4 / SCAN_DPI)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
