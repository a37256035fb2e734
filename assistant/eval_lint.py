"""`eval lint`: is a suite consistent with the collection it is run over?

A suite that points at a renamed document, expects a phrase no relevant document contains, or
asks the same thing twice measures the suite, not the assistant. Each finding names the
question and the check:

- `id`: two questions share an id;
- `shape`: an answerable question without relevant documents or `expect_any` phrases (the
  feedback export's drafts, until a maintainer fills them), or an unanswerable one with some;
- `relevant`: a relevant doc_id is not in the collection;
- `expect_any` / `gold_quote`: a phrase or gold sentence occurs in none of the question's
  relevant documents (compared as the answer scoring does: case, whitespace and markdown
  emphasis aside);
- `duplicate`: two questions are the same or nearly so (cosine of their embeddings at least
  `NEAR_DUPLICATE`);
- `verbatim`: an unanswerable question whose wording occurs in a document, so the corpus may
  answer it after all.

Documents are rebuilt from their stored chunks (each chunk is its text's `start:end` slice),
so the suite is checked against what the assistant actually holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.eval_suite import SuiteQuestion
from assistant.evaluation import span_text

if TYPE_CHECKING:  # the service is passed in: evaluation sits below it
    from assistant.service import AssistantService

# Measured with all-MiniLM-L6-v2: the phrasing suite's rewordings of golden questions sit at
# cosine 0.88-0.99 from their originals (10th percentile 0.88, median 0.96), while the most
# similar two different questions within any committed suite reach 0.78.
NEAR_DUPLICATE = 0.9


@dataclass
class Finding:
    id: str
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def collection_texts(service: AssistantService, collection: str | None = None
                     ) -> dict[str, str]:
    """doc_id → the document's text, rebuilt from the chunks readers see."""
    snapshot = service.retriever(collection)
    chunks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for text, meta in zip(snapshot.bm25.texts, snapshot.bm25.metadatas, strict=True):
        chunks[str(meta.get("doc_id", ""))].append((int(meta.get("start", 0) or 0), text))
    docs = {}
    for doc_id, parts in chunks.items():
        out = ""
        for start, text in sorted(parts):
            out = out[:start].ljust(start) + text  # overlapping chunks repeat the same text
        docs[doc_id] = out
    return docs


def _shape(q: SuiteQuestion) -> list[str]:
    if q.answerable and not q.relevant:
        return ["answerable but no relevant documents"]
    if q.answerable and not q.expect_any:
        return ["answerable but no expect_any phrases"]
    if not q.answerable and (q.relevant or q.expect_any or q.gold_quotes):
        return ["unanswerable but lists relevant documents, expect_any or gold_quotes"]
    return []


def _content(q: SuiteQuestion, docs: dict[str, str], spans: dict[str, str]) -> list[Finding]:
    """Relevant ids present, phrases and gold sentences inside a relevant document."""
    out = [Finding(q.id, "relevant", f"relevant document not in the collection: {d}")
           for d in q.relevant if d not in docs]
    texts = [spans[d] for d in q.relevant if d in spans]
    if not texts:
        return out
    for check, items in (("expect_any", q.expect_any), ("gold_quote", q.gold_quotes)):
        for item in items:
            if not any(span_text(item) in text for text in texts):
                out.append(Finding(q.id, check, f"{item!r} occurs in no relevant document"))
    return out


def _duplicates(service: AssistantService, questions: list[SuiteQuestion],
                threshold: float) -> list[Finding]:
    """Pairs of questions whose wording is the same or whose embeddings nearly are."""
    if len(questions) < 2:
        return []
    vectors = service.embedder.encode([q.question for q in questions])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similar = np.triu(vectors @ vectors.T, k=1)
    out = []
    for i, j in zip(*np.nonzero(similar >= threshold), strict=True):
        a, b = questions[int(i)], questions[int(j)]
        same = span_text(a.question) == span_text(b.question)
        what = "the same question as" if same else \
            f"a near-duplicate (cosine {similar[i, j]:.3f}) of"
        out.append(Finding(b.id, "duplicate", f"{what} {a.id}"))
    return out


def _verbatim(q: SuiteQuestion, spans: dict[str, str]) -> list[Finding]:
    wording = span_text(q.question).rstrip("?.! ")
    hits = [d for d, text in spans.items() if wording and wording in text]
    return [Finding(q.id, "verbatim", f"unanswerable, but its wording occurs in {hits[0]}"
                    + (f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""))] if hits else []


def lint_suite(service: AssistantService, questions: list[SuiteQuestion],
               collection: str | None = None, threshold: float = NEAR_DUPLICATE
               ) -> list[Finding]:
    """Every inconsistency between the suite and the collection (empty: the suite is fine)."""
    docs = collection_texts(service, collection)
    spans = {d: span_text(text) for d, text in docs.items()}
    findings: list[Finding] = []
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            findings.append(Finding(q.id, "id", "the id is used by an earlier question"))
        seen.add(q.id)
        findings += [Finding(q.id, "shape", m) for m in _shape(q)]
        findings += _content(q, docs, spans)
        if not q.answerable:
            findings += _verbatim(q, spans)
    return findings + _duplicates(service, questions, threshold)


def summary(findings: list[Finding], n: int) -> dict[str, Any]:
    """The `--json` body: counts per check and every finding."""
    counts: dict[str, int] = defaultdict(int)
    for f in findings:
        counts[f.check] += 1
    return {"n": n, "ok": not findings, "counts": dict(counts),
            "findings": [f.as_dict() for f in findings]}
