"""Ingest cost of a scanned page: OCR alone, a whole ingest, and a text-layer page beside it.

The pages, each saved as a one-page PDF so every timing is one page:
  - the corpus's scans (corpus/**/*.pdf whose reader output says `ocr: True`), split by page;
  - `--pages N` generated scans drawn as scripts/corpus_scans.py draws them (Pillow's
    embedded font on letter-size grey paper at 200 dpi, a few specks, no text layer), each
    with a twin PDF holding the same text as a text layer (fpdf2) for comparison.

Measured, in one process on one machine:
  - OCR: `assistant.readers.read_file` on each scanned page (render + tesseract + cleanup);
  - full ingest: `AssistantService.ingest` of the scanned pages into an empty temp data dir
    (read, chunk, embed, write; the embedding model loaded beforehand, so not counted);
  - the same two for the generated text-layer twins.

    python eval/bench/ocr.py [--pages N] [--no-corpus]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from common import BENCH_DIR, CORPUS, RESULTS, fresh_dir, percentiles, show, write_json

DPI = 200
PAGE_W, PAGE_H = int(8.5 * DPI), 11 * DPI
MARGIN_X, MARGIN_TOP = 180, 190
BODY_PX, LINE_PX = 33, 46
PAPER, INK = 246, 28

SENTENCES = (
    "The review found that callbacks promised within one working day were kept in 71% of "
    "cases, and the missed ones clustered on Mondays after weekend storms.",
    "Customers who had to chase a repair twice rated the service 2.1 out of 5, against 4.3 "
    "for those whose repair was booked on the first call.",
    "Frontline staff could not see the contractor's calendar, so every booking was a guess "
    "that the customer later had to correct by phone.",
    "The billing team reissued 1,240 invoices in the quarter; most corrections were for "
    "meter readings estimated while the customer was away.",
    "A single owner for each open complaint halved the number of handovers and cut the "
    "median time to resolution from nine days to four.",
    "Survey invitations sent the same day as the visit drew twice the response rate of "
    "those sent a week later, with no change in the average score.",
)


def page_text(n: int) -> str:
    """A page of prose: a heading and ~30 lines drawn from SENTENCES (seeded by `n`)."""
    rng = random.Random(n)
    body = " ".join(rng.choice(SENTENCES) for _ in range(14))
    return f"Service review, part {n + 1}\n\n{body}"


def draw_scan(text: str, seed: int) -> Any:
    """A letter-size greyscale 'scan' of `text` (the corpus scans' look, simplified)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (PAGE_W, PAGE_H), PAPER)
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for _ in range(90):  # dust and toner specks
        x, y = rng.randrange(PAGE_W), rng.randrange(PAGE_H)
        r = rng.choice((1, 1, 1, 2))
        draw.ellipse((x, y, x + r, y + r), fill=rng.randrange(120, 200))
    font = ImageFont.load_default(size=BODY_PX)
    y = MARGIN_TOP
    for para in text.split("\n\n"):
        for line in textwrap.wrap(para, 78):
            draw.text((MARGIN_X, y), line, font=font, fill=INK)
            y += LINE_PX
        y += LINE_PX // 2
    return image


def write_generated(scans: Path, texts: Path, count: int) -> None:
    from fpdf import FPDF

    for n in range(count):
        text = page_text(n)
        draw_scan(text, n).save(scans / f"generated-{n:02d}.pdf", "PDF", resolution=float(DPI))
        pdf = FPDF(format="letter")
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 6, text)
        pdf.output(str(texts / f"generated-{n:02d}.pdf"))


def split_corpus_scans(scans: Path) -> list[str]:
    """Each page of each corpus scan as its own PDF; returns the scans' corpus paths."""
    from pypdf import PdfReader, PdfWriter

    from assistant.readers import read_file

    used = []
    for path in sorted(CORPUS.rglob("*.pdf")):
        if not read_file(path, path.name).metadata.get("ocr"):
            continue
        used.append(path.relative_to(CORPUS).as_posix())
        for index, page in enumerate(PdfReader(str(path)).pages):
            writer = PdfWriter()
            writer.add_page(page)
            writer.write(str(scans / f"corpus-{path.stem}-p{index + 1}.pdf"))
    return used


def time_reads(folder: Path) -> dict[str, Any]:
    """read_file on every one-page PDF: seconds per page, and whether OCR ran."""
    from assistant.readers import read_file

    seconds, chars, ocr = [], 0, 0
    for path in sorted(folder.glob("*.pdf")):
        started = time.perf_counter()
        loaded = read_file(path, path.name)
        seconds.append(time.perf_counter() - started)
        chars += len(loaded.text)
        ocr += bool(loaded.metadata.get("ocr"))
    stats = percentiles([s * 1000 for s in seconds])
    return {"pages": len(seconds), "ocr_pages": ocr,
            "chars_per_page": chars // max(1, len(seconds)),
            "s_per_page": {k: round(v / 1000, 3) if k != "n" else v for k, v in stats.items()}}


def time_ingest(folder: Path, data_dir: Path) -> dict[str, Any]:
    """A whole ingest of `folder` into an empty data dir, the model already loaded."""
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    service = AssistantService(load_settings(data_dir=fresh_dir(data_dir)))
    service.embedder.encode(["warm up"])  # model load is start-up cost, not per page
    started = time.perf_counter()
    summary = service.ingest([folder])
    wall = time.perf_counter() - started
    pages = len(list(folder.glob("*.pdf")))
    assert summary.documents == pages and not summary.skipped, summary
    return {"pages": pages, "seconds": round(wall, 2), "s_per_page": round(wall / pages, 3),
            "chunks": summary.chunks, "warnings": len(summary.warnings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=6, help="Generated scanned pages.")
    parser.add_argument("--no-corpus", action="store_true", help="Skip the corpus's scans.")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench-ocr.json")
    args = parser.parse_args()
    root = fresh_dir(BENCH_DIR / "ocr")
    scans, texts = fresh_dir(root / "scans"), fresh_dir(root / "texts")
    write_generated(scans, texts, args.pages)
    sources = [] if args.no_corpus else split_corpus_scans(scans)
    with tempfile.TemporaryDirectory() as warm:  # imports and first tesseract start-up
        write_generated(Path(warm), Path(warm), 1)
        time_reads(Path(warm))
    results: dict[str, Any] = {
        "corpus_scans": sources,
        "ocr_read": time_reads(scans),
        "text_read": time_reads(texts),
        "ocr_ingest": time_ingest(scans, root / "data-scans"),
        "text_ingest": time_ingest(texts, root / "data-texts"),
    }
    ocr, text = results["ocr_read"], results["text_read"]
    assert ocr["ocr_pages"] == ocr["pages"] and text["ocr_pages"] == 0, (ocr, text)
    results["ratios"] = {
        "ocr_read_over_text_read_p50": round(
            ocr["s_per_page"]["p50"] / max(text["s_per_page"]["p50"], 1e-6), 1),
        "ocr_ingest_over_text_ingest": round(
            results["ocr_ingest"]["s_per_page"] / results["text_ingest"]["s_per_page"], 1),
    }
    rows = []
    for label, read, ingest in (("scanned (OCR)", ocr, results["ocr_ingest"]),
                                ("text layer", text, results["text_ingest"])):
        s = read["s_per_page"]
        rows.append([label, read["pages"], s["p50"], s["p95"], s["mean"], read["chars_per_page"],
                     ingest["s_per_page"], ingest["seconds"]])
    show(f"Ingest cost per PDF page ({len(sources)} corpus scans split by page + "
         f"{args.pages} generated; seconds)",
         ["pages", "n", "read s/page p50", "read s/page p95", "read mean", "chars/page",
          "full ingest s/page", "full ingest s"], rows)
    print(f"OCR read ÷ text read (p50): {results['ratios']['ocr_read_over_text_read_p50']}×; "
          f"full ingest, scanned ÷ text: {results['ratios']['ocr_ingest_over_text_ingest']}×")
    import os

    import pytesseract

    write_json(args.out, {"generated_pages": args.pages,
                          "tesseract": str(pytesseract.get_tesseract_version()),
                          "omp_thread_limit": os.environ.get("OMP_THREAD_LIMIT"), **results})


if __name__ == "__main__":
    main()
