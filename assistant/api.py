"""HTTP API (FastAPI): thin routes over AssistantService; see /docs for the manual."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.sse import format_sse_event
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from assistant import __version__
from assistant.auth import key_matches
from assistant.embeddings import EmbeddingModelError
from assistant.gate import BodyLimit, RequestGate
from assistant.ingest import IngestError
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    CollectionName,
    DocumentDetail,
    DocumentList,
    ErrorResponse,
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
    s = service.settings
    body_limit = BodyLimit(s.max_body_bytes, "CX_MAX_BODY_BYTES")
    upload_limit = BodyLimit(  # the files themselves plus 1 MiB for the multipart framing
        s.upload_max_files * s.upload_max_bytes + 2**20,
        "CX_UPLOAD_MAX_FILES x CX_UPLOAD_MAX_BYTES, plus 1 MiB for the form itself")

    def limit_for(scope: Scope) -> BodyLimit:
        """Uploads (the API's and the chat UI's) get the upload cap, everything else
        CX_MAX_BODY_BYTES."""
        path = scope["path"]
        is_upload = scope["method"] == "POST" and path.rstrip("/") == "/v1/documents"
        return upload_limit if is_upload or path.startswith("/ui") else body_limit

    def refuse_without_key(scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        """Run the matched route's key dependency (require_key or require_read_key) before
        its body is read; the dependency itself stays the one place that says who may call."""
        if not keys:
            return None
        for route in app.router.routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] is Match.FULL:
                guards = [d.dependency for d in route.dependencies
                          if d.dependency in (require_key, require_read_key)]
                try:
                    for guard in guards:
                        guard(Request(scope))
                except HTTPException as exc:
                    return exc.status_code, str(exc.detail), dict(exc.headers or {})
                return None
        return None

    app.add_middleware(RequestGate, limit_for=limit_for, refuse=refuse_without_key)

    def check_question(text: str, field: str) -> None:
        """CX_MAX_QUESTION_CHARS is configurable, so it is checked here rather than in the
        (static) request model, with a 422 shaped like the model's own."""
        if len(text) > s.max_question_chars:
            raise RequestValidationError([{
                "type": "string_too_long", "loc": ("body", field),
                "msg": f"{field} is {len(text)} characters; at most {s.max_question_chars} "
                       "are accepted (CX_MAX_QUESTION_CHARS)",
                "ctx": {"max_length": s.max_question_chars},
            }])

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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = ", ".join(sorted({
                m for r in app.router.routes if isinstance(r, APIRoute)
                and r.matches(request.scope)[0] is not Match.NONE for m in r.methods}))
        return JSONResponse(status_code=exc.status_code, content={"detail": _explain(exc)},
                            headers=headers or None)

    def _explain(exc: StarletteHTTPException) -> Any:
        """Starlette's and FastAPI's own 400s and 413s do not say what to change."""
        detail = exc.detail
        if not isinstance(detail, str):
            return detail
        if exc.status_code == 400 and detail.startswith("Too many files"):
            return (f"too many files: at most {s.upload_max_files} per request "
                    "(CX_UPLOAD_MAX_FILES)")
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            return ("the request body could not be parsed: send UTF-8 JSON with "
                    "'content-type: application/json' (uploads: multipart/form-data with "
                    "a 'files' field)")
        if exc.status_code == 413 and detail == "Content Too Large":
            return body_limit.message(None)
        return detail

    @app.exception_handler(IngestError)
    async def _ingest(_: Request, exc: IngestError) -> JSONResponse:
        return _error(409, str(exc))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: 200 once the server can answer."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={
        200: {"description": "Ready: every check passed."},
        503: {"description": "Not ready: the same body, with the failing check false."}})
    def readyz() -> JSONResponse:
        """Readiness: Chroma reachable, embedder loaded, default collection present."""
        checks = service.readiness()
        ready = bool(checks.get("chroma") and checks.get("embedder") and checks.get("collection"))
        return JSONResponse(status_code=200 if ready else 503,
                            content={"status": "ready" if ready else "not ready", **checks})

    @app.post("/v1/search", response_model=SearchResponse, tags=["retrieval"],
              dependencies=[Auth], responses=_errors(400, 401, 404, 413, 422, 503))
    def search(body: SearchRequest) -> SearchResponse:
        """Hybrid (dense + BM25, reciprocal-rank fused) document search.

        Returns each matching document once, best first, with its best-matching chunk as
        `text` and that chunk's `section`. `filters` narrows by `doc_type`, `client`,
        `tags` (all must match) and a `date_from`/`date_to` range.
        """
        check_question(body.query, "query")
        return service.search(body.query, body.collection, body.top_k, body.filters)

    @app.post("/v1/answer", response_model=AnswerResponse, response_model_exclude_none=True,
              tags=["answers"], dependencies=[Auth], responses={200: {"content": {
                  "text/event-stream": {"example": _SSE_EXAMPLE}}},
                  **_errors(400, 401, 404, 413, 422, 503)})
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
        check_question(body.question, "question")
        if not body.stream:
            return service.answer(body)
        events = service.answer_stream(body)
        first = next(events)  # errors before any output still get their 4xx/503 status
        return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache",
                                          "x-accel-buffering": "no"})

    @app.get("/v1/documents", response_model=DocumentList, tags=["documents"],
             dependencies=[Auth], responses=_errors(401, 404, 422, 503))
    def list_documents(
        collection: Annotated[CollectionName | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """Documents in a collection, by doc_id; `count` is the total, not the page size."""
        return service.list_documents(collection, limit, offset)

    @app.get("/v1/documents/{doc_id:path}", response_model=DocumentDetail, tags=["documents"],
             dependencies=[Auth], responses=_errors(401, 404, 422, 503))
    def get_document(
        doc_id: Annotated[str, Path(min_length=1, max_length=1024, examples=[DOC_ID_EXAMPLE])],
        collection: Annotated[CollectionName | None, Query()] = None,
    ) -> DocumentDetail:
        """One document: its metadata and its chunks in order (404 if it is not there)."""
        return service.document(doc_id, collection)

    @app.post("/v1/documents", response_model=UploadSummary, tags=["documents"],
              dependencies=[WriteAuth], form_limits={"max_files": s.upload_max_files},
              responses=_errors(400, 401, 409, 413, 415, 422, 503))
    def upload_documents(
        files: Annotated[list[UploadFile], File(description="One or more files to ingest.")],
        collection: Annotated[CollectionName | None, Query()] = None,
    ) -> UploadSummary:
        """Upload files (multipart field `files`, repeatable) and ingest them.

        Accepted: .md, .markdown, .txt, .html, .htm, .pdf, .docx, each up to
        CX_UPLOAD_MAX_BYTES, at most CX_UPLOAD_MAX_FILES per request. File names are
        sanitised (directories dropped, unusual characters replaced) and become the doc_id;
        uploading the same name again re-indexes that document. Returns the ingest summary.
        """
        cap = s.upload_max_bytes
        # Read one byte past the cap so an oversized file is detected without reading it all.
        uploads = [Upload(f.filename or "", f.file.read(cap + 1)) for f in files]
        return service.upload(uploads, collection)

    @app.delete("/v1/documents/{doc_id:path}", tags=["documents"], dependencies=[WriteAuth],
                responses=_errors(401, 404, 409, 422, 503))
    def delete_document(
        doc_id: Annotated[str, Path(min_length=1, max_length=1024, examples=[DOC_ID_EXAMPLE])],
        collection: Annotated[CollectionName | None, Query()] = None,
    ) -> dict[str, Any]:
        """Remove one document and all its chunks (404 if it is not there)."""
        removed = service.delete_document(doc_id, collection)
        return {"doc_id": doc_id, "deleted_chunks": removed}

    @app.get("/v1/collections", tags=["documents"], dependencies=[Auth],
             responses=_errors(401, 503))
    def collections() -> dict[str, list[str]]:
        """Names of the collections in the store."""
        return {"collections": service.collections()}

    @app.post("/v1/feedback", response_model=FeedbackSaved, status_code=201,
              tags=["feedback"], dependencies=[Auth], responses=_errors(400, 401, 413, 422))
    def feedback(body: FeedbackRequest) -> FeedbackSaved:
        """Record a thumbs up/down (and optional comment) on an answer."""
        check_question(body.question, "question")
        return FeedbackSaved(id=service.feedback.add(body), rating=body.rating)

    @app.get("/v1/feedback/export", tags=["feedback"], dependencies=[WriteAuth],
             response_class=Response,
             responses={200: {"content": {"application/jsonl": {}}}, **_errors(401)})
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

    def openapi() -> dict[str, Any]:
        """The manual shows the limits this server enforces, not the models' ceilings."""
        if app.openapi_schema is None:
            spec = FastAPI.openapi(app)
            for path, field in (("/v1/search", "query"), ("/v1/answer", "question"),
                                ("/v1/feedback", "question")):
                _set_body_limit(spec, path, "post", field, maxLength=s.max_question_chars)
            _set_body_limit(spec, "/v1/documents", "post", "files", minItems=1,
                            maxItems=s.upload_max_files)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    if ui:
        from assistant.ui import mount_ui

        mount_ui(app, service)
    return app


DOC_ID_EXAMPLE = "articles/cx-quality-faults.md"  # a document of the sample corpus

_ERRORS = {
    400: "The body could not be parsed (not UTF-8 JSON, or a broken multipart form), or an "
         "upload was refused (no files, a bad name, an empty file, too many files).",
    401: "CX_API_KEYS is set and the request has no valid 'Authorization: Bearer <key>'.",
    404: "The collection or document does not exist.",
    409: "Another ingest holds the collection, or an upload's name clashes with a document "
         "from another source.",
    413: "The body is over CX_MAX_BODY_BYTES, or an uploaded file over CX_UPLOAD_MAX_BYTES.",
    415: "An uploaded file's type is not accepted.",
    422: "The request fails validation (`detail` lists each field and rule), or no uploaded "
         "file could be read.",
    503: "The vector store or the embedding model is unavailable; try again shortly.",
}


def _set_body_limit(spec: dict[str, Any], path: str, method: str, field: str,
                    **limits: int) -> None:
    """Set JSON-schema limits on one field of an operation's request-body model."""
    for media in spec["paths"][path][method]["requestBody"]["content"].values():
        name = media["schema"]["$ref"].rsplit("/", 1)[-1]
        spec["components"]["schemas"][name]["properties"][field].update(limits)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the ErrorResponse body."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


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
