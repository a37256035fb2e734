"""The CLI's app and its everyday commands: `cx-assistant ingest | ask | search | serve | mcp`
(`eval` lives in assistant/cli/evaluate.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

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


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: the CLI's only failure mode."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _service() -> Any:
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    return AssistantService(load_settings())


def _run(fn: Any) -> Any:
    """Run a service call, turning every expected failure into a one-line error: a domain
    error's own message (the API and the chat show the same), or the argument to change."""
    from pydantic import ValidationError

    from assistant.errors import AssistantError
    from assistant.schemas import validation_message

    try:
        return fn()
    except AssistantError as exc:
        fail(exc.message)
    except ValidationError as exc:
        where, what = validation_message(exc)
        fail(f"invalid {where}: {what}")


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
    for warned in summary.warnings:
        typer.echo(f"warning {warned.path}: {warned.reason}", err=True)
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
    from assistant.answer_text import where
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
        flag = "" if c.supported else " [UNVERIFIED: the quote does not support the claim]"
        place = where(c.doc_id, c.section, c.location)
        typer.echo(f"[{c.n}] {c.title} ({place}){flag}\n    \"{c.quote}\"")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", "-k", help="Documents to return (default: CX_TOP_K, 5 unless set).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the documents that best match QUERY (hybrid dense + BM25)."""
    from assistant.answer_text import where
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
        snippet = " ".join(hit.text.split())[:200]
        place = where(hit.doc_id, hit.section, hit.location)
        typer.echo(f"{i}. {hit.title} ({place}) score={hit.score:.4f}\n   {snippet}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    collection: CollectionOpt = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes, each with its own service and model (~300 MB each); "
        "the collection's generation keeps them in step. More than 1 needs CX_CHROMA_URL.")
    ] = 1,
) -> None:
    """Run the HTTP API, the chat UI at /ui and the MCP endpoint at /mcp."""
    import uvicorn

    from assistant.settings import load_settings

    if collection:  # workers build their settings from the environment
        os.environ["CX_COLLECTION"] = collection
    settings = _run(load_settings)
    if workers > 1 and not settings.chroma_url:
        fail("--workers needs a Chroma server: run `chroma run --path DIR` and set "
             "CX_CHROMA_URL. Embedded Chroma holds its index in one process's memory, so a "
             "second process would read stale vectors after any write.", code=2)
    if workers > 1:
        from assistant.embeddings import check_model

        _run(lambda: check_model(settings.model_path))  # fail fast, before forking
        uvicorn.run("assistant.api.app:app_from_environment", factory=True, workers=workers,
                    host=host, port=port, log_level="info")
        return
    from assistant.api import create_app
    from assistant.service import AssistantService

    service = AssistantService(settings)
    _run(lambda: service.embedder)  # fail fast, with the reinstall hint, if the model is broken
    uvicorn.run(create_app(service), host=host, port=port, log_level="info")


@app.command()
def mcp(collection: CollectionOpt = None) -> None:
    """Serve the MCP tools (search, answer, documents) on stdio for desktop and IDE clients."""
    from assistant.mcp import run_stdio
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    overrides = {"collection": collection} if collection else {}
    service = AssistantService(_run(lambda: load_settings(**overrides)))
    run_stdio(service)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
