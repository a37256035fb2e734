"""The ``scan`` renderer: a source drawn as page images and saved as an image-only PDF.

It imitates an old report that survives only as a scan: letter-size pages at 200 dpi, text
drawn with Pillow's embedded font (``ImageFont.load_default``, so nothing is downloaded),
headings larger and thickened, a faint grey paper tone with a few specks, and no text layer, so
the only way to read it is OCR. ``page_lines`` is the text exactly as drawn, page by page: the
reference that OCR accuracy is measured against.

Deterministic: the specks come from a generator seeded with the file name, Pillow writes no
dates, and pypdf adds the information dictionary (with the document date) and a content-hash
file identifier.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from typing import Any

from corpus_markdown import Source, plain

DPI = 200
PAGE_W, PAGE_H = int(8.5 * DPI), 11 * DPI
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 180, 190, 230
# Pixel sizes at 200 dpi: body ~12 pt, headings ~20/16/14 pt.
SIZES = {"h1": 56, "h2": 44, "h3": 38, "body": 33, "table": 31}
GAP_AFTER = {"h1": 30, "h2": 18, "h3": 12, "body": 0, "table": 0}
PAPER, INK = 246, 28
MIN_PAGES = 2
JPEG_QUALITY = 60  # scanner-like compression; OCR accuracy is measured in tests


@dataclass
class Line:
    """One drawn line: its text, style, left indent (pixels) and table column offsets."""

    text: str
    style: str
    indent: int = 0
    cells: tuple[str, ...] = ()
    space_before: int = 0


def _font(style: str) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=SIZES[style])


def _wrap(text: str, style: str, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels in the style's font."""
    font = _font(style)
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and font.getlength(trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def _lines(src: Source) -> list[Line]:
    """The body as drawn lines, before pagination."""
    width = PAGE_W - 2 * MARGIN_X
    out: list[Line] = []
    for block in src.blocks:
        if block.kind == "heading":
            style = f"h{block.level}"
            for i, text in enumerate(_wrap(plain(block.items[0]), style, width)):
                out.append(Line(text, style, space_before=40 if i == 0 and out else 0))
        elif block.kind == "paragraph":
            for i, text in enumerate(_wrap(plain(block.items[0]), "body", width)):
                out.append(Line(text, "body", space_before=22 if i == 0 else 0))
        elif block.kind in ("bullets", "numbers"):
            for number, item in enumerate(block.items, start=1):
                marker = "-" if block.kind == "bullets" else f"{number}."
                wrapped = _wrap(plain(item), "body", width - 60)
                for i, text in enumerate(wrapped):
                    first = i == 0
                    out.append(Line(f"{marker} {text}" if first else text, "body",
                                    indent=20 if first else 60,
                                    space_before=(22 if number == 1 else 8) if first else 0))
        elif block.kind == "table":
            for r, row in enumerate(block.rows):
                cells = tuple(plain(c) for c in row)
                out.append(Line("  ".join(cells), "table", cells=cells,
                                space_before=22 if r == 0 else 6))
    return out


def _line_height(line: Line) -> int:
    return int(SIZES[line.style] * 1.45) + GAP_AFTER[line.style]


def page_lines(src: Source) -> list[list[Line]]:
    """The drawn lines split into pages, each page ending with its "Page n of N" footer."""
    pages: list[list[Line]] = [[]]
    y = MARGIN_TOP
    for line in _lines(src):
        height = line.space_before + _line_height(line)
        keep_with_next = line.style.startswith("h")
        limit = PAGE_H - MARGIN_BOTTOM - (120 if keep_with_next else 0)
        if pages[-1] and y + height > limit:
            pages.append([])
            y = MARGIN_TOP
            line.space_before = 0
        pages[-1].append(line)
        y += line.space_before + _line_height(line)
    if len(pages) < MIN_PAGES:
        raise ValueError(f"{src.path}: a scan needs at least {MIN_PAGES} pages of text, "
                         f"this one fills {len(pages)}")
    for n, page in enumerate(pages, start=1):
        page.append(Line(f"Page {n} of {len(pages)}", "body", space_before=0))
    return pages


def _column_x(rows: list[Line]) -> list[int]:
    """Left edge of each table column: the widest cell above it plus a gutter."""
    font = _font("table")
    widths = [max(font.getlength(r.cells[c]) for r in rows) for c in range(len(rows[0].cells))]
    xs, x = [], MARGIN_X + 20
    for w in widths:
        xs.append(x)
        x += int(w) + 70
    if x - 70 > PAGE_W - MARGIN_X:
        raise ValueError("table too wide for the page: shorten its cells")
    return xs


def _draw_page(lines: list[Line], seed: int) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("L", (PAGE_W, PAGE_H), PAPER)
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for _ in range(90):  # dust and toner specks, kept away from the ink by their size
        x, y = rng.randrange(PAGE_W), rng.randrange(PAGE_H)
        r = rng.choice((1, 1, 1, 2))
        draw.ellipse((x, y, x + r, y + r), fill=rng.randrange(120, 200))
    table = [line for line in lines if line.cells]
    xs = _column_x(table) if table else []
    y = MARGIN_TOP
    body, footer = lines[:-1], lines[-1]
    for line in body:
        y += line.space_before
        font = _font(line.style)
        stroke = 1 if line.style.startswith("h") or (line.cells and line is table[0]) else 0
        if line.cells:
            for x, cell in zip(xs, line.cells, strict=True):
                draw.text((x, y), cell, font=font, fill=INK, stroke_width=stroke, stroke_fill=INK)
        else:
            draw.text((MARGIN_X + line.indent, y), line.text, font=font, fill=INK,
                      stroke_width=stroke, stroke_fill=INK)
        y += _line_height(line)
    font = _font(footer.style)
    width = font.getlength(footer.text)
    draw.text(((PAGE_W - width) / 2, PAGE_H - MARGIN_BOTTOM + 90), footer.text, font=font,
              fill=INK)
    return image


def render_scan(src: Source) -> bytes:
    """Pages drawn as images, saved by Pillow as a PDF; pypdf adds the metadata."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    seed = int.from_bytes(hashlib.sha256(src.name.encode()).digest()[:8], "big")
    images = [_draw_page(lines, seed + n) for n, lines in enumerate(page_lines(src))]
    raw = io.BytesIO()
    images[0].save(raw, "PDF", resolution=float(DPI), save_all=True,
                   append_images=images[1:], quality=JPEG_QUALITY,
                   creationDate=src.timestamp.utctimetuple(),
                   modDate=src.timestamp.utctimetuple())  # else Pillow uses "now"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(raw.getvalue())))
    info = {
        "/Title": src.title, "/Author": src.author, "/Keywords": ", ".join(src.tags),
        "/Creator": "scripts/build_corpus_formats.py (scan)",
        "/DocType": src.doc_type, "/Date": src.date.isoformat(),
    }
    if src.client:
        info["/Client"] = src.client
    writer.add_metadata(info)
    # A content-hash file identifier, as fpdf2 makes for the text PDFs.
    digest = hashlib.md5(raw.getvalue(), usedforsecurity=False).digest()
    writer._ID = ArrayObject([ByteStringObject(digest), ByteStringObject(digest)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
