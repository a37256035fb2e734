"""HTTP API (FastAPI): thin routes over AssistantService; see /docs for the manual."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from assistant import __version__
from assistant.embeddings import EmbeddingModelError
from assistant.ingest import IngestError
from assistant.schemas import (
    COLLECTION_PATTERN,
    AnswerRequest,
    AnswerResponse,
    DocumentList,
    SearchRequest,
    SearchResponse,
)
from assistant.service import AssistantService, DocumentNotFound
from assistant.store import CollectionNotFound, StoreUnavailable

log = logging.getLogger("assistant.api")


def create_app(service: AssistantService) -> FastAPI:
    """Build the app around one service instance (shared by every request)."""
    app = FastAPI(
        title="Cx Knowledge Assistant",
        version=__version__,
        description="Cited answers and search over a Cx consultancy's knowledge base. "
        "Answers mark claims with [n]; each citation quotes its source verbatim.",
    )
    app.state.service = service
    keys = [k.encode("utf-8") for k in service.settings.api_key_list]

    def require_key(request: Request) -> None:
        """With CX_API_KEYS set, /v1 routes need `Authorization: Bearer <key>`."""
        if not keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        supplied = token.strip().encode("utf-8")
        # Compare against every key, always, so timing does not reveal which key matched.
        ok = False
        for key in keys:
            ok |= hmac.compare_digest(supplied, key)
        if scheme.lower() != "bearer" or not ok:
            raise HTTPException(
                status_code=401,
                detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    Auth = Depends(require_key)

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
              tags=["answers"], dependencies=[Auth])
    def answer(body: AnswerRequest) -> AnswerResponse:
        """Answer a question from the knowledge base, citing every claim.

        The answer marks each claim with `[n]`; `citations[n]` gives the document, section
        and the verbatim `quote` it rests on. When nothing in the collection answers the
        question, `abstained` is true, the answer says so, and there are no citations.
        Pass earlier turns in `history` for follow-up questions.
        """
        return service.answer(body)

    @app.get("/v1/documents", response_model=DocumentList, tags=["documents"],
             dependencies=[Auth])
    def list_documents(
        collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """Documents in a collection, by doc_id; `count` is the total, not the page size."""
        return service.list_documents(collection, limit, offset)

    @app.delete("/v1/documents/{doc_id:path}", tags=["documents"], dependencies=[Auth])
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

    return app
