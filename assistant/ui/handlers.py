"""What the chat's buttons do: each handler is one call on the AssistantService, its outcome
rendered for the page (assistant.ui.render)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import gradio as gr
from pydantic import ValidationError

from assistant.auth import key_matches
from assistant.schemas import (
    MAX_TURN_CHARS,
    AnswerRequest,
    AnswerResponse,
    FeedbackRequest,
    HistoryTurn,
    SearchFilters,
    question_length_error,
)
from assistant.service import AssistantService
from assistant.ui.render import (
    SOURCES_EMPTY,
    answer_markdown,
    friendly_error,
    md_text,
    sources_html,
    status_html,
)
from assistant.uploads import Upload

HISTORY_TURNS = 6  # earlier question/answer pairs sent as `history` for follow-ups
Turns = list[dict[str, Any]]  # per answer: question, response (JSON), collection, chunks


def history_of(turns: Turns) -> list[HistoryTurn]:
    """The last HISTORY_TURNS question/answer pairs, cut to what a request accepts."""
    out: list[HistoryTurn] = []
    for turn in turns[-HISTORY_TURNS:]:
        out.append(HistoryTurn(role="user", content=turn["question"]))
        out.append(HistoryTurn(role="assistant",
                               content=turn["response"]["answer"][:MAX_TURN_CHARS]))
    return out


class ChatHandlers:
    """The chat's event handlers, bound to one service (Gradio calls the bound methods)."""

    def __init__(self, service: AssistantService) -> None:
        self.service = service
        self.settings = service.settings
        self.needs_key = bool(self.settings.api_key_list)

    def collections(self) -> list[str]:
        try:
            names = self.service.collections()
        except Exception:  # the banner reports an unreachable store
            names = []
        return sorted(set(names) | {self.settings.collection})

    def clients(self, collection: str) -> list[str]:
        try:
            return self.service.metadata_values("client", collection)
        except Exception:
            return []

    def on_load(self) -> tuple[Any, Any, str]:
        """Fill the pickers and say up front if the server is not ready."""
        default = self.settings.collection
        checks = self.service.readiness()
        if not checks.get("chroma"):
            message = status_html("The vector store cannot be reached: "
                                  f"{checks.get('chroma_error', '')}", "error")
        elif not checks.get("collection"):
            message = status_html(
                f"The collection '{default}' is empty: upload documents under "
                "'Add documents', or run `cx-assistant ingest PATH` on the server.", "error")
        else:
            message = ""
        return (gr.update(choices=self.collections(), value=default),
                gr.update(choices=self.clients(default), value=[]), message)

    def on_collection(self, collection: str) -> tuple[Any, str]:
        return gr.update(choices=self.clients(collection), value=[]), ""

    def _request(self, question: str, collection: str, doc_types: list[str],
                 client_names: list[str], turns: Turns) -> AnswerRequest | str:
        """The answer request, or the one line that says what to change first."""
        if not question:
            return "Type a question first."
        too_long = question_length_error(question, "question", self.settings.max_question_chars)
        if too_long is not None:  # the API's limit, same words
            return f"Please shorten the question: {too_long['msg']}."
        try:
            filters = SearchFilters(doc_type=doc_types or None, client=client_names or None)
            return AnswerRequest(question=question, collection=collection,
                                 filters=None if filters.is_empty() else filters,
                                 history=history_of(turns) or None)
        except ValidationError as exc:
            return friendly_error(exc)

    def ask(self, question: str, chat: list[dict[str, Any]], turns: Turns,
            collection: str, doc_types: list[str], client_names: list[str]) -> Iterator[Any]:
        """Stream an answer into the chat, then fill the sources panel."""
        chat, turns = list(chat or []), list(turns or [])
        question = (question or "").strip()
        collection = collection or self.settings.collection
        request = self._request(question, collection, doc_types, client_names, turns)
        if isinstance(request, str):
            tone = "info" if not question else "error"
            yield chat, turns, gr.skip(), status_html(request, tone), question
            return
        t = len(turns)
        chat += [{"role": "user", "content": md_text(question)},
                 {"role": "assistant", "content": "…"}]
        yield chat, turns, gr.skip(), "", ""
        text = ""
        try:
            evidence = self.service.evidence(request)  # also what the source cards show
            for kind, payload in self.service.answer_stream(request, evidence=evidence):
                if kind == "delta":
                    text += str(payload)
                    chat[-1] = {"role": "assistant", "content": answer_markdown(text, t)}
                    yield chat, turns, gr.skip(), "", ""
                elif kind == "done":
                    response = cast(AnswerResponse, payload).model_dump(mode="json")
                    read = evidence.by_id()  # the cited chunks, as the answer read them
                    chunks = {cid: (read[cid].text,
                                    {"doc_type": str(read[cid].metadata.get("doc_type", ""))})
                              for c in response["citations"] if (cid := c.get("chunk_id")) in read}
                    turns.append({"question": question, "response": response,
                                  "collection": collection, "chunks": chunks})
                    chat[-1] = {"role": "assistant",
                                "content": answer_markdown(response["answer"], t, response)}
                    yield chat, turns, sources_html(turns), "", ""
        except Exception as exc:
            chat = chat[:-2]
            yield chat, turns, gr.skip(), status_html(friendly_error(exc), "error"), question

    def on_like(self, turns: Turns, comment: str, data: gr.LikeData) -> tuple[str, Any]:
        """Thumbs on a chat bubble → one feedback row (with the comment box's text)."""
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        turn_no = int(index) // 2  # the chat alternates user, assistant
        if data.liked is None or data.liked == "" or not 0 <= turn_no < len(turns or []):
            return "", gr.skip()
        liked = data.liked if isinstance(data.liked, bool) else str(data.liked) == "Like"
        turn = turns[turn_no]
        try:
            row = self.service.feedback.add(FeedbackRequest(
                question=turn["question"], answer=turn["response"]["answer"],
                citations=[{k: c.get(k) for k in ("n", "doc_id", "quote")}
                           for c in turn["response"]["citations"]],
                rating="up" if liked else "down", comment=(comment or "").strip() or None,
                collection=turn["collection"],
            ))
        except Exception as exc:
            return status_html(friendly_error(exc), "error"), gr.skip()
        thumb = "thumbs-up" if liked else "thumbs-down"
        return (status_html(f"Thanks: your {thumb} on answer {turn_no + 1} was recorded "
                            f"(feedback #{row}).", "ok"), "")

    def upload(self, files: list[str] | None, collection: str,
               api_key: str) -> tuple[str, Any, Any]:
        collection = collection or self.settings.collection
        if not files:
            return status_html("Choose one or more files to upload first.", "info"), \
                gr.skip(), gr.skip()
        if self.needs_key and not key_matches(api_key or "", self.settings.api_key_list):
            return status_html("Uploading needs an API key: enter one of the server's "
                               "CX_API_KEYS.", "error"), gr.skip(), gr.skip()
        try:
            uploads = [Upload(Path(f).name, Path(f).read_bytes()) for f in files]
            summary = self.service.upload(uploads, collection)
        except Exception as exc:
            return status_html(friendly_error(exc), "error"), gr.skip(), gr.skip()
        skipped = "".join(f"; skipped {s.path}: {s.reason}" for s in summary.skipped)
        message = (f"Ingested into '{collection}': {', '.join(summary.doc_ids)} "
                   f"({summary.added} added, {summary.updated} updated, {summary.unchanged} "
                   f"unchanged){skipped}.")
        return (status_html(message, "ok"),
                gr.update(choices=self.collections(), value=collection), None)

    @staticmethod
    def pick_example(data: gr.SelectData) -> str:
        return str(data.value.get("text", "")) if isinstance(data.value, dict) else ""

    @staticmethod
    def clear() -> tuple[list[Any], list[Any], str, str]:
        return [], [], SOURCES_EMPTY, ""
