"""Request dependencies: the service, the API-key checks and the question-length check.

The service is read from `app.state` through `get_service`, so a test can swap it with
`app.dependency_overrides[get_service]`. The key checks read the header through FastAPI's
`HTTPBearer`, so the manual shows the scheme; `refuse_without_key` runs the same checks in
the request gate, before a route reads (or spools) the body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Match
from starlette.types import Scope

from assistant.api.gate import Refusal
from assistant.auth import key_matches
from assistant.schemas import question_length_error
from assistant.service import AssistantService
from assistant.settings import Settings


def get_service(request: Request) -> AssistantService:
    """The app's one AssistantService, shared by every request."""
    return cast(AssistantService, request.app.state.service)


ServiceDep = Annotated[AssistantService, Depends(get_service)]

bearer = HTTPBearer(
    auto_error=False,  # a missing key is our 401, with our message, and only when keys are set
    description="One of the server's CX_API_KEYS. Needed on /v1 routes when CX_API_KEYS is "
    "set; reads are open without one when CX_PUBLIC_READ=true.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None,
              *, write: bool) -> None:
    """401 unless the request may go on: no keys set, a public read, or a matching key."""
    keys = settings.api_key_list
    if not keys or (settings.public_read and not write):
        return
    if credentials is None or not key_matches(credentials.credentials, keys):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_read_key(service: ServiceDep, credentials: Credentials) -> None:
    """Reads are open with CX_PUBLIC_READ=true; otherwise they need a key like writes."""
    check_key(service.settings, credentials, write=False)


def require_write_key(service: ServiceDep, credentials: Credentials) -> None:
    """Upload, delete and the feedback export always need a key when CX_API_KEYS is set."""
    check_key(service.settings, credentials, write=True)


ReadKey = Depends(require_read_key)
WriteKey = Depends(require_write_key)
_GUARDS = {require_read_key: False, require_write_key: True}  # guard -> is a write


def api_routes(app: FastAPI) -> Iterator[tuple[RouteContext, APIRoute]]:
    """Every API route as the app serves it (routers included), with the route itself."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context, context.original_route


def key_checks(route: APIRoute) -> list[bool]:
    """The route's key guards, each as its `write` flag (none: an open route)."""
    return [_GUARDS[d.dependency] for d in route.dependencies if d.dependency in _GUARDS]


def needs_key(route: APIRoute, settings: Settings) -> bool:
    """Whether this server refuses the route without a key (what the manual should say)."""
    writes = key_checks(route)
    if not writes or not settings.api_key_list:
        return False
    return any(writes) or not settings.public_read


def _current_service(request: Request) -> AssistantService:
    """The service the routes would get: an override (called without arguments) wins."""
    override = request.app.dependency_overrides.get(get_service)
    return cast(AssistantService, override()) if override else get_service(request)


async def refuse_without_key(scope: Scope) -> Refusal | None:
    """The matched route's key check, run before its body is read (RequestGate's `refuse`).

    The guards above stay the one place that says who may call: this finds the route's guard
    among its dependencies and applies the same check to the same header.
    """
    request = Request(scope)
    settings = _current_service(request).settings
    if not settings.api_key_list:
        return None
    for context, route in api_routes(request.app):
        if context.matches(dict(scope))[0] is not Match.FULL:
            continue
        try:
            for write in key_checks(route):
                check_key(settings, await bearer(request), write=write)
        except HTTPException as exc:
            return exc.status_code, str(exc.detail), dict(exc.headers or {})
        return None
    return None


def bearer_refusal(settings: Settings, authorization: str | None) -> tuple[int, str] | None:
    """The read-key check on a raw `Authorization` header, as (status, message) or None: for
    endpoints outside FastAPI's routing (the MCP endpoint at /mcp)."""
    scheme, _, secret = (authorization or "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=secret.strip()) \
        if scheme.lower() == "bearer" and secret.strip() else None
    try:
        check_key(settings, credentials, write=False)
    except HTTPException as exc:
        return exc.status_code, str(exc.detail)
    return None


def check_question(text: str, field: str, settings: Settings) -> None:
    """422, shaped like the request model's own errors, for a question over the limit."""
    error = question_length_error(text, field, settings.max_question_chars)
    if error is not None:
        raise RequestValidationError([error])
