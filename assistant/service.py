"""The answering service: the one object the CLI, the API, the UI and evaluation all call."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant import documents
from assistant.answering import ExtractiveAnswerer
from assistant.chroma_reads import Metadata, visible_metadata
from assistant.errors import DocumentNotFound  # noqa: F401 (re-exported)
from assistant.evidence import Evidence, condense_question
from assistant.feedback import FeedbackStore
from assistant.ingest import Ingestor, Journal, SourceRecord, generation, ingest_lock, run_repairing
from assistant.llm import LLMClient, Sampling, llm_configured
from assistant.llm_answering import AnswerEvent, condense, llm_events
from assistant.locations import location_at
from assistant.originals import Original, find_original
from assistant.retrieval import (
    Retriever,
    RetrieverCache,
    RetrieverMode,
    ScoredChunk,
    best_per_document,
    to_metadata_filters,
)
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    DocumentDetail,
    DocumentList,
    IngestSummary,
    SearchFilters,
    SearchHit,
    SearchResponse,
    UploadSummary,
)
from assistant.sentences import SENTENCES_VERSION
from assistant.settings import Settings
from assistant.store import CollectionNotFound, Store
from assistant.uploads import Upload

if TYPE_CHECKING:
    from assistant.chunking import Chunker
    from assistant.embeddings import Embedder

__all__ = ["AssistantService", "DocumentNotFound", "condense_question"]
CHUNKER_VERSION = "1"


class AssistantService:
    """Ingest, search and answer over Chroma collections, with components chosen by Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.retrievers = RetrieverCache(settings.dense_memory_max)
        self._embedder: Embedder | None = None
        self._answerer: ExtractiveAnswerer | None = None
        self._chunker: Chunker | None = None
        self._load_lock = threading.Lock()
        self._feedback: FeedbackStore | None = None
        self._llm: LLMClient | None = None

    # -- components (loaded on first use: the CLI's `search --help` should not load torch) --
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    from assistant.embeddings import load_embedder

                    self._embedder = load_embedder(
                        self.settings.model_path, self.settings.embed_batch_size,
                        self.settings.query_cache_size,
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
    def chunker(self) -> Chunker:
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
        """Sync the collection with files or directories (guarantees: ingest/pipeline.py)."""
        return self._ingest(
            collection, lambda ing: [ing.run(Path(p), progress=progress) for p in paths], wait_s
        )

    def ingest_records(
        self,
        source_root: str,
        records: list[SourceRecord],
        collection: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        wait_s: float = 0.0,
    ) -> IngestSummary:
        """Sync the collection with in-memory documents (a BEIR corpus, say) under a root key."""
        return self._ingest(
            collection, lambda ing: [ing.sync(source_root, list(records), progress)], wait_s
        )

    def _ingest(
        self, collection: str | None, work: Callable[[Ingestor], list[IngestSummary]],
        wait_s: float,
    ) -> IngestSummary:
        name = self.collection_name(collection)
        total = IngestSummary(documents=0, chunks=0)
        signature = "|".join([
            CHUNKER_VERSION, SENTENCES_VERSION, self.settings.model_path.name,
            str(self.settings.chunk_size), str(self.settings.chunk_overlap),
        ])

        def attempt() -> list[IngestSummary]:  # the Ingestor bumps the generation itself
            col = self.store.get_or_create_collection(name)
            return work(Ingestor(col, lambda: self.embedder, lambda: self.chunker, signature,
                                 batch_chunks=self.settings.ingest_batch,
                                 journal=Journal(lambda: self.store.get_collection(name))))

        chroma_dir = None if self.settings.chroma_url else self.settings.data_dir / "chroma"
        with ingest_lock(self.settings.data_dir, wait_s=wait_s) as interrupted:
            # embedded Chroma left unreadable by a killed writer is rebuilt (ingest/repair.py)
            parts = run_repairing(attempt, chroma_dir, interrupted, self.store,
                                  lambda: self.embedder)
            for part in parts:
                for key in ("documents", "chunks", "added", "updated", "removed", "unchanged",
                            "embedded_chunks"):
                    setattr(total, key, getattr(total, key) + getattr(part, key))
                total.skipped.extend(part.skipped)
                total.warnings.extend(part.warnings)
                total.seconds += part.seconds
        self.retrievers.drop(name)
        total.seconds = round(total.seconds, 3)
        return total

    # -- retrieval --
    def retriever(self, collection: str | None = None) -> Retriever:
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        return self.retrievers.get(name, col, generation(col))

    def retrieve(
        self,
        query: str,
        collection: str | None = None,
        k: int | None = None,
        filters: SearchFilters | None = None,
        mode: RetrieverMode = "hybrid",
        query_embedding: np.ndarray | None = None,
    ) -> list[ScoredChunk]:
        """Chunk-level hybrid retrieval, best first."""
        snapshot = self.retriever(collection)
        if query_embedding is None:
            query_embedding = self.embedder.encode_query(query)
        return self._ranked(snapshot, query, query_embedding, k or self.settings.candidate_k,
                            filters, mode)

    def _ranked(self, snapshot: Retriever, query: str, embedding: np.ndarray, k: int,
                filters: SearchFilters | None, mode: RetrieverMode) -> list[ScoredChunk]:
        s = self.settings
        return snapshot.retrieve(
            query, embedding, k, to_metadata_filters(filters), mode=mode,
            dense_weight=s.dense_weight, bm25_weight=s.bm25_weight, rrf_k=s.rrf_k,
            fusion="zscore" if s.fusion == "zscore" else "rrf",  # the setting's two values
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
                metadata={k: c.metadata[k] for k in documents.PUBLIC_META if k in c.metadata},
                location=location_at(c.metadata),
            )
            for c in best_per_document(chunks, top_k)
        ]
        return SearchResponse(hits=hits)

    @property
    def llm(self) -> LLMClient | None:
        """The LLM client when CX_ANSWER_MODE is llm or auto and a model is configured."""
        if self.settings.answer_mode == "extractive" or not llm_configured(self.settings):
            return None
        if self._llm is None:
            with self._load_lock:
                if self._llm is None:
                    self._llm = LLMClient(self.settings)
        return self._llm

    # -- answering --
    def evidence(self, request: AnswerRequest, mode: RetrieverMode = "hybrid") -> Evidence:
        """What an answer to `request` reads: the condensed query, its embedding, the
        retrieved chunks and the reading list, all from one snapshot of the collection.

        Both answerers read it, and so do the UI's source cards and evaluation's citation
        check: nothing an answer cites is read back from Chroma.
        """
        llm = self.llm
        query, failure = condense(llm, request) if llm is not None else (
            condense_question(request.question, request.history), None)
        embedding = self.embedder.encode_query(query)
        snapshot = self.retriever(request.collection)
        k = max(self.settings.candidate_k, request.top_k or 0)
        chunks = self._ranked(snapshot, query, embedding, k, request.filters, mode)
        return Evidence.read(snapshot, request.question, query, embedding, chunks,
                             request.top_k or self.settings.answer_chunks, failure)

    def answer(self, request: AnswerRequest, mode: RetrieverMode = "hybrid",
               evidence: Evidence | None = None, sampling: Sampling | None = None
               ) -> AnswerResponse:
        """The cited answer, or an abstention; from `evidence` when the caller has read it.
        `sampling` reaches the model in LLM mode; the extractive answerer has none."""
        if evidence is None:
            evidence = self.evidence(request, mode)
        llm = self.llm
        if llm is None:
            return self.answerer.respond(evidence)
        for event in llm_events(llm, self.answerer, evidence, self.settings, stream=False,
                                sampling=sampling):
            if event[0] == "done":
                return event[1]
        raise AssertionError("an answer's events end with its done event")

    def answer_stream(
        self, request: AnswerRequest, mode: RetrieverMode = "hybrid",
        evidence: Evidence | None = None, sampling: Sampling | None = None,
    ) -> Iterator[AnswerEvent]:
        """Answer as a stream of events: ("delta", text) pieces, then ("done", response).

        The extractive answer is computed whole and sent sentence by sentence; an LLM mode
        sends its tokens as they arrive. The final event always carries the complete,
        verified AnswerResponse, so a client can render deltas and then trust the citations.
        In LLM mode the deltas are the model's raw tokens; the final answer text (markers
        renumbered, bad ones removed) or a fallback replaces them.
        """
        if evidence is None:
            evidence = self.evidence(request, mode)
        llm = self.llm
        if llm is not None:
            yield from llm_events(llm, self.answerer, evidence, self.settings, stream=True,
                                  sampling=sampling)
            return
        response = self.answerer.respond(evidence)
        pieces = re.split(r"(?<=\])\s+", response.answer) if not response.abstained else [
            response.answer]
        for i, piece in enumerate(pieces):
            yield "delta", piece if i == len(pieces) - 1 else piece + " "
        yield "done", response

    # -- documents --
    def _metadata(self, collection: str | None) -> list[Metadata]:
        """Lean metadata of every chunk readers see: the retriever's snapshot when one is
        current, else read in pages (one `get` of a large collection fails near 50k chunks)."""
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        snapshot = self.retrievers.peek(name, col, generation(col))
        return snapshot.metadatas if snapshot is not None else visible_metadata(col)

    def list_documents(
        self, collection: str | None = None, limit: int = 50, offset: int = 0
    ) -> DocumentList:
        docs = documents.listing(self._metadata(collection))
        return DocumentList(data=docs[offset : offset + limit], count=len(docs))

    def metadata_values(self, key: str, collection: str | None = None) -> list[str]:
        """Distinct values of one metadata key (e.g. `client`) in a collection, for filters."""
        return documents.distinct(self._metadata(collection), key)

    def delete_document(self, doc_id: str, collection: str | None = None) -> int:
        """Remove a document's chunks and, if it was uploaded, its saved file: a deleted
        upload must not linger on disk under CX_DATA_DIR/uploads/."""
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        uploads = (self.settings.data_dir / "uploads" / name).resolve()
        with ingest_lock(self.settings.data_dir, wait_s=30):
            got = col.get(where={"doc_id": doc_id}, include=["metadatas"])
            ids = got["ids"]
            # the saved file goes first: a delete killed after it is finished by a retry
            if str(uploads) in {(m or {}).get("source_root") for m in got["metadatas"] or []}:
                saved = (uploads / doc_id).resolve()
                if saved.parent == uploads:  # doc_ids of uploads are plain file names
                    saved.unlink(missing_ok=True)
            # journalled like an ingest: a kill mid-delete leaves the flag for the next writer
            Journal(lambda: self.store.get_collection(name)).delete(ids)
            if not ids:
                raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}")
        self.retrievers.drop(name)
        return len(ids)

    def document(self, doc_id: str, collection: str | None = None) -> DocumentDetail:
        """One document's metadata and its chunks in order (DocumentNotFound if absent)."""
        return documents.detail(self.store.get_collection(self.collection_name(collection)),
                                doc_id)

    def original(self, doc_id: str, collection: str | None = None) -> Original:
        """The file a document was ingested from (originals.py: never outside its root)."""
        return find_original(self.store.get_collection(self.collection_name(collection)), doc_id)

    def upload(self, uploads: list[Upload], collection: str | None = None) -> UploadSummary:
        """Save uploaded files under CX_DATA_DIR/uploads/<collection>/ and ingest them.

        doc_id = the sanitised file name; uploading the same name again re-indexes it. A name
        already used by a document from another source is refused rather than duplicated.
        """
        from assistant.uploads import UploadError, check_uploads, save_upload

        s = self.settings
        names = check_uploads(uploads, s.upload_max_files, s.upload_max_bytes)
        name = self.collection_name(collection)
        directory = (s.data_dir / "uploads" / name).resolve()
        try:
            col = self.store.get_collection(name)
        except CollectionNotFound:
            col = None
        for doc_id in names if col is not None else []:
            got = col.get(where={"doc_id": doc_id}, include=["metadatas"], limit=1)
            if got["ids"] and got["metadatas"][0].get("source_root") != str(directory):
                raise UploadError(f"collection {name!r} already has a document {doc_id!r} "
                                  "from another source; rename the file or delete that "
                                  "document first", status=409)
        paths = [save_upload(directory, n, u.content) for n, u in zip(names, uploads,
                                                                        strict=True)]
        summary = self.ingest(paths, name, wait_s=30)
        skipped = {sk.path for sk in summary.skipped}
        for path in paths:
            if path.name in skipped:  # keep the uploads folder in step with the collection
                path.unlink(missing_ok=True)
        if skipped and len(skipped) == len(paths):
            reasons = "; ".join(f"{sk.path}: {sk.reason}" for sk in summary.skipped)
            raise UploadError(f"no uploaded file could be read ({reasons})", status=422)
        return UploadSummary(**summary.model_dump(), collection=name,
                             doc_ids=[n for n in names if n not in skipped])

    @property
    def feedback(self) -> FeedbackStore:
        if self._feedback is None:
            self._feedback = FeedbackStore(self.settings.data_dir / "feedback.sqlite3")
        return self._feedback

    def collections(self) -> list[str]:
        return self.store.list_collections()

    def readiness(self, collection: str | None = None) -> dict[str, bool | str]:
        """What /readyz reports: Chroma reachable, embedder loaded, collection present."""
        name = self.collection_name(collection)
        checks: dict[str, bool | str] = {"embedder": self._embedder is not None}
        try:
            self.store.heartbeat()
            self.store.get_collection(name)
            checks["chroma"] = checks["collection"] = True
        except CollectionNotFound:
            checks["chroma"], checks["collection"] = True, False
        except Exception as exc:  # report, never raise: this is a health probe
            checks["chroma"] = False
            checks["chroma_error"] = str(exc)[:500]
        return checks
