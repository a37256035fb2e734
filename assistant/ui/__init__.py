"""The consultants' chat (Gradio), mounted at /ui: cited answers beside a sources panel, filters,
a collection picker, uploads and feedback — every action a call on the one AssistantService.

`app` lays out the page and mounts it, `handlers` holds what each event does, `render` what
the page shows (escaped: all of it comes from untrusted documents, names and questions).
"""

from __future__ import annotations

from assistant.ui.app import build_ui, mount_ui
from assistant.ui.render import (
    answer_markdown,
    esc,
    friendly_error,
    md_text,
    sources_html,
    status_html,
)

__all__ = ["answer_markdown", "build_ui", "esc", "friendly_error", "md_text", "mount_ui",
           "sources_html", "status_html"]
