"""A document's stored original: the file its ingest read, found again without trusting the id.

A doc_id names a file relative to the root it was ingested from (an ingested folder, or the
collection's upload folder); both are recorded per chunk as `source_root`. The id is only
looked up, never used to build a path until the collection has confirmed it, and the path is
then resolved (symlinks included) and must still lie inside that root: a crafted id
(`../../etc/passwd`, an absolute path, an encoded `..`) or a symlink pointing out of the
folder finds nothing.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from assistant.errors import DocumentNotFound
from assistant.readers import SUPPORTED_SUFFIXES

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Office and Markdown types that the platform's mimetypes table may not know.
MEDIA_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".markdown": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Shown in the browser (a PDF opens at `#page=N`); anything else downloads. HTML is not
# shown inline: a stored page's scripts must not run on the assistant's own origin.
INLINE = (".pdf",)


@dataclass(frozen=True)
class Original:
    """The file to stream, the name to offer and how a browser should treat it."""

    path: Path
    filename: str
    media_type: str
    inline: bool


def find_original(collection: Collection, doc_id: str) -> Original:
    """The original file of `doc_id` in `collection` (DocumentNotFound, saying why, if none)."""
    got = collection.get(where={"doc_id": doc_id}, include=["metadatas"], limit=1)
    if not got["ids"]:
        raise DocumentNotFound(f"no document {doc_id!r} in collection {collection.name!r}")
    meta = (got["metadatas"] or [{}])[0] or {}
    root_value = str(meta.get("source_root") or "")
    relative = PurePosixPath(doc_id)
    if not root_value or not Path(root_value).is_absolute():
        raise DocumentNotFound(f"document {doc_id!r} was ingested from records, not from a "
                               "file: it has no original to open")
    if relative.is_absolute() or ".." in relative.parts or "\\" in doc_id or "\0" in doc_id:
        raise DocumentNotFound(f"document {doc_id!r} has no original inside its source folder")
    try:
        root = Path(root_value).resolve(strict=True)
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        raise DocumentNotFound(f"the original of {doc_id!r} is no longer where it was "
                               "ingested from; re-ingest it") from None
    suffix = path.suffix.lower()
    if not path.is_relative_to(root) or not path.is_file() or suffix not in SUPPORTED_SUFFIXES:
        raise DocumentNotFound(f"document {doc_id!r} has no original inside its source folder")
    media = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]
    return Original(path, path.name, media or "application/octet-stream", suffix in INLINE)
