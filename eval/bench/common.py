"""Shared pieces of the benchmarks: data sets, the trees they ingest, measuring, reporting.

The benchmarks are scripts (run by `make bench`), not tests: they print tables and write JSON
to eval/results/; targets are judged from the figures, never asserted on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from assistant.beir import load_beir  # noqa: E402

# tests/helpers starts `serve` for the benchmarks exactly as it does for the tests
from tests.helpers.processes import serve  # noqa: E402,F401

BENCH_DIR = Path(os.environ.get("CX_BENCH_DIR", REPO / ".cx-bench"))  # scratch, git-ignored
RESULTS = REPO / "eval" / "results"
SCIFACT = Path(os.environ.get("SCIFACT", REPO.parent / "shared" / "datasets" / "scifact"))
CORPUS = REPO / "corpus"
BIN = Path(sys.executable).parent
CLI = str(BIN / "cx-assistant")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "ANONYMIZED_TELEMETRY": "False", "GRADIO_ANALYTICS_ENABLED": "False"}


def scifact_docs(limit: int | None = None) -> list[dict[str, str]]:
    """SciFact's abstracts in file order (the first `limit` when given)."""
    docs = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                docs.append({"id": str(row["_id"]), "title": row.get("title", ""),
                             "text": row.get("text", "")})
                if limit and len(docs) == limit:
                    break
    return docs


def scifact_queries(doc_ids: set[str] | None = None) -> tuple[dict[str, str], dict]:
    """Test queries and their judgements, restricted to queries judging a doc in `doc_ids`."""
    data = load_beir(SCIFACT)
    qrels = {q: {d: g for d, g in judged.items() if doc_ids is None or d in doc_ids}
             for q, judged in data.qrels.items()}
    qrels = {q: j for q, j in qrels.items() if j and q in data.queries}
    return {q: data.queries[q] for q in qrels}, qrels


def write_tree(docs: list[dict[str, str]], root: Path) -> Path:
    """One Markdown file per abstract (`<id>.md`, title in front matter); stale files removed.

    The tree is what a team's shared drive looks like to both systems: our CLI and the peer's
    SimpleDirectoryReader read the very same files.
    """
    root.mkdir(parents=True, exist_ok=True)
    wanted = {f"{d['id']}.md" for d in docs}
    for old in root.glob("*.md"):
        if old.name not in wanted:
            old.unlink()
    for d in docs:
        body = f"---\ntitle: {json.dumps(d['title'])}\n---\n\n{d['text']}\n"
        path = root / f"{d['id']}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
    return root


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and mean of latencies in milliseconds."""
    if not ms:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0}
    s = sorted(ms)

    def rank(q: float) -> float:
        return round(s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))], 1)

    return {"n": len(s), "p50": rank(50), "p95": rank(95), "p99": rank(99),
            "mean": round(sum(s) / len(s), 1)}


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command to completion: wall seconds, its peak RSS (MB), stdout and stderr.

    Peak RSS is the process's own VmHWM (high-water mark), polled until it exits:
    RUSAGE_CHILDREN would give the maximum over every child this benchmark ever ran.
    """
    import threading

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **OFFLINE_ENV, **(env or {})})
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(
        zip(("stdout", "stderr"), proc.communicate(), strict=True)))
    reader.start()
    peak = 0.0
    while proc.poll() is None:
        with suppress(OSError, ValueError):
            peak = max(peak, peak_rss_mb(proc.pid))
        time.sleep(0.1)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{output.get('stderr', '')[-2000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": peak, **output}


def peak_rss_mb(pid: int) -> float:
    """VmHWM (the peak resident set size) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def self_peak_rss_mb() -> float:
    return peak_rss_mb(os.getpid())


def show(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A table on stdout (rich), the form every benchmark prints."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col == columns[0] else "right")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    Console(width=160).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpus": os.cpu_count(), "cpu": model, "loadavg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0], "when": time.strftime("%Y-%m-%d %H:%M:%S")}
