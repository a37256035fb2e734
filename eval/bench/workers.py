"""Requests/s of `cx-assistant serve --workers N` at 1 and 2 workers, under the load of
eval/bench/load.py (16 clients alternating search and answer, one upload a second).

Both runs serve the sample corpus from one `chroma run` server (more than one worker needs
one: embedded Chroma keeps its index in one process), ingested once; the second run also
sees the small notes the first run uploaded (a few dozen).
Prints a table and the 2-worker/1-worker ratio; JSON in eval/results/bench-workers.json.

    .venv/bin/python eval/bench/workers.py [--seconds 30] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # a script: tests/helpers starts servers as the tests do
    sys.path.insert(0, str(REPO))

from load import run_load  # noqa: E402 (a sibling script)

from tests.helpers.processes import CLI, ChromaServer, serve  # noqa: E402


def measure(seconds: float, clients: int) -> dict[str, Any]:
    """One load run per worker count against the same Chroma server and corpus."""
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cx-workers-") as tmp, \
            ChromaServer(Path(tmp) / "chroma") as chroma:
        env = {**os.environ, "CX_CHROMA_URL": chroma.url, "CX_DATA_DIR": f"{tmp}/data"}
        subprocess.run([str(CLI), "ingest", str(REPO / "corpus")], env=env, check=True,
                       capture_output=True)
        for workers in (1, 2):
            with serve(Path(tmp) / f"data-{workers}", args=["--workers", str(workers)],
                       ready=True, CX_CHROMA_URL=chroma.url) as served:
                runs[str(workers)] = run_load(served.url, seconds=seconds, clients=clients)
    return runs


def table(runs: dict[str, Any]) -> str:
    lines = [f"{'workers':>7} {'req/s':>7} {'errors':>6} {'search p50':>10} "
             f"{'answer p50':>10} {'answer p95':>10}"]
    for workers, r in runs.items():
        lines.append(f"{workers:>7} {r['total']['rps']:>7} {r['total']['errors']:>6} "
                     f"{r['routes']['search']['p50_ms']:>10} "
                     f"{r['routes']['answer']['p50_ms']:>10} "
                     f"{r['routes']['answer']['p95_ms']:>10}")
    one, two = runs["1"]["total"]["rps"], runs["2"]["total"]["rps"]
    lines.append(f"2 workers / 1 worker: {two / one:.2f}x requests/s ({os.cpu_count()} cores)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path,
                        default=REPO / "eval" / "results" / "bench-workers.json")
    args = parser.parse_args()
    runs = measure(args.seconds, args.clients)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(table(runs))
    print(f"wrote {args.out}")
    sys.exit(1 if any(r["total"]["errors"] for r in runs.values()) else 0)


if __name__ == "__main__":
    main()
