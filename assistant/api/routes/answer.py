"""POST /v1/answer: a cited answer, whole or streamed as Server-Sent Events."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from assistant.api.deps import ReadKey, ServiceDep, check_question
from assistant.api.errors import error_responses
from assistant.errors import AssistantError
from assistant.schemas import AnswerRequest, AnswerResponse

log = logging.getLogger("assistant.api")
router = APIRouter(prefix="/v1", tags=["answers"], dependencies=[ReadKey])

SSE_EXAMPLE = (
    'event: delta\ndata: {"text": "A Cx Quality Fault is ... [1] "}\n\n'
    'event: done\ndata: {"answer": "A Cx Quality Fault is ... [1]", "abstained": false, '
    '"citations": [...], "mode": "extractive"}\n\n'
)


@router.post("/answer", response_model=AnswerResponse, response_model_exclude_none=True,
             responses={200: {"content": {"text/event-stream": {"example": SSE_EXAMPLE}}},
                        **error_responses(400, 401, 403, 404, 413, 422, 429, 503)})
def answer(body: AnswerRequest, service: ServiceDep) -> Any:
    """Answer a question from the knowledge base, citing every claim.

    The answer marks each claim with `[n]`; `citations[n]` gives the document, section
    and the verbatim `quote` it rests on. When nothing in the collection answers the
    question, `abstained` is true, the answer says so, and there are no citations.
    Pass earlier turns in `history` for follow-up questions. A collection outside the key's
    read scopes (the default one when `collection` is omitted) is a 403 naming it.

    With `"stream": true` the reply is `text/event-stream`: `delta` events whose data is
    `{"text": ...}` (append them in order), then one `done` event whose data is the same
    body as the non-streaming reply, citations included. A failure after streaming has
    begun arrives as an `error` event with `{"detail": ...}`.
    """
    check_question(body.question, "question", service.settings)
    if not body.stream:
        return service.answer(body)
    events = service.answer_stream(body)
    first = next(events)  # errors before any output still get their 4xx/503 status
    return StreamingResponse(sse(first, events), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def sse(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]) -> Iterator[bytes]:
    """Encode ("delta", text) / ("done", AnswerResponse) events as Server-Sent Events."""

    def encode(kind: str, payload: Any) -> bytes:
        if kind == "done":
            data = payload.model_dump_json(exclude_none=True)
        else:
            data = json.dumps({"text": payload}, ensure_ascii=False)
        return format_sse_event(event=kind, data_str=data)

    yield encode(*first)
    try:
        for event in rest:
            yield encode(*event)
    except Exception as exc:  # headers are sent: report in-band rather than cut the stream
        log.warning("answer stream failed", extra={"error": type(exc).__name__})
        detail = exc.message if isinstance(exc, AssistantError) else (
            str(exc).strip("'\"") or type(exc).__name__)
        yield format_sse_event(event="error", data_str=json.dumps({"detail": detail}))
