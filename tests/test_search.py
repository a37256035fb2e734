"""Hybrid search over the sample corpus: document-level hits, filters on both retrievers."""

from __future__ import annotations

import datetime as dt

from assistant.schemas import SearchFilters
from assistant.service import AssistantService


def test_document_level_hits_best_first(corpus_service: AssistantService) -> None:
    hits = corpus_service.search("how do we define Cx Quality Faults?", top_k=5).hits
    assert len(hits) == 5
    assert len({h.doc_id for h in hits}) == 5
    assert hits[0].doc_id == "articles/cx-quality-faults.md"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].title == "Defining Cx Quality Faults" and hits[0].text


def test_filters_apply_to_dense_and_bm25(corpus_service: AssistantService) -> None:
    only = SearchFilters(doc_type=["playbook"])
    for mode in ("dense", "bm25", "hybrid"):
        chunks = corpus_service.retrieve("quality fault review", k=30, filters=only, mode=mode)
        assert chunks, mode
        assert {c.metadata["doc_type"] for c in chunks} == {"playbook"}, mode


def test_client_filter(corpus_service: AssistantService) -> None:
    hits = corpus_service.search(
        "churn", top_k=10, filters=SearchFilters(client=["Brightwave Mobile"])
    ).hits
    assert [h.doc_id for h in hits] == ["findings/brightwave-churn.md"]
    assert hits[0].metadata["client"] == "Brightwave Mobile"


def test_tag_and_date_filters(corpus_service: AssistantService) -> None:
    docs = corpus_service.list_documents(limit=1000).data
    assert docs
    tagged = corpus_service.search(
        "measurement", top_k=50, filters=SearchFilters(tags=["measurement"])
    ).hits
    assert tagged
    assert all("measurement" in h.metadata["tags"].split(", ") for h in tagged)

    since = dt.date(2025, 1, 1)
    recent = corpus_service.search(
        "customer experience", top_k=50, filters=SearchFilters(date_from=since)
    ).hits
    assert recent
    assert all(h.metadata["date"] >= "2025-01-01" for h in recent)
    window = SearchFilters(date_from=dt.date(2022, 1, 1), date_to=dt.date(2022, 12, 31))
    for hit in corpus_service.search("customer", top_k=50, filters=window).hits:
        assert "2022-01-01" <= hit.metadata["date"] <= "2022-12-31"


def test_filter_that_matches_nothing_returns_nothing(corpus_service: AssistantService) -> None:
    # unfiltered, the same query finds the churn finding: the empty result below is the
    # filter's doing, not a search that finds nothing
    unfiltered = corpus_service.search("churn").hits
    assert "findings/brightwave-churn.md" in {h.doc_id for h in unfiltered}
    none = SearchFilters(client=["No Such Client Ltd"])
    assert corpus_service.search("churn", filters=none).hits == []


def test_bm25_follows_ingest(service: AssistantService, tmp_path) -> None:
    """The BM25 index is rebuilt from Chroma, so a new document is findable at once."""
    from helpers.files import write_md

    root = tmp_path / "kb"
    write_md(root / "a.md", "A", "Promise keepers deliver what promise makers sell.")
    service.ingest([root])
    assert service.retrieve("zyxwvut", mode="bm25") == []
    write_md(root / "b.md", "B", "The zyxwvut protocol is our codename for fault triage.")
    service.ingest([root])
    hits = service.retrieve("zyxwvut", mode="bm25")
    assert [h.doc_id for h in hits] == ["b.md"]
