"""LLM answer mode: the model writes the answer from the evidence, and every [n] it cites is
verified against the passage it was shown before the answer is returned.

The extractive answer is computed first: its evidence gate decides abstention (the model is
not asked when nothing in the collection is close enough), and it is what the user gets,
with a `warning` saying why, whenever the model fails, times out or cites nothing its
sources support.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from assistant.answering import (
    CitationError,
    ExtractiveAnswerer,
    abstention,
    check_citations,
)
from assistant.evidence import Evidence, condense_question
from assistant.llm import LLMClient, LLMError, Sampling, UnusableReply
from assistant.prompts import AnswerPrompt, PromptBudgetError, build_answer_prompt
from assistant.schemas import AnswerRequest, AnswerResponse
from assistant.settings import Settings
from assistant.verification import verify_answer

# An answer as a stream: ("delta", text) pieces, then one ("done", the complete response).
AnswerEvent = tuple[Literal["delta"], str] | tuple[Literal["done"], AnswerResponse]


def condense(llm: LLMClient, request: AnswerRequest) -> tuple[str, str | None]:
    """The retrieval query for a follow-up, rewritten by the model, and why not if it failed.

    An unusable reply falls back to the rule (`condense_question`); a server that is down
    does too, and its error is returned so the answer does not wait for it a second time.
    """
    history = request.history or []
    if not any(t.role == "user" and t.content.strip() for t in history):
        return request.question, None
    try:
        return llm.condense(request.question, history), None
    except UnusableReply:
        return condense_question(request.question, history), None
    except LLMError as exc:
        return condense_question(request.question, history), str(exc)


def llm_events(llm: LLMClient, answerer: ExtractiveAnswerer, evidence: Evidence,
               settings: Settings, stream: bool, sampling: Sampling | None = None
               ) -> Iterator[AnswerEvent]:
    """Generate from the evidence and verify, as ("delta", str)... then ("done", response).

    With `stream` the deltas are the model's raw tokens as they arrive; the final answer
    (markers renumbered, bad ones removed) or the extractive fallback replaces them.
    """
    extractive = answerer.respond(evidence)
    failure = evidence.condense_error
    if extractive.abstained and failure is None:
        yield "delta", extractive.answer
        yield "done", extractive.model_copy(update={"mode": "llm"})
        return
    if failure is not None:
        yield from _fallback(extractive, failure)
        return
    try:
        prompt = build_answer_prompt(evidence.query, evidence.reading,
                                     settings.llm_context_tokens, settings.llm_max_tokens)
    except PromptBudgetError as exc:
        yield from _fallback(extractive, str(exc))
        return
    text, streamed = "", False
    try:
        if stream:
            for delta in llm.stream(prompt.messages, sampling):
                text, streamed = text + delta, True
                yield "delta", delta
        else:
            text = llm.generate(prompt.messages, sampling=sampling)
    except LLMError as exc:
        yield from _fallback(extractive, str(exc), streamed)
        return
    response = _verified(text, prompt, evidence, extractive, answerer, settings)
    if not streamed:
        yield "delta", response.answer
    yield "done", response


def _instead(extractive: AnswerResponse, why: str) -> AnswerResponse:
    """The extractive answer, with a warning saying why the model's is not shown."""
    return extractive.model_copy(update={
        "mode": "extractive",
        "warning": f"LLM answer unavailable, showing the extractive answer: {why}"})


def _fallback(extractive: AnswerResponse, why: str, streamed: bool = False
              ) -> Iterator[AnswerEvent]:
    response = _instead(extractive, why)
    if not streamed:
        yield "delta", response.answer
    yield "done", response


def _verified(text: str, prompt: AnswerPrompt, evidence: Evidence, extractive: AnswerResponse,
              answerer: ExtractiveAnswerer, settings: Settings) -> AnswerResponse:
    """The model's answer with its citations verified, or the abstention or fallback its
    reply calls for."""
    verified = verify_answer(text, prompt.sources, answerer.cache, settings.llm_support_threshold)
    if verified.says_no_answer:
        response = abstention()
        response.mode = "llm"
    elif verified.report.kept == 0:
        response = _instead(extractive, "the model's answer cited no source that supports it")
    else:
        response = AnswerResponse(answer=verified.answer, abstained=False, mode="llm",
                                  citations=verified.citations)
        try:  # the verifier's output must pass the same check as extractive answers
            check_citations(response, {c.id: c.text for c in evidence.reading})
        except CitationError as exc:
            response = _instead(extractive, f"its citations failed the final check ({exc})")
    response.query = extractive.query
    response.verification = verified.report
    return response
