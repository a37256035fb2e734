"""FinanceBench as a public answer benchmark: cited answers over company-filing pages.

`cx-assistant eval --financebench DIR` reads the data set where it lies (it is CC BY-NC and
is never copied into the repository): `DIR/pages/*.txt` (one file per gold evidence page; its
file name is its `doc_id`) is ingested into its own collection, `financebench` (incremental,
so an unchanged directory costs no embedding), and every question of `DIR/suite.jsonl` goes
through the real `service.answer` and, for search, `service.retrieve`. Per question:

- `abstained`;
- `cites_gold_page`: some citation's `doc_id` is one of the question's gold pages (`relevant`);
- `quote_in_gold_evidence`: some cited quote, whitespace-normalised (runs of whitespace
  collapsed to one space, ends stripped), is contained in some whitespace-normalised
  `evidence_text` string (the page text is PDF-extracted, with line breaks inside sentences);
- `gold_page_quote_in_evidence`: the same, counting only citations of a gold page. Short
  table labels ("Cash flows from operating activities:") recur across a company's filings, so
  a quote from another year's page can lie inside the gold evidence by coincidence; this
  stricter figure does not count those;
- `hit@5`: a gold page among the five best documents (document level, a document ranked by its
  best chunk, as `evaluate_suite` does);
- answer latency.

Rates are over all questions (an abstention counts as neither citing nor quoting gold), overall
and by `question_type`.

Entity-swapped negatives are generated at run time and never stored: in each question the
company's name (the `company` of its document in `financebench_document_information.jsonl`,
its spelling without hyphens or spaces, and the company part of `doc_name`: "3M" from
`3M_2018_10K`, matched as a whole word, case-insensitively) is replaced by a fictitious company
that occurs in no page, the rest of the question kept. The knowledge base then holds nothing
about the company asked about, so the right answer is an abstention: `swapped_abstained` is the
share that abstain. Questions that name the company only by a nickname ("JnJ", "JPM") or not
at all are skipped and counted (`swapped.skipped`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.evaluation import percentile
from assistant.report import bar_chart, escape, histogram, page_head

if TYPE_CHECKING:
    from collections.abc import Iterable

COLLECTION = "financebench"
# Invented names, none of which occurs in a FinanceBench page or question (checked at run time:
# a name found in any page is dropped from the pool; an empty pool is an error).
FICTITIOUS = ("Veltrona", "Quarnwell", "Obrisca", "Talvexa", "Zentravik", "Kelsoria")
ANSWER_KEYS = ("abstained_rate", "cites_gold_page", "quote_in_gold_evidence",
               "gold_page_quote_in_evidence")
TYPE_KEYS = ("n", *ANSWER_KEYS, "hit@5", "latency_ms_p50", "latency_ms_p95", "swapped_usable",
             "swapped_abstained")


class FinanceBenchError(ValueError):
    """The directory is not a usable FinanceBench directory; the message says what is wrong."""


@dataclass
class FinanceQuestion:
    id: str
    question: str
    relevant: list[str]
    question_type: str
    doc_name: str
    gold_answer: str = ""
    evidence_text: list[str] = field(default_factory=list)
    company: str | None = None


@dataclass
class FinanceBench:
    directory: Path
    pages: Path
    questions: list[FinanceQuestion]


def load_financebench(directory: Path) -> FinanceBench:
    directory = Path(directory)
    suite, pages = directory / "suite.jsonl", directory / "pages"
    missing = [str(p) for p in (suite, pages) if not p.exists()]
    if missing:
        raise FinanceBenchError(f"not a FinanceBench directory, missing: {', '.join(missing)}")
    companies: dict[str, str] = {}
    info = directory / "financebench_document_information.jsonl"
    if info.is_file():
        for line in info.read_text("utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("doc_name") and item.get("company"):
                    companies[item["doc_name"]] = item["company"]
    questions = []
    for n, line in enumerate(suite.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            questions.append(FinanceQuestion(
                id=str(item["id"]), question=item["question"], relevant=list(item["relevant"]),
                question_type=item.get("question_type") or "unknown",
                doc_name=item.get("doc_name") or "", gold_answer=item.get("gold_answer") or "",
                evidence_text=list(item.get("evidence_text") or []),
                company=companies.get(item.get("doc_name") or ""),
            ))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FinanceBenchError(f"{suite}:{n}: {type(exc).__name__}: {exc}") from None
    if not questions:
        raise FinanceBenchError(f"{suite} has no questions")
    return FinanceBench(directory, pages, questions)


# -- text checks --

def normalise_ws(text: str) -> str:
    """Every run of whitespace as one space, ends stripped."""
    return " ".join(text.split())


def quote_in_evidence(quotes: list[str], evidence: list[str]) -> bool:
    """Some non-empty quote, whitespace-normalised, lies inside some normalised evidence text."""
    texts = [normalise_ws(e) for e in evidence]
    return any(q and any(q in t for t in texts) for q in map(normalise_ws, quotes))


# -- entity swap --

def company_names(doc_name: str, company: str | None) -> list[str]:
    """The spellings of the company a question may use, longest first."""
    names = set()
    if company:
        names |= {company, company.replace("-", " "), re.sub(r"[^A-Za-z0-9&]+", "", company)}
    prefix = re.match(r"(.+?)_(?:\d{4}|\d{4}Q\d)(?:_|$)", doc_name)
    if prefix:
        names.add(prefix.group(1).replace("_", " "))
    return sorted((n for n in names if len(n) >= 2), key=lambda n: (-len(n), n))


def _name_pattern(names: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def mentions(text: str, names: list[str]) -> bool:
    return bool(names) and _name_pattern(names).search(text) is not None


def swap_company(question: str, names: list[str], fictitious: str) -> str | None:
    """The question with every mention of the company replaced, or None if it names none."""
    if not names or not mentions(question, names):
        return None
    return _name_pattern(names).sub(fictitious, question)


def fictitious_pool(pages: Path, extra_texts: Iterable[str] = ()) -> list[str]:
    """The invented names that occur (case-insensitively) in no page and no given text."""
    corpus = [p.read_text("utf-8", errors="replace").lower() for p in sorted(pages.rglob("*"))
              if p.is_file()]
    corpus += [t.lower() for t in extra_texts]
    pool = [n for n in FICTITIOUS if not any(n.lower() in text for text in corpus)]
    if not pool:
        raise FinanceBenchError("every fictitious company name occurs in the pages")
    return pool


# -- metrics --

def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """n, rates and latency percentiles of answer rows (all questions are answerable)."""
    latencies = sorted(r["latency_ms"] for r in rows)
    return {
        "n": len(rows),
        "abstained_rate": _mean([float(r["abstained"]) for r in rows]),
        "cites_gold_page": _mean([float(r["cites_gold_page"]) for r in rows]),
        "quote_in_gold_evidence": _mean([float(r["quote_in_gold_evidence"]) for r in rows]),
        "gold_page_quote_in_evidence": _mean([float(r["gold_page_quote_in_evidence"])
                                              for r in rows]),
        "hit@5": _mean([float(r["hit@5"]) for r in rows]),
        "latency_ms_p50": round(percentile(latencies, 50), 1),
        "latency_ms_p95": round(percentile(latencies, 95), 1),
    }


def aggregate(rows: list[dict[str, Any]], swapped: list[dict[str, Any]],
              skipped: int) -> dict[str, Any]:
    """The report's metric groups from per-question rows and swapped-question rows."""
    overall = summarise(rows)
    swapped_abstained = _mean([float(r["abstained"]) for r in swapped])
    by_type: dict[str, dict[str, Any]] = {}
    for kind in sorted({r["question_type"] for r in rows}):
        subset = summarise([r for r in rows if r["question_type"] == kind])
        negatives = [r for r in swapped if r["question_type"] == kind]
        subset["swapped_usable"] = len(negatives)
        subset["swapped_abstained"] = _mean([float(r["abstained"]) for r in negatives])
        by_type[kind] = subset
    latencies = sorted(r["latency_ms"] for r in swapped)
    return {
        "n": overall["n"],
        "retrieval": {"hit@5": overall["hit@5"]},
        "answers": {**{k: overall[k] for k in ANSWER_KEYS},
                    "swapped_abstained": swapped_abstained,
                    "latency_ms_p50": overall["latency_ms_p50"],
                    "latency_ms_p95": overall["latency_ms_p95"]},
        "swapped": {"usable": len(swapped), "skipped": skipped,
                    "swapped_abstained": swapped_abstained,
                    "latency_ms_p50": round(percentile(latencies, 50), 1),
                    "latency_ms_p95": round(percentile(latencies, 95), 1)},
        "by_question_type": by_type,
    }


# -- the run --

def evaluate_financebench(
    service: Any,
    directory: Path,
    collection: str | None = None,
    mode: str = "hybrid",
    progress: Any = None,
) -> dict[str, Any]:
    """Ingest DIR/pages into its own collection, answer every question and its swapped twin."""
    from assistant.retrieval import best_per_document
    from assistant.schemas import AnswerRequest

    bench = load_financebench(directory)
    collection = collection or COLLECTION
    started = time.perf_counter()
    summary = service.ingest([bench.pages], collection)
    ingest_seconds = time.perf_counter() - started
    pool = fictitious_pool(bench.pages, [q.question for q in bench.questions])

    def ask(question: str) -> tuple[Any, float]:
        t0 = time.perf_counter()
        response = service.answer(AnswerRequest(question=question, collection=collection),
                                  mode=mode)
        return response, round((time.perf_counter() - t0) * 1000, 1)

    rows: list[dict[str, Any]] = []
    swapped: list[dict[str, Any]] = []
    skipped = 0
    total = len(bench.questions)
    for i, q in enumerate(bench.questions):
        chunks = service.retrieve(q.question, collection, service.settings.candidate_k,
                                  mode=mode)
        retrieved = [c.doc_id for c in best_per_document(chunks, 10)]
        response, latency = ask(q.question)
        cited = [c.doc_id for c in response.citations]
        quotes = [c.quote for c in response.citations]
        rows.append({
            "id": q.id, "question_type": q.question_type, "doc_name": q.doc_name,
            "question": q.question, "relevant": q.relevant, "retrieved": retrieved,
            "hit@5": any(d in q.relevant for d in retrieved[:5]),
            "abstained": response.abstained, "answer": response.answer,
            "cited": cited, "quotes": quotes,
            "cites_gold_page": any(d in q.relevant for d in cited),
            "quote_in_gold_evidence": quote_in_evidence(quotes, q.evidence_text),
            "gold_page_quote_in_evidence": quote_in_evidence(
                [c.quote for c in response.citations if c.doc_id in q.relevant],
                q.evidence_text),
            "gold_answer": q.gold_answer, "latency_ms": latency,
        })
        names = company_names(q.doc_name, q.company)
        fictitious = pool[i % len(pool)]
        question = swap_company(q.question, names, fictitious)
        if question is None or mentions(question, names):
            skipped += 1
        else:
            response, latency = ask(question)
            swapped.append({
                "id": q.id, "question_type": q.question_type, "company": q.company,
                "fictitious": fictitious, "question": question,
                "abstained": response.abstained, "answer": response.answer,
                "cited": [c.doc_id for c in response.citations], "latency_ms": latency,
            })
        if progress is not None:
            progress(i + 1, total)
    return {
        "dataset": "financebench", "retriever": mode, "collection": collection,
        "docs": summary.documents, "chunks": summary.chunks,
        "embedded_chunks": summary.embedded_chunks, "skipped_files": len(summary.skipped),
        "ingest_seconds": round(ingest_seconds, 1),
        **aggregate(rows, swapped, skipped),
        "questions": rows, "swapped_questions": swapped,
    }


# -- HTML report --

_CSS = ".yes{color:#17753a;font-weight:600}.no{color:#b3261e;font-weight:600}"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(value)}</td>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any], title: str = "FinanceBench evaluation") -> str:
    """The report as one self-contained HTML page; every value from the data is escaped."""
    out = [page_head(title, _CSS)]
    meta = {k: v for k, v in report.items() if isinstance(v, str | int | float)}
    out.append(_table(["field", "value"], [[k, v] for k, v in meta.items()]))
    overall = {**report.get("retrieval", {}), **report.get("answers", {})}
    out.append("<h2>Overall</h2>" + _table(["metric", "value"], [[k, v] for k, v in
                                                                  overall.items()]))
    swapped = report.get("swapped") or {}
    out.append("<h2>Entity-swapped negatives</h2>"
               "<p class='small'>Each question with its company replaced by a fictitious one "
               "that occurs in no page; the right answer is an abstention.</p>"
               + _table(["metric", "value"], [[k, v] for k, v in swapped.items()]))
    by_type = report.get("by_question_type") or {}
    if by_type:
        out.append("<h2>By question type</h2>" + _table(
            ["question type", *TYPE_KEYS],
            [[kind, *[m.get(k, "") for k in TYPE_KEYS]] for kind, m in by_type.items()]))
    if report.get("ablation"):
        keys = sorted({k for r in report["ablation"].values() for k in r})
        out.append("<h2>Ablation</h2>" + _table(["retriever", *keys], [
            [mode, *[m.get(k, "") for k in keys]] for mode, m in report["ablation"].items()]))
    if report.get("comparison"):
        out.append("<h2>Against the baseline</h2>" + _table(
            ["metric", "baseline", "current", "delta"],
            [[k, c["baseline"], c["current"], c["delta"]]
             for k, c in report["comparison"].items()]))
    if report.get("gate_failures") is not None:
        fails = report["gate_failures"]
        out.append("<h2>Gate</h2>" + ("<p class='yes'>all gates pass</p>" if not fails else
                   "<ul>" + "".join(f"<li class='no'>{escape(f)}</li>" for f in fails) + "</ul>"))
    questions = report.get("questions") or []
    if questions:
        lat = [q["latency_ms"] for q in questions]
        out.append("<h2>Answer latency (ms)</h2>" + bar_chart(histogram(lat), "latency"))
        out.append("<h2>Questions</h2>" + _table(
            ["id", "question type", "abstained", "cites gold", "quote in evidence",
             "gold-page quote in evidence", "hit@5", "ms", "question", "answer", "gold answer"],
            [[q["id"], q["question_type"], q["abstained"], q["cites_gold_page"],
              q["quote_in_gold_evidence"], q["gold_page_quote_in_evidence"], q["hit@5"],
              q["latency_ms"], q["question"],
              q["answer"], q.get("gold_answer", "")] for q in questions]))
    negatives = report.get("swapped_questions") or []
    if negatives:
        out.append("<h2>Swapped questions</h2>" + _table(
            ["id", "question type", "fictitious", "abstained", "cited", "ms", "question",
             "answer"],
            [[q["id"], q["question_type"], q["fictitious"], q["abstained"],
              ", ".join(dict.fromkeys(q["cited"])) or "-", q["latency_ms"], q["question"],
              q["answer"]] for q in negatives]))
    out.append("</body></html>")
    return "".join(out)
