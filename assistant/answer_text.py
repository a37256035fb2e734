"""A cited answer as plain text: the answer with its [n] markers, then a Sources list.

The text surfaces that cannot show our citation cards (MCP tool results, the OpenAI-compatible
chat endpoint) render answers with this one function, so a plain chat client shows the same
usable citations whichever way it connected.
"""

from __future__ import annotations

from assistant.schemas import AnswerResponse, Citation, Location

UNVERIFIED = " (unverified: the quote may not support the claim)"


def where(doc_id: str, section: str, location: Location | None = None) -> str:
    """`doc_id § section, p. 2`: the section and the location each only when there is one."""
    place = f"{doc_id} § {section}" if section else doc_id
    return f"{place}, {location.label}" if location else place


def source_line(c: Citation) -> str:
    """One Sources entry: marker, title, location and the verbatim quote."""
    flag = "" if c.supported else UNVERIFIED
    place = where(c.doc_id, c.section, c.location)
    return f'- [{c.n}] {c.title or c.doc_id} ({place}){flag}: "{c.quote}"'


def answer_with_sources(response: AnswerResponse) -> str:
    """The answer, its warning if any, and a Sources list (none for an abstention)."""
    parts = [response.answer]
    if response.warning:
        parts.append(f"Note: {response.warning}")
    if response.citations:
        parts.append("\n".join(["Sources:", *map(source_line, response.citations)]))
    return "\n\n".join(parts)
