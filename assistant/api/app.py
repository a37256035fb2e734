"""The app factory: one FastAPI app around one AssistantService, routers, gate and handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.types import Scope

from assistant import __version__
from assistant.api import errors
from assistant.api.auditing import AuditTrail, request_id
from assistant.api.deps import (
    api_routes,
    client_address,
    key_checks,
    mcp_check,
    needs_key,
    refuse_without_key,
)
from assistant.api.gate import BodyLimits, RequestGate
from assistant.api.openai_errors import OpenAIErrorShape
from assistant.api.routes import ROUTERS, documents
from assistant.audit import AuditLog
from assistant.auth import Authenticator
from assistant.file_links import FileLinks
from assistant.mcp import McpHttpApp, create_server
from assistant.service import AssistantService
from assistant.settings import load_settings

log = logging.getLogger("assistant.api")


def create_app(service: AssistantService, ui: bool = True) -> FastAPI:
    """Build the app around one service instance (shared by every request, in `app.state`,
    replaceable through `app.dependency_overrides[get_service]`); `ui` mounts the Gradio
    chat at /ui."""
    app = FastAPI(
        title="Cx Knowledge Assistant",
        version=__version__,
        description="Cited answers and search over a Cx consultancy's knowledge base. "
        "Answers mark claims with [n]; each citation quotes its source verbatim.",
    )
    s = service.settings
    app.state.service = service
    app.state.limits = limits = BodyLimits.from_settings(s)
    app.state.auth = auth = Authenticator(s)
    app.state.audit = audit = AuditLog(s)
    app.state.file_links = FileLinks(s.data_dir, s.file_link_ttl_s)
    app.add_middleware(RequestGate, limit_for=limits.for_scope, refuse=refuse_without_key,
                       observe=lambda scope, status: _login_failed(auth, scope, status))
    app.add_middleware(OpenAIErrorShape)  # outside the gate: it reshapes its refusals too
    app.add_middleware(AuditTrail, audit=audit)  # outside both: sees every final status
    app.middleware("http")(log_requests)
    errors.install(app)
    for router in ROUTERS:
        if router is documents.router:
            app.include_router(router, form_limits={"max_files": s.upload_max_files})
        else:
            app.include_router(router)
    app.openapi = lambda: _openapi(app, auth)  # type: ignore[method-assign]
    if ui:
        from assistant.ui import mount_ui

        mount_ui(app, service, auth=auth, audit=audit)
    # MCP's Streamable HTTP at /mcp: the same service, keys and scopes (tools only read)
    McpHttpApp(create_server(service), check=mcp_check).attach(app)
    return app


def _login_failed(auth: Authenticator, scope: Scope, status: int) -> None:
    """A refused chat login spends the address's back-off, as a wrong bearer key does."""
    if scope["path"].startswith("/ui/login") and scope["method"] == "POST" and \
            status in (400, 401):
        auth.backoff.fail(client_address(scope))


def app_from_environment() -> FastAPI:
    """One `serve --workers N` process: its own service from the environment's settings,
    the model loaded before it takes requests."""
    service = AssistantService(load_settings())
    _ = service.embedder
    return create_app(service)


async def log_requests(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One structured line per request; never logs bodies, document text or keys."""
    rid = request_id(request.scope)  # the audit line's id too
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["x-request-id"] = rid
    log.info("request", extra={
        "request_id": rid, "route": request.url.path, "method": request.method,
        "status": response.status_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    })
    return response


def _openapi(app: FastAPI, auth: Authenticator) -> dict[str, Any]:
    """The manual shows the limits this server enforces, not the models' ceilings, and the
    key as optional where this server takes requests without one (so a client, or a fuzzer,
    is not told that a request without a key must fail)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    s = auth.settings
    spec = FastAPI.openapi(app)  # also kept in app.openapi_schema: the patches below stay
    for path, field in (("/v1/search", "query"), ("/v1/answer", "question"),
                        ("/v1/feedback", "question")):
        _set_body_limit(spec, path, "post", field, maxLength=s.max_question_chars)
    _set_body_limit(spec, "/v1/documents", "post", "files", minItems=1,
                    maxItems=s.upload_max_files)
    for _, route in api_routes(app):  # the bearer key, optional where this server needs none
        if key_checks(route) and not needs_key(route, auth):
            for method in route.methods or ():
                spec["paths"][route.path_format][method.lower()]["security"].append({})
    return spec


def _set_body_limit(spec: dict[str, Any], path: str, method: str, field: str,
                    **limits: int) -> None:
    """Set JSON-schema limits on one field of an operation's request-body model."""
    for media in spec["paths"][path][method]["requestBody"]["content"].values():
        name = media["schema"]["$ref"].rsplit("/", 1)[-1]
        spec["components"]["schemas"][name]["properties"][field].update(limits)
