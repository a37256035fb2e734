"""Ranking metrics: ir-measures (our scoring now) agrees with the arithmetic it replaced.

The reference functions below are the hand-written BEIR scoring that assistant/beir.py held
before it moved to ir-measures, kept here as the yardstick; llama-index's metric classes were
the suite's. Both are compared with the library on SciFact's real qrels and a synthetic,
seeded run per query (a full retrieval run over SciFact takes minutes; the arithmetic does not
care where the ranking came from).
"""

from __future__ import annotations

import math
import random

import pytest
from helpers import REPO

from assistant import evaluation as ev
from assistant.beir import load_beir, score_queries, score_run
from assistant.ranking import score_rankings

SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"


def ref_ndcg(ranked: list[str], judged: dict[str, int], k: int) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def ref_recall(ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def ref_mrr(ranked: list[str], judged: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ref_hit(ranked: list[str], judged: dict[str, int], k: int) -> float:
    return float(any(judged.get(d, 0) > 0 for d in ranked[:k]))


def synthetic_run(qrels: dict[str, dict[str, int]], doc_ids: list[str],
                  depth: int = 100) -> dict[str, list[str]]:
    """Per query a seeded ranking: distractors, its relevant documents at random depths (some
    past the cut-offs, some left out) and now and then the query's own id, as BEIR meets it."""
    rng = random.Random(16)
    run: dict[str, list[str]] = {}
    for qid, judged in sorted(qrels.items()):
        ranked = rng.sample(doc_ids, depth)
        for doc in judged:
            if rng.random() < 0.8:
                ranked.insert(min(int(rng.expovariate(1 / 12)), depth + 20), doc)
        if rng.random() < 0.1:
            ranked.insert(rng.randrange(0, 5), qid)
        run[qid] = list(dict.fromkeys(ranked))[:depth]
    run.pop(sorted(qrels)[0])  # a judged query with no run at all scores zero
    return run


@pytest.fixture(scope="module")
def scifact() -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT}")
    data = load_beir(SCIFACT)
    return data.qrels, synthetic_run(data.qrels, [r.doc_id for r in data.corpus])


def test_beir_scoring_agrees_with_the_hand_written_one_on_scifact(scifact: tuple) -> None:
    qrels, run = scifact
    assert len(qrels) >= 300
    per = score_queries(run, qrels)
    assert set(per) == set(qrels)
    for qid, judged in qrels.items():
        ranked = [d for d in run.get(qid, []) if d != qid]
        want = {"ndcg@10": ref_ndcg(ranked, judged, 10),
                "recall@100": ref_recall(ranked, judged, 100),
                "mrr@10": ref_mrr(ranked, judged, 10)}
        assert per[qid] == pytest.approx(want, abs=1e-6), qid
    means = score_run(run, qrels)
    for key in means:
        ref = sum(p[key] for p in per.values()) / len(per)
        assert means[key] == pytest.approx(ref, abs=1e-4)  # the report rounds to 4 places
    assert 0.1 < means["ndcg@10"] < 0.9  # a run that exercises every case, not all 0 or 1


def test_suite_scoring_agrees_with_llama_index_and_by_hand_on_scifact(scifact: tuple) -> None:
    from llama_index.core.evaluation.retrieval.metrics import MRR, NDCG, HitRate, Recall

    qrels, run = scifact
    cut = {qid: ranked[:10] for qid, ranked in run.items()}
    per = score_rankings(cut, qrels, ev.RETRIEVAL_KEYS)
    checked = 0
    for qid, judged in qrels.items():
        top, relevant = cut.get(qid, []), list(judged)
        ours = ev.retrieval_metrics(top, relevant)
        assert ours == pytest.approx(per[qid], abs=1e-6)
        by_hand = {**{f"hit@{k}": ref_hit(top, judged, k) for k in ev.KS},
                   "recall@5": ref_recall(top, judged, 5),
                   "recall@10": ref_recall(top, judged, 10),
                   "mrr@10": ref_mrr(top, judged, 10), "ndcg@10": ref_ndcg(top, judged, 10)}
        assert ours == pytest.approx(by_hand, abs=1e-6), qid
        if top:  # llama-index's classes refuse an empty ranking
            llama = {
                "hit@5": HitRate().compute(expected_ids=relevant, retrieved_ids=top[:5]).score,
                "recall@10": Recall().compute(expected_ids=relevant, retrieved_ids=top).score,
                "mrr@10": MRR().compute(expected_ids=relevant, retrieved_ids=top).score,
                "ndcg@10": NDCG().compute(expected_ids=relevant, retrieved_ids=top).score,
            }
            assert {k: ours[k] for k in llama} == pytest.approx(llama, abs=1e-6), qid
            checked += 1
    assert checked >= 250
