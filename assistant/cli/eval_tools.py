"""`cx-assistant eval compare | history | lint`: is a change real, how have runs moved, and
is a suite consistent with the collection it is run over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from assistant.cli.app import CollectionOpt, JsonOpt, _run, _service, fail
from assistant.cli.evaluate import eval_app

ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")]


def _load(path: Path) -> dict[str, Any]:
    from assistant.eval_gates import load_report
    from assistant.eval_suite import SuiteError

    try:
        report = load_report(path)
    except SuiteError as exc:
        fail(str(exc).replace("baseline ", ""))
    if not isinstance(report, dict):
        fail(f"{path} is not an eval report")
    return report


def _write(path: Path | None, page: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, "utf-8")


@eval_app.command("compare")
def compare_command(
    base: Annotated[Path, typer.Argument(help="The earlier run (eval --out/--json).")],
    new: Annotated[Path, typer.Argument(help="The run to judge against it.")],
    report: ReportOpt = None,
    as_json: JsonOpt = False,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap and randomization "
                                           "resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 16,
    show: Annotated[int, typer.Option(min=0, help="Questions listed per metric and "
                                      "direction on the terminal.")] = 8,
) -> None:
    """Per metric: the paired difference over questions, its 95% bootstrap interval,
    randomization-test p-values and a verdict; the questions that got better and worse."""
    from assistant.compare_report import render_compare
    from assistant.eval_compare import compare_runs, question_rows

    runs = _load(base), _load(new)
    for path, run in zip((base, new), runs, strict=True):
        if not question_rows(run):
            fail(f"{path} has no per-question rows (written by an older eval?): re-run it "
                 "with --out")
    result = compare_runs(*runs, resamples=resamples, seed=seed)
    if not result["paired"]:
        fail("the two runs share no question id")
    _write(report, render_compare(result))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_compare(result, show)


def _print_compare(result: dict[str, Any], show: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"new - base over {result['paired']} paired questions "
                  f"({result['method']['resamples']} resamples, seed {result['method']['seed']})")
    for column in ("metric", "n", "base", "new", "delta", "95% CI", "p", "p(drop)", "verdict",
                   "worse", "better"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for name, m in result["metrics"].items():
        table.add_row(name, str(m["n"]), f"{m['base']:.4f}", f"{m['new']:.4f}",
                      f"{m['delta']:+.4f}", f"[{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}]",
                      f"{m['p_value']:.3f}", f"{m['p_drop']:.3f}", m["verdict"],
                      str(len(m["worse"])), str(len(m["better"])))
    Console(width=160).print(table)
    for name, m in result["metrics"].items():
        for direction in ("worse", "better"):
            items = m[direction]
            if items and show:
                listed = ", ".join(_moved(name, item, result["changes"]) for item in items[:show])
                more = f" (+{len(items) - show} more)" if len(items) > show else ""
                typer.echo(f"{name} {direction} ({len(items)}): {listed}{more}")
    for key, label in (("only_in_base", "only in base"), ("only_in_new", "only in new"),
                       ("question_text_changed", "question text changed")):
        if result[key]:
            typer.echo(f"{label}: {', '.join(result[key][:show])}")


def _moved(name: str, item: dict[str, Any], changes: dict[str, Any]) -> str:
    """`art-002 (rank 1 → 4)` when the first relevant document moved (`>10`: not in the top
    ten), else the value: `art-002 (1 → 0)`."""
    entry = changes.get(item["id"], {})
    ranks = [entry.get(side, {}).get("rank") for side in ("base", "new")]
    if ("." not in name or name.startswith("retrieval.")) and ranks[0] != ranks[1]:
        return f"{item['id']} (rank {ranks[0] or '>10'} → {ranks[1] or '>10'})"
    return f"{item['id']} ({item['base']:.3g} → {item['new']:.3g})"


@eval_app.command("history")
def history_command(
    runs: Annotated[list[Path], typer.Argument(help="Saved eval reports (eval --out).")],
    report: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A table of runs, oldest first: time, commit, suite, retriever, settings hash, model and
    headline metrics; --report draws each metric over the runs."""
    from assistant.compare_report import render_history
    from assistant.eval_records import load_history

    rows, skipped = load_history(runs)
    for line in skipped:
        typer.echo(f"skipped {line}", err=True)
    if not rows:
        fail("none of the files is an eval report")
    _write(report, render_history(rows))
    if as_json:
        typer.echo(json.dumps({"runs": rows, "skipped": skipped}, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    table = Table(title=f"eval history ({len(rows)} runs, oldest first; * = uncommitted "
                  "changes)")
    for column in ("#", "time", "commit", "suite", "retriever", "settings", "n", *metrics):
        table.add_column(column.split(".")[-1], overflow="fold")
    for i, r in enumerate(rows, start=1):
        commit = r["commit"][:8] + ("*" if r["commit"].endswith("+dirty") else "")
        table.add_row(str(i), r["time"][:16].replace("T", " "), commit,
                      Path(r["suite"]).name, r["retriever"], r["settings_hash"], str(r["n"]),
                      *(f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "" for k in metrics))
    Console(width=200).print(table)


@eval_app.command("lint")
def lint_command(
    suite: Annotated[Path, typer.Argument(help="Suite file (JSON Lines).")],
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
    threshold: Annotated[float | None, typer.Option(
        min=0.5, max=1.0, help="Cosine at or above which two questions are near-duplicates "
        "(default 0.9, see assistant/eval_lint.py).")] = None,
) -> None:
    """Check SUITE against an ingested collection: relevant ids exist, expect_any phrases and
    gold quotes occur in a relevant document, no (near-)duplicate questions, no unanswerable
    question worded verbatim in the corpus. Exit 1 on any finding."""
    from assistant.eval_lint import NEAR_DUPLICATE, lint_suite, summary
    from assistant.eval_suite import SuiteError, load_suite

    try:
        questions = load_suite(suite)
    except SuiteError as exc:
        fail(str(exc))
    service = _run(_service)
    findings = _run(lambda: lint_suite(service, questions, collection,
                                              threshold or NEAR_DUPLICATE))
    if as_json:
        typer.echo(json.dumps(summary(findings, len(questions)), ensure_ascii=False))
    else:
        for f in findings:
            typer.echo(f"{f.id}: {f.check}: {f.message}")
        typer.echo(f"{suite}: {len(questions)} questions, {len(findings)} finding(s)")
    if findings:
        raise typer.Exit(1)
