"""Exception handlers and the error statuses the manual declares.

Every domain error (`assistant.errors.AssistantError`) is rendered by one handler from its own
`status` and `message`; Starlette's and FastAPI's own HTTP errors get wording that says what to
change, and a 405 lists every method of the path.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from assistant.api.deps import api_routes
from assistant.api.gate import BodyLimits
from assistant.errors import AssistantError
from assistant.schemas import ErrorResponse

ERRORS = {
    400: "The body could not be parsed (not UTF-8 JSON, or a broken multipart form), or an "
         "upload was refused (no files, a bad name, an empty file, too many files).",
    401: "Keys are required (CX_API_KEYS or a key store) and the request has no valid "
         "'Authorization: Bearer <key>', or its key was revoked.",
    403: "The key may not read (or write) the collection the request names, the default one "
         "when it names none; key management needs an admin key.",
    404: "The collection or document does not exist.",
    409: "Another ingest holds the collection, or an upload's name clashes with a document "
         "from another source.",
    413: "The body is over CX_MAX_BODY_BYTES, or an uploaded file over CX_UPLOAD_MAX_BYTES.",
    415: "An uploaded file's type is not accepted.",
    422: "The request fails validation (`detail` lists each field and rule), or no uploaded "
         "file could be read.",
    429: "Too many failed authentications from this address: retry after `Retry-After` "
         "seconds (CX_AUTH_BACKOFF_BURST, CX_AUTH_BACKOFF_REFILL_S).",
    503: "The vector store or the embedding model is unavailable; try again shortly.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the ErrorResponse body."""
    return {code: {"model": ErrorResponse, "description": ERRORS[code]} for code in codes}


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(AssistantError, domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]


async def domain_error(_: Request, exc: AssistantError) -> JSONResponse:
    """Any domain error: its own status and user-facing message."""
    return JSONResponse(status_code=exc.status, content={"detail": exc.message})


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:  # Starlette lists only the first matching route's methods
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["Allow"] = ", ".join(sorted(_methods_of(request)))
    limits: BodyLimits = request.app.state.limits
    return JSONResponse(status_code=exc.status_code, content={"detail": _explain(exc, limits)},
                        headers=headers or None)


def _methods_of(request: Request) -> set[str]:
    """Every method of every API route whose path matches the request's."""
    methods: set[str] = set()
    for context, route in api_routes(request.app):
        if context.matches(dict(request.scope))[0] is not Match.NONE:
            methods |= route.methods or set()
    return methods


def _explain(exc: StarletteHTTPException, limits: BodyLimits) -> Any:
    """Starlette's and FastAPI's own 400s and 413s do not say what to change."""
    detail = exc.detail
    if not isinstance(detail, str):
        return detail
    if exc.status_code == 400 and detail.startswith("Too many files"):
        return (f"too many files: at most {limits.upload_max_files} per request "
                "(CX_UPLOAD_MAX_FILES)")
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        return ("the request body could not be parsed: send UTF-8 JSON with "
                "'content-type: application/json' (uploads: multipart/form-data with "
                "a 'files' field)")
    if exc.status_code == 413 and detail == "Content Too Large":
        return limits.body.message(None)
    return detail
