"""Extractive answering: quote the passage of the retrieved chunks that answers the question,
cite it verbatim, or abstain when the evidence does not cover the question.

No LLM is involved. Each candidate sentence of the reading list (evidence.py) is scored by a
few cheap signals, combined linearly (sentence_features.py). The best sentence seeds the
answer and brings what it needs to be read alone: the items it announces ("Two tests decide
...:"), and the sentence naming what its "This" or "He" refers to (passages.py). Further
sentences join when they score close to the seed, neighbours more easily than sentences
from elsewhere. Page furniture (boilerplate.py) is never quoted.

Abstention: a question about a name, year or entity no evidence chunk mentions is refused
(questions.py reads which words name the subject), so is one whose best sentence is not
similar enough (`threshold`), and so is one that asks for a figure, year or name that no
candidate sentence carries: "the knowledge base does not give" it.

Every quote is an exact slice of a stored chunk and every `[n]` in the answer resolves to a
citation: `check_citations` enforces both before anything is returned.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from assistant.boilerplate import is_boilerplate, normalise
from assistant.evidence import EXTRA_SECTION_CHUNKS, Evidence, reading_list  # noqa: F401
from assistant.locations import location_at
from assistant.passages import adjacent, continuation, expand, quote_runs
from assistant.questions import analyse, carries, specific_terms, uncovered
from assistant.retrieval import ScoredChunk
from assistant.schemas import AnswerResponse, Citation
from assistant.sentence_features import (  # noqa: F401 (FEATURES, defines re-exported)
    FEATURES,
    WEIGHTS,
    Sentence,
    defines,
    features,
    split_sentences,
)
from assistant.sentences import SENTENCES_KEY, unpack

if TYPE_CHECKING:
    from assistant.embeddings import Embedder

ABSTAIN_TEXT = (
    "The knowledge base does not cover this question: no passage in the indexed documents "
    "answers it closely enough to cite."
)
_DETAIL_LABEL = {"number": "figure", "date": "date or year", "person": "name or role",
                 "org": "organisation"}
_MARKER = re.compile(r"\[(\d+)\]")
RANK_BONUS = 0.04  # ranks the candidates `score` also encodes alone
DUPLICATE_COSINE = 0.9
EVIDENCE_CANDIDATES = 1  # best in-context sentence also scored encoded alone
DETAIL_CANDIDATES = 5  # best-scored sentences searched for the figure, year or name asked for
MIN_SENTENCES = 2  # quoted sentences an answer gets when a second is about as similar...
SECOND_WINDOW = 0.08  # ...as the seed: within this cosine of it
SEED_WINDOW = 0.04  # a further sentence joins when it scores within this of the seed...
NEIGHBOUR_WINDOW = 0.14  # ...or within this when it sits next to a chosen sentence


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

    def __init__(self, embedder: Embedder, size: int = 20_000) -> None:
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
    """Builds a cited answer of at most `max_sentences` quoted sentences from retrieved
    chunks (plus the items an announcing sentence introduces)."""

    def __init__(self, embedder: Embedder, threshold: float, max_sentences: int = 4,
                 weights: np.ndarray | None = None) -> None:
        self.cache = SentenceEmbeddingCache(embedder)
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.weights = WEIGHTS if weights is None else weights

    def respond(self, evidence: Evidence) -> AnswerResponse:
        """The answer to the evidence's question from its reading list (an abstention when
        nothing was retrieved), with the rewritten query when condensing changed it."""
        response = abstention() if not evidence.reading else self.answer(
            evidence.embedding, evidence.reading, evidence.question, evidence.furniture,
            evidence.chunks)
        response.query = evidence.rewritten
        return response

    def score(
        self, query_embedding: np.ndarray, chunks: list[ScoredChunk]
    ) -> tuple[list[Sentence], np.ndarray, np.ndarray]:
        """Candidate sentences, their cosine similarity to the question, and their vectors.

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
        self,
        query_embedding: np.ndarray,
        chunks: list[ScoredChunk],
        question: str = "",
        furniture: Collection[str] = (),
        more: list[ScoredChunk] | None = None,
    ) -> AnswerResponse:
        """The cited answer, or an abstention that says why.

        `furniture`: normalised sentences known to be page furniture in this collection
        (repeated across documents, see boilerplate.py); never quoted. `more`: further
        retrieved chunks, where the items an announcing sentence introduces may continue
        when they run past the end of its chunk.
        """
        missing = uncovered_terms(question, chunks)
        if missing:
            names = ", ".join(f"'{m}'" for m in missing)
            return abstention(f"The knowledge base does not cover this question: none of the "
                              f"passages that match it mentions {names}.")
        sentences, cosines, vectors = self.score(query_embedding, chunks)
        keep = [i for i, s in enumerate(sentences)
                if not is_boilerplate(s.quote) and normalise(s.quote) not in furniture]
        if not keep or float(cosines[keep].max()) < self.threshold:
            return abstention()
        q = analyse(question)
        x = features(q, sentences, cosines)
        if q.overview:
            # "What did we find at X?": quote the findings, not X's background
            answering = [i for i in keep if x[i, FEATURES.index("intent")] > 0
                         and cosines[i] >= self.threshold]
            keep = answering or keep
        scores = np.full(len(sentences), -np.inf)
        scores[keep] = x[keep] @ self.weights
        # The detail asked for must be in one of the few sentences that would be quoted.
        candidates = [int(i) for i in np.argsort(-scores)[:DETAIL_CANDIDATES]
                      if np.isfinite(scores[i]) and cosines[i] >= self.threshold]
        if q.answer_type and not any(carries(q.answer_type, sentences[i].quote, q.asking)
                                     for i in candidates):
            return abstention(
                f"The knowledge base covers this topic but does not give the "
                f"{_DETAIL_LABEL[q.answer_type]} asked for: none of the matching passages "
                f"states one.")
        chosen = self._select(sentences, scores, cosines, vectors)
        extra = continuation(sentences, chosen[0], more or [])
        if extra:
            sentences = sentences + extra
            cosines = np.concatenate([cosines, np.zeros(len(extra))])
            chosen[0] = chosen[0] + list(range(len(sentences) - len(extra), len(sentences)))
            chunks = chunks + [extra[0].chunk]
        return self._respond(sentences, chosen, cosines, chunks)

    def _select(self, sentences: list[Sentence], scores: np.ndarray, cosines: np.ndarray,
                vectors: np.ndarray) -> list[list[int]]:
        """Groups of sentence indices to quote: the seed's passage first, then the others."""
        order = [int(i) for i in np.argsort(-scores) if np.isfinite(scores[i])]
        seed = order[0]
        groups = [expand(sentences, seed)]
        taken = set(groups[0])
        count = 1
        for i in order[1:]:
            if count >= self.max_sentences:
                break
            if i in taken or cosines[i] < self.threshold:
                continue
            gap = scores[seed] - scores[i]
            # A lone sentence is one reading of the evidence; a second one above the
            # threshold lets the reader check it against another passage.
            second = count < MIN_SENTENCES and len(taken) < MIN_SENTENCES and \
                cosines[i] >= cosines[seed] - SECOND_WINDOW
            if gap > NEIGHBOUR_WINDOW and not second:
                break
            if gap > SEED_WINDOW and not second and not any(
                    adjacent(sentences[i], sentences[j]) for j in taken):
                continue
            if any(float(vectors[i] @ vectors[j]) > DUPLICATE_COSINE for j in taken):
                continue
            # only the seed brings the items it announces: a second list would double the
            # answer; a pronoun's antecedent is always worth its sentence
            group = [j for j in expand(sentences, i, items=False) if j not in taken]
            groups.append(group)
            taken.update(group)
            count += 1
        return groups

    def _respond(self, sentences: list[Sentence], groups: list[list[int]],
                 cosines: np.ndarray, chunks: list[ScoredChunk]) -> AnswerResponse:
        parts: list[str] = []
        citations: list[Citation] = []
        for group in groups:
            for span in quote_runs(sentences, group):  # in reading order, as `expand` built it
                first, last = sentences[span[0]], sentences[span[-1]]
                chunk = first.chunk
                meta = chunk.metadata
                chunk_start = int(meta.get("start", 0))
                n = len(citations) + 1
                quote = chunk.text[first.start:last.end]
                citations.append(Citation(
                    n=n, doc_id=chunk.doc_id, title=str(meta.get("title", "")),
                    section=str(meta.get("section", "")), quote=quote,
                    score=round(float(max(cosines[j] for j in span)), 4), chunk_id=chunk.id,
                    start=chunk_start + first.start, end=chunk_start + last.end,
                    location=location_at(meta, chunk_start + first.start),
                ))
                parts.append(f"{display_text(quote)} [{n}]")
        response = AnswerResponse(answer=" ".join(parts), abstained=False, citations=citations)
        check_citations(response, {c.id: c.text for c in chunks})
        return response


def uncovered_terms(question: str, chunks: list[ScoredChunk]) -> list[str]:
    """Subject terms of the question (names, years, identifiers) no evidence chunk mentions.

    A question about a year, client or entity the retrieved passages never name is one the
    knowledge base does not answer, however similar the rest of its wording. Titles, doc_ids
    and clients count as mentions: a filing's page names its company in its file name.
    """
    if not question or not chunks:
        return []
    haystack = " ".join(
        f"{c.text} {c.metadata.get('title', '')} {c.metadata.get('client', '')} "
        f"{re.sub(r'[_/.-]+', ' ', c.doc_id)}" for c in chunks).lower()
    return uncovered(specific_terms(question), haystack)


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
