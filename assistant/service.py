"""The answering service: the one object the CLI, the API, the UI and evaluation all call."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from assistant.answering import ExtractiveAnswerer, abstention
from assistant.ingest import Ingestor, ingest_lock
from assistant.retrieval import (
    RetrieverCache,
    RetrieverMode,
    ScoredChunk,
    best_per_document,
    to_metadata_filters,
)
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    DocumentInfo,
    DocumentList,
    HistoryTurn,
    IngestSummary,
    SearchFilters,
    SearchHit,
    SearchResponse,
)
from assistant.settings import Settings
from assistant.store import CollectionNotFound, Store

CHUNKER_VERSION = "1"
_DEPENDENT = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|also|else|"
    r"what about|how about|and the|same)\b",
    re.I,
)
_STOP = {"what", "how", "why", "when", "who", "which", "is", "are", "was", "the", "a", "an",
         "do", "does", "did", "we", "of", "to", "in", "for", "on", "and", "or", "about"}
_PUBLIC_META = ("doc_type", "client", "author", "date", "tags", "chunk_index", "start", "end",
                "ingested_at")


class DocumentNotFound(LookupError):
    """No document with that doc_id in the collection."""


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


class AssistantService:
    """Ingest, search and answer over Chroma collections, with components chosen by Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.retrievers = RetrieverCache()
        self._embedder: Any = None
        self._answerer: ExtractiveAnswerer | None = None
        self._chunker: Any = None
        self._load_lock = threading.Lock()

    # -- components (loaded on first use: the CLI's `search --help` should not load torch) --
    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    from assistant.embeddings import load_embedder

                    self._embedder = load_embedder(
                        self.settings.model_path, self.settings.embed_batch_size
                    )
        return self._embedder

    @property
    def answerer(self) -> ExtractiveAnswerer:
        if self._answerer is None:
            self._answerer = ExtractiveAnswerer(
                self.embedder, self.settings.abstain_threshold,
                self.settings.answer_max_sentences,
            )
        return self._answerer

    @property
    def chunker(self) -> Any:
        if self._chunker is None:
            from assistant.chunking import Chunker

            self._chunker = Chunker(self.embedder.tokenizer, self.settings.chunk_size,
                                    self.settings.chunk_overlap)
        return self._chunker

    def collection_name(self, name: str | None) -> str:
        return name or self.settings.collection

    # -- ingest --
    def ingest(
        self,
        paths: list[Path],
        collection: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        wait_s: float = 0.0,
    ) -> IngestSummary:
        name = self.collection_name(collection)
        total = IngestSummary(documents=0, chunks=0)
        signature = "|".join([
            CHUNKER_VERSION, self.settings.model_path.name,
            str(self.settings.chunk_size), str(self.settings.chunk_overlap),
        ])
        with ingest_lock(self.settings.data_dir, wait_s=wait_s):
            col = self.store.get_or_create_collection(name)
            ingestor = Ingestor(col, self.embedder, self.chunker, signature)
            for path in paths:
                part = ingestor.run(Path(path), progress=progress)
                for key in ("documents", "chunks", "added", "updated", "removed", "unchanged",
                            "embedded_chunks"):
                    setattr(total, key, getattr(total, key) + getattr(part, key))
                total.skipped.extend(part.skipped)
                total.seconds += part.seconds
            if total.added or total.updated or total.removed:
                self.store.bump_generation(col)
        self.retrievers.drop(name)
        total.seconds = round(total.seconds, 3)
        return total

    # -- retrieval --
    def retriever(self, collection: str | None = None) -> Any:
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        generation = int((col.metadata or {}).get("cx_generation", 0))
        return self.retrievers.get(name, col, generation)

    def retrieve(
        self,
        query: str,
        collection: str | None = None,
        k: int | None = None,
        filters: SearchFilters | None = None,
        mode: RetrieverMode = "hybrid",
        query_embedding: Any = None,
    ) -> list[ScoredChunk]:
        """Chunk-level hybrid retrieval, best first."""
        retriever = self.retriever(collection)
        if query_embedding is None:
            query_embedding = self.embedder.encode_query(query)
        s = self.settings
        return retriever.retrieve(
            query, query_embedding, k or s.candidate_k, to_metadata_filters(filters),
            mode=mode, dense_weight=s.dense_weight, bm25_weight=s.bm25_weight, rrf_k=s.rrf_k,
        )

    def search(
        self,
        query: str,
        collection: str | None = None,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        mode: RetrieverMode = "hybrid",
    ) -> SearchResponse:
        """Document-level results: each document once, with its best chunk."""
        top_k = top_k or self.settings.top_k
        k = max(self.settings.candidate_k, top_k * 5)
        chunks = self.retrieve(query, collection, k, filters, mode)
        hits = [
            SearchHit(
                doc_id=c.doc_id, title=str(c.metadata.get("title", "")),
                section=str(c.metadata.get("section", "")), text=c.text,
                score=round(c.score, 6),
                metadata={k: c.metadata[k] for k in _PUBLIC_META if k in c.metadata},
            )
            for c in best_per_document(chunks, top_k)
        ]
        return SearchResponse(hits=hits)

    # -- answering --
    def answer(self, request: AnswerRequest, mode: RetrieverMode = "hybrid") -> AnswerResponse:
        query = condense_question(request.question, request.history)
        embedding = self.embedder.encode_query(query)
        k = max(self.settings.candidate_k, request.top_k or 0)
        chunks = self.retrieve(query, request.collection, k, request.filters, mode,
                               query_embedding=embedding)
        reading = chunks[: request.top_k or self.settings.answer_chunks]
        response = abstention() if not reading else self.answerer.answer(embedding, reading)
        if query != request.question:
            response.query = query
        return response

    def answer_stream(
        self, request: AnswerRequest, mode: RetrieverMode = "hybrid"
    ) -> Iterator[tuple[str, Any]]:
        """Answer as a stream of events: ("delta", text) pieces, then ("done", response).

        The extractive answer is computed whole and sent sentence by sentence; an LLM mode
        would send its tokens as they arrive. The final event always carries the complete,
        verified AnswerResponse, so a client can render deltas and then trust the citations.
        """
        response = self.answer(request, mode)
        pieces = re.split(r"(?<=\])\s+", response.answer) if not response.abstained else [
            response.answer]
        for i, piece in enumerate(pieces):
            yield "delta", piece if i == len(pieces) - 1 else piece + " "
        yield "done", response

    # -- documents --
    def list_documents(
        self, collection: str | None = None, limit: int = 50, offset: int = 0
    ) -> DocumentList:
        docs = self._documents(collection)
        ordered = sorted(docs.values(), key=lambda d: d.doc_id)
        return DocumentList(data=ordered[offset : offset + limit], count=len(ordered))

    def _documents(self, collection: str | None) -> dict[str, DocumentInfo]:
        col = self.store.get_collection(self.collection_name(collection))
        got = col.get(include=["metadatas"])
        docs: dict[str, DocumentInfo] = {}
        for meta in got["metadatas"] or []:
            doc_id = str(meta.get("doc_id"))
            info = docs.get(doc_id)
            if info is None:
                docs[doc_id] = DocumentInfo(
                    doc_id=doc_id, title=str(meta.get("title", "")),
                    doc_type=str(meta.get("doc_type", "")), chunks=1,
                    ingested_at=str(meta.get("ingested_at", "")),
                )
            else:
                info.chunks += 1
        return docs

    def delete_document(self, doc_id: str, collection: str | None = None) -> int:
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        with ingest_lock(self.settings.data_dir, wait_s=30):
            ids = col.get(where={"doc_id": doc_id}, include=[])["ids"]
            if not ids:
                raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}")
            col.delete(ids=ids)
            self.store.bump_generation(col)
        self.retrievers.drop(name)
        return len(ids)

    def collections(self) -> list[str]:
        return self.store.list_collections()

    def readiness(self, collection: str | None = None) -> dict[str, Any]:
        """What /readyz reports: Chroma reachable, embedder loaded, collection present."""
        name = self.collection_name(collection)
        checks: dict[str, Any] = {"embedder": self._embedder is not None}
        try:
            self.store.heartbeat()
            checks["chroma"] = True
        except Exception as exc:  # report, never raise: this is a health probe
            checks["chroma"] = False
            checks["chroma_error"] = str(exc)[:200]
        if checks["chroma"]:
            try:
                self.store.get_collection(name)
                checks["collection"] = True
            except CollectionNotFound:
                checks["collection"] = False
        return checks
