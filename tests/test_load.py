"""Bounded load on loopback against a real `cx-assistant serve` over the sample corpus:
16 clients alternating /v1/search and /v1/answer plus one upload a second for 60 s
(eval/bench/load.py). Every request must succeed; the figures are printed for the log."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from helpers import CORPUS, REPO
from helpers.processes import cli_ingest, serve

SECONDS = float(os.environ.get("CX_LOAD_SECONDS", "60"))
CLIENTS = 16


def load_bench() -> ModuleType:
    """eval/bench/load.py is a script, not a package module: load it from its path."""
    spec = importlib.util.spec_from_file_location("cx_load_bench",
                                                  REPO / "eval" / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("load-data")
    cli_ingest(CORPUS, data)
    with serve(data) as served:
        yield served.url


@pytest.mark.slow
def test_load_has_no_errors(server: str) -> None:
    bench = load_bench()
    result = bench.run_load(server, seconds=SECONDS, clients=CLIENTS)
    print("\n" + bench.table(result))
    routes = result["routes"]
    for route in ("search", "answer", "upload"):
        assert routes[route]["errors"] == 0, (route, routes[route]["error_samples"])
        assert routes[route]["requests"] > 0, route
    assert result["total"]["errors"] == 0
    assert routes["search"]["requests"] + routes["answer"]["requests"] >= CLIENTS * 2
    # The uploads were ingested while the questions ran: the last one is there and findable.
    last = result["uploaded"][-1]
    assert httpx.get(f"{server}/v1/documents/{last}").status_code == 200
    hits = httpx.post(f"{server}/v1/search", timeout=60, json={
        "query": "Zephyr team call-back time rota", "top_k": 100}).json()["hits"]
    assert any(h["doc_id"].startswith("load-") for h in hits)
