"""The LLM client for answer mode: construction from Settings, generation, streaming, and
condensing follow-up questions.

Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, OpenAI, Azure OpenAI's /v1 API, or
Ollama's /v1) goes through llama-index's `OpenAILike`; `CX_LLM_PROVIDER=ollama` uses
llama-index's native `Ollama` class instead. Retries are off and every call has a deadline:
a missing model must turn into a prompt fallback, never into a minute of retries. Every
failure surfaces as `LLMError`, whose message is safe to show (it never holds the API key).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from assistant.errors import SettingsError
from assistant.prompts import CONDENSE_VERSION, build_condense_messages
from assistant.schemas import HistoryTurn
from assistant.settings import Settings

TEMPERATURE = 0.0  # reproducible answers; the sources, not sampling, should vary them
CONDENSE_MAX_TOKENS = 96


@dataclass(frozen=True)
class Sampling:
    """Sampling one request asks for (the OpenAI-compatible endpoint passes on a client's
    `temperature` and `max_tokens`); None keeps the server's setting. `max_tokens` never
    exceeds CX_LLM_MAX_TOKENS, which the prompt budget reserves for the answer."""

    temperature: float | None = None
    max_tokens: int | None = None


class LLMError(RuntimeError):
    """The model gave no usable reply; the message says why, in words fit for a warning."""


class UnusableReply(LLMError):
    """The model answered, but not in a form we can use (the server itself is fine)."""


def llm_configured(settings: Settings) -> bool:
    """Whether the settings name a model to use (CX_LLM_BASE_URL and CX_LLM_MODEL)."""
    return bool(settings.llm_base_url and settings.llm_model)


def build_llm(settings: Settings) -> Any:
    """The llama-index LLM object the settings describe (no network traffic here)."""
    model, base_url = settings.llm_model, settings.llm_base_url
    if not (model and base_url):
        raise SettingsError("LLM answer mode needs CX_LLM_BASE_URL and CX_LLM_MODEL")
    if settings.llm_provider == "ollama":
        from llama_index.llms.ollama import Ollama

        headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key \
            else None
        return Ollama(
            model=model, base_url=base_url,
            request_timeout=settings.llm_timeout_s, temperature=TEMPERATURE,
            context_window=settings.llm_context_tokens, headers=headers,
            additional_kwargs={"num_predict": settings.llm_max_tokens},
        )
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=model, api_base=base_url,
        # Servers without auth ignore the key, but the OpenAI client insists on one.
        api_key=settings.llm_api_key or "not-needed",
        is_chat_model=True, is_function_calling_model=False,
        context_window=settings.llm_context_tokens, max_tokens=settings.llm_max_tokens,
        temperature=TEMPERATURE, timeout=settings.llm_timeout_s, max_retries=0,
    )


class LLMClient:
    """Chat calls with one deadline each and errors turned into `LLMError`."""

    def __init__(self, settings: Settings, llm: Any = None) -> None:
        self.settings = settings
        self.llm = llm if llm is not None else build_llm(settings)
        self.where = f"{settings.llm_model} at {settings.llm_base_url}"

    @staticmethod
    def _messages(messages: list[tuple[str, str]]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role=role, content=content) for role, content in messages]

    def _error(self, exc: BaseException) -> LLMError:
        """Say what went wrong in a user's terms, without echoing secrets."""
        name = type(exc).__name__
        status = getattr(exc, "status_code", None)
        if "Timeout" in name or isinstance(exc, TimeoutError):
            why = f"the model ({self.where}) timed out after {self.settings.llm_timeout_s:g} s"
        elif "Connect" in name or isinstance(exc, ConnectionError):
            why = f"the model server at {self.settings.llm_base_url} is unreachable"
        elif status is not None:
            detail = " ".join(str(getattr(exc, "message", exc)).split())[:200]
            why = f"the model ({self.where}) answered HTTP {status}: {detail}"
        else:
            why = f"the model call failed ({name}: {' '.join(str(exc).split())[:200]})"
        key = self.settings.llm_api_key
        return LLMError(why.replace(key, "***") if key else why)

    def generate(self, messages: list[tuple[str, str]], max_tokens: int | None = None,
                 sampling: Sampling | None = None) -> str:
        """The model's whole reply to `messages`."""
        kwargs = self._kwargs(sampling, max_tokens)
        try:
            response = self.llm.chat(self._messages(messages), **kwargs)
        except Exception as exc:  # any client or server failure means "use the fallback"
            raise self._error(exc) from exc
        return str(response.message.content or "")

    def stream(self, messages: list[tuple[str, str]],
               sampling: Sampling | None = None) -> Iterator[str]:
        """The reply as text pieces as the server sends them, within CX_LLM_TIMEOUT_S overall.

        The HTTP client's timeout bounds each read; the deadline here also stops a server
        that keeps trickling tokens.
        """
        deadline = time.monotonic() + self.settings.llm_timeout_s
        try:
            for part in self.llm.stream_chat(self._messages(messages),
                                             **self._kwargs(sampling)):
                if time.monotonic() > deadline:
                    raise TimeoutError("deadline passed while streaming")
                if part.delta:
                    yield part.delta
        except Exception as exc:
            raise self._error(exc) from exc

    def _kwargs(self, sampling: Sampling | None, max_tokens: int | None = None
                ) -> dict[str, Any]:
        """Per-call overrides of the constructed model's temperature and token cap."""
        if self.settings.llm_provider == "ollama":
            return {}  # options are fixed at construction; the condense prompt is short
        kwargs: dict[str, Any] = {}
        if sampling is not None and sampling.temperature is not None:
            kwargs["temperature"] = sampling.temperature
        if sampling is not None and sampling.max_tokens is not None:
            max_tokens = min(sampling.max_tokens, max_tokens or self.settings.llm_max_tokens)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs

    def condense(self, question: str, history: list[HistoryTurn]) -> str:
        """A standalone form of a follow-up `question`, rewritten by the model.

        Raises LLMError when the reply is not usable as a question (empty, or far longer
        than a question), so the caller can fall back to the rule-based rewrite.
        """
        messages = build_condense_messages(question, history, self.settings.llm_context_tokens)
        reply = self.generate(messages, max_tokens=CONDENSE_MAX_TOKENS)
        lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
        line = lines[0] if lines else ""
        for prefix in ("standalone question:", "question:"):
            if line.lower().startswith(prefix):
                line = line[len(prefix):].strip()
        line = line.strip().strip('"').strip()
        if len(line) < 3 or len(line) > self.settings.max_question_chars:
            raise UnusableReply(f"the model's rewrite of the question ({CONDENSE_VERSION}) was "
                           "unusable")
        return line
