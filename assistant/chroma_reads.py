"""Reading a Chroma collection whole: in pages, retried, one complete version per document.

Used for every snapshot a reader takes (the retriever's, the document listing's, ingest's
view of what it already holds), so all of them see the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.sentences import SENTENCES_KEY

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from llama_index.core.vector_stores.types import MetadataFilters

Metadata = dict[str, Any]

# Chroma's SQLite refuses one `get` of a whole large collection ("too many SQL variables"
# at ~50k chunks), so snapshots are read in pages.
PAGE_SIZE = 5_000


def lean(meta: Mapping[str, Any] | None) -> Metadata:
    """A chunk's metadata without its bulky copies, as a snapshot keeps it.

    llama-index's own copy of each node (`_node_content`: the text again, as JSON) is dropped:
    everything we use is in the flat keys, and it would double the memory. So are sentence
    vectors (~2.5 KB a chunk): only the chunks an answer reads need them, and
    `Retriever.with_sentences` fetches those.
    """
    return {k: v for k, v in (meta or {}).items()
            if not k.startswith("_node") and k != SENTENCES_KEY}


def read_all(collection: Collection, include: list[str], where: dict[str, Any] | None = None,
             slim: bool = False) -> dict[str, list[Any]]:
    """Every (matching) row of a collection, page by page: ids plus the `include` fields.

    Pages are offsets into a table another process may be writing to; when the count moved
    while we read, the read is repeated (a few times at most), so a snapshot is not torn.
    `slim`: metadata is made `lean` page by page, so the bulky keys of a large collection are
    never all in memory at once.
    """
    out: dict[str, list[Any]] = {}
    for _ in range(3):
        before = collection.count()
        out = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            page = _get_retrying(collection, include=include, where=where,
                                 limit=PAGE_SIZE, offset=offset)
            out["ids"] += list(page["ids"])
            for key in include:
                values = page.get(key)
                values = list(values) if values is not None else []
                out[key] += [lean(m) for m in values] if slim and key == "metadatas" else values
            if len(page["ids"]) < PAGE_SIZE:
                break
            offset += PAGE_SIZE
        if offset == 0 or collection.count() == before:
            break
    return out


def _get_retrying(collection: Collection, **kwargs: Any) -> Any:
    """`collection.get`, retried on a Chroma InternalError.

    A `chroma run` server asked for vectors while another process deletes some of those rows
    answers "Error finding id" (it reads metadata and vectors non-atomically); found by
    tests/test_consistency.py. A moment later the rows are simply gone, so a retry succeeds.
    """
    for attempt in range(6):
        try:
            return collection.get(**kwargs)
        except Exception as exc:
            if type(exc).__name__ != "InternalError" or attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def visible_rows(ids: list[str], metadatas: list[Metadata]) -> list[int]:
    """Rows readers may see: per document, the chunks of exactly one complete version.

    An ingest writes a document's new version before deleting the old one, and a crash can
    leave a version half-written (see ingest.py). A snapshot taken meanwhile holds both, or a
    fragment: showing all of it would mix two versions in one answer. So each (source_root,
    doc_id) shows its newest complete version (all `chunk_count` chunks present), or nothing
    if no version is complete yet (a first version still being written).
    """
    groups: dict[tuple[str, str], dict[str, list[int]]] = {}
    for i, meta in enumerate(metadatas):
        key = (str(meta.get("source_root", "")), str(meta.get("doc_id", "")))
        groups.setdefault(key, {}).setdefault(str(meta.get("doc_hash", "")), []).append(i)
    keep: list[int] = []
    for versions in groups.values():
        if len(versions) == 1:
            rows = next(iter(versions.values()))
            count = metadatas[rows[0]].get("chunk_count")
            if count is None or len({ids[i] for i in rows}) == int(count):
                keep.extend(rows)
            continue
        complete = [
            (max(str(metadatas[i].get("ingested_at", "")) for i in rows), doc_hash, rows)
            for doc_hash, rows in versions.items()
            if metadatas[rows[0]].get("chunk_count") in (None, len({ids[i] for i in rows}))
        ]
        if complete:
            keep.extend(max(complete)[2])
    return sorted(keep)


def visible_metadata(collection: Collection) -> list[Metadata]:
    """The lean metadata of every row readers may see, read in pages."""
    got = read_all(collection, ["metadatas"], slim=True)
    metas = got["metadatas"]
    return [metas[i] for i in visible_rows(got["ids"], metas)]


def chroma_where(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Chroma's `where` clause for llama-index metadata filters.

    llama-index-vector-stores-chroma (0.6) translates filters only in its private
    `_to_chroma_filter`. Its public route, `ChromaVectorStore.query`, also fetches every
    hit's text and metadata (sentence vectors included) and rebuilds a node from each, which
    the Chroma-side dense search exists to avoid: it needs ids and distances alone. So the
    private function is called here and nowhere else; tests/test_document_listing.py checks
    that a filtered search in Chroma matches the in-memory one. Recheck it on upgrade.
    """
    if filters is None:
        return None
    from llama_index.vector_stores.chroma.base import _to_chroma_filter

    return _to_chroma_filter(filters)
