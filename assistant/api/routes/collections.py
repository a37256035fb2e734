"""GET /v1/collections: the collections in the store that the caller may read."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import ReadKey, ServiceDep
from assistant.api.errors import error_responses

router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[ReadKey])


@router.get("/collections", responses=error_responses(401, 429, 503))
def collections(service: ServiceDep) -> dict[str, list[str]]:
    """Names of the collections in the store that the key may read."""
    return {"collections": service.collections()}
