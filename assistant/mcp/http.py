"""Streamable HTTP for the MCP server, as an ASGI app to route at `/mcp` inside `serve`.

Two things the SDK leaves to the host app:

- Its `StreamableHTTPSessionManager` only works inside its `run()` context, and Starlette
  (so FastAPI) never runs the lifespan of a mounted or routed sub-app. The parent app must
  enter `McpHttpApp.lifespan()` in its own lifespan; `attach()` does both the routing and
  that. A manager's `run()` may be entered only once, so each lifespan makes a fresh one
  (a test client that starts the app twice keeps working).
- Authentication: `check(scope)` runs before the SDK sees the request and answers
  `(status, message)` to refuse it. The body is a JSON-RPC error (MCP's error shape, as the
  SDK's own HTTP refusals), whose message the SDK client raises as `MCPError`. It runs in the
  request's own task, so what it binds in a contextvar (the caller, for the tools' scope
  checks) reaches the SDK's tasks and the tool threads, which copy the context.

Stateless, JSON-response mode: each POST is served on its own, so `serve --workers N`
(separate processes that share no memory) can answer any request, and responses are plain
JSON that any proxy or middleware passes through. The tools need no server-to-client
requests, which is all that stateless mode gives up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import INVALID_REQUEST, ErrorData, JSONRPCError
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

# (the request's ASGI scope) -> None to let the request through, or (status, message)
Check = Callable[[Scope], "tuple[int, str] | None"]


class McpHttpApp:
    """The MCP endpoint as a plain ASGI app: route it with `Route(path, endpoint=app)` (an
    instance, not a function, so Starlette passes requests through untouched)."""

    def __init__(self, server: Server[Any], check: Check | None = None, *,
                 security: TransportSecuritySettings | None = None) -> None:
        self.server = server
        self.check = check
        self.security = security  # Host/Origin checks (DNS rebinding); None: off, as the API
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the SDK's session manager for as long as the parent app runs."""
        manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True,
            security_settings=self.security)
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self.check is not None:
            refused = self.check(scope)
            if refused is not None:
                await _refuse(send, *refused)
                return
        if self._manager is None:
            await _refuse(send, 503, "the MCP endpoint is not running: the app's lifespan "
                          "must enter McpHttpApp.lifespan()")
            return
        await self._manager.handle_request(scope, receive, send)

    def attach(self, app: Starlette, path: str = "/mcp") -> None:
        """Route `path` to this endpoint and run its lifespan inside `app`'s (FastAPI too)."""
        app.router.routes.append(Route(path, endpoint=self))
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(parent: Any) -> AsyncIterator[Any]:
            async with self.lifespan(), inner(parent) as state:
                yield state

        app.router.lifespan_context = lifespan


async def _refuse(send: Send, status: int, message: str) -> None:
    error = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST,
                                                                  message=message))
    body = error.model_dump_json(by_alias=True, exclude_unset=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
