"""Evaluation: metric arithmetic, the golden-suite gate, and the `eval` command end to end."""

from __future__ import annotations

import html
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from helpers.files import write_md
from helpers.processes import CLI

from assistant import evaluation as ev
from assistant.beir import mrr_at, ndcg_at, recall_at, score_run
from assistant.boilerplate import is_boilerplate
from assistant.report import render
from assistant.service import AssistantService

GATE = REPO / "eval" / "gate.json"
SUITE = REPO / "eval" / "suites" / "cx_golden.jsonl"


def test_beir_measures_match_trec_eval_arithmetic() -> None:
    judged = {"a": 1, "b": 2}
    ranked = ["x", "b", "y", "a"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, judged, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(ranked, judged, 1) == 0.0
    assert recall_at(ranked, judged, 2) == 0.5 and recall_at(ranked, judged, 4) == 1.0
    assert mrr_at(ranked, judged, 10) == 0.5 and mrr_at(ranked, judged, 1) == 0.0
    # the query's own id is ignored, as BEIR does; a query with no run scores zero
    scores = score_run({"q1": ["q1", "a"], "q2": []}, {"q1": {"a": 1}, "q2": {"z": 1}})
    assert scores == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def test_suite_retrieval_metrics() -> None:
    m = ev.retrieval_metrics(["x", "a", "y", "b"], ["a", "b"])
    assert (m["hit@1"], m["hit@3"]) == (0.0, 1.0)
    assert m["recall@5"] == 1.0 and m["mrr@10"] == 0.5
    assert 0 < m["ndcg@10"] < 1
    assert ev.retrieval_metrics([], ["a"])["hit@10"] == 0.0


def test_gates_and_comparison() -> None:
    report = {"retrieval": {"hit@5": 0.8}, "answers": {"latency_ms_p50": 90.0}}
    assert ev.check_gates(report, {"hit@5": 0.75, "latency_ms_p50": 100}) == []
    fails = ev.check_gates(report, {"retrieval.hit@5": 0.9, "latency_ms_p50": 50})
    assert len(fails) == 2 and "below" in fails[0] and "above" in fails[1]
    with pytest.raises(ev.SuiteError, match="unknown metric"):
        ev.check_gates(report, {"nope": 1})
    worse = {"retrieval": {"hit@5": 0.7}, "answers": {"latency_ms_p50": 80.0}}
    comparison = ev.compare(worse, report)
    assert comparison["retrieval.hit@5"]["delta"] == pytest.approx(-0.1)
    assert ev.regressions(comparison) == ["retrieval.hit@5: 0.8000 → 0.7000"]
    assert ev.regressions(comparison, tolerance=0.2) == []


def test_golden_suite_passes_the_committed_gate(corpus_service: AssistantService) -> None:
    """The regression gate: a change that hurts retrieval or answers fails `make test`."""
    questions = ev.load_suite(SUITE)
    report = ev.evaluate_suite(corpus_service, questions)
    gates = json.loads(GATE.read_text("utf-8"))
    assert report["answers"]["citation_validity"] == 1.0
    assert ev.check_gates(report, gates) == [], json.dumps(
        {"retrieval": report["retrieval"], "answers": report["answers"]})
    if any(q.gold_quotes for q in questions):
        assert set(ev.GOLD_KEYS) <= set(report["answers"])
    if any(q.split for q in questions):
        assert set(report["splits"]) == {"dev", "test"}
        assert sum(s["n"] for s in report["splits"].values()) == report["n"]


def _row(answerable: bool = True, abstained: bool = False, **extra: object) -> dict:
    """A per-question row as evaluate_suite makes it, for the aggregate arithmetic."""
    row: dict = {"kind": None, "answerable": answerable, "abstained": abstained,
                 "latency_ms": 10.0, "citation_valid": True, "boilerplate": [],
                 "gold_quotes": [], "correct_decision": abstained != answerable}
    if answerable:
        row.update({k: 1.0 for k in ev.RETRIEVAL_KEYS}, expect_any=True, citation_precision=1.0)
    row.update(extra)
    return row


def test_gold_quote_metrics_arithmetic() -> None:
    gold = ["The **Cx task force** runs for ninety days.", "The scorecard is reviewed monthly."]
    furniture = "Click here to book a call with our team."
    assert is_boilerplate(furniture)
    quotes = ["Since 2019 the Cx task force  runs for ninety days and then reports to the board.",
              furniture]
    # the first gold sentence is inside the longer quoted one (emphasis and spacing aside);
    # the second is quoted by nothing, and the furniture quote is on no gold sentence
    scored = ev.gold_scores(quotes, gold, abstained=False)
    assert scored == {"gold_matched": [True, False], "gold_quote_recall": 0.5,
                      "quote_gold": [True, False], "answer_precision": 0.5}
    abstained = ev.gold_scores([], ["Anything at all."], abstained=True)
    assert abstained["gold_quote_recall"] == 0.0 and abstained["answer_precision"] is None
    assert not ev.quotes_overlap("The scorecard is reviewed monthly.", furniture)
    assert not ev.quotes_overlap("", "The scorecard is reviewed monthly.")

    rows = [
        _row(gold_quotes=gold, boilerplate=[furniture], **scored),
        _row(abstained=True, gold_quotes=["Anything at all."], **abstained),
        _row(),  # answerable, no gold: left out of the gold means
        _row(answerable=False, abstained=True),
    ]
    answers = ev.aggregate(rows)["answers"]
    assert answers["gold_n"] == 2
    assert answers["gold_quote_recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert answers["answer_precision"] == pytest.approx(0.5)  # the abstention has none
    assert answers["boilerplate_answers"] == 1
    # without gold quotes the two metrics are absent rather than a misleading zero
    plain = ev.aggregate([_row(), _row(answerable=False, abstained=True)])["answers"]
    assert plain["gold_n"] == 0 and not set(ev.GOLD_KEYS) & set(plain)
    # more page furniture is worse: a ceiling in gates, a regression when it grows
    assert ev.check_gates({"answers": answers}, {"boilerplate_answers": 0})
    worse = ev.compare({"answers": {**answers, "boilerplate_answers": 2}}, {"answers": answers})
    assert ev.regressions(worse) == ["answers.boilerplate_answers: 1.0000 → 2.0000"]


def test_split_is_deterministic_and_divides_the_golden_suite(tmp_path: Path) -> None:
    questions = ev.load_suite(SUITE)
    halves = {q.id: ev.assign_split(q.id) for q in questions}
    assert halves == {q.id: ev.assign_split(q.id) for q in questions}
    assert set(halves.values()) == {"dev", "test"}
    assert all(sum(v == s for v in halves.values()) >= len(halves) // 4 for s in ev.SPLITS)
    for q in questions:  # a split already written into the suite is the function's
        assert q.split in (None, halves[q.id]), q.id
    assert ev.assign_split("art-001") == ev.assign_split("art-001")

    # the script writes the field in place, keeps everything else, and is idempotent
    suite = tmp_path / "suite.jsonl"
    lines = [{"id": "q1", "question": "One?", "source": "notes", "topic_docs": ["a.md"]},
             {"id": "q2", "question": "Two?", "split": "nonsense"}]
    suite.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", "utf-8")
    script = REPO / "eval" / "split_suite.py"
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script), str(suite)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    written = [json.loads(line) for line in suite.read_text("utf-8").splitlines()]
    assert written == [{**r, "split": ev.assign_split(r["id"])} for r in lines]
    loaded = ev.load_suite(suite)  # extra fields are accepted
    assert [q.split for q in loaded] == [ev.assign_split("q1"), ev.assign_split("q2")]
    chosen = ev.select_split(loaded, loaded[0].split)
    assert loaded[0] in chosen
    with pytest.raises(ev.SuiteError, match="split"):
        ev.select_split(loaded, "train")


def test_suite_gold_quotes_and_splits_on_real_answers(corpus_service: AssistantService) -> None:
    by_id = {q.id: q for q in ev.load_suite(SUITE)}
    answer = ("On a first engagement we typically identify 40 to 60 distinct fault types per "
              "journey, which we consolidate to a working list of 12 to 20 before the first "
              "review.")
    unrelated = "Quarterly revenue at the Lisbon office rose by four per cent."
    questions = [
        by_id["art-002"].model_copy(update={"gold_quotes": [answer, unrelated],
                                            "split": "dev"}),
        by_id["art-001"].model_copy(update={"gold_quotes": [], "split": "test"}),
        next(q for q in by_id.values() if not q.answerable).model_copy(update={"split": "test"}),
    ]
    report = ev.evaluate_suite(corpus_service, questions)
    rows = {r["id"]: r for r in report["questions"]}
    gold_row = rows["art-002"]
    assert gold_row["gold_quotes"] == [answer, unrelated]
    assert gold_row["gold_matched"] == [True, False]
    assert gold_row["gold_quote_recall"] == 0.5
    on_gold = [c["gold"] for c in gold_row["citations"]]
    assert on_gold and gold_row["answer_precision"] == pytest.approx(sum(on_gold) / len(on_gold))
    for row in rows.values():
        assert [c["quote"] for c in row["citations"] if is_boilerplate(c["quote"])] == \
            row["boilerplate"]
        assert all(set(c) >= {"n", "doc_id", "quote"} for c in row["citations"])
    assert "gold_quote_recall" not in rows["art-001"]
    answers = report["answers"]
    assert answers["gold_n"] == 1
    assert answers["gold_quote_recall"] == 0.5
    assert answers["answer_precision"] == gold_row["answer_precision"]
    assert set(report["splits"]) == {"dev", "test"}
    assert (report["splits"]["dev"]["n"], report["splits"]["test"]["n"]) == (1, 2)
    test_rows = [r for r in report["questions"] if r["split"] == "test"]
    assert report["splits"]["test"]["answers"] == ev.aggregate(test_rows)["answers"]
    assert report["splits"]["dev"]["answers"]["gold_quote_recall"] == 0.5
    page = render(report)
    assert "Answers against gold quotes" in page and "By split" in page
    assert html.escape(unrelated) in page and "✗" in page


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CX_DATA_DIR": str(data)}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_eval_command_json_report_gate_and_baseline(tmp_path: Path) -> None:
    data, kb = tmp_path / "data", tmp_path / "kb"
    write_md(kb / "a.md", "Task force", "The Cx task force runs for ninety days.")
    write_md(kb / "b.md", "Scorecard", "The Cx Quality Scorecard is reviewed every month.")
    assert _cli("ingest", str(kb), data=data).returncode == 0
    suite = tmp_path / "suite.jsonl"
    suite.write_text("\n".join(json.dumps(r) for r in [
        {"id": "1", "question": "How long does the task force run?", "relevant": ["a.md"],
         "answerable": True, "expect_any": ["ninety days"], "split": "dev",
         "gold_quotes": ["The Cx task force runs for ninety days."], "source": "a note"},
        {"id": "2", "question": "What is the capital of Peru?", "relevant": [],
         "answerable": False, "expect_any": [], "split": "test"},
    ]), "utf-8")
    out, report = tmp_path / "run.json", tmp_path / "run.html"
    result = _cli("eval", str(suite), "--json", "--out", str(out), "--report", str(report),
                  "--retriever", "all", data=data)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["n"] == 2
    assert set(ev.RETRIEVAL_KEYS) <= set(body["retrieval"])
    assert set(ev.ANSWER_KEYS) <= set(body["answers"])
    assert body["retrieval"]["hit@1"] == 1.0 and body["answers"]["citation_validity"] == 1.0
    assert set(body["ablation"]) == {"dense", "bm25", "hybrid"}
    assert len(body["questions"]) == 2 and json.loads(out.read_text()) == body
    record = body["run"]  # what produced the run, for `eval history`
    assert record["suite"] == str(suite) and record["retriever"] == "all"
    assert len(record["git_commit"]) == 40 and len(record["settings_hash"]) == 16
    assert record["suite_hash"] and record["model"]["answerer"] == "extractive"
    assert body["answers"]["gold_n"] == 1 and body["answers"]["gold_quote_recall"] == 1.0
    assert set(body["splits"]) == {"dev", "test"}
    page = report.read_text("utf-8")
    assert "<svg" in page and "How long does the task force run?" in page
    assert "Answers against gold quotes" in page and "By split" in page

    wrong = _cli("eval", str(suite), "--split", "train", data=data)
    assert wrong.returncode == 1 and "--split must be dev or test" in wrong.stderr

    # one half of the suite only (the JSON is printed before the gate fails)
    gated = _cli("eval", str(suite), "--split", "dev", "--json", "--fail-under", "hit@1=1.01",
                 data=data)
    assert gated.returncode == 1 and "gate failed: hit@1" in gated.stderr
    dev = json.loads(gated.stdout)
    assert (dev["n"], dev["split"], list(dev["splits"])) == (1, "dev", ["dev"])

    worse = json.loads(out.read_text())
    worse["retrieval"]["mrr@10"] = 0.5  # pretend the baseline was worse: no regression
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(worse))
    ok = _cli("eval", str(suite), "--baseline", str(baseline), "--json", data=data)
    assert ok.returncode == 0, ok.stderr
    compared = json.loads(ok.stdout)["comparison"]
    assert compared["retrieval.mrr@10"]["delta"] == 0.5
    # the same questions answered the same way: the paired test finds nothing
    assert compared["retrieval.hit@1"]["verdict"] == "within noise"
    assert compared["retrieval.mrr@10"]["within_tolerance"]
    worse["retrieval"]["mrr@10"] = 1.5  # a baseline better than now: a regression
    baseline.write_text(json.dumps(worse))
    regressed = _cli("eval", str(suite), "--baseline", str(baseline), data=data)
    assert regressed.returncode == 1 and "regression retrieval.mrr@10" in regressed.stderr

    assert "tolerance: FAIL" in regressed.stdout

    linted = _cli("eval", "lint", str(suite), data=data)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "2 questions, 0 finding(s)" in linted.stdout
    drafts = tmp_path / "drafts.jsonl"
    drafts.write_text(json.dumps({"id": "3", "question": "When is the scorecard reviewed?",
                                  "relevant": ["b.md", "gone.md"], "answerable": True,
                                  "expect_any": ["every month", "weekly"]}) + "\n", "utf-8")
    flagged = _cli("eval", "lint", str(drafts), "--json", data=data)
    assert flagged.returncode == 1
    assert json.loads(flagged.stdout)["counts"] == {"relevant": 1, "expect_any": 1}

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": ""}\n', "utf-8")
    broken = _cli("eval", str(bad), data=data)
    assert broken.returncode == 1 and "bad.jsonl:1" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_eval_beir_ingests_once_and_reports(tmp_path: Path) -> None:
    beir = tmp_path / "tiny-beir"
    (beir / "qrels").mkdir(parents=True)
    docs = [("d1", "Vitamin D", "Vitamin D deficiency is linked to bone loss in adults."),
            ("d2", "Sleep", "Short sleep raises the risk of obesity in children."),
            ("d3", "Coffee", "Coffee intake is not associated with heart failure.")]
    (beir / "corpus.jsonl").write_text("\n".join(
        json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) for i, t, x in docs))
    (beir / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "low vitamin D causes bone loss"},
        {"_id": "q2", "text": "sleep duration and childhood obesity"},
        {"_id": "q3", "text": "an unjudged query"}]))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    data = tmp_path / "data"
    first = _cli("eval", "--beir", str(beir), "--json", data=data)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert (body["docs"], body["queries"]) == (3, 2)
    assert body["ndcg@10"] == 1.0 and body["recall@100"] == 1.0 and body["mrr@10"] == 1.0
    assert body["embedded_chunks"] == 3
    assert [(q["id"], q["ndcg@10"], q["retrieved"][0]) for q in body["per_query"]] == [
        ("q1", 1.0, "d1"), ("q2", 1.0, "d2")]
    assert body["run"]["suite"] == "beir:tiny-beir" and body["run"]["suite_hash"]
    second = json.loads(_cli("eval", "--beir", str(beir), "--json", data=data).stdout)
    assert second["embedded_chunks"] == 0  # cached collection re-used

    missing = _cli("eval", "--beir", str(tmp_path), data=data)
    assert missing.returncode == 1 and "not a BEIR data set" in missing.stderr
