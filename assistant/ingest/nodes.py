"""Chunks as stored: ids that name their content, llama-index nodes, and how they are written.

A chunk id is derived from (doc_id, doc_hash, index) and doc_hash from the file's bytes and
the chunking settings, so writing a chunk twice is a no-op (rule 1 of the crash contract).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from assistant.chunking import Chunk
from assistant.locations import Breakpoints, chunk_locations

# Chunk metadata that must not be embedded or shown to a model: bookkeeping only.
BOOKKEEPING = (
    "doc_id", "doc_type", "client", "author", "date", "date_int", "tags", "start", "end",
    "chunk_index", "chunk_count", "doc_hash", "source_root", "ingested_at", "file_size",
    "page", "slide", "sheet", "row", "locations", "ocr", "ocr_pages",
)
CHROMA_MAX_BATCH = 5000  # under Chroma's maximum batch size


def doc_hash(signature: str, content: bytes) -> str:
    """A document version: its bytes under one chunking signature (new settings, new chunks)."""
    return hashlib.sha256(signature.encode("utf-8") + b"\0" + content).hexdigest()


def chunk_id(doc_id: str, doc_hash: str, index: int) -> str:
    """Chunk `index` of one document version: the same content always gets the same id."""
    digest = hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:16]
    return f"{digest}-{doc_hash[:16]}-{index:05d}"


def make_node(
    doc_id: str,
    doc_meta: dict[str, Any],
    chunk: Chunk,
    chunk_count: int,
    doc_hash: str,
    source_root: str,
    ingested_at: str,
    breakpoints: Breakpoints = (),
) -> Any:
    """A llama-index TextNode for one chunk, with flat (Chroma-compatible) metadata.

    Tags become one flag key each (`tag:<name>`) so Chroma and BM25 can filter on them;
    the date also becomes an integer so date ranges are numeric comparisons. `breakpoints`
    (the reader's locations) give the chunk its page, slide or sheet row (locations.py).
    """
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    tags = doc_meta.get("tags") or []
    metadata: dict[str, Any] = {
        "doc_id": doc_id,
        "title": doc_meta["title"],
        "section": chunk.section,
        "doc_type": doc_meta["doc_type"],
        "tags": ", ".join(tags),
        "start": chunk.start,
        "end": chunk.end,
        "chunk_index": chunk.index,
        "chunk_count": chunk_count,
        "doc_hash": doc_hash,
        "source_root": source_root,
        "ingested_at": ingested_at,
    }
    for key in ("client", "author", "date", "ocr"):
        if doc_meta.get(key):
            metadata[key] = doc_meta[key]
    metadata.update(chunk_locations(breakpoints, chunk.start, chunk.end))
    if doc_meta.get("date"):
        metadata["date_int"] = int(doc_meta["date"].replace("-", ""))
    for tag in tags:
        metadata[f"tag:{tag}"] = 1  # an int: llama-index filters take no booleans
    hidden = [k for k in metadata if k.startswith("tag:")]
    if not chunk.section:
        hidden.append("section")  # an empty "section:" line would only add noise
    node = TextNode(
        id_=chunk_id(doc_id, doc_hash, chunk.index),
        text=chunk.text,
        metadata=metadata,
        excluded_embed_metadata_keys=[*BOOKKEEPING, *hidden],
        excluded_llm_metadata_keys=[*BOOKKEEPING, *hidden],
        metadata_template="{key}: {value}",
    )
    # ref_doc_id = our doc_id, so Chroma's doc_id/document_id/ref_doc_id keys agree with ours.
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
    return node


def add_nodes(collection: Any, nodes: Sequence[Any]) -> None:
    """Write embedded nodes as llama-index's ChromaVectorStore.add does, with one change.

    A chunk's sentence vectors (node.metadata[SENTENCES_KEY], set by the embedding
    transform) become a flat metadata key only: left in node.metadata, llama-index would
    also copy them into the `_node_content` JSON it stores, doubling their size.
    """
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from assistant.sentences import SENTENCES_KEY

    for at in range(0, len(nodes), CHROMA_MAX_BATCH):
        part = nodes[at : at + CHROMA_MAX_BATCH]
        metadatas = []
        for node in part:
            blob = node.metadata.pop(SENTENCES_KEY, None)
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
            meta = {k: "" if v is None else v for k, v in meta.items()}
            if blob:
                meta[SENTENCES_KEY] = blob
            metadatas.append(meta)
        collection.add(ids=[n.node_id for n in part],
                       embeddings=[n.get_embedding() for n in part], metadatas=metadatas,
                       documents=[n.get_content(metadata_mode=MetadataMode.NONE) for n in part])


def embed_text(meta: dict[str, Any], document: str) -> str:
    """What ingest embedded for a chunk: llama-index's node, rebuilt from its stored JSON."""
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    if "_node_content" not in meta:
        return document
    return metadata_dict_to_node(meta, text=document).get_content(MetadataMode.EMBED)
