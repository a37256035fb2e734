"""Document listing and metadata values over a collection larger than one Chroma read.

The rows are synthetic (tiny fixed embeddings, no model): 52,000 chunks, where one `get` of
every metadata row already fails ("too many SQL variables" at ~50k). Listed from paged reads,
from the retriever's snapshot, and again after another writer published a change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.settings import make_settings

from assistant import service as service_module
from assistant.ingest.journal import Journal
from assistant.retrieval import Retriever, to_metadata_filters
from assistant.schemas import SearchFilters
from assistant.service import AssistantService

DOCS, CHUNKS = 520, 100  # 52,000 rows
CLIENTS = [f"client-{i}" for i in range(7)]
TYPES = ["article", "finding", "playbook"]
BATCH = 5_000


def rows(doc: str, n: int, of: int | None = None, doc_hash: str = "h1",
         when: str = "2026-01-01T00:00:00") -> list[tuple[str, dict[str, object]]]:
    """`n` chunk rows of one document version (`of`: its declared chunk count)."""
    d = int(doc.split("-")[1].split(".")[0]) if doc.startswith("doc-") else 0
    return [(f"{doc}#{doc_hash}#{i}", {
        "doc_id": doc, "source_root": "/kb", "doc_hash": doc_hash, "chunk_count": of or n,
        "chunk_index": i, "title": f"Title {doc}", "doc_type": TYPES[d % 3],
        "client": CLIENTS[d % 7], "ingested_at": when, "cx_sentences": "x" * 64,
    }) for i in range(n)]


def add(collection: object, items: list[tuple[str, dict[str, object]]]) -> None:
    for start in range(0, len(items), BATCH):
        part = items[start : start + BATCH]
        collection.add(  # type: ignore[attr-defined]
            ids=[cid for cid, _ in part], metadatas=[m for _, m in part],
            documents=[f"chunk {cid}" for cid, _ in part],
            embeddings=[[1.0, 0.0, 0.0, 0.0]] * len(part))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> AssistantService:
    svc = AssistantService(make_settings(tmp_path_factory.mktemp("big")))
    items = [r for d in range(DOCS) for r in rows(f"doc-{d:03}.md", CHUNKS)]
    items += rows("partial.md", 1, of=3)  # a first version still being written: hidden
    add(svc.store.get_or_create_collection(svc.settings.collection), items)
    return svc


def expected_clients() -> list[str]:
    return sorted({CLIENTS[d % 7] for d in range(DOCS)})


def check_listing(svc: AssistantService, docs: int) -> None:
    page = svc.list_documents(limit=50, offset=100)
    assert page.count == docs
    assert [d.doc_id for d in page.data] == [f"doc-{d:03}.md" for d in range(100, 150)]
    assert all(d.chunks == CHUNKS for d in page.data)
    assert page.data[0].title == "Title doc-100.md" and page.data[0].doc_type == TYPES[1]
    whole = svc.list_documents(limit=10_000).data
    assert len(whole) == docs and "partial.md" not in {d.doc_id for d in whole}
    assert svc.metadata_values("client") == expected_clients()
    assert svc.metadata_values("doc_type") == sorted(TYPES)


def test_listing_reads_pages_without_building_a_snapshot(big: AssistantService) -> None:
    col = big.store.get_collection(big.settings.collection)
    assert col.count() == DOCS * CHUNKS + 1 > 50_000
    check_listing(big, DOCS)
    assert big.retrievers.peek(big.settings.collection, col, 0) is None


def test_listing_uses_the_current_snapshot(big: AssistantService,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name = big.settings.collection
    snapshot = big.retriever()
    assert snapshot.size == DOCS * CHUNKS and snapshot.hidden == 1

    def no_reads(_: object) -> None:
        raise AssertionError("listed from Chroma although a current snapshot exists")

    monkeypatch.setattr(service_module, "visible_metadata", no_reads)
    check_listing(big, DOCS)
    monkeypatch.undo()
    # another writer publishes a change: the snapshot is stale, the listing is not
    col = big.store.get_collection(name)
    add(col, rows("doc-999.md", 2))
    Journal(lambda: big.store.get_collection(name)).publish(done=True)
    assert big.list_documents(limit=1, offset=DOCS).data[0].doc_id == "doc-999.md"
    assert big.list_documents().count == DOCS + 1


def test_dense_search_in_chroma_filters_as_in_memory(tmp_path: Path) -> None:
    """Above CX_DENSE_MEMORY_MAX dense search runs in Chroma, with the filters translated to a
    `where` clause (chroma_reads.chroma_where): it must keep the same chunks."""
    svc = AssistantService(make_settings(tmp_path / "data"))
    col = svc.store.get_or_create_collection("small")
    vectors = np.random.default_rng(7).normal(size=(60, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [r for d in range(60) for r in rows(f"doc-{d:03}.md", 1)]
    for (_, meta), d in zip(items, range(60), strict=True):
        meta["date_int"] = 20260101 + d
    col.add(ids=[cid for cid, _ in items], metadatas=[m for _, m in items],  # type: ignore[misc]
            documents=["text"] * 60, embeddings=vectors.tolist())
    query = (vectors[0] + vectors[1]) / np.linalg.norm(vectors[0] + vectors[1])
    filters = to_metadata_filters(SearchFilters(doc_type=["finding", "article"],
                                                client=CLIENTS[:4], date_from="2026-01-10"))
    in_memory, in_chroma = Retriever(col, 0), Retriever(col, 0, memory_max=0)
    assert in_memory.vectors is not None and in_chroma.vectors is None
    for f in (None, filters):
        want = [(c.id, round(c.cosine or 0, 4)) for c in in_memory.dense(query, 10, f)]
        got = [(c.id, round(c.cosine or 0, 4)) for c in in_chroma.dense(query, 10, f)]
        assert want == got and want
    kept = in_memory.dense(query, 60, filters)
    assert 0 < len(kept) < 60 and all(
        c.metadata["doc_type"] in ("finding", "article") and c.metadata["client"] in CLIENTS[:4]
        and int(c.metadata["date_int"]) >= 20260110 for c in kept)
