"""Citation verification for LLM answers: every [n] either checks out against its source,
is flagged as unsupported, or is dropped, before anyone sees it.

For each sentence of the model's answer that carries markers, each cited source is split
into sentences exactly as the extractive answerer splits chunks (`split_sentences`) and
scored with the same embedder and cache (`SentenceEmbeddingCache`): the best-matching span
(one sentence, or two adjacent ones, as models often merge them) becomes the citation's
verbatim `quote`, and the citation is `supported` when that cosine reaches the threshold.
Markers are renumbered in order of appearance, one per (source, span), so each `[n]` in the
returned text names one quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.answering import SentenceEmbeddingCache, split_sentences
from assistant.locations import location_at
from assistant.prompts import NO_ANSWER, PROMPT_VERSION, Source
from assistant.schemas import Citation, VerificationReport

# One marker group: [1], [ 1 ], [1, 2], [1;2], [1-3], [Source 1], [source: 2]. Runs such as
# [1][2] are several groups. Any bracketed number counts ("[2024]" too, then dropped as no
# source), so nothing left in the text can look like an unverified citation.
MARKER_GROUP = re.compile(
    r"\[\s*(?:(?:sources?|src|refs?|doc)\s*[:#]?\s*)?"
    r"(\d+(?:\s*(?:,|;|-|–|and)\s*(?:(?:sources?|src|refs?)\s*)?\d+)*)\s*\]",
    re.I,
)
_NUMBER = re.compile(r"\d+")
_RANGE = re.compile(r"^\s*(\d+)\s*[-–]\s*(\d+)\s*$")
_LIST_PREFIX = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s+")  # bullets, headings
MIN_CLAIM_WORDS = 3  # "Yes [1]." asserts nothing a source could be checked against


def parse_numbers(group: str) -> list[int]:
    """Source numbers in one marker group's inside, in order, without repeats."""
    match = _RANGE.match(group)
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo <= hi <= lo + 10:
            return list(range(lo, hi + 1))
    return list(dict.fromkeys(int(n) for n in _NUMBER.findall(group)))


@dataclass
class _Sentence:
    start: int
    end: int
    groups: list[int] = field(default_factory=list)  # indexes into the marker-group list


@dataclass
class _Group:
    start: int
    end: int
    numbers: list[int]
    assigned: list[int] = field(default_factory=list)  # citation numbers after renumbering


@dataclass
class Verified:
    """A verified answer: rewritten text, its citations and what was done to the markers."""

    answer: str
    citations: list[Citation]
    report: VerificationReport
    says_no_answer: bool = False  # the model replied that the sources do not answer


def _sentences(text: str) -> list[_Sentence]:
    """Sentence spans of the answer, line by line, with punkt (shipped by llama-index)."""
    from llama_index.core.utils import globals_helper

    punkt = globals_helper.punkt_tokenizer
    out: list[_Sentence] = []
    offset = 0
    for line in text.split("\n"):
        for s, e in punkt.span_tokenize(line):
            out.append(_Sentence(offset + s, offset + e))
        offset += len(line) + 1
    return out


def _claim(text: str, sentence: _Sentence, groups: list[_Group]) -> str:
    """The sentence's words without its markers or list bullet."""
    span = text[sentence.start : sentence.end]
    for g in sorted(groups, key=lambda g: -g.start):
        if sentence.start <= g.start < sentence.end:
            a, b = g.start - sentence.start, min(g.end, sentence.end) - sentence.start
            span = span[:a] + " " + span[b:]
    span = _LIST_PREFIX.sub("", span)
    return " ".join(span.replace("**", "").split())


def _attach(text: str, sentences: list[_Sentence], groups: list[_Group]) -> None:
    """Give each marker group to the sentence it cites for.

    A group inside or at the end of a sentence belongs to it; a group that opens a sentence
    ("Claim. [1] Next claim.") belongs to the sentence before, if there is one.
    """
    for gi, g in enumerate(groups):
        owner = next((i for i, s in enumerate(sentences) if s.start <= g.start < s.end), None)
        if owner is None:
            owner = max((i for i, s in enumerate(sentences) if s.end <= g.start), default=None)
        if owner is None:
            continue
        before = text[sentences[owner].start : g.start]
        if owner > 0 and not MARKER_GROUP.sub("", before).strip():
            owner -= 1
        sentences[owner].groups.append(gi)


def _best_span(
    claim: str, source: Source, cache: SentenceEmbeddingCache
) -> tuple[int, int, float]:
    """(start, end, cosine) of the span of the source text that best matches `claim`.

    Only what the model was shown counts: a source cut to fit the budget is searched in
    its shown prefix.
    """
    spans = [(s.start, s.end) for s in split_sentences(source.chunk, 0) if s.end <= len(
        source.text)]
    spans += [(a[0], b[1]) for a, b in zip(spans, spans[1:], strict=False)]
    if not spans:
        stripped = source.text.strip()
        lead = source.text.find(stripped) if stripped else 0
        spans = [(lead, lead + len(stripped))]
    quotes = [source.chunk.text[a:b] for a, b in spans]
    vectors = cache.encode([claim, *quotes])
    cosines = vectors[1:] @ vectors[0]
    best = int(cosines.argmax())
    return spans[best][0], spans[best][1], float(cosines[best])


def _says_no_answer(text: str) -> bool:
    def words(s: str) -> str:
        return " ".join(re.findall(r"[a-z]+", s.lower()))

    return words(NO_ANSWER) in words(text)


def verify_answer(
    text: str, sources: list[Source], cache: SentenceEmbeddingCache, threshold: float
) -> Verified:
    """Check every [n] of a model's answer against the sources it was shown."""
    groups = [_Group(m.start(), m.end(), parse_numbers(m.group(1)))
              for m in MARKER_GROUP.finditer(text)]
    sentences = _sentences(text)
    _attach(text, sentences, groups)
    by_n = {s.n: s for s in sources}
    citations: list[Citation] = []
    numbering: dict[tuple[int, int, int], int] = {}
    kept = flagged = dropped = uncited = 0
    for sentence in sentences:
        claim = _claim(text, sentence, groups)
        for gi in sentence.groups:
            group = groups[gi]
            for n in group.numbers:
                source = by_n.get(n)
                if source is None or not claim:
                    dropped += 1
                    continue
                start, end, cosine = _best_span(claim, source, cache)
                supported = cosine >= threshold and len(claim.split()) >= MIN_CLAIM_WORDS
                key = (n, start, end)
                if key not in numbering:
                    numbering[key] = len(numbering) + 1
                    meta = source.chunk.metadata
                    offset = int(meta.get("start", 0))
                    citations.append(Citation(
                        n=numbering[key], doc_id=source.chunk.doc_id,
                        title=str(meta.get("title", "")), section=str(meta.get("section", "")),
                        quote=source.chunk.text[start:end], score=round(cosine, 4),
                        chunk_id=source.chunk.id, start=offset + start, end=offset + end,
                        supported=supported, location=location_at(meta, offset + start),
                    ))
                else:  # the same span cited again: unsupported if any use of it is
                    cited = citations[numbering[key] - 1]
                    cited.supported = cited.supported and supported
                kept, flagged = (kept + 1, flagged) if supported else (kept, flagged + 1)
                if numbering[key] not in group.assigned:
                    group.assigned.append(numbering[key])
        shown = any(groups[gi].assigned for gi in sentence.groups)
        if not shown and len(claim.split()) >= MIN_CLAIM_WORDS and not _says_no_answer(claim):
            uncited += 1  # a claim left with no citation (none given, or all dropped)
    answer = _rewrite(text, groups)
    report = VerificationReport(kept=kept, flagged=flagged, dropped=dropped,
                                uncited_sentences=uncited, prompt_version=PROMPT_VERSION)
    says_no = not citations and _says_no_answer(text)
    return Verified(answer=answer, citations=citations, report=report, says_no_answer=says_no)


def _rewrite(text: str, groups: list[_Group]) -> str:
    """The answer with each marker group in canonical form ([1][2]) or removed."""
    out: list[str] = []
    pos = 0
    for g in groups:
        piece = text[pos : g.start]
        if not g.assigned:
            piece = piece.rstrip(" \t")
        out.append(piece)
        out.append("".join(f"[{n}]" for n in g.assigned))
        pos = g.end
    out.append(text[pos:])
    return "".join(out).strip()
