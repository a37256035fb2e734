"""Request gate: the API-key check (after the authentication back-off) and the body-size cap,
applied before a route reads the body.

FastAPI reads (and for uploads, spools to disk) the whole request body before it runs a
route's dependencies, so a key check written as a dependency comes too late to spare the
server an unauthorised 400 MiB upload, and nothing caps a JSON body at all. This ASGI
middleware runs first: it refuses a request without a valid key (for routes that need one)
and a body over its cap, from `Content-Length` before reading anything and by counting bytes
as they arrive when the length is not declared (chunked transfer).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.settings import Settings

Refusal = tuple[int, str, dict[str, str]]  # status, detail, headers


class BodyTooLarge(HTTPException):
    """413 raised while the body streams in; FastAPI passes it to the app's handler."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


@dataclass(frozen=True)
class BodyLimit:
    """A cap in bytes and the words that explain it (which setting, how to change it)."""

    max_bytes: int
    setting: str

    def message(self, size: int | None) -> str:
        sent = f"is {size} bytes" if size is not None else "is larger than that"
        return (f"request body too large: the limit is {self.max_bytes} bytes ({self.setting}) "
                f"and this body {sent}")


@dataclass(frozen=True)
class BodyLimits:
    """The two caps: uploads (the API's and the chat UI's) and every other body."""

    body: BodyLimit
    upload: BodyLimit
    upload_max_files: int

    @classmethod
    def from_settings(cls, s: Settings) -> BodyLimits:
        return cls(
            body=BodyLimit(s.max_body_bytes, "CX_MAX_BODY_BYTES"),
            upload=BodyLimit(  # the files themselves plus 1 MiB for the multipart framing
                s.upload_max_files * s.upload_max_bytes + 2**20,
                "CX_UPLOAD_MAX_FILES x CX_UPLOAD_MAX_BYTES, plus 1 MiB for the form itself"),
            upload_max_files=s.upload_max_files,
        )

    def for_scope(self, scope: Scope) -> BodyLimit:
        """Uploads get the upload cap, everything else CX_MAX_BODY_BYTES."""
        path = scope["path"]
        is_upload = scope["method"] == "POST" and path.rstrip("/") == "/v1/documents"
        return self.upload if is_upload or path.startswith("/ui") else self.body


class RequestGate:
    """ASGI middleware: `refuse(scope)` may answer (status, detail, headers) to stop a request
    before its body is read; `limit_for(scope)` gives the body cap for that request;
    `observe(scope, status)`, if given, sees each response's status (the UI login's failures
    feed the authentication back-off through it)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: Callable[[Scope], BodyLimit],
        refuse: Callable[[Scope], Awaitable[Refusal | None]],
        observe: Callable[[Scope, int], None] | None = None,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refuse = refuse
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self.refuse(scope)
        if refusal is not None:  # close: the unread body must not be taken for a next request
            status, detail, headers = refusal
            await _send_json(send, status, detail, {**headers, "connection": "close"})
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await _send_json(send, 413, limit.message(declared), {"connection": "close"})
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise BodyTooLarge(limit.message(declared))
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.observe is not None:
                    self.observe(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # an app that does not turn it into a response itself
            if started:
                raise
            await _send_json(send, 413, str(exc.detail), {"connection": "close"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
