"""Readable renderings of tool results: what a model reads in a tool call's text content.

The structured content carries the API's JSON; this text is for clients and models that read
only text, so it keeps every citation's marker, document and verbatim quote.
"""

from __future__ import annotations

from assistant.answer_text import answer_with_sources, where
from assistant.schemas import (
    AnswerResponse,
    DocumentDetail,
    DocumentList,
    SearchResponse,
)

SNIPPET_CHARS = 600  # a search hit's passage, cut so ten hits stay readable


def search_text(response: SearchResponse) -> str:
    if not response.hits:
        return "No matching documents."
    lines = []
    for i, hit in enumerate(response.hits, 1):
        text = " ".join(hit.text.split())
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS].rstrip() + " …"
        place = where(hit.doc_id, hit.section, hit.location)
        lines.append(f"{i}. {hit.title or hit.doc_id} ({place}), score {hit.score:.3f}\n"
                     f"   {text}")
    return "\n".join(lines)


def answer_text(response: AnswerResponse) -> str:
    """The answer with its [n] markers, then a Sources list a plain chat client can show."""
    return answer_with_sources(response)


def document_text(doc: DocumentDetail) -> str:
    head = [f"# {doc.title or doc.doc_id}", f"doc_id: {doc.doc_id}"]
    if doc.doc_type:
        head.append(f"doc_type: {doc.doc_type}")
    head += [f"{key}: {value}" for key, value in doc.metadata.items() if key != "doc_type"]
    chunks = [f"## chunk {c.index}" + (f" § {c.section}" if c.section else "") + f"\n{c.text}"
              for c in doc.chunks]
    return "\n".join(head) + "\n\n" + "\n\n".join(chunks)


def documents_text(page: DocumentList, offset: int) -> str:
    if not page.data:
        return f"No documents at offset {offset} (the collection holds {page.count})."
    end = offset + len(page.data)
    lines = [f"Documents {offset + 1}-{end} of {page.count}:"]
    lines += [f"- {d.doc_id}: {d.title or '(untitled)'} ({d.doc_type or 'no type'}, "
              f"{d.chunks} chunks)" for d in page.data]
    if end < page.count:
        lines.append(f"More: call again with offset={end}.")
    return "\n".join(lines)


def collections_text(names: list[str], default: str) -> str:
    if not names:
        return "No collections yet: nothing has been ingested."
    return "Collections:\n" + "\n".join(
        f"- {n}" + (" (the default)" if n == default else "") for n in names)
