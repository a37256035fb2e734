"""HTTP API (FastAPI): thin routes over AssistantService; see /docs for the manual."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.auth import key_matches
from assistant.embeddings import EmbeddingModelError
from assistant.ingest import IngestError
from assistant.schemas import (
    COLLECTION_PATTERN,
    AnswerRequest,
    AnswerResponse,
    DocumentDetail,
    DocumentList,
    FeedbackRequest,
    FeedbackSaved,
    SearchRequest,
    SearchResponse,
    UploadSummary,
)
from assistant.service import AssistantService, DocumentNotFound
from assistant.store import CollectionNotFound, StoreUnavailable
from assistant.uploads import Upload, UploadError

log = logging.getLogger("assistant.api")


def create_app(service: AssistantService, ui: bool = True) -> FastAPI:
    """Build the app around one service instance (shared by every request); `ui` mounts the
    Gradio chat at /ui."""
    app = FastAPI(
        title="Cx Knowledge Assistant",
        version=__version__,
        description="Cited answers and search over a Cx consultancy's knowledge base. "
        "Answers mark claims with [n]; each citation quotes its source verbatim.",
    )
    app.state.service = service
    keys = service.settings.api_key_list

    def require_key(request: Request) -> None:
        """With CX_API_KEYS set, /v1 routes need `Authorization: Bearer <key>`."""
        if not keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not key_matches(token, keys):
            raise HTTPException(
                status_code=401,
                detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def require_read_key(request: Request) -> None:
        """Reads are open with CX_PUBLIC_READ=true; otherwise they need a key like writes."""
        if not service.settings.public_read:
            require_key(request)

    Auth = Depends(require_read_key)
    WriteAuth = Depends(require_key)  # upload, delete, feedback export: always keyed

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Any) -> Any:
        """One structured line per request; never logs bodies, document text or keys."""
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        log.info("request", extra={
            "request_id": request_id, "route": request.url.path, "method": request.method,
            "status": response.status_code,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        })
        return response

    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": message})

    @app.exception_handler(CollectionNotFound)
    async def _not_found(_: Request, exc: CollectionNotFound) -> JSONResponse:
        return _error(404, str(exc).strip("'\""))

    @app.exception_handler(DocumentNotFound)
    async def _doc_not_found(_: Request, exc: DocumentNotFound) -> JSONResponse:
        return _error(404, str(exc).strip("'\""))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, f"the vector store is unavailable, try again shortly: {exc}")

    @app.exception_handler(EmbeddingModelError)
    async def _model(_: Request, exc: EmbeddingModelError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(UploadError)
    async def _upload(_: Request, exc: UploadError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 413:  # Starlette's body limit says only "Content Too Large"
            s = service.settings
            detail = (f"upload too large: at most {s.upload_max_files} files of "
                      f"{s.upload_max_bytes} bytes each (CX_UPLOAD_MAX_FILES, "
                      "CX_UPLOAD_MAX_BYTES)")
        return JSONResponse(status_code=exc.status_code, content={"detail": detail},
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(IngestError)
    async def _ingest(_: Request, exc: IngestError) -> JSONResponse:
        return _error(409, str(exc))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: 200 once the server can answer."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: Chroma reachable, embedder loaded, default collection present."""
        checks = service.readiness()
        ready = bool(checks.get("chroma") and checks.get("embedder") and checks.get("collection"))
        return JSONResponse(status_code=200 if ready else 503,
                            content={"status": "ready" if ready else "not ready", **checks})

    @app.post("/v1/search", response_model=SearchResponse, tags=["retrieval"],
              dependencies=[Auth])
    def search(body: SearchRequest) -> SearchResponse:
        """Hybrid (dense + BM25, reciprocal-rank fused) document search.

        Returns each matching document once, best first, with its best-matching chunk as
        `text` and that chunk's `section`. `filters` narrows by `doc_type`, `client`,
        `tags` (all must match) and a `date_from`/`date_to` range.
        """
        return service.search(body.query, body.collection, body.top_k, body.filters)

    @app.post("/v1/answer", response_model=AnswerResponse, response_model_exclude_none=True,
              tags=["answers"], dependencies=[Auth], responses={200: {"content": {
                  "text/event-stream": {"example": _SSE_EXAMPLE}}}})
    def answer(body: AnswerRequest) -> Any:
        """Answer a question from the knowledge base, citing every claim.

        The answer marks each claim with `[n]`; `citations[n]` gives the document, section
        and the verbatim `quote` it rests on. When nothing in the collection answers the
        question, `abstained` is true, the answer says so, and there are no citations.
        Pass earlier turns in `history` for follow-up questions.

        With `"stream": true` the reply is `text/event-stream`: `delta` events whose data is
        `{"text": ...}` (append them in order), then one `done` event whose data is the same
        body as the non-streaming reply, citations included. A failure after streaming has
        begun arrives as an `error` event with `{"detail": ...}`.
        """
        if not body.stream:
            return service.answer(body)
        events = service.answer_stream(body)
        first = next(events)  # errors before any output still get their 4xx/503 status
        return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache",
                                          "x-accel-buffering": "no"})

    @app.get("/v1/documents", response_model=DocumentList, tags=["documents"],
             dependencies=[Auth])
    def list_documents(
        collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """Documents in a collection, by doc_id; `count` is the total, not the page size."""
        return service.list_documents(collection, limit, offset)

    @app.get("/v1/documents/{doc_id:path}", response_model=DocumentDetail, tags=["documents"],
             dependencies=[Auth])
    def get_document(
        doc_id: Annotated[str, Path(min_length=1, max_length=1024)],
        collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    ) -> DocumentDetail:
        """One document: its metadata and its chunks in order (404 if it is not there)."""
        return service.document(doc_id, collection)

    limits = service.settings

    @app.post("/v1/documents", response_model=UploadSummary, tags=["documents"],
              dependencies=[WriteAuth],
              max_body_size=limits.upload_max_files * limits.upload_max_bytes + 2**20,
              form_limits={"max_files": limits.upload_max_files})
    def upload_documents(
        files: Annotated[list[UploadFile], File(description="One or more files to ingest.")],
        collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    ) -> UploadSummary:
        """Upload files (multipart field `files`, repeatable) and ingest them.

        Accepted: .md, .markdown, .txt, .html, .htm, .pdf, .docx, each up to
        CX_UPLOAD_MAX_BYTES, at most CX_UPLOAD_MAX_FILES per request. File names are
        sanitised (directories dropped, unusual characters replaced) and become the doc_id;
        uploading the same name again re-indexes that document. Returns the ingest summary.
        """
        cap = limits.upload_max_bytes
        # Read one byte past the cap so an oversized file is detected without reading it all.
        uploads = [Upload(f.filename or "", f.file.read(cap + 1)) for f in files]
        return service.upload(uploads, collection)

    @app.delete("/v1/documents/{doc_id:path}", tags=["documents"], dependencies=[WriteAuth])
    def delete_document(
        doc_id: Annotated[str, Path(min_length=1, max_length=1024)],
        collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    ) -> dict[str, Any]:
        """Remove one document and all its chunks (404 if it is not there)."""
        removed = service.delete_document(doc_id, collection)
        return {"doc_id": doc_id, "deleted_chunks": removed}

    @app.get("/v1/collections", tags=["documents"], dependencies=[Auth])
    def collections() -> dict[str, list[str]]:
        """Names of the collections in the store."""
        return {"collections": service.collections()}

    @app.post("/v1/feedback", response_model=FeedbackSaved, status_code=201,
              tags=["feedback"], dependencies=[Auth])
    def feedback(body: FeedbackRequest) -> FeedbackSaved:
        """Record a thumbs up/down (and optional comment) on an answer."""
        return FeedbackSaved(id=service.feedback.add(body), rating=body.rating)

    @app.get("/v1/feedback/export", tags=["feedback"], dependencies=[WriteAuth],
             response_class=Response,
             responses={200: {"content": {"application/jsonl": {}}}})
    def feedback_export() -> Response:
        """Thumbs-down feedback as evaluation-suite JSON Lines, one draft test case per line.

        Each line has `id`, `question`, `relevant` (the documents the disliked answer cited:
        confirm or replace them), `answerable`, `expect_any` (empty: fill in) plus `comment`
        and `answer_given`, ready to edit into `eval/suites/`.
        """
        lines = service.feedback.export_suite()
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return Response(body, media_type="application/jsonl", headers={
            "content-disposition": 'attachment; filename="feedback-suite.jsonl"'})

    if ui:
        from assistant.ui import mount_ui

        mount_ui(app, service)
    return app


_SSE_EXAMPLE = (
    'event: delta\ndata: {"text": "A Cx Quality Fault is ... [1] "}\n\n'
    'event: done\ndata: {"answer": "A Cx Quality Fault is ... [1]", "abstained": false, '
    '"citations": [...], "mode": "extractive"}\n\n'
)


def _sse(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]) -> Iterator[bytes]:
    """Encode ("delta", text) / ("done", AnswerResponse) events as Server-Sent Events."""

    def encode(kind: str, payload: Any) -> bytes:
        if kind == "done":
            data = payload.model_dump_json(exclude_none=True)
        else:
            data = json.dumps({"text": payload}, ensure_ascii=False)
        return format_sse_event(event=kind, data_str=data)

    yield encode(*first)
    try:
        for event in rest:
            yield encode(*event)
    except Exception as exc:  # headers are sent: report in-band rather than cut the stream
        log.warning("answer stream failed", extra={"error": type(exc).__name__})
        detail = str(exc).strip("'\"") or type(exc).__name__
        yield format_sse_event(event="error", data_str=json.dumps({"detail": detail}))
