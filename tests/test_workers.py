"""`cx-assistant serve --workers N`: separate processes, each with its own service, over a
Chroma server, kept in step by the collection's generation (an upload through one worker is
seen by every one); refused over embedded Chroma, whose index lives in one process."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers.processes import CLI, ChromaServer, Served, serve

pytestmark = pytest.mark.slow
REQUESTS = 24  # each on a new connection, so the kernel spreads them over the workers
FAULTS = b"---\ntitle: Defining faults\n---\n\nA Cx Quality Fault is a broken promise.\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("workers")
    with ChromaServer(root / "chroma") as chroma, serve(
            root / "data", args=["--workers", "2"], ready=False,
            CX_CHROMA_URL=chroma.url) as s:
        r = httpx.post(f"{s.url}/v1/documents", files={"files": ("faults.md", FAULTS)},
                       timeout=120)
        assert r.status_code == 200, r.text
        yield s


def _workers(served: Served) -> set[int]:
    """The server processes uvicorn reports started, once both have started (within 120 s),
    that are children of the parent."""
    deadline = time.monotonic() + 120
    while True:
        pids = {int(m) for m in re.findall(r"Started server process \[(\d+)\]",
                                           served.log_text())}
        if len(pids) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    children = Path(f"/proc/{served.proc.pid}/task/{served.proc.pid}/children").read_text()
    return pids & {int(c) for c in children.split()}


def _hits(served: Served, query: str) -> list[str]:
    r = httpx.post(f"{served.url}/v1/search", json={"query": query}, timeout=120)
    assert r.status_code == 200, served.log_text()[-4000:]
    return [h["doc_id"] for h in r.json()["hits"]]


def test_two_worker_processes_answer(served: Served) -> None:
    assert len(_workers(served)) == 2, served.log_text()[-2000:]
    question = {"question": "What is a Cx Quality Fault?"}
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(
            lambda _: httpx.post(f"{served.url}/v1/answer", json=question, timeout=120),
            range(REQUESTS)))
    assert all(r.status_code == 200 for r in replies)
    assert all(r.json()["citations"][0]["doc_id"] == "faults.md" for r in replies)


def test_an_upload_through_one_worker_reaches_all(served: Served) -> None:
    with ThreadPoolExecutor(8) as pool:  # every worker caches its retriever first
        list(pool.map(lambda _: _hits(served, "broken promise"), range(REQUESTS)))
    note = b"---\ntitle: Zephyr survey\n---\n\nThe Zephyr survey reached 912 respondents.\n"
    r = httpx.post(f"{served.url}/v1/documents", files={"files": ("zephyr.md", note)},
                   timeout=120)
    assert r.status_code == 200, served.log_text()[-4000:]
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: _hits(served, "Zephyr survey respondents"),
                             range(REQUESTS)))
    assert all(hits and hits[0] == "zephyr.md" for hits in seen), seen


def test_workers_over_embedded_chroma_are_refused(tmp_path: Path) -> None:
    done = subprocess.run([str(CLI), "serve", "--workers", "2"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "CX_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.startswith("error: --workers needs a Chroma server")
    assert "CX_CHROMA_URL" in done.stderr and "Traceback" not in done.stderr
