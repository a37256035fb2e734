"""Chunking: Markdown headers first (the header path becomes `section`), then a recursive
splitter measured in the embedding model's own tokens, so no chunk is silently truncated.

Every chunk is an exact slice of the reader's text (`text[start:end]`); that is what lets a
citation quote be checked verbatim and a span be mapped back to the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.readers import PAGE_BREAK

_HEADING_ONLY = re.compile(r"^\s*(#{1,6}[^\n]*\s*)+$")
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]


@dataclass(frozen=True)
class Chunk:
    """One piece of a document: its text, where it sits in the source, and its section."""

    index: int
    text: str
    start: int
    end: int
    section: str


class Chunker:
    """Splits a document's text into token-bounded chunks with exact character spans."""

    def __init__(self, tokenizer: Any, chunk_size: int, chunk_overlap: int) -> None:
        self._headers = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=False)
        self._splitter = RecursiveCharacterTextSplitter(
            length_function=token_counter(tokenizer),
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=[PAGE_BREAK, "\n\n", "\n", ". ", " ", ""],
            keep_separator="end",
            add_start_index=True,
        )

    def split(self, text: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for sec_start, sec_end, section in self._sections(text):
            body = text[sec_start:sec_end]
            for piece in self._splitter.create_documents([body]):
                content = piece.page_content
                local = piece.metadata.get("start_index", -1)
                if local < 0 or body[local : local + len(content)] != content:
                    local = body.find(content)
                if local < 0 or not content.strip():
                    continue
                start = sec_start + local
                label = section or _page_label(text, start)
                chunks.append(Chunk(len(chunks), content, start, start + len(content), label))
        # A chunk that is nothing but a heading carries no content of its own (the heading
        # is already its section name); drop it unless it is all the document has.
        kept = [c for c in chunks if not _HEADING_ONLY.match(c.text)] or chunks
        return [Chunk(i, c.text, c.start, c.end, c.section) for i, c in enumerate(kept)]

    def _sections(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, header path) for each Markdown section, located in the source text.

        The langchain splitter rewrites whitespace, so its output only tells us where the
        sections are; we find each header line in the original to keep exact offsets.
        """
        starts: list[tuple[int, str]] = []
        cursor = 0
        for doc in self._headers.split_text(text):
            path = " > ".join(doc.metadata[k] for _, k in _HEADERS if k in doc.metadata)
            first = doc.page_content.split("\n", 1)[0].strip()
            pos = 0
            if first.startswith("#"):
                pattern = r"^[ \t]*" + re.escape(first) + r"[ \t#]*$"
                match = re.compile(pattern, re.M).search(text, cursor)
                if match is None:
                    continue  # header not found verbatim: keep it inside the previous section
                pos = match.start()
            elif starts:
                continue
            starts.append((pos, path))
            cursor = max(cursor, pos + 1)
        if not starts or starts[0][0] > 0:
            starts.insert(0, (0, ""))
        bounds = [s for s, _ in starts] + [len(text)]
        return [
            (bounds[i], bounds[i + 1], starts[i][1])
            for i in range(len(starts))
            if text[bounds[i] : bounds[i + 1]].strip()
        ]


def token_counter(tokenizer: Any) -> Any:
    """Length in the model's tokens, as langchain's `from_huggingface_tokenizer` measures it.

    The splitter measures every candidate piece, so this runs ~20 times per chunk; the Rust
    tokenizer underneath a fast tokenizer gives the same count without transformers'
    per-call wrapping, which was a third of chunking time.
    """
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer.tokenize(text))
    from tokenizers import Tokenizer

    # A private copy: transformers switches padding and truncation on the shared backend
    # whenever the model encodes a padded batch, which would make every count 128.
    fast = Tokenizer.from_str(backend.to_str())
    fast.no_padding()
    fast.no_truncation()
    return lambda text: len(fast.encode(text, add_special_tokens=False).ids)


def _page_label(text: str, start: int) -> str:
    """For paged sources (PDF) without headings, the page number is the best section name."""
    if PAGE_BREAK not in text:
        return ""
    return f"page {text.count(PAGE_BREAK, 0, start) + 1}"
