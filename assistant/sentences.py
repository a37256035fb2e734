"""Sentence spans of a chunk, and the compact sentence vectors ingest stores beside it.

The extractive answerer scores every sentence of the chunks it reads against the question.
Encoding ~25 sentences per answer took ~260 ms on 2 cores, so ingest stores them instead,
at no extra model cost: the chunk's own forward pass already computed a contextual state
for every token, and a sentence's vector is the mean of its tokens' states (the chunk's
vector is the mean of all of them). This is "late chunking" (Günther et al., 2024,
arXiv:2409.04701). Each sentence is read in its context ("it", "this rule" resolve); with
the best one also encoded alone for the abstention check (answering.py), the golden suite
scored better than encoding every sentence alone: citation precision 0.794 -> 0.813,
expect_any 0.574 -> 0.610, abstention unchanged.

Stored per chunk in its Chroma metadata under `SENTENCES_KEY`, so it lives and dies with the
chunk, in embedded and server mode alike: the sentence spans (to check they are still the
spans `sentence_spans` gives) and int8 vectors with one scale each (cosine to the float
vector > 0.9999), base64-encoded. Anything that does not decode or match is ignored and
those sentences are encoded at answer time, as before.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import numpy as np

SENTENCES_KEY = "cx_sentences"
SENTENCES_VERSION = "s2"  # part of ingest's signature: a new format re-embeds on next ingest
_HEADING = re.compile(r"^\s*#{1,6}\s")
_LIST_PREFIX = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")
_MIN_CHARS, _MAX_CHARS = 25, 500
# A parenthetical aside such as "(See *Defining Cx Quality Faults*.)" names a topic without
# saying anything about it; its similarity to the question is high and its value nil.
_ASIDE = re.compile(r"^\(.*\)[.!?]?$|^\(?see\b", re.I)
_MAX_OFFSET = 65_535  # spans are stored as uint16


def _segments(text: str) -> list[tuple[int, int, int]]:
    """(start, body start, end) of each piece of running text: a list item, a table row, or
    a paragraph whose hard-wrapped lines are joined.

    PDF text and plain-text files wrap lines mid-sentence; reading them line by line quoted
    fragments ("... each formal appeal costs Meridian about $182 to"). A line is joined to
    the next when it is long enough to have been wrapped (>= 40 characters), does not end
    a sentence, and the next line is ordinary text (not blank, a heading, a list item or a
    table row). Short unpunctuated lines ("Context") are a PDF's headings and stay apart.
    """
    out: list[tuple[int, int, int]] = []
    offset = 0
    current: list[int] | None = None  # [start, body_start, end] of the open paragraph
    for line in text.split("\n"):
        line_start = offset
        offset += len(line) + 1
        special = (not line.strip() or _HEADING.match(line) or _TABLE_RULE.match(line))
        prefix = _LIST_PREFIX.match(line)
        structural = bool(prefix) or line.lstrip().startswith("|")
        if current is not None and not special and not structural:
            current[2] = line_start + len(line)  # a wrapped continuation
        elif not special:
            body = prefix.end() if prefix else len(line) - len(line.lstrip())
            current = [line_start, line_start + body, line_start + len(line)]
            out.append(current)  # type: ignore[arg-type]
        else:
            current = None
            continue
        stripped = line.rstrip()
        if (structural and not prefix) or len(stripped) < 40 or \
                stripped.endswith((".", "!", "?", '"', "”", ")", "|")):
            current = None  # this line ends its paragraph
    return [tuple(seg) for seg in out]  # type: ignore[misc]


_LABEL = re.compile(r"^(\*\*|__)[^*_]{2,80}[.:](\*\*|__)$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each answerable sentence of a chunk.

    Runs of text come from `_segments` (list items, table rows, paragraphs with wrapped
    lines joined); headings, table rules, list markers, fragments and asides are left out.
    A bold lead-in label ("**The promise test.** Did we say ...") stays with the sentence
    it introduces: punkt cuts after its full stop and would leave the label as a fragment
    and "** Did we say" as the next sentence. Uses the punkt tokenizer that llama-index
    ships (no download) for sentence boundaries.
    """
    from llama_index.core.utils import globals_helper

    punkt = globals_helper.punkt_tokenizer
    out: list[tuple[int, int]] = []
    for _, body_start, end in _segments(text):
        body = text[body_start:end]
        spans = [list(span) for span in punkt.span_tokenize(body)]
        for k in range(len(spans) - 1):  # move a closing ** back to the label it closes
            nxt = body[spans[k + 1][0]:spans[k + 1][1]]
            marker = nxt[:2]
            if marker in ("**", "__") and body[spans[k][0]:spans[k][1]].count(marker) % 2:
                spans[k][1] += 2
                spans[k + 1][0] += 2 + (len(nxt[2:]) - len(nxt[2:].lstrip()))
        merged: list[list[int]] = []
        for span in spans:
            if merged and _LABEL.match(body[merged[-1][0]:merged[-1][1]].strip()):
                merged[-1][1] = span[1]  # label + its sentence
            else:
                merged.append(span)
        for s, e in merged:
            raw = body[s:e]
            quote = raw.strip()
            if _MIN_CHARS <= len(quote) <= _MAX_CHARS and len(quote.split()) >= 5 \
                    and not _ASIDE.match(quote):
                start = body_start + s + len(raw) - len(raw.lstrip())
                out.append((start, start + len(quote)))
    return out


def pool_spans(
    states: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]]
) -> np.ndarray | None:
    """Normalised mean of the token states inside each character span, or None.

    `offsets` are the tokenizer's (start, end) per token, in the same coordinates as the
    spans; special tokens ((0, 0)) belong to no span. None when a span has no token at all
    (it lies past the model's truncation), so the caller falls back to encoding.
    """
    real = offsets[:, 1] > offsets[:, 0]
    out = np.empty((len(spans), states.shape[1]), dtype=np.float32)
    for i, (start, end) in enumerate(spans):
        inside = real & (offsets[:, 1] > start) & (offsets[:, 0] < end)
        if not inside.any():
            return None
        v = states[inside].mean(axis=0)
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def pack(spans: Sequence[tuple[int, int]], vectors: np.ndarray) -> str | None:
    """The metadata string for a chunk's sentence vectors (None if spans don't fit uint16)."""
    if not spans or max(e for _, e in spans) > _MAX_OFFSET:
        return None
    scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    quantised = np.round(vectors / scale[:, None]).astype(np.int8)
    payload = (np.array([len(spans), vectors.shape[1]], dtype=np.uint16).tobytes()
               + np.asarray(spans, dtype=np.uint16).tobytes()
               + scale.astype(np.float32).tobytes() + quantised.tobytes())
    return f"{SENTENCES_VERSION}:" + base64.b64encode(payload).decode("ascii")


def unpack(blob: object, spans: Sequence[tuple[int, int]], dimension: int) -> np.ndarray | None:
    """The stored vectors for exactly these spans, normalised float32; else None."""
    if not isinstance(blob, str) or not blob.startswith(f"{SENTENCES_VERSION}:"):
        return None
    try:
        raw = base64.b64decode(blob[len(SENTENCES_VERSION) + 1:], validate=True)
        n, dim = (int(x) for x in np.frombuffer(raw[:4], dtype=np.uint16))
        at = 4 + 4 * n
        stored = np.frombuffer(raw[4:at], dtype=np.uint16).reshape(n, 2)
        scale = np.frombuffer(raw[at:at + 4 * n], dtype=np.float32)
        q = np.frombuffer(raw[at + 4 * n:], dtype=np.int8).reshape(n, dim)
    except (ValueError, TypeError):
        return None
    if dim != dimension or stored.tolist() != [list(s) for s in spans]:
        return None
    vectors = q.astype(np.float32) * scale[:, None]
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
