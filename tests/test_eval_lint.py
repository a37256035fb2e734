"""`eval lint`: the committed suites are consistent with the sample corpus (so `make test`
lints them), each check catches what it is for, and feedback drafts pass once filled."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO

from assistant import evaluation as ev
from assistant.eval_lint import collection_texts, lint_suite, summary
from assistant.feedback import FeedbackStore
from assistant.schemas import AnswerRequest, FeedbackRequest
from assistant.service import AssistantService

SUITES = sorted((REPO / "eval" / "suites").glob("*.jsonl"))


def test_documents_are_rebuilt_exactly_from_their_chunks(corpus_service: AssistantService
                                                         ) -> None:
    docs = collection_texts(corpus_service)
    text = docs["articles/cx-quality-faults.md"]
    assert text.startswith("# Defining Cx Quality Faults")
    detail = corpus_service.document("articles/cx-quality-faults.md")
    for chunk in detail.chunks:
        assert text[chunk.start:chunk.end] == chunk.text


@pytest.mark.parametrize("suite", SUITES, ids=[p.name for p in SUITES])
def test_committed_suite_is_consistent_with_the_corpus(corpus_service: AssistantService,
                                                       suite: Path) -> None:
    questions = ev.load_suite(suite)
    findings = lint_suite(corpus_service, questions)
    assert findings == [], "\n".join(f"{f.id}: {f.check}: {f.message}" for f in findings)


def test_each_check_finds_what_it_is_for(corpus_service: AssistantService) -> None:
    by_id = {q.id: q for q in ev.load_suite(REPO / "eval" / "suites" / "cx_golden.jsonl")}
    good, other, unanswerable = by_id["art-001"], by_id["art-002"], by_id["un-001"]
    faults = "articles/cx-quality-faults.md"
    verbatim = "the ratio of recorded faults to formal complaints has ranged from roughly 8:1"
    questions = [
        good,
        good.model_copy(update={"id": "dup-id"}),  # the same wording as art-001
        good.model_copy(update={"id": "dup-id", "question": good.question + " Briefly."}),
        other.model_copy(update={"relevant": [faults, "articles/renamed.md"]}),
        other.model_copy(update={"id": "phrase", "question": "Which two tests define a fault?",
                                 "expect_any": ["40 to 60", "zebra crossing"],
                                 "gold_quotes": ["A sentence the document never says."]}),
        other.model_copy(update={"id": "draft", "question": "Why do faults matter to us?",
                                 "expect_any": []}),
        unanswerable.model_copy(update={"id": "unans-rel", "relevant": [faults]}),
        unanswerable.model_copy(update={"id": "unans-verbatim",
                                        "question": verbatim.capitalize() + "?"}),
    ]
    found = {(f.id, f.check) for f in lint_suite(corpus_service, questions)}
    assert found == {
        ("dup-id", "duplicate"), ("dup-id", "id"),
        ("art-002", "relevant"),
        ("phrase", "expect_any"), ("phrase", "gold_quote"),
        ("draft", "shape"),
        ("unans-rel", "shape"),
        ("unans-verbatim", "verbatim"),
    }
    messages = [f.message for f in lint_suite(corpus_service, questions)]
    assert any("the same question as art-001" in m for m in messages)
    assert any("near-duplicate (cosine" in m for m in messages)
    assert any("'zebra crossing'" in m for m in messages)
    assert not any("'40 to 60'" in m for m in messages)  # that one is in the document
    report = summary(lint_suite(corpus_service, [good]), 1)
    assert report == {"n": 1, "ok": True, "counts": {}, "findings": []}


def test_feedback_export_passes_the_linter_once_expect_any_is_filled(
        corpus_service: AssistantService, tmp_path: Path) -> None:
    question = "On a first engagement, how many distinct fault types do we find per journey?"
    answer = corpus_service.answer(AnswerRequest(question=question))
    assert answer.citations
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    store.add(FeedbackRequest(question=question, answer=answer.answer, rating="down",
                              citations=[c.model_dump() for c in answer.citations],
                              comment="Give the range we consolidate to as well."))
    lines = store.export_suite()
    drafts = [ev.SuiteQuestion.model_validate(line) for line in lines]
    assert [(f.check, f.message) for f in lint_suite(corpus_service, drafts)] == [
        ("shape", "answerable but no expect_any phrases")]
    filled = [d.model_copy(update={"expect_any": ["40 to 60"]}) for d in drafts]
    assert "articles/cx-quality-faults.md" in filled[0].relevant
    assert lint_suite(corpus_service, filled) == []
