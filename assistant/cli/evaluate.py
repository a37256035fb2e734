"""`cx-assistant eval`: a question suite, BEIR or FinanceBench through the service, with
metrics, reports, an ablation across retrievers and the regression gate; `eval compare`,
`eval history` and `eval lint` live in assistant/cli/eval_tools.py."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from assistant.cli.app import CollectionOpt, JsonOpt, _run, _service, app, fail


class _EvalGroup(TyperGroup):
    """`eval compare|history|lint ...` are subcommands; anything else (`eval SUITE`,
    `eval --beir DIR`) is the run itself, as before there were subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args[:1] in (["--help"], ["-h"]) or (args and args[0] in self.commands):
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, ["run", *args])


eval_app = typer.Typer(
    cls=_EvalGroup, no_args_is_help=False, add_completion=False,
    help="Evaluate: `eval SUITE | --beir DIR | --financebench DIR` (= `eval run ...`); "
    "`eval compare BASE.json NEW.json`, `eval history RUN.json...`, `eval lint SUITE`.")
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_command(
    suite: Annotated[Path | None, typer.Argument(help="Suite file (JSON Lines).")] = None,
    beir: Annotated[Path | None, typer.Option("--beir", help="A BEIR data set directory.")] = None,
    financebench: Annotated[Path | None, typer.Option(
        "--financebench", help="A FinanceBench directory (suite.jsonl, pages/): cited-answer "
        "benchmark with entity-swapped negatives.")] = None,
    collection: CollectionOpt = None,
    retriever: Annotated[str, typer.Option(
        "--retriever", help="dense | bm25 | hybrid | all (all = ablation table).")] = "hybrid",
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report.")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="An earlier --json/--out report to compare against.")] = None,
    tolerance: Annotated[float, typer.Option(
        help="With --baseline: allowed drop of any quality metric before failing.")] = 0.0,
    fail_under: Annotated[list[str] | None, typer.Option(
        "--fail-under", help="metric=value (repeatable or comma-separated); exit 1 if any "
        "metric is below (latency: above) its value.")] = None,
    gate_file: Annotated[Path | None, typer.Option(
        "--gate-file", help="JSON file of metric: threshold gates (e.g. eval/gate.json).")] = None,
    split: Annotated[str | None, typer.Option(
        help="With SUITE: run only the questions of this split (dev | test). With --beir: "
        "the qrels split (default test).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieval and answer metrics for SUITE, BEIR metrics with --beir DIR, or FinanceBench
    answer metrics with --financebench DIR."""
    from assistant import evaluation as ev

    if sum(x is not None for x in (suite, beir, financebench)) != 1:
        fail("give either a SUITE file, --beir DIR or --financebench DIR")
    modes = ["dense", "bm25", "hybrid"] if retriever == "all" else [retriever]
    if any(m not in ("dense", "bm25", "hybrid") for m in modes):
        fail(f"--retriever must be dense, bm25, hybrid or all, not {retriever!r}")
    if suite is not None and split is not None and split not in ev.SPLITS:
        fail(f"--split must be dev or test, not {split!r}")
    gates, previous = _load_gates(fail_under, gate_file, baseline)
    service = _run(_service)
    source = _EvalSource(suite, beir, financebench, collection, split)
    started = dt.datetime.now(dt.UTC)
    runs = {mode: _run(lambda m=mode: source.evaluate(service, m)) for mode in modes}
    result = runs["hybrid"] if "hybrid" in runs else runs[modes[0]]
    if len(runs) > 1:
        result["ablation"] = _ablation(runs, beir is not None, financebench is not None)
    result["run"] = source.record(service.settings, retriever, started)
    failures = _gate_failures(result, gates, previous, tolerance)
    _write_eval(result, out, report, financebench is not None)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_eval(result)
    if failures:
        for line in failures:
            typer.echo(f"gate failed: {line}", err=True)
        raise typer.Exit(1)


def _load_gates(fail_under: list[str] | None, gate_file: Path | None,
                baseline: Path | None) -> tuple[dict[str, float], dict[str, Any] | None]:
    """The metric thresholds (--gate-file, then --fail-under on top) and the --baseline."""
    from assistant import evaluation as ev

    try:
        items = [i for raw in fail_under or [] for i in raw.split(",") if i.strip()]
        gates = ev.parse_gates(items)
        if gate_file:
            gates = {**json.loads(gate_file.read_text("utf-8")), **gates}
        previous = ev.load_report(baseline) if baseline else None
    except (ev.SuiteError, OSError, json.JSONDecodeError) as exc:
        fail(str(exc))
    return gates, previous


@dataclass
class _EvalSource:
    """What `eval` measures: a suite (optionally one split), a BEIR or a FinanceBench set."""

    suite: Path | None
    beir: Path | None
    financebench: Path | None
    collection: str | None
    split: str | None

    def evaluate(self, service: Any, mode: str) -> dict[str, Any]:
        """One retriever mode's report; a bad data set is a one-line failure."""
        from assistant import evaluation as ev
        from assistant.beir import BeirError
        from assistant.financebench import FinanceBenchError, evaluate_financebench

        try:
            if self.financebench is not None:
                return evaluate_financebench(service, self.financebench, self.collection,
                                             mode=mode)
            if self.beir is not None:
                return ev.evaluate_beir(service, self.beir, mode=mode,  # type: ignore[arg-type]
                                        split=self.split or "test")
            assert self.suite is not None
            questions = ev.load_suite(self.suite)
            if self.split is not None:
                questions = ev.select_split(questions, self.split)
            run = ev.evaluate_suite(service, questions, self.collection,
                                    mode=mode)  # type: ignore[arg-type]
        except (ev.SuiteError, BeirError, FinanceBenchError) as exc:
            fail(str(exc))
        return {**run, "split": self.split} if self.split is not None else run

    def record(self, settings: Any, retriever: str, started: dt.datetime) -> dict[str, Any]:
        """The run record (assistant/eval_records.py): what produced this report."""
        from assistant.eval_records import run_record

        if self.beir is not None:
            files = [self.beir / "corpus.jsonl", self.beir / "queries.jsonl",
                     self.beir / "qrels" / f"{self.split or 'test'}.tsv"]
            label = f"beir:{self.beir.resolve().name}"
        elif self.financebench is not None:
            files, label = [self.financebench / "suite.jsonl"], \
                f"financebench:{self.financebench.resolve().name}"
        else:
            assert self.suite is not None
            files, label = [self.suite], str(self.suite)
        return run_record(settings, label, files, retriever, started)


def _ablation(runs: dict[str, dict[str, Any]], beir: bool,
              financebench: bool) -> dict[str, dict[str, Any]]:
    """Per retriever mode, the headline metrics of its run (--retriever all)."""
    from assistant import evaluation as ev

    table = {m: ev.flat_metrics(r) if not beir else {k: r[k] for k in ev.BEIR_KEYS}
             for m, r in runs.items()}
    if financebench:
        return {m: {k: v for k, v in f.items() if "." in k and not k.endswith(("_p50", "_p95"))}
                for m, f in table.items()}
    if beir:
        return table
    keep = (*ev.RETRIEVAL_KEYS, "expect_any", "answered_rate", "abstain_recall", *ev.GOLD_KEYS)
    return {m: {k: v for k, v in f.items() if "." not in k and k in keep}
            for m, f in table.items()}


def _gate_failures(result: dict[str, Any], gates: dict[str, float],
                   previous: dict[str, Any] | None, tolerance: float) -> list[str]:
    """Gates missed and regressions against the baseline; recorded in `result` when asked for."""
    from assistant import evaluation as ev

    failures: list[str] = []
    try:
        failures = ev.check_gates(result, gates)
    except ev.SuiteError as exc:
        fail(str(exc))
    if previous is not None:
        from assistant.eval_compare import compare_runs, question_rows
        from assistant.eval_gates import annotate

        result["comparison"] = ev.compare(result, previous)
        both = question_rows(previous) and question_rows(result)
        annotate(result["comparison"], compare_runs(previous, result) if both else None,
                 tolerance)
        failures += [f"regression {r}" for r in ev.regressions(result["comparison"], tolerance)]
    if gates or previous is not None:
        result["gate_failures"] = failures
    return failures


def _write_eval(result: dict[str, Any], out: Path | None, report: Path | None,
                financebench: bool) -> None:
    """--out (the JSON report) and --report (HTML)."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False), "utf-8")
    if report:
        from assistant.financebench import render_html
        from assistant.report import render

        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text((render_html if financebench else render)(result), "utf-8")


def _print_eval(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    size = result.get("n") or result.get("queries")
    half = f", split {result['split']}" if result.get("n") and result.get("split") else ""
    table = Table(title=f"evaluation ({result.get('retriever')}, n={size}{half})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    flat = {k: v for k, v in result.items() if isinstance(v, int | float)}
    for group in ("retrieval", "answers"):
        flat.update({f"{group}.{k}": v for k, v in (result.get(group) or {}).items()})
    for key, value in flat.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    splits = result.get("splits") or {}
    if splits:
        _print_columns("by split", {
            f"{name} (n={s.get('n')})": {f"{g}.{k}": v for g in ("retrieval", "answers")
                                         for k, v in (s.get(g) or {}).items()}
            for name, s in splits.items()})
    by_type = result.get("by_question_type") or {}
    if by_type:
        _print_columns("by question type", by_type)
    for mode, metrics in (result.get("ablation") or {}).items():
        typer.echo(f"{mode:>7}: " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    for key, c in (result.get("comparison") or {}).items():
        if c["delta"] or c.get("verdict", "within noise") != "within noise":
            line = f"{key}: {c['baseline']:.4f} -> {c['current']:.4f} ({c['delta']:+.4f})"
            line += "  tolerance: " + ("ok" if c.get("within_tolerance", True) else "FAIL")
            if "verdict" in c:
                line += (f"  {c['verdict']} (95% CI [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}], "
                         f"p(drop) {c['p_drop']:.3f})")
            typer.echo(line)


def _print_columns(title: str, columns: dict[str, dict[str, Any]]) -> None:
    """One table: a row per metric, a column per group (split, question type)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in dict.fromkeys(k for metrics in columns.values() for k in metrics):
        cells = [metrics.get(key) for metrics in columns.values()]
        table.add_row(key, *("" if v is None else f"{v:.4f}" if isinstance(v, float)
                             else str(v) for v in cells))
    Console().print(table)

