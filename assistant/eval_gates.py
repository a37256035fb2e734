"""Gates and the tolerance check against a baseline: the pass/fail rule of `eval`.

Thresholds (`--fail-under`, `--gate-file`) are floors, latency and page furniture ceilings;
`--baseline` fails on any drop beyond `--tolerance`. `annotate` adds, where both runs carry
per-question rows, the paired significance verdict of assistant/eval_compare.py beside each
delta: it informs, the tolerance still decides, so a small real drop still fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.eval_suite import SuiteError

BEIR_KEYS = ("ndcg@10", "recall@100", "mrr@10")
LOWER_IS_BETTER = ("latency_ms_p50", "latency_ms_p95", "boilerplate_answers")
# Counts that describe the run rather than measure it: never compared against a baseline.
COUNT_KEYS = ("gold_n",)


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """`retrieval.hit@5`-style keys, plus bare names where they are unambiguous."""
    flat: dict[str, float] = {}
    for group in ("retrieval", "answers"):
        for key, value in (report.get(group) or {}).items():
            flat[f"{group}.{key}"] = value
            flat[key] = value
    for key in BEIR_KEYS:
        if key in report:
            flat[key] = report[key]
    return flat



def parse_gates(items: list[str]) -> dict[str, float]:
    """`metric=value` items (from --fail-under) as a gate mapping."""
    gates = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            gates[name.strip()] = float(value)
        except ValueError:
            raise SuiteError(f"--fail-under expects metric=value, got {item!r}") from None
    return gates


def check_gates(report: dict[str, Any], gates: dict[str, float]) -> list[str]:
    """Failures, one line each; latency gates are ceilings, everything else floors."""
    flat = flat_metrics(report)
    failures = []
    for name, bound in gates.items():
        if name not in flat:
            raise SuiteError(f"unknown metric in gate: {name} (known: {', '.join(sorted(flat))})")
        value = flat[name]
        lower_better = name.split(".")[-1] in LOWER_IS_BETTER
        if (value > bound) if lower_better else (value < bound):
            relation = "above" if lower_better else "below"
            failures.append(f"{name} = {value:.4f} is {relation} the gate {bound:.4f}")
    return failures


def compare(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-metric current, baseline and delta for the metrics both runs have."""
    now, before = flat_metrics(report), flat_metrics(baseline)
    keys = [k for k in now if k in before and ("." in k or k in BEIR_KEYS)
            and k.split(".")[-1] not in COUNT_KEYS]
    return {
        k: {"current": now[k], "baseline": before[k], "delta": round(now[k] - before[k], 4)}
        for k in keys
    }


def beyond_tolerance(key: str, entry: dict[str, Any], tolerance: float = 0.0) -> bool:
    """The gate's rule: a quality metric fell by more than `tolerance` (latency never
    fails here)."""
    name = key.split(".")[-1]
    if name.startswith("latency"):
        return False
    return entry["delta"] > tolerance if name in LOWER_IS_BETTER else entry["delta"] < -tolerance


def regressions(comparison: dict[str, dict[str, Any]], tolerance: float = 0.0) -> list[str]:
    """One line per metric beyond the tolerance, with its significance verdict when known."""
    out = []
    for key, c in comparison.items():
        if beyond_tolerance(key, c, tolerance):
            line = f"{key}: {c['baseline']:.4f} → {c['current']:.4f}"
            if "verdict" in c:
                line += f" ({c['verdict']}, p(drop) = {c['p_drop']:.3f})"
            out.append(line)
    return out


def annotate(comparison: dict[str, dict[str, Any]], paired: dict[str, Any] | None,
             tolerance: float = 0.0) -> None:
    """Adds to each compared metric the tolerance verdict and, where the paired comparison
    (assistant/eval_compare.py) has the metric, its significance verdict, interval and
    p-values. A bare name (`mrr@10`) reads the suite's grouped one (`retrieval.mrr@10`)."""
    stats = (paired or {}).get("metrics") or {}
    for key, entry in comparison.items():
        entry["within_tolerance"] = not beyond_tolerance(key, entry, tolerance)
        found = next((stats[k] for k in (key, f"retrieval.{key}", f"answers.{key}")
                      if k in stats), None)
        if found is not None:
            entry.update({k: found[k] for k in ("verdict", "ci", "p_value", "p_drop", "n")})


def load_report(path: Path) -> dict[str, Any]:
    """An earlier `eval --json`/`--out` report."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"cannot read baseline {path}: {exc}") from None
