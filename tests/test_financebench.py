"""FinanceBench answer benchmark: metric arithmetic, quote containment, the entity swap, and
`eval --financebench` end to end with the real service on a small subset.

The data set is read where it lies (`../shared/datasets/financebench`, or FINANCEBENCH_DIR);
it is CC BY-NC and never copied into the repository. Subsets are built under tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO
from helpers.processes import CLI

from assistant import financebench as fb
from assistant.service import AssistantService
from assistant.settings import load_settings

FB_DIR = Path(os.environ.get("FINANCEBENCH_DIR") or REPO.parent / "shared" / "datasets" /
              "financebench")
needs_data = pytest.mark.skipif(
    not (FB_DIR / "suite.jsonl").is_file() or not (FB_DIR / "pages").is_dir(),
    reason=f"FinanceBench data set not found at {FB_DIR} (set FINANCEBENCH_DIR)")


def _row(kind: str, abstained: bool, gold: bool, quote: bool, hit: bool, ms: float,
         strict: bool | None = None) -> dict:
    return {"question_type": kind, "abstained": abstained, "cites_gold_page": gold,
            "quote_in_gold_evidence": quote, "hit@5": hit, "latency_ms": ms,
            "gold_page_quote_in_evidence": quote if strict is None else strict}


def test_metric_arithmetic_on_known_rows() -> None:
    rows = [_row("a", False, True, True, True, 10.0), _row("a", False, True, False, True, 20.0),
            _row("a", True, False, False, False, 30.0),
            _row("b", False, False, True, True, 40.0, strict=False)]
    swapped = [{"question_type": "a", "abstained": True, "latency_ms": 5.0},
               {"question_type": "a", "abstained": False, "latency_ms": 7.0},
               {"question_type": "b", "abstained": True, "latency_ms": 9.0}]
    got = fb.aggregate(rows, swapped, skipped=1)
    assert got["n"] == 4
    assert got["retrieval"] == {"hit@5": 0.75}
    answers = got["answers"]
    assert answers["abstained_rate"] == 0.25
    assert answers["cites_gold_page"] == 0.5
    assert answers["quote_in_gold_evidence"] == 0.5
    assert answers["gold_page_quote_in_evidence"] == 0.25
    assert answers["swapped_abstained"] == 0.6667  # 2 of 3
    # inclusive quantiles of 10, 20, 30, 40: p50 = 25, p95 = 10 + 0.95 * 3 * 10 = 38.5
    assert (answers["latency_ms_p50"], answers["latency_ms_p95"]) == (25.0, 38.5)
    assert got["swapped"] == {"usable": 3, "skipped": 1, "swapped_abstained": 0.6667,
                              "latency_ms_p50": 7.0, "latency_ms_p95": 8.8}
    a, b = got["by_question_type"]["a"], got["by_question_type"]["b"]
    assert (a["n"], a["abstained_rate"], a["cites_gold_page"], a["quote_in_gold_evidence"],
            a["hit@5"]) == (3, 0.3333, 0.6667, 0.3333, 0.6667)
    assert (a["latency_ms_p50"], a["swapped_usable"], a["swapped_abstained"]) == (20.0, 2, 0.5)
    assert (b["n"], b["abstained_rate"], b["cites_gold_page"], b["quote_in_gold_evidence"],
            b["gold_page_quote_in_evidence"], b["hit@5"]) == (1, 0.0, 0.0, 1.0, 0.0, 1.0)
    assert (b["latency_ms_p50"], b["swapped_usable"], b["swapped_abstained"]) == (40.0, 1, 1.0)
    empty = fb.aggregate([], [], skipped=0)
    assert empty["answers"]["swapped_abstained"] == 0.0 and empty["n"] == 0


def test_whitespace_normalised_containment() -> None:
    assert fb.normalise_ws("  Net\u00a0sales \n\n rose\t 5%  ") == "Net sales rose 5%"
    evidence = ["Table of Contents \n3M Company\nNet sales \n \n$\n12,345 \nrose 3.5%."]
    assert fb.quote_in_evidence(["Net sales $ 12,345 rose"], evidence)
    assert fb.quote_in_evidence(["nothing", "3M  Company\n\nNet sales"], evidence)
    assert not fb.quote_in_evidence(["Net sales $ 12,345 fell"], evidence)
    assert not fb.quote_in_evidence(["net sales"], evidence)  # case matters: verbatim quotes
    assert not fb.quote_in_evidence(["", "  \n "], evidence)  # an empty quote proves nothing
    assert not fb.quote_in_evidence([], evidence)
    assert not fb.quote_in_evidence(["Net sales"], [])


def test_company_names_from_doc_name_and_company() -> None:
    assert fb.company_names("3M_2018_10K", "3M") == ["3M"]
    jnj = fb.company_names("JOHNSON_JOHNSON_2022_10K", "Johnson & Johnson")
    assert "Johnson & Johnson" in jnj and "JOHNSON JOHNSON" in jnj and "JOHNSON" not in jnj
    assert "PFIZER" not in fb.company_names("Pfizer_2023Q2_10Q", "Pfizer")
    assert fb.company_names("Pfizer_2023Q2_10Q", "Pfizer") == ["Pfizer"]
    assert "FootLocker" in fb.company_names("FOOTLOCKER_2022_8K_dated_2022-08-19", "Foot Locker")
    names = fb.company_names("3M_2018_10K", "3M")
    assert fb.swap_company("Is 3M's margin up? Ask 3M.", names, "Veltrona") == \
        "Is Veltrona's margin up? Ask Veltrona."
    assert fb.swap_company("What is the 33M figure?", names, "Veltrona") is None  # whole words
    coke = fb.company_names("COCACOLA_2017_10K", "Coca-Cola")
    assert fb.swap_company("What is Coca Cola's ROA?", coke, "Obrisca") == "What is Obrisca's ROA?"


@needs_data
def test_entity_swap_on_the_real_suite() -> None:
    bench = fb.load_financebench(FB_DIR)
    assert len(bench.questions) == 150
    pool = fb.fictitious_pool(bench.pages, [q.question for q in bench.questions])
    assert pool
    pages = [p.read_text("utf-8").lower() for p in bench.pages.glob("*.txt")]
    assert len(pages) == 168
    for name in pool:  # the fictitious companies occur in no page and no question
        assert not any(name.lower() in page for page in pages), name
        assert not any(name.lower() in q.question.lower() for q in bench.questions), name
    usable = 0
    for i, q in enumerate(bench.questions):
        names = fb.company_names(q.doc_name, q.company)
        assert q.company, q.doc_name
        fictitious = pool[i % len(pool)]
        swapped = fb.swap_company(q.question, names, fictitious)
        if swapped is None:
            assert not fb.mentions(q.question, names)
            continue
        usable += 1
        assert not fb.mentions(swapped, names), swapped
        assert fictitious in swapped
        # the rest of the question is kept: only the company's mentions differ
        assert fb._name_pattern(names).sub("\0", q.question) == swapped.replace(fictitious, "\0")
    assert usable >= 120  # 128 today: the rest name the company by a nickname (JnJ, JPM, MGM)


def _subset(root: Path, questions: int = 10, others: int = 3) -> Path:
    """The first questions, their gold pages and a few unrelated pages, under tmp_path."""
    rows = [json.loads(line) for line in (FB_DIR / "suite.jsonl").read_text("utf-8")
            .splitlines() if line.strip()][:questions]
    gold = sorted({p for r in rows for p in r["relevant"]})
    rest = [p.name for p in sorted((FB_DIR / "pages").glob("*.txt")) if p.name not in gold]
    (root / "pages").mkdir(parents=True)
    for name in gold + rest[:: max(1, len(rest) // others)][:others]:
        shutil.copyfile(FB_DIR / "pages" / name, root / "pages" / name)
    (root / "suite.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    shutil.copyfile(FB_DIR / "financebench_document_information.jsonl",
                    root / "financebench_document_information.jsonl")
    return root


@needs_data
@pytest.mark.slow
def test_eval_financebench_end_to_end(tmp_path: Path) -> None:
    subset, data = _subset(tmp_path / "fb"), tmp_path / "data"
    out, report = tmp_path / "fb.json", tmp_path / "fb.html"
    env = {**os.environ, "CX_DATA_DIR": str(data)}
    run = subprocess.run([str(CLI), "eval", "--financebench", str(subset), "--out", str(out),
                          "--report", str(report), "--fail-under", "retrieval.hit@5=0.5"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr
    body = json.loads(out.read_text("utf-8"))
    pages = len(list((subset / "pages").glob("*.txt")))
    assert (body["collection"], body["n"], body["docs"]) == ("financebench", 10, pages)
    assert body["embedded_chunks"] == body["chunks"] > 0 and body["gate_failures"] == []
    assert set(body["answers"]) == {"abstained_rate", "cites_gold_page",
                                    "quote_in_gold_evidence", "gold_page_quote_in_evidence",
                                    "swapped_abstained",
                                    "latency_ms_p50", "latency_ms_p95"}
    assert body["swapped"]["usable"] + body["swapped"]["skipped"] == 10
    assert set(body["by_question_type"]) == {r["question_type"] for r in body["questions"]}
    # every per-question flag follows from what was cited, and the aggregates from the flags
    suite = {r["id"]: r for r in map(json.loads, (subset / "suite.jsonl").read_text("utf-8")
                                     .splitlines())}
    for row in body["questions"]:
        gold = suite[row["id"]]
        assert row["cites_gold_page"] == any(d in gold["relevant"] for d in row["cited"])
        assert row["quote_in_gold_evidence"] == fb.quote_in_evidence(row["quotes"],
                                                                     gold["evidence_text"])
        on_gold = [x for d, x in zip(row["cited"], row["quotes"], strict=True)
                   if d in gold["relevant"]]
        assert row["gold_page_quote_in_evidence"] == fb.quote_in_evidence(
            on_gold, gold["evidence_text"])
        assert row["gold_page_quote_in_evidence"] <= row["quote_in_gold_evidence"]
        assert row["hit@5"] == any(d in gold["relevant"] for d in row["retrieved"][:5])
        assert not row["abstained"] or not row["cited"]
    again = fb.aggregate(body["questions"], body["swapped_questions"],
                         body["swapped"]["skipped"])
    assert again["answers"] == body["answers"] and again["retrieval"] == body["retrieval"]
    for row in body["swapped_questions"]:
        assert row["fictitious"] in row["question"]
        assert not fb.mentions(row["question"], fb.company_names(
            suite[row["id"]]["doc_name"], row["company"]))
    page = report.read_text("utf-8")
    assert "FinanceBench evaluation" in page and "By question type" in page
    assert all(row["id"] in page for row in body["questions"])

    # in-process, same data dir: the unchanged pages are not embedded again
    service = AssistantService(load_settings(data_dir=data))
    second = fb.evaluate_financebench(service, subset)
    assert second["embedded_chunks"] == 0 and second["chunks"] == body["chunks"]
    assert [r["id"] for r in second["questions"]] == [r["id"] for r in body["questions"]]


def test_eval_financebench_refuses_a_wrong_directory(tmp_path: Path) -> None:
    with pytest.raises(fb.FinanceBenchError, match="missing"):
        fb.load_financebench(tmp_path)
    run = subprocess.run([str(CLI), "eval", "--financebench", str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CX_DATA_DIR": str(tmp_path / "data")})
    assert run.returncode == 1 and "not a FinanceBench directory" in run.stderr
    assert "Traceback" not in run.stderr
