"""Evaluation: metric arithmetic, the golden-suite gate, and the `eval` command end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write_md

from assistant import evaluation as ev
from assistant.beir import mrr_at, ndcg_at, recall_at, score_run
from assistant.service import AssistantService

BIN = Path(sys.executable).parent / "cx-assistant"
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
    report = ev.evaluate_suite(corpus_service, ev.load_suite(SUITE))
    gates = json.loads(GATE.read_text("utf-8"))
    assert report["answers"]["citation_validity"] == 1.0
    assert ev.check_gates(report, gates) == [], json.dumps(
        {"retrieval": report["retrieval"], "answers": report["answers"]})


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CX_DATA_DIR": str(data)}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_eval_command_json_report_gate_and_baseline(tmp_path: Path) -> None:
    data, kb = tmp_path / "data", tmp_path / "kb"
    write_md(kb / "a.md", "Task force", "The Cx task force runs for ninety days.")
    write_md(kb / "b.md", "Scorecard", "The Cx Quality Scorecard is reviewed every month.")
    assert _cli("ingest", str(kb), data=data).returncode == 0
    suite = tmp_path / "suite.jsonl"
    suite.write_text("\n".join(json.dumps(r) for r in [
        {"id": "1", "question": "How long does the task force run?", "relevant": ["a.md"],
         "answerable": True, "expect_any": ["ninety days"]},
        {"id": "2", "question": "What is the capital of Peru?", "relevant": [],
         "answerable": False, "expect_any": []},
    ]), "utf-8")
    out, html = tmp_path / "run.json", tmp_path / "run.html"
    result = _cli("eval", str(suite), "--json", "--out", str(out), "--report", str(html),
                  "--retriever", "all", data=data)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["n"] == 2
    assert set(ev.RETRIEVAL_KEYS) <= set(body["retrieval"])
    assert set(ev.ANSWER_KEYS) <= set(body["answers"])
    assert body["retrieval"]["hit@1"] == 1.0 and body["answers"]["citation_validity"] == 1.0
    assert set(body["ablation"]) == {"dense", "bm25", "hybrid"}
    assert len(body["questions"]) == 2 and json.loads(out.read_text()) == body
    page = html.read_text("utf-8")
    assert "<svg" in page and "How long does the task force run?" in page

    gated = _cli("eval", str(suite), "--fail-under", "hit@1=1.01", data=data)
    assert gated.returncode == 1 and "gate failed: hit@1" in gated.stderr

    worse = json.loads(out.read_text())
    worse["retrieval"]["mrr@10"] = 0.5  # pretend the baseline was worse: no regression
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(worse))
    ok = _cli("eval", str(suite), "--baseline", str(baseline), "--json", data=data)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["comparison"]["retrieval.mrr@10"]["delta"] == 0.5
    worse["retrieval"]["mrr@10"] = 1.5  # a baseline better than now: a regression
    baseline.write_text(json.dumps(worse))
    regressed = _cli("eval", str(suite), "--baseline", str(baseline), data=data)
    assert regressed.returncode == 1 and "regression retrieval.mrr@10" in regressed.stderr

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
    second = json.loads(_cli("eval", "--beir", str(beir), "--json", data=data).stdout)
    assert second["embedded_chunks"] == 0  # cached collection re-used

    missing = _cli("eval", "--beir", str(tmp_path), data=data)
    assert missing.returncode == 1 and "not a BEIR data set" in missing.stderr
