"""What the chat shows, as HTML and Markdown: answers with linked [n] markers, the sources
panel, status lines and error wording; plus the page's script and styles.

All text shown comes from untrusted places (documents, file names, questions), so it is
escaped here before Gradio sees it: html.escape everywhere, plus Markdown punctuation in
chat bubbles, whose Markdown would otherwise turn document text into links or markup.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from pydantic import ValidationError

from assistant.errors import AssistantError
from assistant.schemas import validation_message

log = logging.getLogger("assistant.ui")

_MARKER = re.compile(r"\[(\d+)\]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:$])")
SOURCES_EMPTY = ('<div class="cx-empty">Sources appear here. Click a <b>[n]</b> marker in an '
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
.cx-loc { font-size: 0.85em; opacity: 0.75; margin-left: 0.3em; }
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
        return SOURCES_EMPTY
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
            location = c.get("location") or {}
            where = (f' <span class="cx-loc">{esc(location["label"])}</span>'
                     if location.get("label") else "")
            doc_type = meta.get("doc_type") or ""
            # LLM mode flags citations its verifier could not match to the cited passage.
            unverified = ('<span class="cx-type cx-unverified">unverified</span>'
                          if c.get("supported") is False else "")
            cards.append(
                f'<details class="cx-source" id="cx-src-{t}-{int(c["n"])}">'
                f'<summary><b>[{int(c["n"])}]</b> {esc(c["title"] or c["doc_id"])}{where}'
                f'<span class="cx-type">{esc(doc_type)}</span>{unverified}</summary>'
                f'<div class="cx-meta">{section}<code class="cx-path">{esc(c["doc_id"])}'
                f"</code>{_open_link(turn, c['doc_id'], location)}</div>"
                f'<div class="cx-chunk">{_highlight(chunk, c["quote"])}</div></details>'
            )
        blocks.append(f'<div class="cx-turn">{"".join(cards)}</div>')
    return "".join(blocks)


def _open_link(turn: dict[str, Any], doc_id: str, location: dict[str, Any]) -> str:
    """ "Open original": a PDF opens at the cited page (`#page=N`), other formats download."""
    href = (turn.get("links") or {}).get(doc_id)
    if not href:
        return ""
    if location.get("page"):
        href += f"#page={int(location['page'])}"
    return (f' · <a class="cx-open" href="{esc(href)}" target="_blank" rel="noopener">'
            "Open original</a>")


def friendly_error(exc: Exception) -> str:
    """One line a consultant can act on: a domain error's own message (the API and the CLI
    show the same), a form value to change, or a pointer to the server log."""
    if isinstance(exc, AssistantError):
        return exc.message
    if isinstance(exc, ValidationError):
        where, what = validation_message(exc)
        return f"Please change the {where}: {what}."
    log.exception("ui action failed")
    return f"Something went wrong ({type(exc).__name__}); the server log has the details."
