"""Liveness and readiness probes (never keyed: a load balancer has no key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from assistant.api.deps import get_service
from assistant.service import AssistantService

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: 200 once the server can answer."""
    return {"status": "ok"}


@router.get("/readyz", responses={
    200: {"description": "Ready: every check passed."},
    503: {"description": "Not ready: the same body, with the failing check false."}})
def readyz(service: Annotated[AssistantService, Depends(get_service)]) -> JSONResponse:
    """Readiness: Chroma reachable, embedder loaded, default collection present."""
    checks = service.readiness()
    ready = bool(checks.get("chroma") and checks.get("embedder") and checks.get("collection"))
    return JSONResponse(status_code=200 if ready else 503,
                        content={"status": "ready" if ready else "not ready", **checks})
