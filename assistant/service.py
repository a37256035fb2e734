"""The answering service: the one object the CLI, the API, the UI and evaluation all call."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from assistant.answering import ExtractiveAnswerer, abstention, reading_list
from assistant.errors import DocumentNotFound  # noqa: F401 (re-exported)
from assistant.feedback import FeedbackStore
from assistant.ingest import Ingestor, Journal, SourceRecord, ingest_lock, run_repairing
from assistant.llm import LLMClient, llm_configured
from assistant.retrieval import (
    RetrieverCache,
    RetrieverMode,
    ScoredChunk,
    best_per_document,
    to_metadata_filters,
    visible_rows,
)
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    ChunkDetail,
    DocumentDetail,
    DocumentInfo,
    DocumentList,
    HistoryTurn,
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
        self.retrievers = RetrieverCache(settings.dense_memory_max)
        self._embedder: Any = None
        self._answerer: ExtractiveAnswerer | None = None
        self._chunker: Any = None
        self._load_lock = threading.Lock()
        self._feedback: FeedbackStore | None = None
        self._llm: LLMClient | None = None

    # -- components (loaded on first use: the CLI's `search --help` should not load torch) --
    @property
    def embedder(self) -> Any:
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
        """Sync the collection with files or directories (see ingest.py for the guarantees)."""
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
            # embedded Chroma left unreadable by a killed writer is rebuilt (see ingest.py)
            parts = run_repairing(attempt, chroma_dir, interrupted, self.store,
                                  lambda: self.embedder)
            for part in parts:
                for key in ("documents", "chunks", "added", "updated", "removed", "unchanged",
                            "embedded_chunks"):
                    setattr(total, key, getattr(total, key) + getattr(part, key))
                total.skipped.extend(part.skipped)
                total.seconds += part.seconds
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
            fusion=s.fusion,
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
    def answer(self, request: AnswerRequest, mode: RetrieverMode = "hybrid") -> AnswerResponse:
        if self.llm is not None:
            return next(v for kind, v in self._llm_events(request, mode, False) if kind == "done")
        query = condense_question(request.question, request.history)
        embedding = self.embedder.encode_query(query)
        k = max(self.settings.candidate_k, request.top_k or 0)
        chunks = self.retrieve(query, request.collection, k, request.filters, mode,
                               query_embedding=embedding)
        retriever = self.retriever(request.collection)
        reading = retriever.with_sentences(reading_list(
            chunks, request.question, request.top_k or self.settings.answer_chunks))
        response = abstention() if not reading else self.answerer.answer(
            embedding, reading, request.question, retriever.furniture, chunks)
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
        In LLM mode the deltas are the model's raw tokens; the final answer text (markers
        renumbered, bad ones removed) or a fallback replaces them.
        """
        if self.llm is not None:
            yield from self._llm_events(request, mode, True)
            return
        response = self.answer(request, mode)
        pieces = re.split(r"(?<=\])\s+", response.answer) if not response.abstained else [
            response.answer]
        for i, piece in enumerate(pieces):
            yield "delta", piece if i == len(pieces) - 1 else piece + " "
        yield "done", response

    def _llm_events(
        self, request: AnswerRequest, mode: RetrieverMode, stream: bool
    ) -> Iterator[tuple[str, Any]]:
        """LLM mode: condense, retrieve, generate, verify, as ("delta", str)... ("done", r).

        The extractive answer is computed first: its evidence gate decides abstention (the
        model is not asked when nothing in the collection is close enough), and it is what
        the user gets, with a `warning` saying why, whenever the model fails, times out or
        cites nothing its sources support.
        """
        from assistant.answering import CitationError, check_citations
        from assistant.llm import LLMError, UnusableReply
        from assistant.prompts import PromptBudgetError, build_answer_prompt
        from assistant.verification import verify_answer

        llm, s = self.llm, self.settings
        assert llm is not None
        query, failure = request.question, None
        if any(t.role == "user" and t.content.strip() for t in request.history or []):
            try:
                query = llm.condense(request.question, request.history or [])
            except UnusableReply:
                query = condense_question(request.question, request.history)
            except LLMError as exc:  # the server is down: do not wait for it twice
                query, failure = condense_question(request.question, request.history), str(exc)
        embedding = self.embedder.encode_query(query)
        chunks = self.retrieve(query, request.collection, max(s.candidate_k, request.top_k or 0),
                               request.filters, mode, query_embedding=embedding)
        retriever = self.retriever(request.collection)
        reading = reading_list(chunks, request.question, request.top_k or s.answer_chunks)
        extractive = abstention() if not reading else self.answerer.answer(
            embedding, retriever.with_sentences(reading), request.question,
            retriever.furniture, chunks)
        extractive.query = query if query != request.question else None

        def instead(why: str) -> AnswerResponse:
            return extractive.model_copy(update={
                "mode": "extractive",
                "warning": f"LLM answer unavailable, showing the extractive answer: {why}"})

        def fallback(why: str, streamed: bool = False) -> Iterator[tuple[str, Any]]:
            response = instead(why)
            if not streamed:
                yield "delta", response.answer
            yield "done", response

        if extractive.abstained and failure is None:
            yield "delta", extractive.answer
            yield "done", extractive.model_copy(update={"mode": "llm"})
            return
        if failure is not None:
            yield from fallback(failure)
            return
        try:
            prompt = build_answer_prompt(query, reading, s.llm_context_tokens, s.llm_max_tokens)
        except PromptBudgetError as exc:
            yield from fallback(str(exc))
            return
        text, streamed = "", False
        try:
            if stream:
                for delta in llm.stream(prompt.messages):
                    text, streamed = text + delta, True
                    yield "delta", delta
            else:
                text = llm.generate(prompt.messages)
        except LLMError as exc:
            yield from fallback(str(exc), streamed)
            return
        verified = verify_answer(text, prompt.sources, self.answerer.cache,
                                 s.llm_support_threshold)
        if verified.says_no_answer:
            response = abstention()
            response.mode = "llm"
        elif verified.report.kept == 0:
            response = instead("the model's answer cited no source that supports it")
        else:
            response = AnswerResponse(answer=verified.answer, abstained=False, mode="llm",
                                      citations=verified.citations)
            try:  # the verifier's output must pass the same check as extractive answers
                check_citations(response, {c.id: c.text for c in reading})
            except CitationError as exc:
                response = instead(f"its citations failed the final check ({exc})")
        response.query = extractive.query
        response.verification = verified.report
        if not streamed:
            yield "delta", response.answer
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
        metas = got["metadatas"] or []
        docs: dict[str, DocumentInfo] = {}
        for meta in (metas[i] for i in visible_rows(got["ids"], metas)):  # as search sees it
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
        """Remove a document's chunks and, if it was uploaded, its saved file: a deleted
        upload must not linger on disk under CX_DATA_DIR/uploads/."""
        name = self.collection_name(collection)
        col = self.store.get_collection(name)
        uploads = (self.settings.data_dir / "uploads" / name).resolve()
        with ingest_lock(self.settings.data_dir, wait_s=30):
            got = col.get(where={"doc_id": doc_id}, include=["metadatas"])
            ids = got["ids"]
            if not ids:
                raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}")
            col.delete(ids=ids)
            self.store.bump_generation(col)
            if str(uploads) in {(m or {}).get("source_root") for m in got["metadatas"] or []}:
                saved = (uploads / doc_id).resolve()
                if saved.parent == uploads:  # doc_ids of uploads are plain file names
                    saved.unlink(missing_ok=True)
        self.retrievers.drop(name)
        return len(ids)

    def document(self, doc_id: str, collection: str | None = None) -> DocumentDetail:
        """One document's metadata and its chunks in order (DocumentNotFound if absent)."""
        name = self.collection_name(collection)
        got = self.store.get_collection(name).get(
            where={"doc_id": doc_id}, include=["documents", "metadatas"]
        )
        # one whole version, as search sees it, even while an ingest replaces the document
        keep = visible_rows(got["ids"], got["metadatas"] or [])
        if not keep:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}")
        rows = sorted(((got["ids"][i], got["documents"][i], got["metadatas"][i]) for i in keep),
                      key=lambda r: int(r[2].get("chunk_index", 0)))
        meta = rows[0][2]
        return DocumentDetail(
            doc_id=doc_id, title=str(meta.get("title", "")),
            doc_type=str(meta.get("doc_type", "")),
            metadata={k: meta[k] for k in _PUBLIC_META if k in meta and k not in (
                "chunk_index", "start", "end")},
            chunks=[ChunkDetail(chunk_id=cid, index=int(m.get("chunk_index", 0)),
                                section=str(m.get("section", "")), text=text or "",
                                start=int(m.get("start", 0)), end=int(m.get("end", 0)))
                    for cid, text, m in rows],
        )

    def stored_chunks(
        self, chunk_ids: list[str], collection: str | None = None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of the given chunks (a citation's quote is a slice of the text)."""
        if not chunk_ids:
            return {}
        col = self.store.get_collection(self.collection_name(collection))
        got = col.get(ids=list(dict.fromkeys(chunk_ids)), include=["documents", "metadatas"])
        return {cid: (text or "", dict(meta or {}))
                for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"],
                                           strict=True)}

    def metadata_values(self, key: str, collection: str | None = None) -> list[str]:
        """Distinct values of one metadata key (e.g. `client`) in a collection, for filters."""
        col = self.store.get_collection(self.collection_name(collection))
        metas = col.get(include=["metadatas"])["metadatas"] or []
        return sorted({str(m[key]) for m in metas if m.get(key) not in (None, "")})

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

    def readiness(self, collection: str | None = None) -> dict[str, Any]:
        """What /readyz reports: Chroma reachable, embedder loaded, collection present."""
        name = self.collection_name(collection)
        checks: dict[str, Any] = {"embedder": self._embedder is not None}
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
