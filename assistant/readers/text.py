"""Plain-text formats: Markdown (front matter → metadata), .txt, and HTML (boilerplate
dropped, headings kept as `#` lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import ReadError
from assistant.readers.base import LoadedFile, _decode


def read_markdown(path: Path) -> LoadedFile:
    import frontmatter
    import yaml

    text = _decode(path.read_bytes(), path)
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ReadError(f"invalid YAML front matter: {exc}".splitlines()[0]) from None
    if not isinstance(post.metadata, dict):
        raise ReadError("front matter must be a YAML mapping")
    return LoadedFile(post.content, dict(post.metadata))


def read_text(path: Path) -> LoadedFile:
    return LoadedFile(_decode(path.read_bytes(), path))


_BLOCK_TAGS = ("p", "li", "td", "th", "pre", "blockquote", "dt", "dd", "figcaption")
_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form",
              "template", "svg", "iframe", "button")


def read_html(path: Path) -> LoadedFile:
    """Parse with BeautifulSoup; drop scripts, styles and navigation boilerplate.

    Table rows stay `| a | b |` as before: HTML was left out when the other formats moved
    to header-carrying rows (tables.py), since pages often use tables for layout.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path.read_bytes(), path), "html.parser")
    meta: dict[str, Any] = {}
    for tag in soup.find_all("meta"):
        name = str(tag.get("name") or tag.get("property") or "").lower().removeprefix("cx:")
        if name in ("title", "doc_type", "client", "author", "date", "tags", "keywords"):
            meta["tags" if name == "keywords" else name] = tag.get("content", "")
    if soup.title and soup.title.string and "title" not in meta:
        meta["title"] = soup.title.string.strip()
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "tr", *_BLOCK_TAGS]):
        if el.name in ("p", "li", "td", "th") and el.find_parent(["li", "tr"]) is not None:
            continue  # nested inside a list item or table row already emitted
        if el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            line = "| " + " | ".join(cells) + " |"
        else:
            line = " ".join(el.get_text(" ", strip=True).split())
            if el.name in ("h1", "h2", "h3", "h4"):
                line = "#" * int(el.name[1]) + " " + line
            elif el.name == "li":
                line = "- " + line
        if line.strip("|- "):
            lines.append(line)
    return LoadedFile("\n\n".join(lines), meta)
