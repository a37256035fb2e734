"""OCR for scanned PDF pages: pypdfium2 renders the page, tesseract (Debian's tesseract-ocr,
through pytesseract) reads it. Only pages without a usable text layer are OCR'd: a text
layer is exact, OCR is a guess and costs seconds a page.

OCR text keeps its line breaks and paragraph gaps. Words hyphenated across line ends are
left as tesseract wrote them: "cus-/tomer" and "well-/known" look alike without a
dictionary, and a wrong join would put a word in the index that the page never had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.readers.base import PAGE_BREAK

OCR_LANG = "eng"
OCR_DPI = 300
OCR_TIMEOUT_S = 120  # per page: a pathological scan must not hold up a whole ingest
MAX_PIXELS = 60_000_000  # a poster-size page is rendered smaller, not at 300 dpi
MIN_TEXT_CHARS = 10  # fewer non-space characters than this: the page has no text layer
TESSERACT_MISSING = "scanned pages need tesseract-ocr (make setup installs it)"
NO_TEXT = "OCR found no readable text"


def needs_ocr(text: str) -> bool:
    """A page whose text layer is empty or a stray page number is a scan."""
    return len("".join(text.split())) < MIN_TEXT_CHARS


@dataclass
class OcrResult:
    texts: dict[int, str] = field(default_factory=dict)  # 0-based page index → text
    warnings: list[str] = field(default_factory=list)
    tesseract_missing: bool = False


def ocr_pages(path: Path, indexes: Sequence[int]) -> OcrResult:
    """OCR the given pages; a page that cannot be read costs a warning, never the file."""
    import pypdfium2 as pdfium
    import pytesseract

    result = OcrResult()
    if not indexes:
        return result
    try:
        document = pdfium.PdfDocument(str(path))
    except Exception as exc:  # pdfium refuses a file pypdf could open
        result.warnings.append(f"{_pages(indexes)}: could not be rendered for OCR ({exc})")
        return result
    try:
        for position, index in enumerate(indexes):
            try:
                text = _ocr_page(document[index])
            except pytesseract.TesseractNotFoundError:
                result.tesseract_missing = True
                result.warnings.append(f"{_pages(indexes[position:])}: {TESSERACT_MISSING}")
                break
            except (pytesseract.TesseractError, RuntimeError, OSError, ValueError) as exc:
                detail = " ".join(str(exc).split())[:160]  # RuntimeError: the timeout
                result.warnings.append(f"page {index + 1}: OCR failed ({detail})")
                continue
            if text:
                result.texts[index] = text
            elif text is not None:
                result.warnings.append(f"page {index + 1}: {NO_TEXT}")
    finally:
        document.close()
    return result


def _ocr_page(page: Any) -> str | None:
    """The page's OCR text; "" when it holds an image with no text, None when the page
    is blank by design (no image, nothing drawn): that is not worth a warning."""
    import pypdfium2.raw as pdfium_c
    import pytesseract

    width, height = page.get_size()
    scale = OCR_DPI / 72
    if width * height * scale * scale > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (width * height))
    image = page.render(scale=scale, grayscale=True).to_pil()
    low, high = image.getextrema()
    if high - low < 16:  # one flat colour: nothing for tesseract to find
        has_image = any(True for _ in page.get_objects(
            filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2))
        return "" if has_image else None
    text = pytesseract.image_to_string(image, lang=OCR_LANG, timeout=OCR_TIMEOUT_S)
    return clean_ocr_text(str(text))


# A lone mark standing apart from the words (" ." at a line's end, " ~ " mid-line) is a
# speck of dirt on the scan, not text: kept, it ends a wrapped line as if it were a sentence,
# and the sentence splitter then quotes half a sentence.
_SPECK = re.compile(r"(?<=\S)[ \t]+[.,'`~_]{1,2}(?=[ \t]*$)|(?<=\S)[ \t]+[~`_]{1,2}(?=[ \t])"
                    r"|^[~`_]{1,2}[ \t]+(?=\S)")


def clean_ocr_text(text: str) -> str:
    """Trailing spaces and specks off, runs of blank lines down to one, no form feeds
    (tesseract ends each page with one, and a form feed is our page separator)."""
    text = text.replace(PAGE_BREAK, "\n")
    lines = [_SPECK.sub("", line.rstrip()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pages(indexes: Sequence[int]) -> str:
    numbers = [str(i + 1) for i in indexes]
    shown = ", ".join(numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10
                                        else "")
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"
