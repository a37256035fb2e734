"""HTML for `eval compare` (which metrics moved, by how much, which questions, both answers
side by side) and `eval history` (each metric over runs). Self-contained like report.py."""

from __future__ import annotations

from typing import Any

from assistant.report import escape, fmt, html_table, line_chart, page_head

_CSS = """
.cols{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}.cols h4{margin:.2rem 0}
.drop{color:#b3261e;font-weight:600}.gain{color:#17753a;font-weight:600}
"""


def _verdict(text: str) -> str:
    cls = "drop" if "drop" in text else "gain" if "gain" in text else "small"
    return f'<span class="{cls}">{escape(text)}</span>'


def _value(name: str, value: float) -> str:
    """Pass/fail for yes-no metrics (expect_any, decisions), the number otherwise."""
    binary = name.split(".")[-1] in ("expect_any", "answered_rate", "abstain_recall",
                                     "correct_decision", "citation_validity") \
        or name.split(".")[-1].startswith("hit@")
    if binary and value in (0.0, 1.0):
        return "pass" if value else "fail"
    return f"{value:.3f}"


def _moved(name: str, items: list[dict[str, Any]], changes: dict[str, Any]) -> str:
    """`id (rank 1 → 4)` when the first relevant document moved (`>10`: out of the top ten),
    else `id (pass → fail)` or the values; each links to the question's side-by-side view."""
    out = []
    for m in items:
        entry = changes.get(m["id"], {})
        rank = [entry.get(side, {}).get("rank") for side in ("base", "new")]
        ranked = "." not in name or name.startswith("retrieval.")
        what = (f"rank {rank[0] or '>10'} → {rank[1] or '>10'}" if ranked and rank[0] != rank[1]
                else f"{_value(name, m['base'])} → {_value(name, m['new'])}")
        out.append(f'<a href="#q-{escape(m["id"])}">{escape(m["id"])}</a> '
                   f'<span class="small">({escape(what)})</span>')
    return ", ".join(out) or "—"


def _side(title: str, side: dict[str, Any]) -> str:
    answer = side.get("answer")
    parts = [f"<div><h4>{escape(title)}</h4>"]
    if answer is not None:
        parts.append('<p class="small">' + ("abstained" if side.get("abstained") else "answered")
                     + f'</p><div class="answer">{escape(answer)}</div>')
    parts.append('<p class="small">retrieved: ' + ", ".join(
        escape(d) for d in side.get("retrieved") or []) + " · first relevant at rank "
        f"{escape(side.get('rank') or '>10')}</p></div>")
    return "".join(parts)


def _questions(changes: dict[str, Any]) -> str:
    out = ["<h2>Questions that moved</h2>"]
    for qid, entry in changes.items():
        moved = ", ".join(f"{escape(k)} {_value(k, b)} → {_value(k, n)}"
                          for k, (b, n) in entry["metrics"].items())
        out.append(f'<details id="q-{escape(qid)}"><summary>{escape(qid)} — '
                   f"{escape(entry['question'])}<br><span class=\"small\">{moved}</span>"
                   f'</summary><div class="cols">{_side("base", entry["base"])}'
                   f'{_side("new", entry["new"])}</div></details>')
    return "".join(out)


def render_compare(result: dict[str, Any], title: str = "Cx assistant: compare runs") -> str:
    """The diff report: the metric table, the moved questions per metric, and each moved
    question with both runs' answers side by side."""
    method = result["method"]
    out = [page_head(title, _CSS),
           f'<p class="small">{result["paired"]} questions in both runs; differences are new '
           f"minus base; {int(method['ci'] * 100)}% bootstrap interval and sign-flip "
           f"randomization p-values from {method['resamples']} resamples (seed "
           f"{method['seed']}); a verdict needs p(drop) or p(gain) below {method['alpha']} "
           "and the interval on that side of zero.</p>"]
    runs = [[escape(side), escape(", ".join(f"{k}={v}" for k, v in summary.items()
                                            if k != "run")),
             escape(summary.get("run", {}).get("git_commit") or ""),
             escape(summary.get("run", {}).get("settings_hash") or "")]
            for side, summary in (("base", result["base"]), ("new", result["new"]))]
    out.append(html_table(["run", "what", "commit", "settings hash"], runs))
    rows = [[escape(name), m["n"], m["base"], m["new"], f"{m['delta']:+.4f}",
             escape(f"[{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}]"), m["p_value"], m["p_drop"],
             _verdict(m["verdict"]), len(m["worse"]), len(m["better"])]
            for name, m in result["metrics"].items()]
    out.append("<h2>Metrics</h2>" + html_table(
        ["metric", "n", "base", "new", "Δ", "95% CI", "p", "p(drop)", "verdict", "worse",
         "better"], rows))
    out.append("<h2>Which questions moved</h2>")
    lists = [[escape(name), _moved(name, m["worse"], result["changes"]),
              _moved(name, m["better"], result["changes"])]
             for name, m in result["metrics"].items() if m["worse"] or m["better"]]
    out.append(html_table(["metric", "worse", "better"], lists) if lists
               else '<p class="small">no question moved on any metric</p>')
    if result["changes"]:
        out.append(_questions(result["changes"]))
    return "".join(out) + "</body></html>"


def render_history(rows: list[dict[str, Any]], title: str = "Cx assistant: eval history"
                   ) -> str:
    """The runs as a table, then one chart per metric, a line per suite, oldest run left."""
    out = [page_head(title)]
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    out.append(html_table(
        ["#", "time", "file", "commit", "suite", "suite hash", "retriever", "settings", "model",
         "n", *metrics],
        [[i + 1, escape(r["time"]), escape(r["file"]), escape(r["commit"]),
          escape(r["suite"]), escape(r["suite_hash"]), escape(r["retriever"]),
          escape(r["settings_hash"]),
          escape(r["model"]), r["n"], *[fmt(r["metrics"][k]) if k in r["metrics"] else ""
                                        for k in metrics]]
         for i, r in enumerate(rows)]))
    for metric in metrics:
        series: dict[str, list[tuple[int, float, str]]] = {}
        for i, r in enumerate(rows):
            if metric in r["metrics"]:
                series.setdefault(r["suite"] or "?", []).append(
                    (i, float(r["metrics"][metric]),
                     f"#{i + 1} {r['file']} {r['commit']} {r['retriever']}"))
        out.append(f"<h2>{escape(metric)}</h2>"
                   + line_chart(series, len(rows), f"{metric} over runs"))
    return "".join(out) + "</body></html>"
