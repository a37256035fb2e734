"""Evaluation: run a question suite or a BEIR data set through the service and score it.

Suite metrics are document-level (a document's rank is its best chunk's) and computed by
ir-measures (assistant/ranking.py); answer metrics check what a user would see: did it
answer or abstain correctly, does every [n] resolve and every quote appear verbatim in its
stored chunk, are the cited documents relevant, does the answer contain an expected phrase.

Questions may carry `gold_quotes` (verbatim sentences that answer them): the answer is then
scored by span overlap with them (`gold_quote_recall`, `answer_precision`). A question's
`split` ("dev" or "test", see `assign_split`) divides the golden suite so that tuning on the
dev half can be checked on a test half nobody looked at.
"""

from __future__ import annotations

import difflib
import re
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering import _MARKER
from assistant.boilerplate import is_boilerplate
from assistant.eval_gates import (  # noqa: F401 (re-exported: the gate's old home)
    BEIR_KEYS,
    COUNT_KEYS,
    LOWER_IS_BETTER,
    check_gates,
    compare,
    flat_metrics,
    load_report,
    parse_gates,
    regressions,
)
from assistant.eval_suite import (  # noqa: F401 (re-exported: the suite format's old home)
    ANSWER_KEYS,
    GOLD_KEYS,
    KS,
    RETRIEVAL_KEYS,
    SPLITS,
    SuiteError,
    SuiteQuestion,
    assign_split,
    load_suite,
    select_split,
)
from assistant.ranking import score_one
from assistant.retrieval import RetrieverMode, best_per_document
from assistant.schemas import AnswerRequest, AnswerResponse

if TYPE_CHECKING:  # the service is passed in: evaluation sits below it
    from assistant.service import AssistantService

_EMPHASIS = re.compile(r"\*\*|__|`")


def span_text(text: str) -> str:
    """Text as compared for span overlap: markdown emphasis stripped, whitespace collapsed,
    case folded."""
    return " ".join(_EMPHASIS.sub("", text).split()).casefold()


def quotes_overlap(a: str, b: str) -> bool:
    """Overlap by span: the two share a common substring at least half as long as the shorter
    of them (after `span_text`). A citation quoting a longer sentence that contains a gold
    sentence overlaps it; two sentences sharing a few words do not."""
    x, y = span_text(a), span_text(b)
    if not x or not y:
        return False
    match = difflib.SequenceMatcher(None, x, y, autojunk=False).find_longest_match(
        0, len(x), 0, len(y))
    return 2 * match.size >= min(len(x), len(y))


def gold_scores(quotes: list[str], gold: list[str], abstained: bool) -> dict[str, Any]:
    """One answer against its gold quotes.

    `gold_matched[i]`: gold quote i is overlapped by some cited quote; `gold_quote_recall`:
    the share of gold quotes matched (an abstention scores 0); `quote_gold[j]`: cited quote j
    overlaps some gold quote; `answer_precision`: the share of cited quotes that do (None for
    an abstention or an answer without quotes, which are left out of the mean).
    """
    quotes = [] if abstained else quotes
    matched = [any(quotes_overlap(q, g) for q in quotes) for g in gold]
    on_gold = [any(quotes_overlap(q, g) for g in gold) for q in quotes]
    return {
        "gold_matched": matched,
        "gold_quote_recall": sum(matched) / len(gold) if gold else None,
        "quote_gold": on_gold,
        "answer_precision": sum(on_gold) / len(on_gold) if gold and on_gold else None,
    }


def retrieval_metrics(retrieved: list[str], relevant: list[str]) -> dict[str, float]:
    """hit@k, recall@k, MRR@10 and nDCG@10 for one question (ir-measures, binary grades)."""
    return score_one(retrieved, dict.fromkeys(relevant, 1), RETRIEVAL_KEYS)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def evaluate_suite(
    service: AssistantService,
    questions: list[SuiteQuestion],
    collection: str | None = None,
    mode: RetrieverMode = "hybrid",
) -> dict[str, Any]:
    """Run every question through search and answer; return aggregate and per-question rows.

    Retrieval is scored on the chunks the answer read (`service.evidence`), and citations
    are checked against those same chunks' text.
    """
    rows: list[dict[str, Any]] = []
    for q in questions:
        request = AnswerRequest(question=q.question, collection=collection)
        started = time.perf_counter()
        evidence = service.evidence(request, mode)
        response = service.answer(request, mode, evidence)
        latency = (time.perf_counter() - started) * 1000
        retrieved = [c.doc_id for c in best_per_document(evidence.chunks, 10)]
        cited = [c.doc_id for c in response.citations]
        quotes = [c.quote for c in response.citations]
        citations: list[dict[str, Any]] = [{"n": c.n, "doc_id": c.doc_id, "quote": c.quote}
                                           for c in response.citations]
        row: dict[str, Any] = {
            "id": q.id, "kind": q.kind, "split": q.split, "question": q.question,
            "answerable": q.answerable, "relevant": q.relevant, "retrieved": retrieved,
            "cited": cited, "abstained": response.abstained, "answer": response.answer,
            "latency_ms": round(latency, 1),
            "citation_valid": _citations_valid(response, evidence.texts()),
            "citations": citations,
            "boilerplate": [quote for quote in quotes if is_boilerplate(quote)],
            "gold_quotes": q.gold_quotes if q.answerable else [],
        }
        if q.answerable:
            row.update(retrieval_metrics(retrieved, q.relevant))
            text = response.answer.lower()
            row["expect_any"] = any(p.lower() in text for p in q.expect_any) and \
                not response.abstained
            unique = set(cited)
            row["citation_precision"] = (len(unique & set(q.relevant)) / len(unique)
                                         if unique else None)
            if q.gold_quotes:
                scores = gold_scores(quotes, q.gold_quotes,
                                     response.abstained)
                for citation, on_gold in zip(citations, scores.pop("quote_gold"),
                                             strict=False):
                    citation["gold"] = on_gold
                row.update(scores)
        row["correct_decision"] = response.abstained != q.answerable
        rows.append(row)
    result = {"n": len(rows), "retriever": mode, **aggregate(rows)}
    present = [s for s in SPLITS if any(r["split"] == s for r in rows)]
    if present:
        result["splits"] = {}
        for s in present:
            subset = [r for r in rows if r["split"] == s]
            result["splits"][s] = {"n": len(subset), **aggregate(subset)}
    return {**result, "questions": rows}


def _citations_valid(response: AnswerResponse, texts: dict[str, str]) -> bool:
    """Every [n] resolves to a citation and every quote is verbatim in the chunk it names
    (`texts`: chunk id → text of the chunks the answer read)."""
    numbers = {c.n for c in response.citations}
    if any(int(m) not in numbers for m in _MARKER.findall(response.answer)):
        return False
    return all(c.quote in texts.get(c.chunk_id, "") for c in response.citations)


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    abstained = [r for r in rows if r["abstained"]]
    latencies = sorted(r["latency_ms"] for r in rows)
    precision = [r["citation_precision"] for r in answerable
                 if r.get("citation_precision") is not None]
    retrieval = {k: mean([r[k] for r in answerable]) for k in RETRIEVAL_KEYS}
    answers = {
        "answered_rate": mean([0.0 if r["abstained"] else 1.0 for r in answerable]),
        "abstain_precision": mean([0.0 if r["answerable"] else 1.0 for r in abstained])
        if abstained else 1.0,
        "abstain_recall": mean([1.0 if r["abstained"] else 0.0 for r in unanswerable])
        if unanswerable else 1.0,
        "citation_validity": mean([1.0 if r["citation_valid"] else 0.0 for r in rows]),
        "citation_precision": mean(precision),
        "expect_any": mean([1.0 if r["expect_any"] else 0.0 for r in answerable]),
        "latency_ms_p50": round(percentile(latencies, 50), 1),
        "latency_ms_p95": round(percentile(latencies, 95), 1),
        "boilerplate_answers": sum(1 for r in rows if r.get("boilerplate")),
    }
    gold = [r for r in answerable if r.get("gold_quotes")]
    answers["gold_n"] = len(gold)
    if gold:
        answers["gold_quote_recall"] = mean([r["gold_quote_recall"] for r in gold])
        answers["answer_precision"] = mean([r["answer_precision"] for r in gold
                                            if r.get("answer_precision") is not None])
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted({str(r["kind"]) for r in rows if r["kind"]}):
        subset = [r for r in rows if r["kind"] == kind]
        by_kind[kind] = {"n": len(subset),
                         "correct_decision": mean([float(r["correct_decision"]) for r in subset])}
        if all(r["answerable"] for r in subset):
            by_kind[kind]["hit@5"] = mean([r["hit@5"] for r in subset])
            by_kind[kind]["expect_any"] = mean([float(r["expect_any"]) for r in subset])
    return {"retrieval": retrieval, "answers": answers, "by_kind": by_kind}


def evaluate_beir(
    service: AssistantService,
    directory: Path,
    mode: RetrieverMode = "hybrid",
    split: str = "test",
    progress: Any = None,
    depth: int = 100,
) -> dict[str, Any]:
    """Ingest a BEIR corpus into its own collection (re-used when unchanged), score a run.

    `per_query` keeps each judged query's scores and top ten, for `eval compare`."""
    from assistant.beir import load_beir, mean_scores, score_queries

    dataset = load_beir(directory, split)
    collection = "beir-" + re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.name).strip("-._")[:40]
    started = time.perf_counter()
    summary = service.ingest_records(f"beir:{dataset.name}", dataset.corpus, collection,
                                     progress=progress)
    ingest_seconds = time.perf_counter() - started
    run, latencies = {}, []
    k = max(service.settings.candidate_k, depth * 3)
    for qid, text in dataset.queries.items():
        t0 = time.perf_counter()
        chunks = service.retrieve(text, collection, k, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        run[qid] = [c.doc_id for c in best_per_document(chunks, depth)]
    latencies.sort()
    per = score_queries(run, dataset.qrels)
    return {
        "dataset": dataset.name, "split": split, "retriever": mode, "collection": collection,
        "docs": len(dataset.corpus), "queries": len(dataset.queries), **mean_scores(per),
        "chunks": summary.chunks, "embedded_chunks": summary.embedded_chunks,
        "ingest_seconds": round(ingest_seconds, 1),
        "search_ms_p50": round(percentile(latencies, 50), 1),
        "search_ms_p95": round(percentile(latencies, 95), 1),
        "per_query": [{"id": qid, "question": dataset.queries.get(qid, ""),
                       "relevant": [d for d, g in dataset.qrels[qid].items() if g > 0],
                       "retrieved": [d for d in run.get(qid, []) if d != qid][:10],
                       **{m: round(v, 6) for m, v in scores.items()}}
                      for qid, scores in per.items()],
    }
