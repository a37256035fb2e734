"""What the chat's buttons do: each handler is one call on the AssistantService, its outcome
rendered for the page (assistant.ui.render)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

import gradio as gr
from pydantic import ValidationError

from assistant.access import ScopedService
from assistant.audit import AuditLog, AuditRecord
from assistant.auth import Authenticator, Unauthorized
from assistant.errors import AssistantError
from assistant.file_links import FileLinks
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
    """The chat's event handlers, bound to one service (Gradio calls the bound methods).

    Every action resolves the signed-in key again (`Authenticator.ui_principal`, from the
    login name) and works through the service scoped to it: the picker lists only readable
    collections, an answer or upload outside the key's scopes is refused with the API's
    words, a revoked key stops working on its next action, and each action writes an audit
    line like an API request.
    """

    def __init__(self, service: AssistantService, auth: Authenticator,
                 audit: AuditLog | None = None) -> None:
        self.service = service
        self.settings = service.settings
        self.auth = auth
        self.audit = audit
        self.needs_key = auth.keyed  # shows the upload form's key field
        self.file_links = FileLinks(self.settings.data_dir, self.settings.file_link_ttl_s)

    def _links(self, scoped: ScopedService, request: AnswerRequest,
               response: dict[str, Any]) -> dict[str, str]:
        """"Open original" links for the cited documents, signed for the signed-in key (the
        browser sends no key when it follows one; file_links.py)."""
        collection = request.collection or self.settings.collection
        links = {}
        for doc_id in {c["doc_id"] for c in response["citations"]}:
            token = self.file_links.sign(scoped.principal.name, collection, doc_id)
            links[doc_id] = (f"/v1/documents/{quote(doc_id)}/file?"
                             f"{urlencode({'collection': collection, 'token': token})}")
        return links

    def _scoped(self, request: gr.Request | None) -> ScopedService:
        principal = self.auth.ui_principal(getattr(request, "username", None))
        return ScopedService(self.service, principal)

    def _audit(self, action: str, scoped: ScopedService | None, status: int,
               request: gr.Request | None) -> None:
        if self.audit is None:
            return
        client = getattr(getattr(request, "client", None), "host", None)
        self.audit.write(scoped.record if scoped else AuditRecord(), route=f"/ui/{action}",
                         status=status, request_id=uuid.uuid4().hex[:16], method="UI",
                         client=client)

    def collections(self, scoped: ScopedService) -> list[str]:
        """The readable collections, the default among them when the key may read it."""
        try:
            names = scoped.collections()
        except Exception:  # the banner reports an unreachable store
            names = []
        default = {self.settings.collection} if scoped.may_read(None) else set()
        return sorted(set(names) | default)

    @staticmethod
    def clients(scoped: ScopedService, collection: str | None) -> list[str]:
        try:
            return scoped.metadata_values("client", collection)
        except Exception:
            return []

    def on_load(self, request: gr.Request) -> tuple[Any, Any, str]:
        """Fill the pickers and say up front if the server is not ready."""
        try:
            scoped = self._scoped(request)
        except AssistantError as exc:
            return gr.update(choices=[], value=None), gr.update(choices=[], value=[]), \
                status_html(exc.message, "error")
        choices = self.collections(scoped)
        default = self.settings.collection if self.settings.collection in choices else (
            choices[0] if choices else None)
        checks = self.service.readiness(default)
        if default is None:
            message = status_html("This key may not read any collection yet.", "error")
        elif not checks.get("chroma"):
            message = status_html("The vector store cannot be reached: "
                                  f"{checks.get('chroma_error', '')}", "error")
        elif not checks.get("collection"):
            message = status_html(
                f"The collection '{default}' is empty: upload documents under "
                "'Add documents', or run `cx-assistant ingest PATH` on the server.", "error")
        else:
            message = ""
        return (gr.update(choices=choices, value=default),
                gr.update(choices=self.clients(scoped, default), value=[]), message)

    def on_collection(self, collection: str, request: gr.Request) -> tuple[Any, str]:
        try:
            scoped = self._scoped(request)
        except AssistantError as exc:
            return gr.update(choices=[], value=[]), status_html(exc.message, "error")
        return gr.update(choices=self.clients(scoped, collection), value=[]), ""

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
            collection: str, doc_types: list[str], client_names: list[str],
            request: gr.Request) -> Iterator[Any]:
        """Stream an answer into the chat, then fill the sources panel."""
        chat, turns = list(chat or []), list(turns or [])
        question = (question or "").strip()
        collection = collection or self.settings.collection
        answer_request = self._request(question, collection, doc_types, client_names, turns)
        if isinstance(answer_request, str):
            tone = "info" if not question else "error"
            yield chat, turns, gr.skip(), status_html(answer_request, tone), question
            return
        t = len(turns)
        chat += [{"role": "user", "content": md_text(question)},
                 {"role": "assistant", "content": "…"}]
        yield chat, turns, gr.skip(), "", ""
        scoped = None
        try:
            scoped = self._scoped(request)
            yield from self._answer(scoped, answer_request, chat, turns, t)
            self._audit("ask", scoped, 200, request)
        except Exception as exc:
            self._audit("ask", scoped, getattr(exc, "status", 500), request)
            chat = chat[:-2]
            yield chat, turns, gr.skip(), status_html(friendly_error(exc), "error"), question

    def _answer(self, scoped: ScopedService, request: AnswerRequest, chat: list[dict[str, Any]],
                turns: Turns, t: int) -> Iterator[Any]:
        text = ""
        evidence = scoped.evidence(request)  # also what the source cards show
        for kind, payload in scoped.answer_stream(request, evidence=evidence):
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
                turns.append({"question": request.question, "response": response,
                              "collection": request.collection, "chunks": chunks,
                              "links": self._links(scoped, request, response)})
                chat[-1] = {"role": "assistant",
                            "content": answer_markdown(response["answer"], t, response)}
                yield chat, turns, sources_html(turns), "", ""

    def on_like(self, turns: Turns, comment: str, data: gr.LikeData,
                request: gr.Request) -> tuple[str, Any]:
        """Thumbs on a chat bubble → one feedback row (with the comment box's text)."""
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        turn_no = int(index) // 2  # the chat alternates user, assistant
        if data.liked is None or data.liked == "" or not 0 <= turn_no < len(turns or []):
            return "", gr.skip()
        liked = data.liked if isinstance(data.liked, bool) else str(data.liked) == "Like"
        turn = turns[turn_no]
        try:
            row = self._scoped(request).add_feedback(FeedbackRequest(
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

    def upload(self, files: list[str] | None, collection: str, api_key: str,
               request: gr.Request) -> tuple[str, Any, Any]:
        """Ingest the chosen files with the key typed in the form (its write scopes apply)."""
        collection = collection or self.settings.collection
        if not files:
            return status_html("Choose one or more files to upload first.", "info"), \
                gr.skip(), gr.skip()
        scoped = None
        try:
            address = getattr(getattr(request, "client", None), "host", None)
            principal = self.auth.authenticate(api_key or "", write=True, address=address)
            scoped = ScopedService(self.service, principal)
            uploads = [Upload(Path(f).name, Path(f).read_bytes()) for f in files]
            summary = scoped.upload(uploads, collection)
        except Unauthorized:
            self._audit("upload", scoped, 401, request)
            return status_html("Uploading needs an API key with write access: enter it "
                               "above.", "error"), gr.skip(), gr.skip()
        except Exception as exc:
            self._audit("upload", scoped, getattr(exc, "status", 500), request)
            return status_html(friendly_error(exc), "error"), gr.skip(), gr.skip()
        self._audit("upload", scoped, 200, request)
        skipped = "".join(f"; skipped {s.path}: {s.reason}" for s in summary.skipped)
        skipped += "".join(f"; {s.path}: {s.reason}" for s in summary.warnings)
        message = (f"Ingested into '{collection}': {', '.join(summary.doc_ids)} "
                   f"({summary.added} added, {summary.updated} updated, {summary.unchanged} "
                   f"unchanged){skipped}.")
        try:  # the picker is the session's: what the signed-in key (not the form's) reads
            choices = self.collections(self._scoped(request))
            picker = gr.update(choices=choices, value=collection) if collection in choices \
                else gr.update(choices=choices)
        except AssistantError:
            picker = gr.skip()
        return status_html(message, "ok"), picker, None

    @staticmethod
    def pick_example(data: gr.SelectData) -> str:
        return str(data.value.get("text", "")) if isinstance(data.value, dict) else ""

    @staticmethod
    def clear() -> tuple[list[Any], list[Any], str, str]:
        return [], [], SOURCES_EMPTY, ""
