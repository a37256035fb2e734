"""The consultants' chat (Gradio), mounted at /ui: cited answers beside a sources panel, filters,
a collection picker, uploads and feedback — every action a call on the one AssistantService.

All text shown comes from untrusted places (documents, file names, questions), so it is
escaped here before Gradio sees it: html.escape everywhere, plus Markdown punctuation in
chat bubbles, whose Markdown would otherwise turn document text into links or markup.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from pydantic import ValidationError

from assistant.auth import key_matches
from assistant.embeddings import EmbeddingModelError
from assistant.ingest import IngestError
from assistant.readers import DOC_TYPES, SUPPORTED_SUFFIXES
from assistant.schemas import AnswerRequest, FeedbackRequest, HistoryTurn, SearchFilters
from assistant.service import AssistantService, DocumentNotFound
from assistant.store import CollectionNotFound, StoreUnavailable
from assistant.uploads import Upload, UploadError

log = logging.getLogger("assistant.ui")

EXAMPLES = [
    "How do we define a Cx Quality Fault?",
    "What did we find at Brightwave Mobile?",
    "What belongs on a Cx Quality Scorecard?",
    "Who are promise makers and promise keepers?",
]
HISTORY_TURNS = 6  # earlier question/answer pairs sent as `history` for follow-ups
_MARKER = re.compile(r"\[(\d+)\]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:$])")
_SOURCES_EMPTY = ('<div class="cx-empty">Sources appear here. Click a <b>[n]</b> marker in an '
                  "answer to open the passage it quotes.</div>")

# Opens the cited source when an [n] marker is clicked (the chat's Markdown cannot carry
# handlers, so one delegated listener on the page does it).
HEAD = """
<script>
document.addEventListener('click', function (event) {
  var link = event.target.closest ? event.target.closest('a[href^="#cx-src-"]') : null;
  if (!link) { return; }
  event.preventDefault();
  event.stopPropagation();
  var target = document.getElementById(link.getAttribute('href').slice(1));
  if (!target) { return; }
  target.open = true;
  target.scrollIntoView({block: 'center'});
  target.classList.remove('cx-flash');
  void target.offsetWidth;
  target.classList.add('cx-flash');
}, true);
</script>
"""
CSS = """
#cx-sources { max-height: 640px; overflow-y: auto; }
.cx-turn { margin-bottom: 1em; }
.cx-q { font-weight: 600; margin: 0.3em 0; }
.cx-source { border: 1px solid var(--border-color-primary); border-radius: 6px;
             padding: 0.4em 0.6em; margin: 0.3em 0; }
.cx-source summary { cursor: pointer; }
.cx-type { font-size: 0.8em; padding: 0 0.4em; border-radius: 4px;
           background: var(--background-fill-secondary); margin-left: 0.4em; }
.cx-meta { font-size: 0.85em; opacity: 0.8; margin: 0.3em 0; }
.cx-chunk { white-space: pre-wrap; font-size: 0.9em; line-height: 1.4; }
.cx-chunk mark { background: #ffe58a; color: #000; padding: 0 1px; }
.cx-unverified { background: #fde2e1; color: #7a1212; }
.cx-flash { outline: 3px solid #f5a623; }
.cx-status { padding: 0.5em 0.8em; border-radius: 6px; margin: 0.2em 0; }
.cx-status.cx-error { background: #fde2e1; color: #7a1212; }
.cx-status.cx-info { background: #e6f2ff; color: #0b3d6e; }
.cx-status.cx-ok { background: #e3f6e5; color: #14532d; }
.cx-abstained { font-style: italic; }
"""


def esc(text: object) -> str:
    """HTML-escape anything untrusted that goes into gr.HTML."""
    return html.escape(str(text), quote=True)


def md_text(text: str) -> str:
    """Untrusted text made inert for Gradio's Markdown: HTML-escaped, punctuation backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def status_html(message: str, kind: str = "info") -> str:
    if not message:
        return ""
    return f'<div class="cx-status cx-{kind}" role="status">{esc(message)}</div>'


def answer_markdown(text: str, turn: int, response: dict[str, Any] | None = None) -> str:
    """An answer for the chat bubble: escaped text, [n] markers linked to the sources panel."""
    numbers = {int(c["n"]) for c in (response or {}).get("citations", [])}
    parts, pos = [], 0
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        parts.append(md_text(text[pos : m.start()]))
        linked = response is None or n in numbers  # while streaming, citations come last
        parts.append(f"[\\[{n}\\]](#cx-src-{turn}-{n})" if linked else md_text(m.group(0)))
        pos = m.end()
    parts.append(md_text(text[pos:]))
    body = "".join(parts)
    if response is None:
        return body
    if response.get("abstained"):
        body = f"**Not in the knowledge base.** {body}"
    elif response.get("citations"):
        refs = " · ".join(
            f"[\\[{c['n']}\\]](#cx-src-{turn}-{c['n']}) {md_text(c['title'] or c['doc_id'])}"
            for c in response["citations"])
        body += f"\n\n**Sources:** {refs}"
    if response.get("warning"):
        body += f"\n\n_{md_text(str(response['warning']))}_"
    return body


def _highlight(chunk: str, quote: str) -> str:
    """The chunk with the quoted passage marked (the quote is verbatim, so find() locates it)."""
    at = chunk.find(quote) if quote else -1
    if at < 0:
        return f"<mark>{esc(quote)}</mark>"
    return (f"{esc(chunk[:at])}<mark>{esc(quote)}</mark>{esc(chunk[at + len(quote):])}")


def sources_html(turns: list[dict[str, Any]]) -> str:
    """Every answer's citations, newest first, each a collapsible card with its chunk."""
    if not turns:
        return _SOURCES_EMPTY
    blocks = []
    for t in range(len(turns) - 1, -1, -1):
        turn = turns[t]
        response = turn["response"]
        cards = [f'<p class="cx-q">Q{t + 1}: {esc(turn["question"])}</p>']
        if response.get("abstained"):
            cards.append('<p class="cx-abstained">No sources: the knowledge base does not '
                         "cover this question.</p>")
        for c in response.get("citations", []):
            chunk, meta = turn["chunks"].get(c.get("chunk_id", ""), ("", {}))
            section = f"§ {esc(c['section'])} · " if c.get("section") else ""
            doc_type = meta.get("doc_type") or ""
            # LLM mode flags citations its verifier could not match to the cited passage.
            unverified = ('<span class="cx-type cx-unverified">unverified</span>'
                          if c.get("supported") is False else "")
            cards.append(
                f'<details class="cx-source" id="cx-src-{t}-{int(c["n"])}">'
                f'<summary><b>[{int(c["n"])}]</b> {esc(c["title"] or c["doc_id"])}'
                f'<span class="cx-type">{esc(doc_type)}</span>{unverified}</summary>'
                f'<div class="cx-meta">{section}<code class="cx-path">{esc(c["doc_id"])}'
                f"</code></div>"
                f'<div class="cx-chunk">{_highlight(chunk, c["quote"])}</div></details>'
            )
        blocks.append(f'<div class="cx-turn">{"".join(cards)}</div>')
    return "".join(blocks)


def friendly_error(exc: Exception, collection: str) -> str:
    """One line a consultant can act on, for every failure we expect."""
    if isinstance(exc, CollectionNotFound):
        return (f"The collection '{collection}' has no documents yet: upload files below, or "
                "run `cx-assistant ingest PATH` on the server.")
    if isinstance(exc, StoreUnavailable):
        return f"The vector store cannot be reached, so nothing can be searched right now: {exc}"
    if isinstance(exc, EmbeddingModelError | IngestError | UploadError | DocumentNotFound):
        return str(exc).strip("'\"")
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"Please change the {where}: {err['msg']}."
    log.exception("ui action failed")
    return f"Something went wrong ({type(exc).__name__}); the server log has the details."


def build_ui(service: AssistantService) -> gr.Blocks:
    """The chat app; each handler calls `service` (answer_stream, upload, feedback, ...)."""
    settings = service.settings
    needs_key = bool(settings.api_key_list)

    def collections() -> list[str]:
        try:
            names = service.collections()
        except Exception:  # the banner reports an unreachable store
            names = []
        return sorted(set(names) | {settings.collection})

    def clients(collection: str) -> list[str]:
        try:
            return service.metadata_values("client", collection)
        except Exception:
            return []

    def on_load() -> tuple[Any, Any, str]:
        """Fill the pickers and say up front if the server is not ready."""
        names = collections()
        checks = service.readiness()
        if not checks.get("chroma"):
            message = status_html("The vector store cannot be reached: "
                                  f"{checks.get('chroma_error', '')}", "error")
        elif not checks.get("collection"):
            message = status_html(
                f"The collection '{settings.collection}' is empty: upload documents under "
                "'Add documents', or run `cx-assistant ingest PATH` on the server.", "error")
        else:
            message = ""
        return (gr.update(choices=names, value=settings.collection),
                gr.update(choices=clients(settings.collection), value=[]), message)

    def on_collection(collection: str) -> tuple[Any, str]:
        return gr.update(choices=clients(collection), value=[]), ""

    def history_of(turns: list[dict[str, Any]]) -> list[HistoryTurn]:
        out: list[HistoryTurn] = []
        for turn in turns[-HISTORY_TURNS:]:
            out.append(HistoryTurn(role="user", content=turn["question"]))
            out.append(HistoryTurn(role="assistant", content=turn["response"]["answer"][:20_000]))
        return out

    def ask(question: str, chat: list[dict[str, Any]], turns: list[dict[str, Any]],
            collection: str, doc_types: list[str], client_names: list[str]) -> Any:
        """Stream an answer into the chat, then fill the sources panel."""
        chat, turns = list(chat or []), list(turns or [])
        question = (question or "").strip()
        if not question:
            yield chat, turns, gr.skip(), status_html("Type a question first.", "info"), ""
            return
        if len(question) > settings.max_question_chars:  # the API's limit, same words
            yield chat, turns, gr.skip(), status_html(
                f"Please shorten the question: at most {settings.max_question_chars} "
                "characters (CX_MAX_QUESTION_CHARS).", "error"), question
            return
        collection = collection or settings.collection
        try:
            filters = SearchFilters(doc_type=doc_types or None, client=client_names or None)
            request = AnswerRequest(question=question, collection=collection,
                                    filters=None if filters.is_empty() else filters,
                                    history=history_of(turns) or None)
        except ValidationError as exc:
            yield chat, turns, gr.skip(), status_html(friendly_error(exc, collection),
                                                      "error"), question
            return
        t = len(turns)
        chat += [{"role": "user", "content": md_text(question)},
                 {"role": "assistant", "content": "…"}]
        yield chat, turns, gr.skip(), "", ""
        text = ""
        try:
            for kind, payload in service.answer_stream(request):
                if kind == "delta":
                    text += payload
                    chat[-1] = {"role": "assistant", "content": answer_markdown(text, t)}
                    yield chat, turns, gr.skip(), "", ""
                elif kind == "done":
                    response = payload.model_dump(mode="json")
                    ids = [c["chunk_id"] for c in response["citations"] if c.get("chunk_id")]
                    chunks = service.stored_chunks(ids, collection)
                    turns.append({"question": question, "response": response,
                                  "collection": collection,
                                  "chunks": {k: (v[0], {"doc_type": v[1].get("doc_type", "")})
                                             for k, v in chunks.items()}})
                    chat[-1] = {"role": "assistant",
                                "content": answer_markdown(response["answer"], t, response)}
                    yield chat, turns, sources_html(turns), "", ""
        except Exception as exc:
            chat = chat[:-2]
            yield chat, turns, gr.skip(), status_html(friendly_error(exc, collection),
                                                      "error"), question

    def on_like(turns: list[dict[str, Any]], comment: str, data: gr.LikeData) -> tuple[str, Any]:
        """Thumbs on a chat bubble → one feedback row (with the comment box's text)."""
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        turn_no = int(index) // 2  # the chat alternates user, assistant
        if data.liked is None or data.liked == "" or not 0 <= turn_no < len(turns or []):
            return "", gr.skip()
        liked = data.liked if isinstance(data.liked, bool) else str(data.liked) == "Like"
        turn = turns[turn_no]
        try:
            row = service.feedback.add(FeedbackRequest(
                question=turn["question"], answer=turn["response"]["answer"],
                citations=[{k: c.get(k) for k in ("n", "doc_id", "quote")}
                           for c in turn["response"]["citations"]],
                rating="up" if liked else "down", comment=(comment or "").strip() or None,
                collection=turn["collection"],
            ))
        except Exception as exc:
            return status_html(friendly_error(exc, turn["collection"]), "error"), gr.skip()
        thumb = "thumbs-up" if liked else "thumbs-down"
        return (status_html(f"Thanks: your {thumb} on answer {turn_no + 1} was recorded "
                            f"(feedback #{row}).", "ok"), "")

    def upload(files: list[str] | None, collection: str, api_key: str) -> tuple[str, Any, Any]:
        collection = collection or settings.collection
        if not files:
            return status_html("Choose one or more files to upload first.", "info"), \
                gr.skip(), gr.skip()
        if needs_key and not key_matches(api_key or "", settings.api_key_list):
            return status_html("Uploading needs an API key: enter one of the server's "
                               "CX_API_KEYS.", "error"), gr.skip(), gr.skip()
        try:
            uploads = [Upload(Path(f).name, Path(f).read_bytes()) for f in files]
            summary = service.upload(uploads, collection)
        except Exception as exc:
            return status_html(friendly_error(exc, collection), "error"), gr.skip(), gr.skip()
        skipped = "".join(f"; skipped {s.path}: {s.reason}" for s in summary.skipped)
        message = (f"Ingested into '{collection}': {', '.join(summary.doc_ids)} "
                   f"({summary.added} added, {summary.updated} updated, {summary.unchanged} "
                   f"unchanged){skipped}.")
        return (status_html(message, "ok"),
                gr.update(choices=collections(), value=collection), None)

    def pick_example(data: gr.SelectData) -> str:
        return str(data.value.get("text", "")) if isinstance(data.value, dict) else ""

    def clear() -> tuple[list[Any], list[Any], str, str]:
        return [], [], _SOURCES_EMPTY, ""

    with gr.Blocks(title="Cx Knowledge Assistant") as demo:
        gr.Markdown("## Cx Knowledge Assistant\nAnswers from the firm's articles, playbooks and "
                    "findings. Every sentence cites its source: click **[n]** to read it.")
        status = gr.HTML("", elem_id="cx-status")
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    elem_id="cx-chat", height=520, label="Conversation", latex_delimiters=[],
                    sanitize_html=True, render_markdown=True, allow_tags=False,
                    placeholder="**Ask a question about the knowledge base.** Follow-up "
                    "questions use the conversation so far.",
                    examples=[{"text": q} for q in EXAMPLES],
                    feedback_options=("Like", "Dislike"), buttons=["copy", "copy_all"],
                )
                with gr.Row():
                    question = gr.Textbox(elem_id="cx-question", show_label=False, scale=5,
                                          placeholder="Ask, e.g. How do we define a Cx "
                                          "Quality Fault?", max_lines=4)
                    ask_btn = gr.Button("Ask", variant="primary", elem_id="cx-ask", scale=1)
                with gr.Row():
                    comment = gr.Textbox(elem_id="cx-comment", show_label=False, scale=5,
                                         placeholder="Optional comment, then rate an answer "
                                         "with the thumbs under it")
                    clear_btn = gr.Button("New conversation", elem_id="cx-clear", scale=1)
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(_SOURCES_EMPTY, elem_id="cx-sources")
        with (gr.Accordion("Filters and collection", open=False, elem_id="cx-filters"),
              gr.Row()):
            collection = gr.Dropdown(label="Collection", choices=[settings.collection],
                                     value=settings.collection, elem_id="cx-collection")
            doc_type = gr.CheckboxGroup(label="Document type", choices=list(DOC_TYPES),
                                        elem_id="cx-doctype")
            client = gr.Dropdown(label="Client", choices=[], multiselect=True,
                                 elem_id="cx-client")
        with gr.Accordion("Add documents", open=False, elem_id="cx-upload"):
            files = gr.File(label=f"Files ({', '.join(SUPPORTED_SUFFIXES)})",
                            file_count="multiple", file_types=list(SUPPORTED_SUFFIXES),
                            type="filepath", elem_id="cx-files")
            api_key = gr.Textbox(label="API key", type="password", visible=needs_key,
                                 elem_id="cx-api-key")
            upload_btn = gr.Button("Upload and ingest", elem_id="cx-upload-btn")

        ask_io = dict(fn=ask, inputs=[question, chatbot, turns, collection, doc_type, client],
                      outputs=[chatbot, turns, sources, status, question])
        ask_btn.click(**ask_io)
        question.submit(**ask_io)
        chatbot.example_select(pick_example, None, question).then(**ask_io)
        chatbot.like(on_like, [turns, comment], [status, comment])
        clear_btn.click(clear, None, [chatbot, turns, sources, status])
        chatbot.clear(clear, None, [chatbot, turns, sources, status])
        collection.change(on_collection, collection, [client, status])
        upload_btn.click(upload, [files, collection, api_key], [status, collection, files])
        demo.load(on_load, None, [collection, client, status])
    return demo


def mount_ui(app: FastAPI, service: AssistantService) -> None:
    """Mount the chat at /ui. With API keys set and reads not public, the UI asks for a key."""
    settings = service.settings
    keys = settings.api_key_list
    auth = None
    if keys and not settings.public_read:
        def auth(_username: str, password: str) -> bool:
            return key_matches(password, keys)

    gr.mount_gradio_app(
        app, build_ui(service), path="/ui", auth=auth,
        auth_message="Enter any user name and one of the server's API keys as the password.",
        footer_links=[], max_file_size=settings.upload_max_bytes, css=CSS, head=HEAD,
    )
