"""Retrieval: dense and BM25 search over one snapshot of a collection, fused by weighted RRF.

The snapshot (and its BM25 index, bm25.py) is rebuilt from what Chroma holds, keyed by the
collection's generation counter, so it can never be out of step with the vectors after an
ingest. How a snapshot is read (paged, one complete version per document) is chroma_reads.py.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from assistant.bm25 import BM25Index, bm25_text  # noqa: F401 (re-exported)
from assistant.chroma_reads import (  # noqa: F401 (PAGE_SIZE, visible_rows re-exported)
    PAGE_SIZE,
    chroma_where,
    read_all,
    visible_rows,
)
from assistant.schemas import SearchFilters
from assistant.sentences import SENTENCES_KEY

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from llama_index.core.vector_stores.types import MetadataFilters

log = logging.getLogger(__name__)

RetrieverMode = Literal["dense", "bm25", "hybrid"]
FusionMethod = Literal["zscore", "rrf"]


@dataclass
class ScoredChunk:
    """One retrieved chunk with the evidence each retriever gave for it."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float = 0.0
    dense_rank: int | None = None
    bm25_rank: int | None = None
    cosine: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return str(self.metadata.get("doc_id", ""))


def to_metadata_filters(filters: SearchFilters | None) -> MetadataFilters | None:
    """Our filter model → llama-index MetadataFilters (used for Chroma and for BM25 alike)."""
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )

    if filters is None or filters.is_empty():
        return None
    parts: list[MetadataFilter | MetadataFilters] = []
    if filters.doc_type:
        parts.append(MetadataFilter(key="doc_type", value=filters.doc_type,
                                    operator=FilterOperator.IN))
    if filters.client:
        parts.append(MetadataFilter(key="client", value=filters.client,
                                    operator=FilterOperator.IN))
    for tag in filters.tags or []:
        parts.append(MetadataFilter(key=f"tag:{tag.strip().lower()}", value=1,
                                    operator=FilterOperator.EQ))
    if filters.date_from:
        parts.append(MetadataFilter(key="date_int", operator=FilterOperator.GTE,
                                    value=int(filters.date_from.strftime("%Y%m%d"))))
    if filters.date_to:
        parts.append(MetadataFilter(key="date_int", operator=FilterOperator.LTE,
                                    value=int(filters.date_to.strftime("%Y%m%d"))))
    return MetadataFilters(filters=parts)


class Retriever:
    """Hybrid chunk retriever over one snapshot of a collection.

    The snapshot (ids, texts, metadata and, up to `memory_max` chunks, the vectors) is read
    once per collection generation. BM25 indexes it; dense search is an exact dot product
    over the snapshot's vectors in memory: at SciFact's 11k chunks that takes well under a
    millisecond, where a Chroma query plus llama-index's re-hydration of every hit took
    ~20 ms, and it can never return a chunk the snapshot does not show. Above `memory_max`
    chunks the vectors stay in Chroma (HNSW, approximate) and only ids and distances come
    back; hits outside the snapshot (an ingest writing new versions, not yet published by a
    generation bump) are dropped, so a result never mixes two versions of a document.
    """

    def __init__(self, collection: Collection, generation: int, memory_max: int = 200_000
                 ) -> None:
        self.collection = collection
        self.generation = generation
        started = time.perf_counter()
        in_memory = collection.count() <= memory_max
        include = ["documents", "metadatas"] + (["embeddings"] if in_memory else [])
        got = read_all(collection, include, slim=True)  # lean metadata (see chroma_reads)
        ids, texts, metas = got["ids"], got["documents"], got["metadatas"]
        rows = visible_rows(ids, metas)
        self.hidden = len(ids) - len(rows)
        self.bm25 = BM25Index([ids[i] for i in rows], [texts[i] for i in rows],
                              [metas[i] for i in rows])
        self.row_of = {cid: i for i, cid in enumerate(self.bm25.ids)}
        self.vectors: np.ndarray | None = None
        if in_memory and rows:
            self.vectors = np.asarray([got["embeddings"][i] for i in rows], dtype=np.float32)
        self._furniture: frozenset[str] | None = None
        self.build_seconds = time.perf_counter() - started

    def with_sentences(self, chunks: list[ScoredChunk]) -> list[ScoredChunk]:
        """Copies of `chunks` carrying their stored sentence vectors: one Chroma read.

        A chunk deleted meanwhile, or a failed read, leaves chunks without them, and the
        answerer encodes those sentences itself: slower, never wrong.
        """
        if not chunks:
            return chunks
        try:
            got = self.collection.get(ids=[c.id for c in chunks], include=["metadatas"])
        except Exception as exc:  # noqa: BLE001 - an optimisation; the answer does not need it
            # One line, no traceback: during a store outage this fires on every answer.
            log.warning("could not read stored sentence vectors (%s: %s); encoding instead",
                        type(exc).__name__, exc)
            return chunks
        blobs = {cid: (m or {}).get(SENTENCES_KEY)
                 for cid, m in zip(got["ids"], got["metadatas"] or [], strict=False)}
        return [replace(c, metadata={**c.metadata, SENTENCES_KEY: blobs[c.id]})
                if blobs.get(c.id) else c for c in chunks]

    @property
    def furniture(self) -> frozenset[str]:
        """Normalised lines repeated verbatim across documents: page templates (see
        boilerplate.py). Computed once per snapshot, on the first answer that asks."""
        if self._furniture is None:
            from assistant.boilerplate import repeated_sentences

            docs: dict[str, list[str]] = {}
            for text, meta in zip(self.bm25.texts, self.bm25.metadatas, strict=True):
                lines = (re.sub(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+", "", line)
                         for line in text.split("\n"))
                docs.setdefault(str(meta.get("doc_id", "")), []).extend(
                    line for line in lines if line.strip())
            self._furniture = frozenset(repeated_sentences(docs.items()))
        return self._furniture

    @property
    def metadatas(self) -> list[dict[str, Any]]:
        """The lean metadata of every chunk the snapshot shows (one version per document)."""
        return self.bm25.metadatas

    @property
    def size(self) -> int:
        return len(self.bm25.ids)

    def dense(self, query_embedding: np.ndarray, k: int, filters: MetadataFilters | None
              ) -> list[ScoredChunk]:
        if self.size == 0:
            return []
        k = min(k, self.size)
        if self.vectors is not None:
            hits = self._dense_in_memory(np.asarray(query_embedding, np.float32), k, filters)
        else:
            hits = self._dense_in_chroma(query_embedding, k, filters)
        return [
            ScoredChunk(self.bm25.ids[i], self.bm25.texts[i], self.bm25.metadatas[i],
                        dense_rank=rank, cosine=cosine)
            for rank, (i, cosine) in enumerate(hits)
        ]

    def _dense_in_memory(self, query: np.ndarray, k: int, filters: MetadataFilters | None
                         ) -> list[tuple[int, float]]:
        assert self.vectors is not None
        scores = self.vectors @ query
        mask = self.bm25.mask(filters)
        if mask is not None:
            scores = np.where(mask > 0, scores, -np.inf)
            k = min(k, int(mask.sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]

    def _dense_in_chroma(self, query: np.ndarray, k: int, filters: MetadataFilters | None
                         ) -> list[tuple[int, float]]:
        where = chroma_where(filters)
        n = k + self.hidden
        while True:  # ask for more while hits outside the snapshot crowd out visible ones
            embeddings: list[Sequence[float]] = [[float(x) for x in query]]
            result = self.collection.query(query_embeddings=embeddings, n_results=n,
                                           where=where, include=["distances"])
            assert result["distances"] is not None  # included above
            ids, distances = result["ids"][0], result["distances"][0]
            # cosine space: Chroma's distance is 1 - cosine
            kept = [(self.row_of[c], 1.0 - float(d))
                    for c, d in zip(ids, distances, strict=True) if c in self.row_of]
            if len(kept) >= k or len(ids) < n or n >= 4 * (k + self.hidden) + 64:
                return kept[:k]
            n *= 2

    def sparse(self, query: str, k: int, filters: MetadataFilters | None
               ) -> list[ScoredChunk]:
        out = []
        for rank, (i, score) in enumerate(self.bm25.search(query, k, filters)):
            chunk = ScoredChunk(self.bm25.ids[i], self.bm25.texts[i],
                                self.bm25.metadatas[i], bm25_rank=rank)
            chunk.extra["bm25"] = score
            out.append(chunk)
        return out

    def retrieve(
        self,
        query: str,
        query_embedding: np.ndarray,
        k: int,
        filters: MetadataFilters | None = None,
        mode: RetrieverMode = "hybrid",
        dense_weight: float = 1.0,
        bm25_weight: float = 1.0,
        rrf_k: int = 60,
        fusion: FusionMethod = "rrf",
    ) -> list[ScoredChunk]:
        """Top-k chunks, best first, from one retriever or both fused.

        Fusion is hand-rolled: llama-index's QueryFusionRetriever has no per-retriever weights
        in its RRF mode and needs an LLM object even with one query. `zscore` standardises
        each retriever's scores over its candidates (a chunk one retriever missed gets that
        retriever's lowest score) and adds them with the given weights; `rrf` is weighted
        reciprocal-rank fusion, the default: z-score scores higher on SciFact (non-test
        claims: nDCG@10 0.903 vs 0.881) but lower on our own golden suite, where it lets
        near-miss distractor chunks into the answerer's reading list.
        """
        lists: list[tuple[list[ScoredChunk], float, str]] = []
        if mode in ("dense", "hybrid") and dense_weight > 0:
            lists.append((self.dense(query_embedding, k, filters), dense_weight, "dense"))
        if mode in ("bm25", "hybrid") and bm25_weight > 0:
            lists.append((self.sparse(query, k, filters), bm25_weight, "bm25"))
        fused: dict[str, ScoredChunk] = {}
        for ranked, _, _ in lists:
            for chunk in ranked:
                have = fused.setdefault(chunk.id, chunk)
                if have is not chunk:
                    if have.bm25_rank is None:
                        have.bm25_rank = chunk.bm25_rank
                    if have.cosine is None:
                        have.cosine, have.dense_rank = chunk.cosine, chunk.dense_rank
                    have.extra.update(chunk.extra)
        for chunk in fused.values():
            chunk.score = 0.0
        if len(lists) == 1 or fusion == "rrf":
            for ranked, weight, _ in lists:
                for rank, chunk in enumerate(ranked):
                    fused[chunk.id].score += weight / (rrf_k + rank + 1)
        else:
            total = sum(w for _, w, _ in lists)
            for ranked, weight, name in lists:
                raw = np.array([_raw_score(c, name) for c in ranked], dtype=np.float64)
                if raw.size == 0:
                    continue
                z = (raw - raw.mean()) / (raw.std() or 1.0)
                floor = float(z.min())
                got = {c.id: float(v) for c, v in zip(ranked, z, strict=True)}
                for cid, chunk in fused.items():
                    chunk.score += weight / total * got.get(cid, floor)
        return sorted(fused.values(), key=lambda c: c.score, reverse=True)[:k]


def _raw_score(chunk: ScoredChunk, retriever: str) -> float:
    if retriever == "dense":
        return float(chunk.cosine or 0.0)
    return float(chunk.extra.get("bm25", 0.0))


class RetrieverCache:
    """One Retriever per collection, rebuilt when the collection's generation changes.

    Also rebuilt when the collection's id changes: a Chroma server restarted on an empty data
    path (then re-ingested) can reach the same generation with different contents.
    """

    def __init__(self, memory_max: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Retriever] = {}
        self.memory_max = memory_max

    def get(self, name: str, collection: Collection, generation: int) -> Retriever:
        """The collection's current snapshot, built (and kept) when there is none yet."""
        with self._lock:
            have = self._current(name, collection, generation)
            if have is None:
                have = Retriever(collection, generation, self.memory_max)
                self._items[name] = have
            return have

    def peek(self, name: str, collection: Collection, generation: int) -> Retriever | None:
        """The current snapshot if one is built; None rather than building it (a document
        listing reads pages of metadata instead of loading texts, vectors and BM25)."""
        with self._lock:
            return self._current(name, collection, generation)

    def _current(self, name: str, collection: Collection, generation: int) -> Retriever | None:
        have = self._items.get(name)
        if (have is None or have.generation != generation
                or getattr(have.collection, "id", None) != getattr(collection, "id", None)):
            return None
        return have

    def drop(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)


def best_per_document(chunks: list[ScoredChunk], top_k: int) -> list[ScoredChunk]:
    """Document-level results: each document once, represented by its best chunk."""
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        if chunk.doc_id in seen:
            continue
        seen.add(chunk.doc_id)
        out.append(chunk)
        if len(out) == top_k:
            break
    return out
