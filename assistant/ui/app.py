"""The chat page: its layout, which handler each event runs, and the mount at /ui."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastapi import FastAPI

from assistant.audit import AuditLog
from assistant.auth import Authenticator
from assistant.readers import DOC_TYPES, SUPPORTED_SUFFIXES
from assistant.service import AssistantService
from assistant.settings import Settings
from assistant.ui.handlers import ChatHandlers
from assistant.ui.render import CSS, HEAD, SOURCES_EMPTY

EXAMPLES = [
    "How do we define a Cx Quality Fault?",
    "What did we find at Brightwave Mobile?",
    "What belongs on a Cx Quality Scorecard?",
    "Who are promise makers and promise keepers?",
]


@dataclass
class Page:
    """The components the handlers read and write."""

    status: Any
    turns: Any
    chatbot: Any
    question: Any
    ask_btn: Any
    comment: Any
    clear_btn: Any
    sources: Any
    collection: Any
    doc_type: Any
    client: Any
    files: Any
    api_key: Any
    upload_btn: Any


def _chat_column() -> tuple[Any, ...]:
    """The conversation, the question box and the comment box, with their buttons."""
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
    return chatbot, question, ask_btn, comment, clear_btn


def _layout(settings: Settings, needs_key: bool) -> Page:
    """Chat beside the sources panel; filters and uploads folded below."""
    gr.Markdown("## Cx Knowledge Assistant\nAnswers from the firm's articles, playbooks and "
                "findings. Every sentence cites its source: click **[n]** to read it.")
    status = gr.HTML("", elem_id="cx-status")
    turns = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            chatbot, question, ask_btn, comment, clear_btn = _chat_column()
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources = gr.HTML(SOURCES_EMPTY, elem_id="cx-sources")
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
    return Page(status, turns, chatbot, question, ask_btn, comment, clear_btn, sources,
                collection, doc_type, client, files, api_key, upload_btn)


def _wire(demo: gr.Blocks, page: Page, on: ChatHandlers) -> None:
    """Connect each event to its handler."""
    p = page
    ask_io: dict[str, Any] = dict(
        fn=on.ask, inputs=[p.question, p.chatbot, p.turns, p.collection, p.doc_type, p.client],
        outputs=[p.chatbot, p.turns, p.sources, p.status, p.question])
    p.ask_btn.click(**ask_io)
    p.question.submit(**ask_io)
    p.chatbot.example_select(on.pick_example, None, p.question).then(**ask_io)
    p.chatbot.like(on.on_like, [p.turns, p.comment], [p.status, p.comment])
    p.clear_btn.click(on.clear, None, [p.chatbot, p.turns, p.sources, p.status])
    p.chatbot.clear(on.clear, None, [p.chatbot, p.turns, p.sources, p.status])
    p.collection.change(on.on_collection, p.collection, [p.client, p.status])
    p.upload_btn.click(on.upload, [p.files, p.collection, p.api_key],
                       [p.status, p.collection, p.files])
    demo.load(on.on_load, None, [p.collection, p.client, p.status])


def build_ui(service: AssistantService, auth: Authenticator | None = None,
             audit: AuditLog | None = None) -> gr.Blocks:
    """The chat app; each handler calls `service` (answer_stream, upload, feedback, ...),
    scoped to the signed-in key."""
    handlers = ChatHandlers(service, auth or Authenticator(service.settings), audit)
    with gr.Blocks(title="Cx Knowledge Assistant") as demo:
        page = _layout(service.settings, handlers.needs_key)
        _wire(demo, page, handlers)
    return demo


def mount_ui(app: FastAPI, service: AssistantService, auth: Authenticator | None = None,
             audit: AuditLog | None = None) -> None:
    """Mount the chat at /ui. With keys (CX_API_KEYS or a key store) and reads not public,
    the UI asks for a login: a key's name and secret, or any name and a CX_API_KEYS key.
    Whether it asks is decided here, at start-up: a key store created later locks the chat's
    actions (each re-checks the key) until a restart brings the login page."""
    settings = service.settings
    auth = auth or Authenticator(settings)
    login = auth.login if auth.keyed and not settings.public_read else None
    gr.mount_gradio_app(
        app, build_ui(service, auth, audit), path="/ui", auth=login,
        auth_message="User name: your key's name (any name for a CX_API_KEYS key). "
        "Password: the key itself.",
        footer_links=[], max_file_size=settings.upload_max_bytes, css=CSS, head=HEAD,
    )
