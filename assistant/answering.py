"""Extractive answering: pick the sentences of the retrieved chunks that best answer the
question, cite each verbatim, or abstain when the evidence is too weak.

No LLM is involved. Sentences are scored by cosine similarity to the question (sentence
vectors stored at ingest, see assistant/sentences.py; else encoded with the same embedder
the retriever uses), plus a small bonus for the chunk's retrieval rank; near-duplicate
sentences are skipped. Every quote is an exact slice of a stored chunk and every `[n]` in the
answer resolves to a citation: `check_citations` enforces both before anything is returned.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.retrieval import ScoredChunk
from assistant.schemas import AnswerResponse, Citation
from assistant.sentences import SENTENCES_KEY, sentence_spans, unpack

ABSTAIN_TEXT = (
    "The knowledge base does not cover this question: no passage in the indexed documents "
    "answers it closely enough to cite."
)
_MARKER = re.compile(r"\[(\d+)\]")
RANK_BONUS = 0.04  # favours sentences from the chunks fusion ranked highest
DUPLICATE_COSINE = 0.9
RELATIVE_WINDOW = 0.12  # keep sentences within this cosine of the best one
MIN_SENTENCES = 2
EVIDENCE_CANDIDATES = 1  # best in-context sentence also scored encoded alone


@dataclass
class Sentence:
    """A candidate sentence: its exact span inside one chunk."""

    chunk: ScoredChunk
    chunk_rank: int
    start: int  # offset within the chunk text
    end: int

    @property
    def quote(self) -> str:
        return self.chunk.text[self.start : self.end]


def split_sentences(chunk: ScoredChunk, rank: int) -> list[Sentence]:
    """Sentences of a chunk as exact spans (see `sentences.sentence_spans`)."""
    return [Sentence(chunk, rank, start, end) for start, end in sentence_spans(chunk.text)]


def display_text(quote: str) -> str:
    """Readable form of a quote for the answer text (the citation keeps the verbatim quote)."""
    text = quote.replace("**", "").replace("__", "").replace("`", "")
    # A source's own reference markers ("... as shown before [2].") would read as our
    # citations in the answer; show them as "(2)".
    text = _MARKER.sub(r"(\1)", text)
    if text.startswith("|"):
        text = " — ".join(c.strip() for c in text.strip().strip("|").split("|") if c.strip())
    text = " ".join(text.split())
    if text and text[-1] not in ".!?:;)\"'”’":
        text += "."
    return text


class SentenceEmbeddingCache:
    """LRU of sentence vectors: the same chunks come back for related questions."""

    def __init__(self, embedder: Any, size: int = 20_000) -> None:
        self.embedder = embedder
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._items]
        if missing:
            # one text (the answerer's evidence check): the traced single-text path, ~3x
            # faster than a batch call
            one = getattr(self.embedder, "encode_one", None)
            vectors = [one(missing[0])] if one and len(missing) == 1 else \
                self.embedder.encode(missing)
            for text, vector in zip(missing, vectors, strict=True):
                self._items[text] = vector
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        for t in texts:
            self._items.move_to_end(t)
        return np.stack([self._items[t] for t in texts])


class ExtractiveAnswerer:
    """Builds a cited 1-`max_sentences` sentence answer from retrieved chunks."""

    def __init__(self, embedder: Any, threshold: float, max_sentences: int = 4) -> None:
        self.cache = SentenceEmbeddingCache(embedder)
        self.threshold = threshold
        self.max_sentences = max_sentences

    def score(
        self, query_embedding: np.ndarray, chunks: list[ScoredChunk]
    ) -> tuple[list[Sentence], np.ndarray, np.ndarray]:
        """Candidate sentences, their ranking scores and their embeddings.

        Sentence vectors come from the chunk's metadata when ingest stored them (see
        assistant/sentences.py: no model call); sentences of chunks without them (an index
        built before, a span past the model's 256 tokens) are encoded here, cached.
        """
        sentences: list[Sentence] = []
        parts: list[np.ndarray | None] = []
        for rank, chunk in enumerate(chunks):
            found = split_sentences(chunk, rank)
            if found:
                sentences += found
                parts.append(unpack(chunk.metadata.get(SENTENCES_KEY),
                                    [(s.start, s.end) for s in found], len(query_embedding)))
                if parts[-1] is None:
                    parts[-1] = self.cache.encode([s.quote for s in found])
        if not sentences:
            return [], np.zeros(0), np.zeros((0, 1))
        vectors = np.concatenate([p for p in parts if p is not None]).astype(np.float32)
        cosines = vectors @ query_embedding
        # In-context vectors rank well but score a lone, directly answering sentence lower
        # than the sentence encoded alone (0.33 vs 0.43 for "...is chaired by the journey
        # owner." against "Who chairs the fault review?"). The few best candidates are also
        # encoded alone (cached) and keep the higher of the two similarities as evidence.
        ranked = cosines + np.array([RANK_BONUS / (1 + s.chunk_rank) for s in sentences])
        top = np.argsort(-ranked)[:EVIDENCE_CANDIDATES]
        alone = self.cache.encode([sentences[i].quote for i in top]) @ query_embedding
        cosines[top] = np.maximum(cosines[top], alone)
        return sentences, cosines, vectors

    def answer(
        self, query_embedding: np.ndarray, chunks: list[ScoredChunk], question: str = ""
    ) -> AnswerResponse:
        missing = uncovered_terms(question, chunks)
        if missing:
            names = ", ".join(f"'{m}'" for m in missing)
            return abstention(f"The knowledge base does not cover this question: none of the "
                              f"passages that match it mentions {names}.")
        sentences, cosines, vectors = self.score(query_embedding, chunks)
        if not sentences or float(cosines.max()) < self.threshold:
            return abstention()
        ranked = cosines + np.array([RANK_BONUS / (1 + s.chunk_rank) for s in sentences])
        order = np.argsort(-ranked)
        best = float(cosines.max())
        chosen: list[int] = []
        for i in order:
            if len(chosen) == self.max_sentences:
                break
            # The relative window keeps answers tight, but a second supporting sentence
            # (anything above the abstention threshold) is always worth giving.
            floor = self.threshold if len(chosen) < MIN_SENTENCES else best - RELATIVE_WINDOW
            if cosines[i] < max(self.threshold, floor):
                continue
            if any(float(vectors[i] @ vectors[j]) > DUPLICATE_COSINE for j in chosen):
                continue
            chosen.append(int(i))
        parts, citations = [], []
        for n, i in enumerate(chosen, start=1):
            s = sentences[i]
            meta = s.chunk.metadata
            chunk_start = int(meta.get("start", 0))
            citations.append(Citation(
                n=n, doc_id=s.chunk.doc_id, title=str(meta.get("title", "")),
                section=str(meta.get("section", "")), quote=s.quote,
                score=round(float(cosines[i]), 4), chunk_id=s.chunk.id,
                start=chunk_start + s.start, end=chunk_start + s.end,
            ))
            parts.append(f"{display_text(s.quote)} [{n}]")
        response = AnswerResponse(answer=" ".join(parts), abstained=False, citations=citations)
        check_citations(response, {c.id: c.text for c in chunks})
        return response


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'&.]*[A-Za-z0-9]|[A-Za-z0-9]")


def specific_terms(question: str) -> list[str]:
    """Names and numbers in a question: capitalised words (bar the first) and digits.

    These are what near-domain questions hinge on ("NPS ... in 2019", "our Sterling Rail
    engagement"); paraphrases change common words but rarely invent names or years.
    """
    out: list[str] = []
    for i, token in enumerate(_TOKEN.findall(question.replace("-", " "))):
        token = re.sub(r"'s$", "", token)
        if any(ch.isdigit() for ch in token) or (i > 0 and token[:1].isupper()):
            out.append(token)
    return list(dict.fromkeys(out))


def uncovered_terms(question: str, chunks: list[ScoredChunk]) -> list[str]:
    """Specific terms of the question that none of the evidence chunks mentions.

    A question about a year, client or entity the retrieved passages never name is one the
    knowledge base does not answer, however similar the rest of its wording; measured on the
    golden suite this catches most near-domain questions the similarity threshold lets by.
    """
    if not question or not chunks:
        return []
    haystack = " ".join(f"{c.text} {c.metadata.get('title', '')}" for c in chunks).lower()

    def covered(term: str) -> bool:
        term = term.lower()
        forms = {term, term[:-1] if term.endswith("s") and len(term) > 3 else term}
        return any(f in haystack for f in forms)

    return [t for t in specific_terms(question) if not covered(t)]


def abstention(reason: str = ABSTAIN_TEXT) -> AnswerResponse:
    return AnswerResponse(answer=reason, abstained=True, citations=[])


class CitationError(AssertionError):
    """An answer would have shown a citation that does not check out."""


def check_citations(response: AnswerResponse, chunk_texts: dict[str, str]) -> None:
    """Every [n] resolves to a citation, and every quote is verbatim in its chunk."""
    numbers = {c.n for c in response.citations}
    for marker in _MARKER.findall(response.answer):
        if int(marker) not in numbers:
            raise CitationError(f"answer cites [{marker}] but no such citation exists")
    for c in response.citations:
        text = chunk_texts.get(c.chunk_id)
        if text is None or c.quote not in text:
            raise CitationError(f"citation [{c.n}] quote is not verbatim in chunk {c.chunk_id}")
    if response.abstained and response.citations:
        raise CitationError("an abstention must not carry citations")
