"""Is a change real? Two eval runs over the same questions, compared question by question.

For every metric whose per-question values both runs carry, the paired difference (new minus
base, mean over the questions both runs scored), a 95% percentile-bootstrap interval of it,
and paired randomization (sign-flip) p-values: two-sided, and one-sided for a drop and for a
gain. Every random draw comes from a fixed seed, so a comparison is reproducible.

The verdict asks the maintainer's question, "did it get worse?" (or better), one-sided at 5%,
and also wants the whole interval on that side of zero: "significant drop", "significant
gain" or "within noise". Five questions of a suite that all get worse, and none better, is the
smallest change a sign-flip test can call a drop at 5% (1/32); four never are.

A question is better or worse on a metric when its value moved; the lists carry, for
retrieval, the rank of the first relevant document in each run and, for answers, pass/fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from assistant.eval_suite import GOLD_KEYS, RETRIEVAL_KEYS

RESAMPLES = 10_000
SEED = 16
ALPHA = 0.05
_BLOCK = 1_000  # resamples drawn at a time: memory stays ~BLOCK x questions
# Per-question fields of BEIR / FinanceBench rows that are not quality measures.
_NOT_METRICS = ("latency_ms",)
_LOWER_IS_BETTER = ("abstained",)


def question_metrics(row: dict[str, Any]) -> dict[str, float]:
    """One question's values, named as the report's metrics they average into (a suite row's
    `hit@5` → `retrieval.hit@5`; a BEIR row's `ndcg@10` stays `ndcg@10`)."""
    if "answerable" not in row:  # BEIR and FinanceBench rows: their numeric fields
        return {k: float(v) for k, v in row.items()
                if isinstance(v, bool | int | float) and k not in _NOT_METRICS}
    out: dict[str, float] = {}
    if row["answerable"]:
        out.update({f"retrieval.{k}": float(row[k]) for k in RETRIEVAL_KEYS if k in row})
        out["answers.answered_rate"] = 0.0 if row["abstained"] else 1.0
        if "expect_any" in row:
            out["answers.expect_any"] = float(row["expect_any"])
        out.update({f"answers.{k}": float(row[k]) for k in ("citation_precision", *GOLD_KEYS)
                    if row.get(k) is not None})
    else:
        out["answers.abstain_recall"] = 1.0 if row["abstained"] else 0.0
    out["answers.correct_decision"] = float(row["correct_decision"])
    out["answers.citation_validity"] = float(row["citation_valid"])
    return out


def question_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-question rows of a suite, FinanceBench (`questions`) or BEIR (`per_query`)
    report."""
    return list(report.get("questions") or report.get("per_query") or [])


def first_relevant_rank(row: dict[str, Any]) -> int | None:
    """1-based rank of the first relevant document retrieved, None when none was."""
    relevant = set(row.get("relevant") or [])
    return next((i for i, d in enumerate(row.get("retrieved") or [], start=1)
                 if d in relevant), None)


def _blocks(resamples: int) -> Iterator[int]:
    for start in range(0, resamples, _BLOCK):
        yield min(_BLOCK, resamples - start)


def paired_stats(diffs: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
                 ) -> dict[str, Any]:
    """Mean of the paired differences, its 95% bootstrap interval and sign-flip p-values
    (`p_drop`: for a mean this low or lower, `p_gain`: this high or higher)."""
    n = len(diffs)
    mean = float(diffs.mean())
    rng = np.random.default_rng(seed)
    boot = np.concatenate([diffs[rng.integers(0, n, size=(size, n))].mean(axis=1)
                           for size in _blocks(resamples)])
    low, high = np.percentile(boot, [2.5, 97.5])
    moved = diffs[diffs != 0]
    if moved.size == 0:
        p_two = p_drop = p_gain = 1.0
    else:
        null = np.concatenate([(rng.choice((-1.0, 1.0), size=(size, moved.size)) * moved)
                               .sum(axis=1) / n for size in _blocks(resamples)])
        eps = 1e-12  # the observed arrangement itself counts as extreme as itself

        def share(extreme: np.ndarray) -> float:
            return float((np.count_nonzero(extreme) + 1) / (resamples + 1))

        p_two = share(np.abs(null) >= abs(mean) - eps)
        p_drop, p_gain = share(null <= mean + eps), share(null >= mean - eps)
    return {"n": n, "delta": mean, "ci": [float(low), float(high)], "p_value": p_two,
            "p_drop": p_drop, "p_gain": p_gain}


def verdict(stats: dict[str, Any], lower_is_better: bool = False, alpha: float = ALPHA) -> str:
    """The plain-words reading of `stats` (whose p_drop/p_gain are already in quality terms):
    significant drop, significant gain or within noise (see the module docstring)."""
    low, high = stats["ci"]
    up, down = low > 0, high < 0  # the whole interval on one side of zero
    if stats["p_drop"] < alpha and (up if lower_is_better else down):
        return "significant drop"
    if stats["p_gain"] < alpha and (down if lower_is_better else up):
        return "significant gain"
    return "within noise"


def _side(row: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to judge one run's handling of a question."""
    out: dict[str, Any] = {"rank": first_relevant_rank(row),
                           "retrieved": list(row.get("retrieved") or [])[:5]}
    for key in ("answer", "abstained", "cited"):
        if key in row:
            out[key] = row[key]
    return out


def _metric(paired: list[tuple[str, float, float]], lower: bool, resamples: int, seed: int,
            alpha: float) -> dict[str, Any]:
    """One metric's paired statistics, verdict and moved questions (best/worst first)."""
    stats = paired_stats(np.array([n - b for _, b, n in paired]), resamples, seed)
    if lower:  # a rise in a lower-is-better value is the drop in quality
        stats["p_drop"], stats["p_gain"] = stats["p_gain"], stats["p_drop"]
    moved: list[dict[str, Any]] = sorted(
        ({"id": i, "base": b, "new": n, "delta": round(n - b, 6)} for i, b, n in paired
         if n != b), key=lambda m: -abs(m["delta"]))
    return {
        **stats, "base": float(np.mean([b for _, b, _ in paired])),
        "new": float(np.mean([n for _, _, n in paired])),
        "lower_is_better": lower, "verdict": verdict(stats, lower, alpha),
        "better": [m for m in moved if (m["delta"] < 0) == lower],
        "worse": [m for m in moved if (m["delta"] < 0) != lower],
    }


def compare_runs(base: dict[str, Any], new: dict[str, Any], resamples: int = RESAMPLES,
                 seed: int = SEED, alpha: float = ALPHA) -> dict[str, Any]:
    """Paired statistics per metric and the questions that moved, base → new."""
    base_rows = {str(r["id"]): r for r in question_rows(base)}
    new_rows = {str(r["id"]): r for r in question_rows(new)}
    ids = [i for i in base_rows if i in new_rows]
    values = {i: (question_metrics(base_rows[i]), question_metrics(new_rows[i])) for i in ids}
    names = list(dict.fromkeys(k for b, n in values.values() for k in b if k in n))
    metrics: dict[str, Any] = {}
    changes: dict[str, dict[str, Any]] = {}
    for name in names:
        paired = [(i, b[name], n[name]) for i, (b, n) in values.items()
                  if name in b and name in n]
        metrics[name] = _metric(paired, name.split(".")[-1] in _LOWER_IS_BETTER, resamples,
                                seed, alpha)
        for i, b, n in paired:
            if n != b:
                entry = changes.setdefault(i, {
                    "question": new_rows[i].get("question", ""),
                    "base": _side(base_rows[i]), "new": _side(new_rows[i]), "metrics": {}})
                entry["metrics"][name] = [b, n]
    return {
        "base": _summary(base), "new": _summary(new), "paired": len(ids),
        "only_in_base": [i for i in base_rows if i not in new_rows],
        "only_in_new": [i for i in new_rows if i not in base_rows],
        "question_text_changed": [i for i in ids if base_rows[i].get("question")
                                  != new_rows[i].get("question")],
        "method": {"resamples": resamples, "seed": seed, "alpha": alpha, "ci": 0.95,
                   "test": "paired sign-flip randomization; percentile bootstrap"},
        "metrics": metrics, "changes": changes,
    }


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """Which run this was: its retriever, size and run record."""
    keys = ("retriever", "n", "queries", "dataset", "split", "run")
    return {k: report[k] for k in keys if k in report}


def headline(stats: dict[str, Any]) -> str:
    """`-0.0312 [-0.0563, -0.0063] p=0.062 p(drop)=0.031 significant drop`: one metric."""
    low, high = stats["ci"]
    return (f"{stats['delta']:+.4f} [{low:+.4f}, {high:+.4f}] p={stats['p_value']:.3f} "
            f"p(drop)={stats['p_drop']:.3f} "
            f"{stats['verdict']}")
