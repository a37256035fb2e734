"""Ranking metrics (hit@k, recall@k, MRR@k, nDCG@k) computed by ir-measures with trec_eval
semantics, for question suites and BEIR alike.

ir-measures picks a provider per measure (pytrec_eval for most; another for MRR@k, which
trec_eval cannot cut off). We hand it each ranked list with strictly falling scores, so
trec_eval's tie-breaking (by document id) never reorders it. A query missing from the run,
or with an empty ranking, scores zero, as BEIR does (trec_eval would leave it out).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

# Our metric names → ir-measures' names (trec_eval: success, recall, recip_rank, ndcg_cut).
_MEASURES = {"hit": "Success", "recall": "R", "mrr": "RR", "ndcg": "nDCG"}
_NAME = re.compile(r"^(hit|recall|mrr|ndcg)@(\d+)$")


@cache
def _measure(name: str) -> Any:
    """The ir-measures measure for one of our names (`ndcg@10` → nDCG@10)."""
    import ir_measures

    match = _NAME.match(name)
    if not match:
        raise ValueError(f"unknown ranking metric {name!r} (hit@k, recall@k, mrr@k, ndcg@k)")
    return ir_measures.parse_measure(f"{_MEASURES[match[1]]}@{match[2]}")


def score_rankings(run: dict[str, list[str]], qrels: dict[str, dict[str, int]],
                   names: Iterable[str]) -> dict[str, dict[str, float]]:
    """Per judged query, each named metric of its ranking (best first) against its grades."""
    import ir_measures

    names = list(names)
    measures = {_measure(n): n for n in names}
    judged = {qid: grades for qid, grades in qrels.items() if grades}
    scored = {qid: {d: float(len(ranked) - i) for i, d in enumerate(dict.fromkeys(ranked))}
              for qid, ranked in run.items() if qid in judged and ranked}
    out = {qid: dict.fromkeys(names, 0.0) for qid in qrels}
    if scored:
        evaluator = ir_measures.evaluator(list(measures), judged)
        for metric in evaluator.iter_calc(scored):
            out[metric.query_id][measures[metric.measure]] = float(metric.value)
    return out


def score_one(ranked: list[str], relevant: dict[str, int], names: Iterable[str]
              ) -> dict[str, float]:
    """The named metrics of one ranking against one query's grades."""
    return score_rankings({"q": ranked}, {"q": relevant}, names)["q"]
