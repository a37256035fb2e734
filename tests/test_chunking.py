"""Chunks are exact slices of the source, token-bounded, and carry their header path."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.chunking import Chunk, Chunker
from assistant.embeddings import load_embedder
from assistant.settings import bundled_model_path

TEXT = """Opening paragraph before any heading.

# Quality faults

Faults are counted from the customer's side. """ + (
    "Each fault has a severity and a stage. " * 60
) + """

## Severity

- Critical: the customer cannot complete the task.
- Major: the task completes with extra effort.

```
# a comment in a code block, not a heading
```

### Examples

A refund that takes nine days when five were promised is a major fault.
"""


def _chunker(size: int = 64, overlap: int = 8) -> tuple[Chunker, object]:
    tokenizer = load_embedder(bundled_model_path()).tokenizer
    return Chunker(tokenizer, size, overlap), tokenizer


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Every non-blank character of `text` outside heading lines (a heading alone is dropped:
    it is its section's name) lies in some chunk, so nothing was lost, and a splitter that
    returns nothing fails here rather than passing every per-chunk check."""
    assert chunks, "the splitter returned no chunks"
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    headings = bytearray(len(text))
    for match in re.finditer(r"^#{1,6} [^\n]*", text, re.M):
        headings[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
    lost = [i for i, ch in enumerate(text)
            if not ch.isspace() and not covered[i] and not headings[i]]
    assert not lost, f"{len(lost)} characters in no chunk, from {text[lost[0]:lost[0] + 60]!r}"


def test_spans_map_back_to_source() -> None:
    chunker, _ = _chunker()
    chunks = chunker.split(TEXT)
    assert len(chunks) > 5
    for chunk in chunks:
        assert TEXT[chunk.start : chunk.end] == chunk.text
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_fit_the_token_budget() -> None:
    chunker, tokenizer = _chunker(64, 8)
    chunks = chunker.split(TEXT)
    assert_covers(TEXT, chunks)
    sizes = [len(tokenizer.tokenize(chunk.text)) for chunk in chunks]
    assert max(sizes) <= 64
    assert max(sizes) > 32  # filled towards the budget, not cut into crumbs


def test_sections_follow_header_path_and_skip_code_blocks() -> None:
    chunker, _ = _chunker(200, 20)
    chunks = chunker.split(TEXT)
    by_text = {c.text.split("\n")[0]: c.section for c in chunks}
    assert by_text["Opening paragraph before any heading."] == ""
    assert any(s == "Quality faults" for s in by_text.values())
    assert by_text["### Examples"] == "Quality faults > Severity > Examples"
    severity = next(c for c in chunks if "Critical:" in c.text)
    assert severity.section == "Quality faults > Severity"
    assert "# a comment in a code block" in severity.text  # not treated as a heading


def test_pdf_pages_name_the_section() -> None:
    chunker, _ = _chunker(64, 0)
    text = "First page words. " * 10 + "\f" + "Second page words. " * 10
    chunks = chunker.split(text)
    assert chunks[0].section == "page 1"
    assert chunks[-1].section == "page 2"


def test_corpus_documents_chunk_exactly(tmp_path: Path) -> None:
    from assistant.readers import read_file

    chunker, tokenizer = _chunker(200, 32)
    corpus = Path(__file__).resolve().parent.parent / "corpus"
    paths = sorted(corpus.rglob("*.md"))[:10]
    assert len(paths) == 10
    for path in paths:
        loaded = read_file(path, path.name)
        chunks = chunker.split(loaded.text)
        assert_covers(loaded.text, chunks)
        for chunk in chunks:
            assert loaded.text[chunk.start : chunk.end] == chunk.text
            assert len(tokenizer.tokenize(chunk.text)) <= 200


def test_token_counts_survive_the_model_encoding_a_padded_batch() -> None:
    """Regression: the model's padded batches switch padding on in the shared tokenizer
    backend; the chunker's counter must not then see every text as 128 tokens long."""
    embedder = load_embedder(bundled_model_path())
    chunker = Chunker(embedder.tokenizer, 200, 32)
    before = chunker.split(TEXT)
    embedder.encode(["short", "a much longer text that forces padding " * 20])
    assert chunker.split(TEXT) == before
    assert chunker._splitter._length_function("hello world") == len(
        embedder.tokenizer.tokenize("hello world"))
