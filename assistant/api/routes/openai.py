"""The OpenAI-compatible endpoint: `GET /v1/models` and `POST /v1/chat/completions`.

Chat front-ends, SDKs and workflow tools speak OpenAI's Chat Completions protocol; pointed at
this server they get our answers. Each collection is a model (`cx-knowledge`), and each
collection and document type too (`cx-knowledge:finding`, a doc-type filter). The answer goes
through the same `service.answer` / `answer_stream` as `/v1/answer`, under the same keys and
limits: this module only translates. The message `content` is the answer with its `[n]`
markers and a Sources list; the full `/v1/answer` body rides in the extra field `cx`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from assistant.access import ScopedService
from assistant.answer_text import answer_with_sources
from assistant.api.deps import ReadKey, ServiceDep, check_question
from assistant.api.openai_errors import openai_error
from assistant.api.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Model,
    ModelList,
    OpenAIError,
    Usage,
    text_of,
)
from assistant.errors import AssistantError
from assistant.llm import Sampling
from assistant.schemas import (
    MAX_HISTORY_TURNS,
    MAX_TURN_CHARS,
    AnswerRequest,
    AnswerResponse,
    HistoryTurn,
    SearchFilters,
)

router = APIRouter(prefix="/v1", tags=["openai-compatible"], dependencies=[ReadKey])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError, "description": text} for code, text in {
        400: "Invalid request: a bad field, an unsupported parameter (tools, n > 1, "
             "logprobs, images), or a question over CX_MAX_QUESTION_CHARS.",
        401: "Keys are required and the request has no valid bearer key.",
        403: "The model's collection is outside the key's read scopes.",
        404: "No such model: `GET /v1/models` lists them.",
        413: "The body is over CX_MAX_BODY_BYTES.",
        429: "Too many failed authentications from this address: retry after Retry-After.",
        503: "The vector store or the embedding model is unavailable.",
    }.items()}
SOURCES_SEPARATOR = "\n\nSources:\n"


def model_ids(service: ScopedService) -> list[str]:
    """Every collection the key may read, then each with each of its document types."""
    names = service.collections()
    ids = list(names)
    for name in names:
        ids += [f"{name}:{t}" for t in service.metadata_values("doc_type", name)]
    return ids


@router.get("/models", response_model=ModelList, responses=_ERRORS)
def models(service: ServiceDep) -> ModelList:
    """The models this server answers as for this key: one per collection it may read, and one
    per such collection and document type (`collection:doc_type`, answering from that type
    only)."""
    return ModelList(data=[Model(id=i) for i in model_ids(service)])


def _resolve(service: ScopedService, model: str) -> tuple[str, SearchFilters | None] | None:
    """(collection, doc-type filter) for a model id, or None if the model does not exist;
    a collection outside the key's read scopes is a 403 first (existing or not)."""
    name, _, doc_type = model.partition(":")
    if not name:
        return None
    service.readable(name)
    if name not in service.collections():
        return None
    if not doc_type:
        return name, None
    if doc_type not in service.metadata_values("doc_type", name):
        return None
    return name, SearchFilters(doc_type=[doc_type])


def _history(body: ChatCompletionRequest) -> list[HistoryTurn]:
    """Earlier user and assistant turns, newest MAX_HISTORY_TURNS, each cut to MAX_TURN_CHARS.

    Chat clients resend the whole conversation every time, so a long one is cut rather than
    refused; our own earlier answers lose their Sources list (it would only add noise to the
    follow-up rewrite)."""
    turns = []
    for message in body.messages[:-1]:
        if message.role in ("user", "assistant"):
            text = text_of(message).split(SOURCES_SEPARATOR, 1)[0].strip()
            if text:
                turns.append(HistoryTurn(role=message.role, content=text[:MAX_TURN_CHARS]))
    return turns[-MAX_HISTORY_TURNS:]


def _refusal(status: int, message: str, param: str | None = None,
             code: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=openai_error(status, message, param, code))


@router.post("/chat/completions", response_model=ChatCompletion, responses={
    200: {"content": {"text/event-stream": {}}}, **_ERRORS})
def chat_completions(body: ChatCompletionRequest, service: ServiceDep) -> Any:
    """Answer the last user message from the knowledge base, OpenAI-style.

    `content` is the answer with `[n]` markers and a Sources list; `cx` carries the
    `/v1/answer` body (citations with verbatim quotes, `abstained`, `mode`, `warning`).
    With `stream: true`, `chat.completion.chunk` events end with `data: [DONE]`; the last
    chunk before it carries `cx`. In LLM mode the text is sent once verified, so a client
    never shows a marker that was later removed. `temperature` and `max_tokens` reach the
    model in LLM mode; the extractive answerer has no use for them.
    """
    refused = body.unsupported()
    if refused is not None:
        return _refusal(400, refused[1], refused[0], "unsupported_parameter")
    if body.messages[-1].role != "user" or not text_of(body.messages[-1]).strip():
        return _refusal(400, "the last message must be a user message with the question",
                        "messages")
    target = _resolve(service, body.model)
    if target is None:
        return _refusal(404, f"the model '{body.model}' does not exist: GET /v1/models lists "
                        "the collections (and collection:doc_type) this server answers from",
                        "model")
    question = text_of(body.messages[-1]).strip()
    check_question(question, "messages", service.settings)
    request = AnswerRequest(question=question, collection=target[0], filters=target[1],
                            history=_history(body) or None)
    sampling = Sampling(temperature=body.temperature, max_tokens=body.token_cap)
    reply = _Reply(service, body)
    if not body.stream:
        return reply.completion(service.answer(request, sampling=sampling))
    events = service.answer_stream(request, sampling=sampling)
    first = next(events)  # errors before any output still get their status
    return StreamingResponse(reply.chunks(first, events), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


class _Reply:
    """One completion's identity (id, time, model) and its renderings, whole or as chunks."""

    def __init__(self, service: ScopedService, body: ChatCompletionRequest) -> None:
        self.service, self.body = service, body
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        # Streamed LLM tokens are not yet verified: send the verified text at the end.
        self.live = service.llm is None

    def _tokens(self, text: str) -> int:
        return len(self.service.embedder.tokenizer.tokenize(text)) if text else 0

    def usage(self, content: str) -> Usage:
        prompt = sum(self._tokens(text_of(m)) for m in self.body.messages)
        completion = self._tokens(content)
        return Usage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion)

    def completion(self, response: AnswerResponse) -> ChatCompletion:
        content = answer_with_sources(response)
        return ChatCompletion(
            id=self.id, created=self.created, model=self.body.model,
            choices=[Choice(message=AssistantMessage(content=content))],
            usage=self.usage(content), cx=response)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None,
               **extra: Any) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}], **extra}
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    def chunks(self, first: tuple[str, Any], rest: Iterator[tuple[str, Any]]
               ) -> Iterator[bytes]:
        """`chat.completion.chunk` events: the role, the text as it comes (extractive) or
        once verified (LLM), the Sources, a final chunk with `cx`, then `[DONE]`."""
        yield self._chunk({"role": "assistant", "content": ""})
        sent = ""
        try:
            for kind, payload in _chain(first, rest):
                if kind == "delta" and self.live:
                    sent += payload
                    yield self._chunk({"content": payload})
                elif kind == "done":
                    content = answer_with_sources(payload)
                    # what was streamed is the answer (give or take its whitespace)
                    tail = content[len(payload.answer):] if sent else content
                    if tail:
                        yield self._chunk({"content": tail})
                    yield self._chunk({}, "stop", cx=payload.model_dump(mode="json",
                                                                         exclude_none=True))
                    if self.body.include_usage:
                        yield self._usage_chunk(content)
        except Exception as exc:  # headers are sent: report in-band, as OpenAI does
            message = exc.message if isinstance(exc, AssistantError) else (
                f"the answer failed ({type(exc).__name__}); the server log has the details")
            status = exc.status if isinstance(exc, AssistantError) else 500
            yield b"data: " + json.dumps(openai_error(status, message)).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _usage_chunk(self, content: str) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.body.model, "choices": [],
                "usage": self.usage(content).model_dump()}
        return b"data: " + json.dumps(data).encode() + b"\n\n"


def _chain(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]
           ) -> Iterator[tuple[str, Any]]:
    yield first
    yield from rest
