"""Request dependencies: the caller, the service scoped to the caller, the question-length check.

One place decides who is calling: `caller` resolves the bearer key to a Principal (key name,
read and write scopes, admin) once per request, through the app's Authenticator, and keeps it
in the request's state; the guards (`ReadKey`, `WriteKey`, `AdminKey`) call it, and
`refuse_without_key` applies the same guards in the request gate, before a route reads (or
spools) the body. Routes then get `ServiceDep`: the service wrapped in a ScopedService for
that caller, which checks each collection a call names (the default one when it names none)
before the service runs.

The bare service is read from `app.state` through `get_service`, so a test can swap it with
`app.dependency_overrides[get_service]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, cast

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Match
from starlette.types import Scope

from assistant.access import CALLER, ScopedService
from assistant.api.gate import Refusal
from assistant.audit import AuditRecord
from assistant.auth import AccessDenied, Authenticator, Principal, TooManyFailures, Unauthorized
from assistant.errors import AssistantError
from assistant.file_links import FileLinks
from assistant.schemas import question_length_error
from assistant.service import AssistantService
from assistant.settings import Settings

KEYED_PATHS = ("/v1/", "/mcp", "/ui/login")  # where a presented key may be refused


def get_service(request: Request) -> AssistantService:
    """The app's one AssistantService, shared by every request."""
    return cast(AssistantService, request.app.state.service)


bearer = HTTPBearer(
    auto_error=False,  # a missing key is our 401, with our message, and only when keys are set
    description="A key from `cx-assistant keys create` (scoped to collections) or one of the "
    "server's CX_API_KEYS. Needed on /v1 routes once either exists; reads are open without "
    "one when CX_PUBLIC_READ=true.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def client_address(scope: Scope) -> str:
    """The client's address (uvicorn's proxy-header support makes it the real client's
    behind a trusted proxy): what the authentication back-off counts by."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def audit_record(scope: Scope) -> AuditRecord:
    """This request's audit record (the audit middleware's, or a loose one without it)."""
    state = scope.setdefault("state", {})
    if "audit" not in state:
        state["audit"] = AuditRecord()
    return cast(AuditRecord, state["audit"])


def caller(request: Request, secret: str | None, *, write: bool) -> Principal:
    """The request's Principal, resolved once (the gate usually did it before the body)."""
    state = request.scope.setdefault("state", {})
    principal = state.get("principal")
    if principal is None:
        record = audit_record(request.scope)
        auth: Authenticator = request.app.state.auth
        try:
            principal = auth.authenticate(secret, write=write,
                                          address=client_address(request.scope))
        except Unauthorized as exc:
            record.key = f"{exc.key} (revoked)" if exc.key else None
            raise HTTPException(status_code=401, detail=exc.message,
                                headers={"WWW-Authenticate": "Bearer"}) from None
        state["principal"] = principal
        record.key = principal.name
    return cast(Principal, principal)


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


def require_read_key(request: Request, credentials: Credentials) -> None:
    """Reads are open with CX_PUBLIC_READ=true; otherwise they need a key like writes."""
    caller(request, _secret(credentials), write=False)


def require_write_key(request: Request, credentials: Credentials) -> None:
    """Upload, delete and the feedback export always need a key once keys exist."""
    caller(request, _secret(credentials), write=True)


def require_admin_key(request: Request, credentials: Credentials) -> None:
    """Key management: an admin key from the key store (CX_API_KEYS keys are not admins)."""
    if not caller(request, _secret(credentials), write=True).admin:
        raise AccessDenied("managing keys needs an admin key: create one with "
                           "`cx-assistant keys create --name NAME --read '*' --admin`")


def require_read_key_or_link(request: Request, credentials: Credentials) -> None:
    """The original-file route: a key, as for any read, or the chat UI's signed link
    (file_links.py), which reads exactly the one document it was signed for."""
    token = request.query_params.get("token")
    auth: Authenticator = request.app.state.auth
    if not token or credentials is not None or not auth.keyed:
        caller(request, _secret(credentials), write=False)
        return
    doc_id = str(request.path_params.get("doc_id", ""))
    collection = request.query_params.get("collection") or auth.settings.collection
    links: FileLinks = request.app.state.file_links
    grant = links.check(token, collection, doc_id)
    if grant is None:
        raise HTTPException(status_code=401, detail="this link to the original has expired or "
                            "is not valid: open it again from the chat's source card, or "
                            "send an API key", headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(f"{grant.key} (link)", (grant.collection,))
    request.scope.setdefault("state", {})["principal"] = principal
    audit_record(request.scope).key = principal.name


ReadKey = Depends(require_read_key)
ReadKeyOrLink = Depends(require_read_key_or_link)
WriteKey = Depends(require_write_key)
AdminKey = Depends(require_admin_key)
_GUARDS: dict[Callable[..., None], bool] = {  # guard -> is a write (no public access)
    require_read_key: False, require_write_key: True, require_admin_key: True,
    require_read_key_or_link: False}


def scoped_service(request: Request, service: Annotated[AssistantService, Depends(get_service)],
                   credentials: Credentials) -> ScopedService:
    """The service as this request's caller may use it (a route without a guard is a read)."""
    principal = caller(request, _secret(credentials), write=False)
    return ScopedService(service, principal, audit_record(request.scope))


ServiceDep = Annotated[ScopedService, Depends(scoped_service)]


def api_routes(app: FastAPI) -> Iterator[tuple[RouteContext, APIRoute]]:
    """Every API route as the app serves it (routers included), with the route itself."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context, context.original_route


def key_guards(route: APIRoute) -> list[Callable[..., None]]:
    """The route's key guards (none: an open route)."""
    return [d.dependency for d in route.dependencies if d.dependency in _GUARDS]


def key_checks(route: APIRoute) -> list[bool]:
    """The route's key guards, each as its `write` flag (none: an open route)."""
    return [_GUARDS[guard] for guard in key_guards(route)]


def needs_key(route: APIRoute, auth: Authenticator) -> bool:
    """Whether this server refuses the route without a key (what the manual should say)."""
    writes = key_checks(route)
    if not writes or not auth.keyed:
        return False
    return any(writes) or not auth.settings.public_read


def presents_key(scope: Scope) -> bool:
    """A request that tries a key: a bearer header on a keyed path, or a UI login."""
    path = scope["path"]
    if not path.startswith(KEYED_PATHS):
        return False
    if path.startswith("/ui/login"):
        return bool(scope["method"] == "POST")
    return any(name == b"authorization" for name, _ in scope.get("headers", []))


def backoff_refusal(auth: Authenticator, scope: Scope) -> TooManyFailures | None:
    """429 for an address in back-off that tries a key (a request without one is a plain 401
    and reveals nothing, so it goes on)."""
    if not presents_key(scope):
        return None
    wait = auth.backoff.retry_after(client_address(scope))
    return TooManyFailures(wait) if wait > 0 else None


async def refuse_without_key(scope: Scope) -> Refusal | None:
    """The matched route's guards, run before its body is read (RequestGate's `refuse`),
    after the back-off: an address that failed too often gets 429 before any key check."""
    request = Request(scope)
    auth: Authenticator = request.app.state.auth
    throttled = backoff_refusal(auth, scope)
    if throttled is not None:
        return 429, throttled.message, {"Retry-After": str(throttled.retry_after)}
    if not auth.keyed:
        return None
    scope.setdefault("state", {})  # shared with the copy below: the principal lands here
    for context, route in api_routes(request.app):
        match, child = context.matches(dict(scope))
        if match is not Match.FULL:
            continue
        matched = Request({**scope, **child})  # with the route's path_params, as routes see it
        try:
            for guard in key_guards(route):
                guard(matched, await bearer(matched))
        except HTTPException as exc:
            return exc.status_code, str(exc.detail), dict(exc.headers or {})
        except AssistantError as exc:
            return exc.status, exc.message, {}
        return None
    return None


def mcp_check(scope: Scope) -> tuple[int, str] | None:
    """The /mcp endpoint's key check (its tools only read): the caller is resolved as for a
    /v1 read and bound to CALLER, where the tool calls, run by the MCP SDK in its own tasks
    and threads, find it."""
    request = Request(scope)
    header = request.headers.get("authorization") or ""
    scheme, _, secret = header.partition(" ")
    try:
        principal = caller(request, secret if scheme.lower() == "bearer" else None,
                           write=False)
    except HTTPException as exc:
        return exc.status_code, str(exc.detail)
    CALLER.set((principal, audit_record(scope)))
    return None


def check_question(text: str, field: str, settings: Settings) -> None:
    """422, shaped like the request model's own errors, for a question over the limit."""
    error = question_length_error(text, field, settings.max_question_chars)
    if error is not None:
        raise RequestValidationError([error])
