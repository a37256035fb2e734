"""`eval compare`, the --baseline verdict and `eval history`, on small synthetic reports built
the way `evaluate_suite` builds them (no retrieval run needed to test the statistics)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.processes import CLI

from assistant import evaluation as ev
from assistant.compare_report import render_compare, render_history
from assistant.eval_compare import compare_runs, paired_stats, verdict
from assistant.eval_gates import annotate
from assistant.eval_records import files_hash, load_history, run_record
from assistant.settings import Settings

N = 160  # the golden suite's size
PLANTED = ["q007", "q031", "q058", "q097", "q143"]


def _question(i: int, found_at: int | None, answered_well: bool) -> dict[str, Any]:
    """One answerable question's row: its relevant document at rank `found_at` (None: not
    retrieved), an answer that contains the expected phrase or not."""
    qid, doc = f"q{i:03d}", f"doc-{i}.md"
    retrieved = [f"other-{i}-{r}.md" for r in range(10)]
    if found_at is not None:
        retrieved.insert(found_at - 1, doc)
    answer = f"Answer {i}: " + ("the expected phrase [1]" if answered_well else "something else")
    return {
        "id": qid, "kind": "direct", "split": None, "question": f"Question number {i}?",
        "answerable": True, "relevant": [doc], "retrieved": retrieved[:10], "cited": [doc],
        "abstained": False, "answer": answer, "latency_ms": 10.0 + i % 7,
        "citation_valid": True, "citations": [], "boilerplate": [], "gold_quotes": [],
        **ev.retrieval_metrics(retrieved[:10], [doc]), "expect_any": answered_well,
        "citation_precision": 1.0, "correct_decision": True,
    }


def _report(rows: list[dict[str, Any]], retriever: str = "hybrid") -> dict[str, Any]:
    return {"n": len(rows), "retriever": retriever, **ev.aggregate(rows), "questions": rows}


def _base() -> dict[str, Any]:
    # a realistic mix: most found at rank 1, some lower, a few missed or answered badly
    rows = [_question(i, None if i % 23 == 0 else 1 + (i % 5 == 0) * (i % 4), i % 6 != 0)
            for i in range(N)]
    return _report(rows)


def _regressed(base: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """The base run with `ids` losing their relevant document and their expected phrase."""
    rows = []
    for row in copy.deepcopy(base["questions"]):
        if row["id"] in ids:
            row = _question(int(row["id"][1:]), None, False)
        rows.append(row)
    return _report(rows)


def test_a_regression_planted_in_five_questions_is_found_and_significant() -> None:
    base = _base()
    rows = {r["id"]: r for r in base["questions"]}
    assert all(rows[q]["hit@1"] == 1.0 and rows[q]["expect_any"] for q in PLANTED)
    result = compare_runs(base, _regressed(base, PLANTED))
    assert result["paired"] == N
    for name in ("retrieval.hit@1", "retrieval.hit@10", "retrieval.mrr@10",
                 "retrieval.ndcg@10", "answers.expect_any"):
        m = result["metrics"][name]
        assert sorted(w["id"] for w in m["worse"]) == PLANTED, name
        assert m["better"] == []
        assert m["verdict"] == "significant drop", (name, m)
        assert m["p_drop"] < 0.05 and m["ci"][1] < 0 and m["delta"] < 0
    assert result["metrics"]["answers.citation_validity"]["verdict"] == "within noise"
    assert set(result["changes"]) == set(PLANTED)
    change = result["changes"]["q031"]
    assert change["base"]["rank"] == 1 and change["new"]["rank"] is None
    assert "expected phrase" in change["base"]["answer"]
    assert "something else" in change["new"]["answer"]
    # four such questions are not enough evidence for the test (1/16 > 5%): within noise
    four = compare_runs(base, _regressed(base, PLANTED[:4]))
    assert four["metrics"]["answers.expect_any"]["verdict"] == "within noise"
    # the reverse change is a significant gain
    back = compare_runs(_regressed(base, PLANTED), base)
    assert back["metrics"]["retrieval.mrr@10"]["verdict"] == "significant gain"


def test_two_runs_of_one_configuration_are_within_noise() -> None:
    base = _base()
    again = copy.deepcopy(base)
    for row in again["questions"]:  # latency differs between runs; it is not compared
        row["latency_ms"] += 3.0
    result = compare_runs(base, again)
    assert all(m["verdict"] == "within noise" and m["delta"] == 0 and m["p_value"] == 1.0
               for m in result["metrics"].values())
    assert result["changes"] == {} and not result["only_in_base"]
    # churn in both directions is noise too
    rows = copy.deepcopy(base["questions"])
    for i in (3, 40, 77, 120):
        rows[i] = _question(i, None, False)
    for i in (0, 23, 46, 69):
        rows[i] = _question(i, 1, True)
    churn = compare_runs(base, _report(rows))
    assert churn["metrics"]["answers.expect_any"]["verdict"] == "within noise"
    assert len(churn["metrics"]["retrieval.hit@1"]["worse"]) == 4


def test_paired_statistics_are_reproducible_and_in_range() -> None:
    import numpy as np

    diffs = np.array([0.0] * 150 + [-1.0] * 8 + [1.0] * 2)
    first, second = paired_stats(diffs), paired_stats(diffs)
    assert first == second  # a fixed seed: the same numbers every time
    assert first["delta"] == pytest.approx(-6 / 160)
    assert first["ci"][0] <= first["delta"] <= first["ci"][1]
    assert 0 < first["p_drop"] < first["p_value"] <= 1 and first["p_gain"] > 0.9
    lower = {**first, "p_drop": first["p_gain"], "p_gain": first["p_drop"]}
    assert verdict(lower, lower_is_better=True) == "within noise"  # a fall is a gain there


def test_baseline_gate_keeps_the_tolerance_rule_and_adds_the_verdict() -> None:
    base = _base()
    small = _regressed(base, PLANTED[:2])  # a real but tiny drop: within noise
    comparison = ev.compare(small, base)
    annotate(comparison, compare_runs(base, small), tolerance=0.0)
    entry = comparison["retrieval.mrr@10"]
    assert entry["verdict"] == "within noise" and not entry["within_tolerance"]
    failed = ev.regressions(comparison)
    assert any(line.startswith("retrieval.mrr@10") and "within noise" in line
               for line in failed)  # the tolerance still fails it
    assert ev.regressions(comparison, tolerance=0.05) == []
    big = _regressed(base, PLANTED)
    comparison = ev.compare(big, base)
    annotate(comparison, compare_runs(base, big), tolerance=0.0)
    assert comparison["mrr@10"]["verdict"] == "significant drop"  # bare name, same stats
    assert "significant drop" in " ".join(ev.regressions(comparison))
    page = __import__("assistant.report", fromlist=["render"]).render(
        {**big, "comparison": comparison, "gate_failures": ev.regressions(comparison)})
    assert "significant drop" in page and "p(drop)" in page


def test_beir_rows_compare_by_their_own_metric_names() -> None:
    def run(shift: int) -> dict[str, Any]:
        rows = [{"id": f"{i}", "question": f"claim {i}", "relevant": [f"d{i}"],
                 "retrieved": [f"d{i}"] if i >= shift else ["x"], "ndcg@10": float(i >= shift),
                 "recall@100": float(i >= shift), "mrr@10": float(i >= shift)}
                for i in range(40)]
        return {"dataset": "tiny", "retriever": "dense", "queries": 40, "per_query": rows}

    result = compare_runs(run(0), run(6))
    assert set(result["metrics"]) == {"ndcg@10", "recall@100", "mrr@10"}
    assert result["metrics"]["ndcg@10"]["verdict"] == "significant drop"
    assert [w["id"] for w in result["metrics"]["mrr@10"]["worse"]] == [str(i) for i in range(6)]


def test_compare_command_prints_intervals_and_writes_the_diff_report(tmp_path: Path) -> None:
    base = _base()
    paths = {"base": tmp_path / "base.json", "new": tmp_path / "new.json"}
    paths["base"].write_text(json.dumps(base))
    paths["new"].write_text(json.dumps(_regressed(base, PLANTED)))
    report = tmp_path / "diff.html"
    done = subprocess.run([str(CLI), "eval", "compare", str(paths["base"]), str(paths["new"]),
                           "--report", str(report)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "significant drop" in done.stdout and "95% CI" in done.stdout
    assert "answers.expect_any worse (5): " in done.stdout and "q031 (1 → 0)" in done.stdout
    assert "q031 (rank 1 → >10)" in done.stdout
    page = report.read_text("utf-8")
    assert 'id="q-q031"' in page and "the expected phrase" in page and "something else" in page
    as_json = subprocess.run([str(CLI), "eval", "compare", str(paths["base"]),
                              str(paths["base"]), "--json", "--resamples", "500"],
                             capture_output=True, text=True, timeout=300)
    body = json.loads(as_json.stdout)
    assert body["method"]["resamples"] == 500
    assert {m["verdict"] for m in body["metrics"].values()} == {"within noise"}
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"retrieval": {"hit@5": 1.0}}))
    refused = subprocess.run([str(CLI), "eval", "compare", str(bad), str(paths["new"])],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "no per-question rows" in refused.stderr


def test_html_diff_report_escapes_and_shows_both_answers() -> None:
    base = _base()
    base["questions"][7]["answer"] = "<script>alert(1)</script>"  # q007, one of the planted
    page = render_compare(compare_runs(base, _regressed(base, PLANTED)))
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert page.count('class="cols"') == len(PLANTED)


def test_run_records_and_history(tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"id": "1", "question": "Q?"}\n')
    settings = Settings(data_dir=tmp_path / "d")
    record = run_record(settings, str(suite), [suite], "hybrid")
    assert len(record["git_commit"] or "") == 40  # this checkout is a git repository
    assert record["suite_hash"] == files_hash([suite]) and record["retriever"] == "hybrid"
    assert set(record["model"]) == {"embedding", "answerer"}
    assert "data_dir" not in record["settings"] and record["settings"]["chunk_size"] == 200
    same = run_record(Settings(data_dir=tmp_path / "other", embed_batch_size=4), "s", [], "x")
    assert same["settings_hash"] == record["settings_hash"]  # operational knobs don't count
    assert run_record(Settings(chunk_size=300), "s", [], "x")["settings_hash"] != \
        record["settings_hash"]
    suite.write_text('{"id": "1", "question": "Changed?"}\n')
    assert files_hash([suite]) != record["suite_hash"]

    base = _base()
    for i, (mrr_drop, when) in enumerate([(0, "2026-01-02"), (2, "2026-01-01"), (5, "2026-01-03")]):
        run = _regressed(base, PLANTED[:mrr_drop])
        run["run"] = {**record, "time": f"{when}T10:00:00+00:00", "suite": "golden"}
        (tmp_path / f"run{i}.json").write_text(json.dumps(run))
    (tmp_path / "bench-latency.json").write_text(json.dumps({"p50_ms": 3}))
    paths = sorted(tmp_path.glob("*.json"))
    rows, skipped = load_history(paths)
    assert [r["file"] for r in rows] == ["run1.json", "run0.json", "run2.json"]  # by time
    assert skipped == [f"{tmp_path / 'bench-latency.json'}: not an eval report"]
    assert rows[0]["metrics"]["retrieval.mrr@10"] > rows[2]["metrics"]["retrieval.mrr@10"]
    page = render_history(rows)
    assert page.count("<polyline") == len(rows[0]["metrics"]) and "retrieval.mrr@10" in page
    done = subprocess.run([str(CLI), "eval", "history", *map(str, paths), "--report",
                           str(tmp_path / "h.html")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "eval history (3 runs" in done.stdout and "skipped" in done.stderr
    assert f"{rows[2]['metrics']['retrieval.mrr@10']:.4f}" in done.stdout
    assert "<svg" in (tmp_path / "h.html").read_text("utf-8")
