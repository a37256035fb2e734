"""Errors on the OpenAI-compatible paths in the OpenAI shape:
`{"error": {"message", "type", "param", "code"}}`.

OpenAI clients read `error.message` for the exceptions they raise. Every refusal on these paths
(the key check and body cap in the gate, domain errors, validation) is produced by the same
code as on the rest of the API, as `{"detail": ...}`; this middleware rewrites that body on
the way out, so there is one place that decides each failure and one that shapes it for
OpenAI clients. Validation failures become 400 (`invalid_request_error`), as OpenAI answers.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.api.openai_schemas import OpenAIError, OpenAIErrorBody

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large",
          429: "rate_limit_exceeded"}


def openai_error(status: int, message: str, param: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    """The OpenAI error body for a status and message."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return OpenAIError(error=OpenAIErrorBody(
        message=message, type=kind, param=param, code=code or _CODES.get(status),
    )).model_dump()


def _from_detail(status: int, detail: Any) -> tuple[int, dict[str, Any]]:
    """Our `detail` (a message, or FastAPI's list of validation errors) in OpenAI's shape."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        if len(detail) > 1:
            message += f" (and {len(detail) - 1} more)"
        return 400, openai_error(400, message, param, first.get("type"))
    return status, openai_error(status, str(detail))


class OpenAIErrorShape:
    """ASGI middleware: error bodies on OPENAI_PATHS rewritten into OpenAI's shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(OPENAI_PATHS):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def reshape(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                else:
                    start = message  # held until the body is complete
                return
            if start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            status, payload = start["status"], _reshaped(start["status"], body)
            if payload is not None:
                status, data = payload
                body = json.dumps(data).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)


def _reshaped(status: int, body: bytes) -> tuple[int, dict[str, Any]] | None:
    """The rewritten (status, body), or None when the body is already OpenAI-shaped or not
    ours (not JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "error" in data or "detail" not in data:
        return None
    return _from_detail(status, data["detail"])
