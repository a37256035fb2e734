"""Command line: `cx-assistant ingest | ask | search | serve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="cx-assistant",
    help="Offline Cx knowledge assistant: ingest documents, ask questions, get cited answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Collection (default: CX_COLLECTION).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = 1) -> None:
    """One line on stderr and a non-zero exit: the CLI's only failure mode."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _service() -> Any:
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    return AssistantService(load_settings())


def _run(fn: Any) -> Any:
    """Run a service call, turning every expected failure into a one-line error."""
    from pydantic import ValidationError

    from assistant.embeddings import EmbeddingModelError
    from assistant.ingest import IngestError
    from assistant.service import DocumentNotFound
    from assistant.settings import SettingsError
    from assistant.store import CollectionNotFound, StoreUnavailable

    try:
        return fn()
    except (SettingsError, IngestError, CollectionNotFound, StoreUnavailable,
            EmbeddingModelError, DocumentNotFound) as exc:
        fail(str(exc).strip("'\""))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"invalid {where}: {err['msg']}")


def _print_json(model: Any) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json", exclude_none=True), ensure_ascii=False,
                          indent=2))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    collection: CollectionOpt = None,
    as_json: JsonOpt = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another ingest.")] = 0.0,
) -> None:
    """Add new, re-index changed and remove deleted files under PATH (unchanged: no work)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"path does not exist: {', '.join(missing)}")
    service = _run(_service)
    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=as_json or not console.is_terminal, transient=True) as bar:
        task = bar.add_task("ingesting", total=None)
        summary = _run(lambda: service.ingest(
            paths, collection,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            wait_s=wait,
        ))
    for skipped in summary.skipped:
        typer.echo(f"skipped {skipped.path}: {skipped.reason}", err=True)
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json")))
        return
    typer.echo(
        f"{summary.documents} documents, {summary.chunks} chunks in "
        f"'{service.collection_name(collection)}': {summary.added} added, {summary.updated} "
        f"updated, {summary.removed} removed, {summary.unchanged} unchanged, "
        f"{len(summary.skipped)} skipped ({summary.seconds:.1f} s)"
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: CollectionOpt = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Chunks to read.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question with cited passages, or say the knowledge base does not cover it."""
    from assistant.schemas import AnswerRequest

    request = _run(lambda: AnswerRequest(question=question, collection=collection, top_k=top_k))
    service = _run(_service)
    response = _run(lambda: service.answer(request))
    if as_json:
        _print_json(response)
        return
    typer.echo(response.answer)
    if response.warning:
        typer.echo(f"warning: {response.warning}", err=True)
    if response.citations:
        typer.echo("\nSources:")
    for c in response.citations:
        where = f" § {c.section}" if c.section else ""
        flag = "" if c.supported else " [UNVERIFIED: the quote does not support the claim]"
        typer.echo(f"[{c.n}] {c.title} ({c.doc_id}{where}){flag}\n    \"{c.quote}\"")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Documents to return.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Find the documents that best match QUERY (hybrid dense + BM25)."""
    from assistant.schemas import SearchRequest

    request = _run(lambda: SearchRequest(query=query, collection=collection, top_k=top_k))
    service = _run(_service)
    response = _run(lambda: service.search(request.query, request.collection, request.top_k))
    if as_json:
        _print_json(response)
        return
    if not response.hits:
        typer.echo("no matching documents")
    for i, hit in enumerate(response.hits, start=1):
        where = f" § {hit.section}" if hit.section else ""
        snippet = " ".join(hit.text.split())[:200]
        typer.echo(f"{i}. {hit.title} ({hit.doc_id}{where}) score={hit.score:.4f}\n   {snippet}")


@app.command("eval")
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
    from assistant.beir import BeirError
    from assistant.financebench import FinanceBenchError, evaluate_financebench

    if sum(x is not None for x in (suite, beir, financebench)) != 1:
        fail("give either a SUITE file, --beir DIR or --financebench DIR")
    modes = ["dense", "bm25", "hybrid"] if retriever == "all" else [retriever]
    if any(m not in ("dense", "bm25", "hybrid") for m in modes):
        fail(f"--retriever must be dense, bm25, hybrid or all, not {retriever!r}")
    if suite is not None and split is not None and split not in ev.SPLITS:
        fail(f"--split must be dev or test, not {split!r}")
    gates: dict[str, float] = {}
    try:
        items = [i for raw in fail_under or [] for i in raw.split(",") if i.strip()]
        gates = ev.parse_gates(items)
        if gate_file:
            gates = {**json.loads(gate_file.read_text("utf-8")), **gates}
        previous = ev.load_report(baseline) if baseline else None
    except (ev.SuiteError, OSError, json.JSONDecodeError) as exc:
        fail(str(exc))
    service = _run(_service)

    def one(mode: str) -> dict[str, Any]:
        if financebench is not None:
            return evaluate_financebench(service, financebench, collection, mode=mode)
        if beir is not None:
            return ev.evaluate_beir(service, beir, mode=mode,  # type: ignore[arg-type]
                                    split=split or "test")
        questions = ev.load_suite(suite)  # type: ignore[arg-type]
        if split is not None:
            questions = ev.select_split(questions, split)
        run = ev.evaluate_suite(service, questions, collection, mode=mode)  # type: ignore[arg-type]
        return {**run, "split": split} if split is not None else run

    try:
        runs = {mode: _run(lambda m=mode: one(m)) for mode in modes}
    except (ev.SuiteError, BeirError, FinanceBenchError) as exc:
        fail(str(exc))
    result = runs["hybrid"] if "hybrid" in runs else runs[modes[0]]
    if len(runs) > 1:
        result["ablation"] = {m: ev.flat_metrics(r) if beir is None else
                              {k: r[k] for k in ev.BEIR_KEYS} for m, r in runs.items()}
        if financebench is not None:
            result["ablation"] = {m: {k: v for k, v in f.items() if "." in k and not
                                      k.endswith(("_p50", "_p95"))}
                                  for m, f in result["ablation"].items()}
        elif beir is None:
            result["ablation"] = {m: {k: v for k, v in f.items() if "." not in k and k in (
                *ev.RETRIEVAL_KEYS, "expect_any", "answered_rate", "abstain_recall",
                *ev.GOLD_KEYS)}
                for m, f in result["ablation"].items()}
    failures: list[str] = []
    try:
        failures = ev.check_gates(result, gates)
    except ev.SuiteError as exc:
        fail(str(exc))
    if previous is not None:
        result["comparison"] = ev.compare(result, previous)
        failures += [f"regression {r}" for r in ev.regressions(result["comparison"], tolerance)]
    if gates or previous is not None:
        result["gate_failures"] = failures
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False), "utf-8")
    if report:
        from assistant.financebench import render_html
        from assistant.report import render

        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text((render_html if financebench is not None else render)(result), "utf-8")
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_eval(result)
    if failures:
        for line in failures:
            typer.echo(f"gate failed: {line}", err=True)
        raise typer.Exit(1)


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
        if c["delta"]:
            typer.echo(f"{key}: {c['baseline']:.4f} -> {c['current']:.4f} ({c['delta']:+.4f})")


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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    collection: CollectionOpt = None,
) -> None:
    """Run the HTTP API (and the UI at /ui when available)."""
    import uvicorn

    from assistant.api import create_app
    from assistant.settings import load_settings

    overrides = {"collection": collection} if collection else {}
    settings = _run(lambda: load_settings(**overrides))
    from assistant.service import AssistantService

    service = AssistantService(settings)
    _run(lambda: service.embedder)  # fail fast, with the reinstall hint, if the model is broken
    uvicorn.run(create_app(service), host=host, port=port, log_level="info")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
