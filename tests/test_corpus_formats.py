"""The corpus's decks, workbooks and scans: built deterministically, read as built, OCR accurate.

The generator (scripts/build_corpus_formats.py) renders them from Markdown sources; these tests
rebuild them, read the committed files with the real readers (real tesseract for the scans) and
hold the formats suite to its retrieval target on the ingested corpus.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CORPUS, REPO

from assistant import evaluation as ev
from assistant.readers import LoadedFile, read_file
from assistant.service import AssistantService

sys.path.insert(0, str(REPO / "scripts"))
from corpus_markdown import Source, load_source  # noqa: E402
from corpus_office import sections  # noqa: E402
from corpus_scans import page_lines  # noqa: E402

BUILD = REPO / "scripts" / "build_corpus_formats.py"
SUITE = REPO / "eval" / "suites" / "formats.jsonl"
NEW_FORMATS = ("pptx", "xlsx", "scan")
SOURCES = [s for s in (load_source(p) for p in
                       sorted((REPO / "scripts" / "corpus_sources").glob("*/*.md")))
           if s.fmt in NEW_FORMATS]
MIN_OCR_ACCURACY = 0.98


def _by(fmt: str) -> list[Source]:
    return [s for s in SOURCES if s.fmt == fmt]


def _read(src: Source) -> LoadedFile:
    return _read_path(src.output_path(CORPUS))


@functools.cache
def _read_path(path: Path) -> LoadedFile:
    """Each committed file read once per session (OCR costs seconds a page)."""
    return read_file(path, path.relative_to(CORPUS).as_posix())


def _sections_read(text: str) -> dict[str, list[str]]:
    """The reader's text split at its `## ` headings: title → the non-empty lines under it."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:].strip(), [])
        elif line.strip():
            current.append(line)
    return out


def _build(out: Path) -> dict[str, bytes]:
    subprocess.run([sys.executable, str(BUILD), "--out", str(out),
                    "--formats", ",".join(NEW_FORMATS)],
                   check=True, capture_output=True, timeout=300)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_generator_is_deterministic_and_the_corpus_is_up_to_date(tmp_path: Path) -> None:
    first, second = _build(tmp_path / "a"), _build(tmp_path / "b")
    assert len(_by("pptx")) >= 3 and len(_by("xlsx")) >= 2 and len(_by("scan")) >= 2
    assert set(first) == {s.output_path(Path()).as_posix() for s in SOURCES}
    assert first == second
    stale = [name for name, data in first.items() if (CORPUS / name).read_bytes() != data]
    assert stale == [], "re-run scripts/build_corpus_formats.py"


def _check_metadata(src: Source, loaded: LoadedFile) -> None:
    meta = loaded.metadata
    assert (meta["title"], meta["doc_type"], meta["date"], meta["author"]) == \
        (src.title, src.doc_type, src.date.isoformat(), src.author)
    assert meta.get("client") == src.client
    assert set(meta["tags"]) == {t.lower() for t in src.tags}


@pytest.mark.parametrize("src", _by("pptx"), ids=lambda s: s.name)
def test_decks_read_as_one_section_per_slide_with_notes(src: Source) -> None:
    loaded = _read(src)
    _check_metadata(src, loaded)
    slides = [loc["slide"] for _, loc in loaded.locations if "slide" in loc]
    titled = sections(src)[1:]
    assert slides == list(range(1, len(titled) + 2))  # the title slide, then one per section
    for section in titled:
        assert f"## {section.title}\n" in loaded.text
    notes = [b.items[0] for s in titled for b in s.blocks
             if b.kind == "paragraph" and b.items[0].startswith("Notes:")]
    assert notes and all(note in loaded.text for note in notes)
    tables = [b for s in titled for b in s.blocks if b.kind == "table"]
    for table in tables:  # rows carry their headers
        header, first = table.rows[0], table.rows[1]
        assert f"| {header[0]}: {first[0]} | {header[1]}: {first[1]} |" in loaded.text


@pytest.mark.parametrize("src", _by("xlsx"), ids=lambda s: s.name)
def test_workbooks_read_as_one_section_per_sheet(src: Source) -> None:
    loaded = _read(src)
    _check_metadata(src, loaded)
    sheets = list(dict.fromkeys(loc["sheet"] for _, loc in loaded.locations if "sheet" in loc))
    titled = sections(src)[1:]
    assert sheets == [s.title for s in titled]
    read = _sections_read(loaded.text)
    for section in titled:
        rows = section.blocks[0].rows
        lines = read[str(section.title)]
        assert len(lines) == len(rows) - 1, section.title  # one line per row, headers in each
        assert all(line.startswith(f"| {rows[0][0]}: ") for line in lines), section.title
        assert all(f"| {rows[0][-1]}: " in line for line in lines), section.title


def _levenshtein(a: str, b: str) -> int:
    """Edit distance, bit-parallel (Hyyrö 2003): a few milliseconds for a page of text."""
    if not a:
        return len(b)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask, last = (1 << len(a)) - 1, 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph, mh = mv | ~(xh | pv), pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph, mh = (ph << 1) | 1, mh << 1
        pv, mv = (mh | ~(xv | ph)) & mask, ph & xv & mask
    return score


def test_levenshtein_matches_the_textbook_definition() -> None:
    assert _levenshtein("kitten", "sitting") == 3
    assert _levenshtein("", "abc") == 3 and _levenshtein("abc", "") == 3
    assert _levenshtein("flaw", "lawn") == 2 and _levenshtein("same", "same") == 0
    assert _levenshtein("Page 1 of 2", "Page l of 2.") == 2


@pytest.mark.parametrize("src", _by("scan"), ids=lambda s: s.name)
def test_scans_have_no_text_layer_and_ocr_reads_them_accurately(src: Source) -> None:
    from pypdf import PdfReader

    path = src.output_path(CORPUS)
    pages = page_lines(src)
    assert len(pages) >= 2
    assert [p.extract_text().strip() for p in PdfReader(path).pages] == [""] * len(pages)
    loaded = _read(src)
    _check_metadata(src, loaded)
    assert loaded.metadata.get("ocr") is True
    assert [loc["page"] for _, loc in loaded.locations] == list(range(1, len(pages) + 1))
    # The reference is the text exactly as drawn (markup gone, table cells side by side).
    reference = " ".join(" ".join(line.text for page in pages for line in page).split())
    read = " ".join(loaded.text.split())
    accuracy = 1 - _levenshtein(reference, read) / len(reference)
    print(f"{src.name}: OCR character accuracy {accuracy:.4f} over {len(reference)} chars")
    assert accuracy >= MIN_OCR_ACCURACY


def test_formats_suite_retrieves_from_slides_sheets_and_scans(
        corpus_service: AssistantService) -> None:
    questions = ev.load_suite(SUITE)
    assert {q.kind for q in questions} == {"slide", "sheet", "scan"}
    relevant = {d for q in questions for d in q.relevant}
    assert relevant == {s.output_path(Path()).as_posix() for s in SOURCES}
    report = ev.evaluate_suite(corpus_service, questions)
    print({k: round(v, 3) for k, v in report["retrieval"].items()},
          "expect_any", report["answers"]["expect_any"])
    assert report["retrieval"]["hit@5"] >= 0.95
    # answers as good as the golden suite's gate asks of it (eval/gate.json)
    gate = json.loads((REPO / "eval" / "gate.json").read_text("utf-8"))
    assert report["answers"]["expect_any"] >= gate["answers.expect_any"]
