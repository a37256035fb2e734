"""Self-contained HTML evaluation report: tables and inline SVG plots, no external assets.

Plots are hand-drawn SVG rather than matplotlib: three simple charts (bars, a histogram, lines
over runs) do not justify a plotting dependency, and inline SVG keeps the report a single
file that opens anywhere offline.
"""

from __future__ import annotations

import html
from typing import Any

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2733;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ccd3db;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f6}.pass{color:#17753a;font-weight:600}.fail{color:#b3261e;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}.small{color:#5b6673;font-size:.8rem}
details{border:1px solid #ccd3db;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer}.answer{white-space:pre-wrap;background:#f6f8fa;padding:.4rem .6rem}
ul.quotes{margin:.3rem 0;padding-left:1.2rem}ul.quotes li{margin:.15rem 0}
.hit{background:#e4f4e8}.miss{background:#fbe9e7}.furniture{color:#8a4b00;font-weight:600}
"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page_head(title: str, extra_css: str = "") -> str:
    """The opening of a self-contained report page: head, styles, the title as h1."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}{extra_css}</style></head><body><h1>{escape(title)}</h1>")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return escape(value)


def bar_chart(values: dict[str, float], title: str, width: int = 420, height: int = 200) -> str:
    if not values:
        return ""
    top = max(max(values.values()), 1e-9)
    n = len(values)
    bar_w = (width - 40) / n
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height + 40}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(values.items()):
        h = height * value / top
        x = 30 + i * bar_w
        parts.append(f'<rect x="{x + 4:.1f}" y="{height - h + 10:.1f}" width="{bar_w - 8:.1f}" '
                     f'height="{h:.1f}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - h + 5:.1f}" font-size="11" '
                     f'text-anchor="middle">{value:.3g}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height + 26}" font-size="11" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<line x1="30" y1="{height + 10}" x2="{width}" y2="{height + 10}" '
                 'stroke="#333"/></svg>')
    return "".join(parts)


PALETTE = ("#3b6ea5", "#c8553d", "#2a9d8f", "#8d5a97", "#e9a23b", "#5b6673")


def line_chart(series: dict[str, list[tuple[int, float, str]]], runs: int, title: str,
               width: int = 560, height: int = 180) -> str:
    """One line per series over run positions 0..runs-1; each point (position, value, label)
    carries its label as a tooltip. The y axis spans the values (0-1 when they are rates)."""
    values = [v for points in series.values() for _, v, _ in points]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if lo >= 0 and hi <= 1:
        lo, hi = max(lo - 0.05, 0.0), min(hi + 0.05, 1.0)
    span = (hi - lo) or 1.0
    left, top = 44, 10

    def xy(pos: int, value: float) -> tuple[float, float]:
        x = left + (width - left - 10) * (pos / max(runs - 1, 1))
        return x, top + height * (1 - (value - lo) / span)

    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{height + 44 + 16 * len(series)}" xmlns="http://www.w3.org/2000/svg">'
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{top + height}" x2="{width}" y2="{top + height}" '
             'stroke="#333"/>',
             f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{hi:.3g}</text>',
             f'<text x="{left - 4}" y="{top + height}" font-size="10" text-anchor="end">'
             f"{lo:.3g}</text>"]
    every = -(-runs // 15)  # at most ~15 run numbers under the axis
    parts += [f'<text x="{xy(pos, lo)[0]:.1f}" y="{top + height + 14}" font-size="10" '
              f'text-anchor="middle">#{pos + 1}</text>' for pos in range(0, runs, every)]
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = [xy(p, v) for p, v, _ in points]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        for (x, y), (_, value, label) in zip(coords, points, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                         f"<title>{escape(label)}: {value:.4f}</title></circle>")
        ly = top + height + 34 + 16 * i
        parts.append(f'<rect x="{left}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{left + 16}" y="{ly}" font-size="11">{escape(name)}</text>')
    return "".join(parts) + "</svg>"


def histogram(values: list[float], bins: int = 12) -> dict[str, float]:
    if not values:
        return {}
    lo, hi = min(values), max(values)
    step = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / step), bins - 1)] += 1
    return {f"{lo + i * step:.0f}": float(c) for i, c in enumerate(counts)}


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{fmt(c)}</td>' if isinstance(c, int | float) else f"<td>{c}</td>"
            for c in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _mark(ok: Any) -> str:
    if ok is None:
        return '<span class="small">n/a</span>'
    return '<span class="pass">pass</span>' if ok else '<span class="fail">fail</span>'


def _tolerance(entry: dict[str, Any]) -> str:
    if "within_tolerance" not in entry:
        return ""
    return '<span class="pass">ok</span>' if entry["within_tolerance"] else \
        '<span class="fail">fail</span>'


def _splits(splits: dict[str, dict[str, Any]]) -> str:
    """Retrieval and answer metrics side by side, one column per split."""
    names = list(splits)
    head = [f"{name} (n={splits[name].get('n', '')})" for name in names]
    rows = []
    for group in ("retrieval", "answers"):
        keys = dict.fromkeys(k for m in splits.values() for k in m.get(group) or {})
        rows += [[escape(f"{group}.{k}"), *[(splits[name].get(group) or {}).get(k, "")
                                        for name in names]] for k in keys]
    return "<h2>By split (dev / test)</h2>" + html_table(["metric", *head], rows)


def _gold_section(questions: list[dict[str, Any]]) -> str:
    """Per answerable question with gold quotes: the answer, its citations (on gold or not,
    page furniture flagged) and the gold sentences, matched ones marked. Questions that
    missed a gold sentence or quoted furniture are shown open."""
    gold = [q for q in questions if q.get("answerable") and q.get("gold_quotes")]
    if not gold:
        return ""
    out = ["<h2>Answers against gold quotes</h2>",
           '<p class="small">✓ a gold sentence some citation quotes (overlap by span) · '
           "✗ one no citation quotes · ⚠ a quoted sentence of page furniture</p>"]
    for q in gold:
        matched = q.get("gold_matched") or [False] * len(q["gold_quotes"])
        furniture = set(q.get("boilerplate") or [])
        recall, precision = q.get("gold_quote_recall"), q.get("answer_precision")
        trouble = not all(matched) or bool(furniture)
        summary = (f"{escape(q['id'])} — gold recall {fmt(recall)}, "
                   f"answer precision {'n/a' if precision is None else fmt(precision)}")
        if q.get("split"):
            summary += f" · {escape(q['split'])}"
        if furniture:
            summary += ' <span class="furniture">⚠ page furniture quoted</span>'
        summary += f"<br>{escape(q['question'])}"
        body = [f'<details{" open" if trouble else ""}><summary>{summary}</summary>']
        body.append('<p class="small">answer'
                    + (" (abstained)" if q.get("abstained") else "") + "</p>"
                    f'<div class="answer">{escape(q.get("answer", ""))}</div>')
        citations = q.get("citations") or []
        if citations:
            items = []
            for c in citations:
                on_gold = c.get("gold")
                cls = ' class="hit"' if on_gold else ' class="miss"' if on_gold is False else ""
                flag = ' <span class="furniture">⚠ page furniture</span>' \
                    if c["quote"] in furniture else ""
                items.append(f"<li{cls}>[{escape(c['n'])}] <span class=\"small\">"
                             f"{escape(c['doc_id'])}</span> “{escape(c['quote'])}”{flag}</li>")
            body.append('<p class="small">cited quotes (green: on a gold sentence)</p>'
                        f'<ul class="quotes">{"".join(items)}</ul>')
        golds = "".join(
            f'<li class="{"hit" if ok else "miss"}">{"✓" if ok else "✗"} {escape(g)}</li>'
            for g, ok in zip(q["gold_quotes"], matched, strict=False))
        body.append(f'<p class="small">gold sentences</p><ul class="quotes">{golds}</ul>')
        out.append("".join(body) + "</details>")
    return "".join(out)


def render(report: dict[str, Any], title: str = "Cx assistant evaluation") -> str:
    """The report as one HTML string; every value from the data is escaped."""
    out = [page_head(title)]
    meta = {k: v for k, v in report.items() if isinstance(v, str | int | float)}
    out.append(html_table(["field", "value"], [
        [escape(k), v if not isinstance(v, str) else escape(v)] for k, v in meta.items()]))
    for group in ("retrieval", "answers"):
        if report.get(group):
            out.append(f"<h2>{escape(group.title())}</h2>")
            out.append(html_table(["metric", "value"], [[escape(k), v] for k, v in
                                                    report[group].items()]))
    if report.get("splits"):
        out.append(_splits(report["splits"]))
    if report.get("retrieval"):
        hits = {k: v for k, v in report["retrieval"].items() if k.startswith("hit@")}
        out.append("<h2>Hit rate by k</h2>" + bar_chart(hits, "hit rate by k"))
    if report.get("ablation"):
        out.append("<h2>Ablation (what each retriever contributes)</h2>")
        keys = sorted({k for r in report["ablation"].values() for k in r})
        out.append(html_table(["retriever", *keys], [
            [escape(mode), *[metrics.get(k, "") for k in keys]]
            for mode, metrics in report["ablation"].items()]))
    if report.get("comparison"):
        out.append("<h2>Against the baseline</h2>")
        out.append(html_table(
            ["metric", "baseline", "current", "delta", "tolerance", "95% CI", "p(drop)",
             "verdict"],
            [[escape(k), c["baseline"], c["current"], c["delta"], _tolerance(c),
              escape(f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]") if "ci" in c else "",
              c.get("p_drop", ""), escape(c.get("verdict", ""))]
             for k, c in report["comparison"].items()]))
    if report.get("gate_failures") is not None:
        fails = report["gate_failures"]
        out.append("<h2>Gate</h2>" + (
            '<p class="pass">all gates pass</p>' if not fails else
            "<ul>" + "".join(f'<li class="fail">{escape(f)}</li>' for f in fails) + "</ul>"))
    if report.get("by_kind"):
        out.append("<h2>By question kind</h2>")
        keys = sorted({k for r in report["by_kind"].values() for k in r})
        out.append(html_table(["kind", *keys], [[escape(kind), *[m.get(k, "") for k in keys]]
                                            for kind, m in report["by_kind"].items()]))
    questions = report.get("questions") or []
    if questions:
        lat = [q["latency_ms"] for q in questions]
        out.append("<h2>Answer latency (ms)</h2>" + bar_chart(histogram(lat), "latency"))
        out.append("<h2>Questions</h2>")
        rows = []
        for q in questions:
            rows.append([
                escape(q["id"]), escape(q["question"]),
                "<br>".join(escape(d) + (" ✓" if d in q["relevant"] else "")
                            for d in q["retrieved"][:5]),
                "<br>".join(escape(d) for d in dict.fromkeys(q["cited"])) or "—",
                "abstained" if q["abstained"] else "answered",
                _mark(q["correct_decision"]), _mark(q.get("hit@5") if q["answerable"] else None),
                _mark(q.get("expect_any") if q["answerable"] else None),
                _mark(q["citation_valid"]),
                q["gold_quote_recall"] if q.get("gold_quote_recall") is not None else "",
                q["answer_precision"] if q.get("answer_precision") is not None else "",
                '<span class="furniture">⚠ ' + str(len(q["boilerplate"])) + "</span>"
                if q.get("boilerplate") else "",
                q["latency_ms"],
            ])
        out.append(html_table(["id", "question", "retrieved (top 5)", "cited", "decision",
                           "decision ok", "hit@5", "expect_any", "citations valid",
                           "gold recall", "answer precision", "furniture", "ms"], rows))
        out.append(_gold_section(questions))
    out.append("</body></html>")
    return "".join(out)
