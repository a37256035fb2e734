"""GET /v1/collections: the collections in the store."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import ReadKey, ServiceDep
from assistant.api.errors import error_responses

router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[ReadKey])


@router.get("/collections", responses=error_responses(401, 503))
def collections(service: ServiceDep) -> dict[str, list[str]]:
    """Names of the collections in the store."""
    return {"collections": service.collections()}
