"""The audit middleware: one audit line per /v1, /mcp and UI-login request, written once the
response has been sent in full (a streamed answer's citations are known only at its end).

It sits outside the request gate, so refusals (401, 403, 429, 413) are audited too. The
request's AuditRecord lives in its scope state: the key check fills in the key's name, the
scoped service the collection and the doc_ids. Probes and the chat's page traffic are not
audited; the chat's actions write their own lines (assistant.ui.handlers).
"""

from __future__ import annotations

import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.api.deps import KEYED_PATHS, audit_record, client_address
from assistant.audit import AuditLog

log = logging.getLogger("assistant.api")


def request_id(scope: Scope) -> str:
    """The request's id: the client's x-request-id, else a new one; kept in the scope state
    so the request log, the audit line and the response header agree."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        state["request_id"] = sent[:128] or uuid.uuid4().hex[:16]
    return str(state["request_id"])


class AuditTrail:
    """ASGI middleware writing one AuditLog line per audited request."""

    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(KEYED_PATHS):
            await self.app(scope, receive, send)
            return
        record = audit_record(scope)
        status = 500  # what the client sees if the app fails before answering

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            try:
                self.audit.write(record, route=scope["path"], status=status,
                                 request_id=request_id(scope), method=scope["method"],
                                 client=client_address(scope))
            except Exception:  # a full disk must not turn answers into 500s; it is logged
                log.exception("audit line could not be written")
