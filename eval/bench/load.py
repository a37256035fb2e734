"""Bounded load test of a running `cx-assistant serve` on loopback: 16 clients, 60 s.

Each client thread alternates /v1/search and /v1/answer with the golden suite's questions, as
fast as the server answers; one more thread uploads a new small document (POST /v1/documents)
once a second, so ingestion competes with retrieval the way it does in use. Any non-2xx status
or transport failure counts as an error. Reports, per route and in total: requests, errors,
requests/s and latency p50/p95/p99/max in milliseconds.

    .venv/bin/python eval/bench/load.py --url http://127.0.0.1:8000 [--seconds 60] \
        [--clients 16] [--api-key KEY] [--out eval/results/load.json]

Without --url it ingests corpus/ into a fresh data dir, serves it on a free loopback port,
and stops the server afterwards. tests/test_load.py runs the same load in `make test`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "eval" / "suites" / "cx_golden.jsonl"
ROUTES = ("search", "answer", "upload")


def questions(suite: Path = SUITE) -> list[str]:
    return [json.loads(line)["question"] for line in suite.read_text().splitlines() if line]


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of samples at or below."""
    if not sorted_ms:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return round(sorted_ms[rank - 1], 1)


def run_load(base_url: str, *, seconds: float = 60.0, clients: int = 16,
             upload_interval_s: float = 1.0, api_key: str | None = None,
             texts: list[str] | None = None) -> dict[str, Any]:
    """Drive the server for `seconds` and return the figures (see the module docstring)."""
    texts = texts or questions()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    uploaded: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + seconds

    def record(route: str, began: float, response: httpx.Response | None,
               failure: str | None = None) -> None:
        ms = (time.monotonic() - began) * 1000
        if response is not None and not response.is_success:
            failure = f"{response.status_code}: {response.text[:300]}"
        with lock:
            latencies[route].append(ms)
            if failure is not None:
                errors[route].append(failure)

    def call(client: httpx.Client, route: str, method: str, path: str, **kwargs: Any) -> None:
        began = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            record(route, began, None, f"{type(exc).__name__}: {exc}")
            return
        record(route, began, response)

    def asker(index: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            n = index
            while time.monotonic() < stop_at:
                text = texts[n % len(texts)]
                if n % 2 == 0:
                    call(client, "search", "POST", "/v1/search", json={"query": text})
                else:
                    call(client, "answer", "POST", "/v1/answer", json={"question": text})
                n += 1

    def uploader() -> None:
        run = uuid.uuid4().hex[:8]
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            k, due = 0, started
            while due < stop_at:
                time.sleep(max(0.0, due - time.monotonic()))
                name = f"load-{run}-{k:04d}.md"
                body = (f"---\ntitle: Load note {k}\ndoc_type: finding\n---\n\n# Load note {k}\n\n"
                        f"Load run {run} note {k}: the Zephyr team cut call-back time from "
                        f"{20 + k % 40} to {5 + k % 7} minutes after fixing the rota.").encode()
                call(client, "upload", "POST", "/v1/documents",
                     files=[("files", (name, body, "text/markdown"))])
                with lock:
                    uploaded.append(name)
                k += 1
                due += upload_interval_s  # one at a time: a slow upload delays the next

    threads = [threading.Thread(target=asker, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=uploader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started

    def figures(samples: list[float], failed: list[str]) -> dict[str, Any]:
        ordered = sorted(samples)
        return {"requests": len(ordered), "errors": len(failed),
                "rps": round(len(ordered) / wall, 2),
                "p50_ms": percentile(ordered, 50), "p95_ms": percentile(ordered, 95),
                "p99_ms": percentile(ordered, 99),
                "max_ms": round(ordered[-1], 1) if ordered else 0.0,
                "error_samples": failed[:5]}

    routes = {r: figures(latencies[r], errors[r]) for r in ROUTES}
    total = figures([ms for r in ROUTES for ms in latencies[r]],
                    [e for r in ROUTES for e in errors[r]])
    return {"base_url": base_url, "seconds": round(wall, 1), "clients": clients,
            "upload_interval_s": upload_interval_s, "routes": routes, "total": total,
            "uploaded": uploaded}


def table(result: dict[str, Any]) -> str:
    """The figures as a fixed-width table, one line per route and a total."""
    lines = [f"load: {result['clients']} clients + 1 uploader, {result['seconds']} s",
             f"{'route':<8} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} "
             f"{'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    rows = [*result["routes"].items(), ("total", result["total"])]
    for name, f in rows:
        lines.append(f"{name:<8} {f['requests']:>8} {f['errors']:>6} {f['rps']:>7} "
                     f"{f['p50_ms']:>8} {f['p95_ms']:>8} {f['p99_ms']:>8} {f['max_ms']:>8}")
    return "\n".join(lines)


@contextmanager
def serve_corpus(corpus: Path = REPO / "corpus", **env: str) -> Iterator[str]:
    """Ingest `corpus` into a temporary data dir and serve it on loopback (for local runs)."""
    if str(REPO) not in sys.path:  # a script: tests/helpers starts serve as the tests do
        sys.path.insert(0, str(REPO))
    from tests.helpers.processes import cli_ingest, serve

    with tempfile.TemporaryDirectory(prefix="cx-load-") as tmp:
        data = Path(tmp) / "data"
        cli_ingest(corpus, data)
        with serve(data, **env) as served:
            yield served.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server; default: serve corpus/ here")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--upload-interval", type=float, default=1.0)
    parser.add_argument("--api-key", default=os.environ.get("CX_LOAD_API_KEY"))
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "load.json")
    args = parser.parse_args()

    def run(base: str) -> dict[str, Any]:
        return run_load(base, seconds=args.seconds, clients=args.clients,
                        upload_interval_s=args.upload_interval, api_key=args.api_key)

    if args.url:
        result = run(args.url)
    else:
        with serve_corpus() as base:
            result = run(base)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {args.out}")
    sys.exit(1 if result["total"]["errors"] else 0)


if __name__ == "__main__":
    main()
