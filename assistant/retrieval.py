"""Retrieval: dense (Chroma) and BM25 over the same chunks, fused by weighted RRF.

The BM25 index is rebuilt from what Chroma holds, keyed by the collection's generation
counter, so it can never be out of step with the vectors after an ingest.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from assistant.schemas import SearchFilters
from assistant.sentences import SENTENCES_KEY

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


def to_metadata_filters(filters: SearchFilters | None) -> Any:
    """Our filter model → llama-index MetadataFilters (used for Chroma and for BM25 alike)."""
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )

    if filters is None or filters.is_empty():
        return None
    parts: list[Any] = []
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


def bm25_text(text: str, metadata: dict[str, Any]) -> str:
    """What BM25 indexes: the chunk with its title and section, as the embedder sees it."""
    return f"{metadata.get('title', '')}\n{metadata.get('section', '')}\n{text}"


class BM25Index:
    """bm25s over a collection's chunks, with per-query metadata masks.

    Hand-rolled around bm25s rather than llama-index's BM25Retriever because that retriever
    fixes its metadata filters when it is built; we need different filters per query
    without re-indexing, and no per-hit node re-hydration on the hot path.
    """

    def __init__(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]):
        import bm25s
        import Stemmer

        self.ids = ids
        self.texts = texts
        self.metadatas = metadatas
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25: Any = None
        self._last_mask: tuple[Any, np.ndarray] | None = None
        if ids:
            tokens = bm25s.tokenize(
                [bm25_text(t, m) for t, m in zip(texts, metadatas, strict=True)],
                stopwords="en", stemmer=self._stemmer, show_progress=False,
            )
            self._bm25 = bm25s.BM25(k1=0.9, b=0.4)
            self._bm25.index(tokens, show_progress=False)

    def mask(self, filters: Any) -> np.ndarray | None:
        """1/0 per row: does it pass `filters`. One Python call per row, so the last mask is
        kept: a hybrid query asks for the same filters object twice (dense, then BM25)."""
        if filters is None:
            return None
        last = self._last_mask
        if last is not None and last[0] is filters:
            return last[1]
        from llama_index.core.vector_stores.utils import build_metadata_filter_fn

        keep = build_metadata_filter_fn(lambda i: self.metadatas[int(i)], filters)
        mask = np.array([1 if keep(i) else 0 for i in range(len(self.ids))], dtype=np.float32)
        mask.setflags(write=False)
        self._last_mask = (filters, mask)  # one assignment: safe across request threads
        return mask

    def search(self, query: str, k: int, filters: Any = None) -> list[tuple[int, float]]:
        import bm25s

        if self._bm25 is None:
            return []
        mask = self.mask(filters)
        if mask is not None and not mask.any():
            return []
        tokens = bm25s.tokenize(query, stopwords="en", stemmer=self._stemmer,
                                show_progress=False, return_ids=False)
        if not tokens or not tokens[0]:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._bm25.retrieve(tokens, k=k, weight_mask=mask, show_progress=False,
                                           n_threads=1)
        return [
            (int(d), float(s))
            for d, s in zip(docs[0], scores[0], strict=True)
            if s > 0 and (mask is None or mask[int(d)] > 0)
        ]


def visible_rows(ids: list[str], metadatas: list[dict[str, Any]]) -> list[int]:
    """Rows readers may see: per document, the chunks of exactly one complete version.

    An ingest writes a document's new version before deleting the old one, and a crash can
    leave a version half-written (see ingest.py). A snapshot taken meanwhile holds both, or a
    fragment: showing all of it would mix two versions in one answer. So each (source_root,
    doc_id) shows its newest complete version (all `chunk_count` chunks present), or nothing
    if no version is complete yet (a first version still being written).
    """
    groups: dict[tuple[str, str], dict[str, list[int]]] = {}
    for i, meta in enumerate(metadatas):
        key = (str(meta.get("source_root", "")), str(meta.get("doc_id", "")))
        groups.setdefault(key, {}).setdefault(str(meta.get("doc_hash", "")), []).append(i)
    keep: list[int] = []
    for versions in groups.values():
        if len(versions) == 1:
            rows = next(iter(versions.values()))
            count = metadatas[rows[0]].get("chunk_count")
            if count is None or len({ids[i] for i in rows}) == int(count):
                keep.extend(rows)
            continue
        complete = [
            (max(str(metadatas[i].get("ingested_at", "")) for i in rows), doc_hash, rows)
            for doc_hash, rows in versions.items()
            if metadatas[rows[0]].get("chunk_count") in (None, len({ids[i] for i in rows}))
        ]
        if complete:
            keep.extend(max(complete)[2])
    return sorted(keep)


# Chroma's SQLite refuses one `get` of a whole large collection ("too many SQL variables"
# at ~50k chunks), so snapshots are read in pages.
PAGE_SIZE = 5_000


def read_all(collection: Any, include: list[str], where: dict[str, Any] | None = None
             ) -> dict[str, list[Any]]:
    """Every (matching) row of a collection, page by page: ids plus the `include` fields.

    Pages are offsets into a table another process may be writing to; when the count moved
    while we read, the read is repeated (a few times at most), so a snapshot is not torn.
    """
    for _ in range(3):
        before = collection.count()
        out: dict[str, list[Any]] = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            page = _get_retrying(collection, include=include, where=where,
                                 limit=PAGE_SIZE, offset=offset)
            out["ids"] += list(page["ids"])
            for key in include:
                values = page.get(key)
                out[key] += list(values) if values is not None else []
            if len(page["ids"]) < PAGE_SIZE:
                break
            offset += PAGE_SIZE
        if offset == 0 or collection.count() == before:
            break
    return out


def _get_retrying(collection: Any, **kwargs: Any) -> Any:
    """`collection.get`, retried on a Chroma InternalError.

    A `chroma run` server asked for vectors while another process deletes some of those rows
    answers "Error finding id" (it reads metadata and vectors non-atomically); found by
    tests/test_consistency.py. A moment later the rows are simply gone, so a retry succeeds.
    """
    for attempt in range(6):
        try:
            return collection.get(**kwargs)
        except Exception as exc:
            if type(exc).__name__ != "InternalError" or attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


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

    def __init__(self, collection: Any, generation: int, memory_max: int = 200_000) -> None:
        self.collection = collection
        self.generation = generation
        started = time.perf_counter()
        in_memory = collection.count() <= memory_max
        include = ["documents", "metadatas"] + (["embeddings"] if in_memory else [])
        got = read_all(collection, include)
        ids, texts = got["ids"], got["documents"]
        # llama-index's own copy of each node (`_node_content`: the text again, as JSON) is
        # dropped: everything we use is in the flat keys, and it would double the memory.
        # So are sentence vectors (~2.5 KB a chunk): only the chunks an answer reads need
        # them, and `with_sentences` fetches those.
        metas = [{k: v for k, v in m.items()
                  if not k.startswith("_node") and k != SENTENCES_KEY}
                 for m in got["metadatas"]]
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
        except Exception:  # noqa: BLE001 - an optimisation; the answer does not depend on it
            log.warning("could not read stored sentence vectors; encoding instead",
                        exc_info=True)
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
    def size(self) -> int:
        return len(self.bm25.ids)

    def dense(self, query_embedding: np.ndarray, k: int, filters: Any) -> list[ScoredChunk]:
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

    def _dense_in_memory(self, query: np.ndarray, k: int, filters: Any
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

    def _dense_in_chroma(self, query: np.ndarray, k: int, filters: Any
                         ) -> list[tuple[int, float]]:
        from llama_index.vector_stores.chroma.base import _to_chroma_filter

        where = _to_chroma_filter(filters) if filters is not None else None
        n = k + self.hidden
        while True:  # ask for more while hits outside the snapshot crowd out visible ones
            result = self.collection.query(
                query_embeddings=[[float(x) for x in query]], n_results=n, where=where,
                include=["distances"])
            ids, distances = result["ids"][0], result["distances"][0]
            # cosine space: Chroma's distance is 1 - cosine
            kept = [(self.row_of[c], 1.0 - float(d))
                    for c, d in zip(ids, distances, strict=True) if c in self.row_of]
            if len(kept) >= k or len(ids) < n or n >= 4 * (k + self.hidden) + 64:
                return kept[:k]
            n *= 2

    def sparse(self, query: str, k: int, filters: Any) -> list[ScoredChunk]:
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
        filters: Any = None,
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

    def get(self, name: str, collection: Any, generation: int) -> Retriever:
        with self._lock:
            have = self._items.get(name)
            if (have is None or have.generation != generation
                    or getattr(have.collection, "id", None) != getattr(collection, "id", None)):
                have = Retriever(collection, generation, self.memory_max)
                self._items[name] = have
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
