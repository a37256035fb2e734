"""Candidate sentences of an extractive answer and the signals each is scored by.

A candidate is an exact span of a retrieved chunk (`Sentence`). `features` gives each one
the cheap signals in `FEATURES`: cosine similarity to the question, lexical overlap,
novelty, whether its section is the kind that answers this kind of question, whether it
defines the question's subject, whether it carries the detail asked for (a figure, a year,
a name), its chunk's retrieval rank, and a few shapes of text that read badly alone. They
are combined linearly with `WEIGHTS`, set by hand on the golden suite's dev half
(eval/fit_sentence_ranker.py fits a ranker on the same half for comparison: it picked more
precise but fewer answering sentences, so the hand-set weights stay).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.questions import Question, carries, stems
from assistant.retrieval import ScoredChunk
from assistant.sentences import sentence_spans

# Signals per candidate sentence, in this order (see `features`).
FEATURES = ("cosine", "lexical", "novelty", "intent", "heading", "defines", "detail",
            "no_detail", "rank", "intro", "dangling", "rarity", "lead")
# Hand-set on the dev half (cosine keeps weight 1, so the answerer's threshold and windows
# stay on the cosine scale).
WEIGHTS = np.array([1.0, 0.10, 0.05, 0.06, 0.03, 0.30, 0.06, -0.12, 0.04, -0.05, -0.04,
                    0.0, 0.05])

PRONOUN_LED = re.compile(
    r"^(?:he|she|they|this|these|that|those|it|its|their|his|her|such|both|the latter|"
    r"the former|there)\b", re.I)
ANNOUNCES = re.compile(
    r":$|\b(?:as follows|the following)\b|\b(?P<n>two|three|four|five|six|seven|eight|\d)\s+"
    r"(?:\w+\s+){0,2}(?:things|tests|steps|questions|reasons|rules|ways|criteria|points|"
    r"factors|principles|stages|parts|elements|loops|types|kinds|faults|findings|"
    r"recommendations|changes|lessons|roles|measures|pillars|signals|checks|levers|"
    r"habits|moves|failures|causes|options)\b", re.I)
_COUNT = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_COPULA = re.compile(r"\b(?:is|are|means|mean|refers? to|describes?|denotes?|"
                     r"(?:is|are) defined as|consists? of)\b", re.I)
_WE_DEFINE = re.compile(r"\b(?:we|i) (?:define|call|use the term|mean by)\b|\bdefined as\b",
                        re.I)


@dataclass
class Sentence:
    """A candidate sentence: its exact span inside one chunk."""

    chunk: ScoredChunk
    chunk_rank: int
    start: int  # offset within the chunk text
    end: int
    index: int = 0  # position among its chunk's sentences

    @property
    def quote(self) -> str:
        return self.chunk.text[self.start : self.end]


def split_sentences(chunk: ScoredChunk, rank: int) -> list[Sentence]:
    """Sentences of a chunk as exact spans (see `sentences.sentence_spans`)."""
    return [Sentence(chunk, rank, start, end, i)
            for i, (start, end) in enumerate(sentence_spans(chunk.text))]


def announced(quote: str) -> re.Match[str] | None:
    """The announcement in a sentence that introduces items ("Two tests decide ...:")."""
    return ANNOUNCES.search(quote.rstrip("*_ "))


def announced_count(announcement: re.Match[str]) -> int:
    """How many items an announcement introduces: as many as it says, else 3; at most 5."""
    word = (announcement.group("n") or "").lower()
    return min(_COUNT.get(word, int(word) if word.isdigit() else 3), 5)


def pronoun_led(quote: str) -> bool:
    """Whether a sentence starts with a pronoun ("He argues ...", "This is why ...")."""
    return bool(PRONOUN_LED.match(quote.lstrip("*_ ")))


def features(q: Question, sentences: list[Sentence], cosines: np.ndarray) -> np.ndarray:
    """The `FEATURES` matrix: one row per candidate sentence."""
    x = np.zeros((len(sentences), len(FEATURES)), dtype=np.float32)
    terms = q.terms
    section_stems: dict[str, set[str]] = {}
    stem_sets = [set(stems(s.quote)) for s in sentences]
    positions = {(s.chunk.id, s.index) for s in sentences}
    # A question word that few of the candidate sentences share (a figure's name, not the
    # client's) says more about which sentence answers: IDF within the reading list.
    df = {t: sum(t in w for w in stem_sets) for t in terms}
    idf = {t: np.log((1 + len(sentences)) / (1 + df[t])) for t in terms}
    idf_total = sum(idf.values()) or 1.0
    for i, s in enumerate(sentences):
        wordset = stem_sets[i]
        section = str(s.chunk.metadata.get("section", ""))
        if section not in section_stems:
            leaf = section.split(" > ")[-1] if " > " in section else section
            section_stems[section] = set(stems(leaf))
        x[i, 0] = cosines[i]
        x[i, 1] = len(terms & wordset) / len(terms) if terms else 0.0
        x[i, 2] = len(wordset - terms) / len(wordset) if wordset else 0.0
        low_section = section.lower()
        x[i, 3] = float(any(intent in low_section for intent in q.intents))
        x[i, 4] = (len(terms & section_stems[section]) / len(terms)) if terms else 0.0
        x[i, 5] = float(bool(q.subject) and defines(q.subject, s.quote))
        if q.answer_type:
            has = carries(q.answer_type, s.quote, q.asking)
            x[i, 6], x[i, 7] = float(has), float(not has)
        x[i, 8] = 1.0 / (1 + s.chunk_rank)
        announces = bool(announced(s.quote))
        has_next = (s.chunk.id, s.index + 1) in positions
        # an echo of the question, or an announcement whose items are not in this chunk;
        # an announcement whose items follow is news: they are quoted with it
        lead = announces and has_next
        x[i, 9] = float((announces and not has_next) or (len(wordset - terms) <= 1
                                                           and not lead))
        x[i, 12] = float(lead)
        if lead:
            x[i, 2] = 1.0
        x[i, 10] = float(pronoun_led(s.quote) and s.index == 0)
        x[i, 11] = sum(idf[t] for t in terms & wordset) / idf_total
    return x


def defines(subject: set[str], sentence: str) -> bool:
    """Whether the sentence defines the subject: "A <subject> is ...", "we define <subject>
    as ...", "<subject> means ..." (the subject before the verb, near the start)."""
    text = sentence.replace("**", "").replace("__", "")
    need = max(1, int(np.ceil(0.6 * len(subject))))
    m = _COPULA.search(text)
    if m:
        before = stems(text[: m.start()])
        if len(before) <= 10 and len(subject & set(before)) >= need:
            return True
    w = _WE_DEFINE.search(text)
    return w is not None and len(subject & set(stems(text[w.start():]))) >= need
