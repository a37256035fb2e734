"""The sample corpus and its golden suite: every document indexed, the suite well-formed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import CORPUS

from assistant.ingest import discover
from assistant.schemas import AnswerRequest
from assistant.service import AssistantService

SUITE = Path(__file__).resolve().parent.parent / "eval" / "suites" / "cx_golden.jsonl"


def test_every_corpus_document_is_indexed(corpus_service: AssistantService) -> None:
    _, files = discover(CORPUS)
    indexed = {d.doc_id for d in corpus_service.list_documents(limit=1000).data}
    assert indexed == {f.doc_id for f in files}
    assert len(indexed) >= 45
    suffixes = {Path(d).suffix for d in indexed}
    assert {".md", ".html", ".pdf", ".docx"} <= suffixes
    types = {d.doc_type for d in corpus_service.list_documents(limit=1000).data}
    assert types == {"article", "playbook", "finding"}


def test_golden_suite_matches_the_contract_format() -> None:
    _, files = discover(CORPUS)
    doc_ids = {f.doc_id for f in files}
    rows = [json.loads(line) for line in SUITE.read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 100
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert {"id", "question", "relevant", "answerable", "expect_any"} <= set(row), row
        assert isinstance(row["question"], str) and row["question"].strip()
        assert set(row["relevant"]) <= doc_ids, row["id"]
        if row["answerable"]:
            assert row["relevant"] and row["expect_any"], row["id"]
        else:
            assert row["relevant"] == [] and row["expect_any"] == [], row["id"]
    answerable = [r for r in rows if r["answerable"]]
    assert len(answerable) >= 70 and len(rows) - len(answerable) >= 20


def test_contract_question_gets_a_cited_verbatim_answer(corpus_service: AssistantService):
    response = corpus_service.answer(AnswerRequest(question="how do we define Cx Quality Faults?"))
    assert not response.abstained and response.citations
    col = corpus_service.store.get_collection(corpus_service.settings.collection)
    for c in response.citations:
        stored = col.get(ids=[c.chunk_id], include=["documents"])["documents"][0]
        assert c.quote in stored
        assert f"[{c.n}]" in response.answer
