"""POST /v1/search: hybrid document search."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import ReadKey, ServiceDep, check_question
from assistant.api.errors import error_responses
from assistant.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["retrieval"], dependencies=[ReadKey])


@router.post("/search", response_model=SearchResponse,
             responses=error_responses(400, 401, 403, 404, 413, 422, 429, 503))
def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    """Hybrid (dense + BM25, reciprocal-rank fused) document search.

    Returns each matching document once, best first, with its best-matching chunk as
    `text` and that chunk's `section`. `filters` narrows by `doc_type`, `client`,
    `tags` (all must match) and a `date_from`/`date_to` range. Without `top_k`, the
    server's CX_TOP_K documents come back. A collection outside the key's read scopes (the
    default one when `collection` is omitted) is a 403 naming it.
    """
    check_question(body.query, "query", service.settings)
    return service.search(body.query, body.collection, body.top_k, body.filters)
