"""Request and response bodies of the OpenAI-compatible endpoint (`/v1/chat/completions`,
`/v1/models`), shaped as the OpenAI Chat Completions protocol defines them.

Only what a chat client sends and reads is modelled. Unknown request fields are accepted and
ignored (clients send many: `user`, `seed`, `stream_options`, `metadata`, ...), so a new client
version does not break; the fields we cannot honour are refused by `unsupported`, with the
parameter named, rather than silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.schemas import AnswerResponse


class ContentPart(BaseModel):
    """One part of a multi-part message; only text parts are read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """A Chat Completions request. The last user message is the question, earlier user and
    assistant turns its history; system and developer messages are ignored (the answerer's
    instructions are fixed: answer only from the sources, cite every claim)."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,  # the fuzzer found `"top_logprobs": false` read as 0: JSON types only
        json_schema_extra={"examples": [{
            "model": "cx-knowledge",
            "messages": [{"role": "user", "content": "How do we define Cx Quality Faults?"}],
        }]},
    )

    model: str = Field(description="A collection (`cx-knowledge`), or a collection and a "
                       "document type (`cx-knowledge:finding`); `GET /v1/models` lists them.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(
        default=None, ge=0, le=2,
        description="Passed to the model in LLM mode; ignored by the extractive answerer.")
    max_tokens: int | None = Field(
        default=None, ge=1,
        description="Passed to the model in LLM mode (at most CX_LLM_MAX_TOKENS); ignored "
        "by the extractive answerer.")
    max_completion_tokens: int | None = Field(default=None, ge=1,
                                              description="Same as `max_tokens`.")
    n: int | None = Field(default=None, description="Only 1 is supported.")
    tools: list[Any] | None = Field(default=None, description="Not supported.")
    functions: list[Any] | None = Field(default=None, description="Not supported.")
    logprobs: bool | None = Field(default=None, description="Not supported.")
    top_logprobs: int | None = Field(default=None, description="Not supported.")
    response_format: dict[str, Any] | None = Field(
        default=None, description="Only `{\"type\": \"text\"}` is supported.")
    stream_options: dict[str, Any] | None = Field(
        default=None, description="`include_usage` adds a final usage chunk when streaming.")

    def unsupported(self) -> tuple[str, str] | None:
        """The first parameter we cannot honour, as (param, message), or None."""
        if self.tools:
            return "tools", "tools are not supported: this model answers from its knowledge " \
                "base only; send the question as a user message"
        if self.functions:
            return "functions", "functions are not supported: send the question as a user " \
                "message"
        if self.n not in (None, 1):
            return "n", f"n={self.n} is not supported: one answer per request (n=1)"
        if self.logprobs or self.top_logprobs:
            param = "logprobs" if self.logprobs else "top_logprobs"
            return param, f"{param} is not supported: answers are quoted, not sampled"
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            return "response_format", "response_format must be {\"type\": \"text\"}: answers " \
                "are text with [n] citation markers"
        for i, message in enumerate(self.messages):
            for part in message.content if isinstance(message.content, list) else ():
                if part.type != "text":
                    return f"messages[{i}].content", f"content of type '{part.type}' is not " \
                        "supported (images, audio and files are not read): send text only"
        return None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


def text_of(message: ChatMessage) -> str:
    """A message's text: the string, or its text parts joined."""
    if isinstance(message.content, list):
        return "\n".join(p.text or "" for p in message.content if p.type == "text")
    return message.content or ""


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cx-assistant"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    """Counted with the embedding model's tokenizer: an estimate, not a model's bill."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    cx: AnswerResponse = Field(
        description="The same body as `POST /v1/answer`: `citations` (doc_id, title, "
        "section, verbatim quote, score, supported), `abstained`, `mode`, `warning`. The "
        "openai SDK keeps unknown fields: `completion.model_extra[\"cx\"]`.")


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """The OpenAI error shape, which OpenAI clients parse for their exceptions' messages."""

    error: OpenAIErrorBody
