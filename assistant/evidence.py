"""The evidence an answer reads: the condensed query, its embedding, the retrieved chunks and
the reading list with sentence vectors, all from one snapshot of the collection.

Both answerers (extractive, and LLM in llm_answering.py), the UI's source cards and
evaluation's citation check read the same `Evidence`, built once per answer by
`AssistantService.evidence`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.questions import analyse
from assistant.retrieval import Retriever, ScoredChunk
from assistant.schemas import HistoryTurn

EXTRA_SECTION_CHUNKS = 2  # chunks of the top document's answering section read in addition
_DEPENDENT = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|also|else|"
    r"what about|how about|and the|same)\b",
    re.I,
)
_STOP = {"what", "how", "why", "when", "who", "which", "is", "are", "was", "the", "a", "an",
         "do", "does", "did", "we", "of", "to", "in", "for", "on", "and", "or", "about"}


def condense_question(question: str, history: list[HistoryTurn] | None) -> str:
    """The retrieval query for a follow-up, without an LLM.

    Rule: when there is an earlier user turn and the new question leans on it (it uses a
    pronoun or phrase such as "it", "they", "that", "what about", or has fewer than three
    content words), the previous user question is prepended, so "and who owns it?" after
    "what is the Cx Quality Scorecard?" searches for both. Otherwise the question stands.
    """
    previous = [t.content for t in history or [] if t.role == "user" and t.content.strip()]
    if not previous:
        return question
    content = [w for w in re.findall(r"[A-Za-z0-9']+", question) if w.lower() not in _STOP]
    if _DEPENDENT.search(question) or len(content) < 3:
        return f"{previous[-1].strip()} {question.strip()}"
    return question


def reading_list(chunks: list[ScoredChunk], question: str, n: int) -> list[ScoredChunk]:
    """The chunks the answerer reads: the best `n`, plus the top document's answering section.

    "What did we find at X?" retrieves X's background first (it names X most often); the
    findings section of the same document, further down the candidates, is what answers.
    So when the question asks for a kind of section (findings, recommendations, results, a
    definition), up to `EXTRA_SECTION_CHUNKS` chunks of the top document whose section
    name is of that kind are read too.
    """
    reading = chunks[:n]
    intents = analyse(question).intents if reading else set()
    if not intents:
        return reading
    top_doc = reading[0].doc_id
    have = {c.id for c in reading}
    extra = [c for c in chunks[n:] if c.doc_id == top_doc and c.id not in have
             and any(i in str(c.metadata.get("section", "")).lower() for i in intents)]
    return reading + extra[:EXTRA_SECTION_CHUNKS]


@dataclass(frozen=True, eq=False)
class Evidence:
    """What one answer reads, from one collection snapshot.

    `chunks`: every retrieved candidate, best first (announced items may continue into one
    of them); `reading`: the reading list, copies carrying their stored sentence vectors.
    `condense_error`: why the LLM could not rewrite a follow-up (its server is down), so the
    LLM answerer does not wait for it a second time.
    """

    question: str
    query: str
    embedding: np.ndarray
    chunks: list[ScoredChunk]
    reading: list[ScoredChunk]
    snapshot: Retriever
    condense_error: str | None = None

    @classmethod
    def read(cls, snapshot: Retriever, question: str, query: str, embedding: np.ndarray,
             chunks: list[ScoredChunk], n: int, condense_error: str | None = None
             ) -> Evidence:
        """The evidence for retrieved `chunks`: the reading list of `n` (see `reading_list`),
        with sentence vectors fetched from the same snapshot."""
        reading = snapshot.with_sentences(reading_list(chunks, question, n))
        return cls(question, query, embedding, chunks, reading, snapshot, condense_error)

    @property
    def rewritten(self) -> str | None:
        """The retrieval query when condensing a follow-up changed the question."""
        return self.query if self.query != self.question else None

    @property
    def furniture(self) -> frozenset[str]:
        """The snapshot's page furniture (see `Retriever.furniture`): never quoted."""
        return self.snapshot.furniture

    def by_id(self) -> dict[str, ScoredChunk]:
        """Every chunk the answer could cite, by id: what a citation's quote is a slice of."""
        return {c.id: c for c in [*self.chunks, *self.reading]}

    def texts(self) -> dict[str, str]:
        """Chunk id → text of every chunk the answer could cite."""
        return {cid: c.text for cid, c in self.by_id().items()}
