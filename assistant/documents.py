"""A collection's documents as readers see them: the listing, the distinct values of a
metadata key (the UI's filters), and one document with its chunks in order.

Listings are computed from lean chunk metadata (chroma_reads.py), which the service takes
from the retriever's snapshot when one is current and otherwise reads in pages, so neither
ever asks Chroma for a whole large collection at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from assistant.chroma_reads import visible_rows
from assistant.errors import DocumentNotFound
from assistant.locations import location_at
from assistant.schemas import ChunkDetail, DocumentDetail, DocumentInfo

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Chunk metadata shown to clients (search hits, a document's metadata).
PUBLIC_META = ("doc_type", "client", "author", "date", "tags", "chunk_index", "start", "end",
               "ingested_at")


def listing(metadatas: Iterable[dict[str, Any]]) -> list[DocumentInfo]:
    """One entry per document, with its chunk count, ordered by doc_id."""
    docs: dict[str, DocumentInfo] = {}
    for meta in metadatas:
        doc_id = str(meta.get("doc_id"))
        info = docs.get(doc_id)
        if info is None:
            docs[doc_id] = DocumentInfo(
                doc_id=doc_id, title=str(meta.get("title", "")),
                doc_type=str(meta.get("doc_type", "")), chunks=1,
                ingested_at=str(meta.get("ingested_at", "")),
            )
        else:
            info.chunks += 1
    return sorted(docs.values(), key=lambda d: d.doc_id)


def distinct(metadatas: Iterable[dict[str, Any]], key: str) -> list[str]:
    """Distinct non-empty values of one metadata key (e.g. `client`), sorted."""
    return sorted({str(m[key]) for m in metadatas if m.get(key) not in (None, "")})


def detail(collection: Collection, doc_id: str) -> DocumentDetail:
    """One document's metadata and its chunks in order (DocumentNotFound if absent)."""
    got = collection.get(where={"doc_id": doc_id}, include=["documents", "metadatas"])
    ids, texts = got["ids"], got["documents"] or []
    metas: list[dict[str, Any]] = [dict(m or {}) for m in got["metadatas"] or []]
    # one whole version, as search sees it, even while an ingest replaces the document
    keep = visible_rows(ids, metas)
    if not keep:
        raise DocumentNotFound(f"no document {doc_id!r} in collection {collection.name!r}")
    rows = sorted(((ids[i], texts[i], metas[i]) for i in keep),
                  key=lambda r: int(r[2].get("chunk_index", 0)))
    meta = rows[0][2]
    return DocumentDetail(
        doc_id=doc_id, title=str(meta.get("title", "")),
        doc_type=str(meta.get("doc_type", "")),
        metadata={k: meta[k] for k in PUBLIC_META if k in meta and k not in (
            "chunk_index", "start", "end")},
        chunks=[ChunkDetail(chunk_id=cid, index=int(m.get("chunk_index", 0)),
                            section=str(m.get("section", "")), text=text or "",
                            start=int(m.get("start", 0)), end=int(m.get("end", 0)),
                            location=location_at(m))
                for cid, text, m in rows],
    )
