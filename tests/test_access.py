"""Keys scoped to collections, the audit log and the authentication back-off (issue 17), against
one real `cx-assistant serve` over HTTP shared by the module.

The matrix sends every key (CX_API_KEYS, admin, read-only, writer, pattern, revoked, wrong,
none) to every route that names a collection (REST, OpenAI-compatible, MCP) for every
collection (and for none: the default), asserts each status, and asserts that no body ever
carries a doc_id, a sentence or the marker word of a collection the key may not read. Every
one of those requests must then be in the audit log once, under the right key name, and no
secret anywhere in it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.browser import CHROMIUM, LAUNCH_ARGS
from helpers.processes import CLI, serve

from assistant.keys import KeyStore

DEFAULT = "cx-knowledge"
DOCS = {  # collection -> {doc_id: text}; each collection has its own marker word
    DEFAULT: {
        "kb-churn.md": "# Churn reviews\n\nOur ORCHID method reviews every churn signal within "
                       "five working days. The journey owner signs off each churn review.",
        "kb-faults.md": "# Faults\n\nA Cx Quality Fault under ORCHID is a broken promise to the "
                        "customer.",
    },
    "client-acme": {
        "acme-churn.md": "# Acme churn\n\nAcme's churn fell from 2.1% to 1.6% after the ZEPHYR "
                         "billing fix. Acme's churn review credited the new invoices.",
        "acme-nps.md": "# Acme NPS\n\nAcme's ZEPHYR survey put NPS at 31 in March.",
    },
    "client-bw": {
        "bw-churn.md": "# Brightwave churn\n\nBrightwave's churn rose to 4.4% when the QUOKKA "
                       "release broke logins. Brightwave's churn review blamed the app.",
    },
}
MARKERS = {DEFAULT: "ORCHID", "client-acme": "ZEPHYR", "client-bw": "QUOKKA"}
QUESTION = "What happened to churn?"
LEGACY = "legacy-key-5Tq9"
WRONG = "cx_not-a-key-at-all-0000"


@dataclass
class Key:
    name: str
    secret: str | None
    read: set[str]
    write: set[str]
    admin: bool = False
    audit_name: str | None = None  # what the audit log must show for it

    @property
    def authenticated(self) -> bool:
        return bool(self.read)


def _sentences(text: str) -> list[str]:
    body = text.split("\n\n", 1)[1]
    return [s.strip() for s in body.replace(". ", ".\n").splitlines() if len(s.strip()) > 20]


def leaks(body: str, key: Key, asked: str | None) -> list[str]:
    """What of another collection this body shows: doc_ids, sentences or markers of every
    collection the key may not read, and (for a collection read) of any other collection."""
    allowed = {asked} if asked else key.read
    found = []
    for collection, docs in DOCS.items():
        if collection in allowed:
            continue
        found += [m for m in [MARKERS[collection], *docs] if m in body]
        found += [s for text in docs.values() for s in _sentences(text) if s in body]
    return found


@dataclass
class Server:
    url: str
    data: Path
    keys: dict[str, Key]
    log: Callable[[], str]
    sent: dict[str, tuple[str | None, int]]  # request id -> (audit key name, status)


_addresses = itertools.count(1)


def fresh_address() -> str:
    """A client address of its own (uvicorn trusts X-Forwarded-For from loopback), so the
    back-off of one request's failures never touches another's."""
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def create_key_with_cli(data: Path, *args: str) -> str:
    done = subprocess.run([str(CLI), "keys", "create", *args], capture_output=True, text=True,
                          env={**os.environ, "CX_DATA_DIR": str(data)}, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("access-data")
    store = KeyStore(data)
    every = set(DOCS)
    keys = {"legacy": Key("legacy", LEGACY, every, every, audit_name="CX_API_KEYS#1")}
    for name, read, write, admin in [("root", "*", "*", True),
                                     ("acme-reader", "client-acme", "", False),
                                     ("clients", "client-*", "", False),
                                     ("gone", "*", "*", False)]:
        _, secret = store.create(name, read, write, admin)
        keys[name] = Key(name, secret, {c for c in DOCS if c.startswith(read.rstrip("*"))},
                         {c for c in DOCS if write and c.startswith(write.rstrip("*"))}, admin)
    secret = create_key_with_cli(data, "--name", "acme-writer", "--read", "client-acme",
                                 "--write", "client-acme")
    assert secret.startswith("cx_") and "\n" not in secret
    keys["acme-writer"] = Key("acme-writer", secret, {"client-acme"}, {"client-acme"})
    store.revoke("gone")
    keys["gone"] = Key("gone", keys["gone"].secret, set(), set(), audit_name="gone (revoked)")
    keys["wrong"] = Key("wrong", WRONG, set(), set())
    keys["none"] = Key("none", None, set(), set())
    with serve(data, CX_API_KEYS=LEGACY, CX_AUTH_BACKOFF_BURST="3",
               CX_AUTH_BACKOFF_REFILL_S="600") as served:
        for collection, docs in DOCS.items():
            r = httpx.post(f"{served.url}/v1/documents", params={"collection": collection},
                           headers={"Authorization": f"Bearer {LEGACY}"}, timeout=120,
                           files=[("files", (d, t.encode())) for d, t in docs.items()])
            assert r.status_code == 200, r.text
            r = httpx.post(f"{served.url}/v1/feedback", headers={
                "Authorization": f"Bearer {LEGACY}"}, json={
                "question": f"Churn at {collection}?", "rating": "down", "collection": collection,
                "citations": [{"n": 1, "doc_id": next(iter(docs))}]})
            assert r.status_code == 201, r.text
        yield Server(served.url, data, keys, served.log_text, {})


def call(server: Server, key: Key, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request as `key`, from an address of its own, with an id the audit log must show."""
    rid = f"t-{len(server.sent)}-{key.name}"
    headers = {"x-request-id": rid, "X-Forwarded-For": fresh_address(),
               **kwargs.pop("headers", {})}
    if key.secret:
        headers["Authorization"] = f"Bearer {key.secret}"
    r = httpx.request(method, server.url + path, headers=headers, timeout=120, **kwargs)
    server.sent[rid] = (key.audit_name or (key.name if key.authenticated else None),
                        r.status_code)
    return r


def mcp(server: Server, key: Key, tool: str, arguments: dict[str, Any]) -> tuple[int, str]:
    """A tools/call over Streamable HTTP: (the API's status for it, the body)."""
    r = call(server, key, "POST", "/mcp", headers={"accept": "application/json, "
                                                   "text/event-stream"},
             json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}})
    if r.status_code != 200:
        return r.status_code, r.text
    result = r.json()["result"]
    return (result["structuredContent"]["status"] if result["isError"] else 200), r.text


def reads(server: Server, key: Key, collection: str | None) -> dict[str, tuple[int, str]]:
    """Every read route on one collection (None: the default) -> (status, body)."""
    col = {"collection": collection} if collection else {}
    doc = next(iter(DOCS[collection or DEFAULT]))
    out = {}
    for name, method, path, kwargs in [
        ("search", "POST", "/v1/search", {"json": {"query": QUESTION, **col}}),
        ("answer", "POST", "/v1/answer", {"json": {"question": QUESTION, **col}}),
        ("stream", "POST", "/v1/answer", {"json": {"question": QUESTION, "stream": True,
                                                   **col}}),
        ("list", "GET", "/v1/documents", {"params": col}),
        ("document", "GET", f"/v1/documents/{doc}", {"params": col}),
        ("original", "GET", f"/v1/documents/{doc}/file", {"params": col}),
        ("feedback", "POST", "/v1/feedback", {"json": {"question": QUESTION,
                                                       "rating": "up", **col}}),
        ("chat", "POST", "/v1/chat/completions", {"json": {
            "model": collection or DEFAULT,
            "messages": [{"role": "user", "content": QUESTION}]}}),
    ]:
        r = call(server, key, method, path, **kwargs)
        out[name] = (r.status_code, r.text)
    out["mcp-search"] = mcp(server, key, "search", {"query": QUESTION, **col})
    out["mcp-answer"] = mcp(server, key, "answer", {"question": QUESTION, **col})
    out["mcp-document"] = mcp(server, key, "get_document", {"doc_id": doc, **col})
    return out


def test_keys_by_routes_by_collections(server: Server) -> None:
    cells = 0
    for key in server.keys.values():
        for collection in [None, *DOCS]:
            name = collection or DEFAULT
            for route, (status, body) in reads(server, key, collection).items():
                cells += 1
                ok = 201 if route == "feedback" else 200
                want = 401 if not key.authenticated else ok if name in key.read else 403
                assert status == want, (key.name, route, collection, status, body[:300])
                assert leaks(body, key, name if status < 300 else None) == [], (
                    key.name, route, collection)
                if status == 403:
                    assert f"'{name}'" in body, body  # the refusal names the collection
            if collection is None:
                continue
            cells += 2
            upload = call(server, key, "POST", "/v1/documents", params={"collection": name},
                          files=[("files", (f"probe-{key.name}.md", b"A probe about churn."))])
            delete = call(server, key, "DELETE", f"/v1/documents/probe-{key.name}.md",
                          params={"collection": name})
            want = 401 if not key.authenticated else 200 if name in key.write else 403
            assert (upload.status_code, delete.status_code) == (want, want), (
                key.name, name, upload.text, delete.text)
        cells += _lists(server, key)
    print(f"\naccess matrix: {len(server.keys)} keys, {cells} key x route x collection cells, "
          f"{len(server.sent)} requests")
    admin = server.keys["root"]
    for collection in DOCS:  # refused uploads left nothing behind
        listed = call(server, admin, "GET", "/v1/documents", params={"collection": collection})
        assert {d["doc_id"] for d in listed.json()["data"]} == set(DOCS[collection])
    _audited(server)


def _lists(server: Server, key: Key) -> int:
    """The routes that list: only readable collections (and their models, feedback) show."""
    if not key.authenticated:
        for path in ("/v1/collections", "/v1/models", "/v1/feedback/export", "/v1/keys"):
            assert call(server, key, "GET", path).status_code == 401, (key.name, path)
        return 4
    collections = call(server, key, "GET", "/v1/collections").json()["collections"]
    assert set(collections) == key.read, (key.name, collections)
    models = {m["id"].split(":")[0] for m in call(server, key, "GET", "/v1/models").json()["data"]}
    assert models == key.read, (key.name, models)
    export = call(server, key, "GET", "/v1/feedback/export")
    assert export.status_code == 200
    exported = {json.loads(line)["collection"] for line in export.text.splitlines()}
    assert exported == key.read, (key.name, exported)  # each collection has feedback
    assert leaks(export.text, key, None) == []
    status, body = mcp(server, key, "list_collections", {})
    assert status == 200 and set(json.loads(body)["result"]["structuredContent"][
        "collections"]) == key.read
    keys = call(server, key, "GET", "/v1/keys")
    assert keys.status_code == (200 if key.admin else 403), (key.name, keys.text)
    assert not any(k.secret and k.secret in keys.text for k in server.keys.values())
    return 5


def _audited(server: Server) -> None:
    """One audit line per request sent, with the right key name and status; no secret."""
    path = server.data / "audit.jsonl"
    deadline = time.monotonic() + 10
    while True:  # a streamed answer's line is written just after its last byte
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        by_id: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_id.setdefault(line["request_id"], []).append(line)
        if set(server.sent) <= set(by_id) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for rid, (key_name, status) in server.sent.items():
        assert len(by_id.get(rid, [])) == 1, (rid, by_id.get(rid))
        line = by_id[rid][0]
        assert (line["key"], line["status"]) == (key_name, status), (rid, line)
        assert line.keys() >= {"time", "route", "collection", "doc_ids"}
        assert "question" not in line  # CX_AUDIT_QUESTIONS is off
    assert any(line["doc_ids"] for line in lines)
    text = path.read_text() + server.log()
    for key in server.keys.values():
        assert not key.secret or key.secret not in text, key.name
    assert QUESTION not in path.read_text()


def test_revocation_applies_on_the_next_request(server: Server) -> None:
    secret = create_key_with_cli(server.data, "--name", "temp", "--read", "client-bw")
    temp = Key("temp", secret, {"client-bw"}, set())
    r = call(server, temp, "POST", "/v1/search", json={"query": QUESTION,
                                                       "collection": "client-bw"})
    assert r.status_code == 200 and "bw-churn.md" in r.text
    subprocess.run([str(CLI), "keys", "revoke", "temp"], check=True, capture_output=True,
                   env={**os.environ, "CX_DATA_DIR": str(server.data)})
    r = call(server, temp, "POST", "/v1/search", json={"query": QUESTION,
                                                       "collection": "client-bw"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    listed = subprocess.run([str(CLI), "keys", "list", "--json"], check=True, text=True,
                            capture_output=True, env={**os.environ, "CX_DATA_DIR":
                                                      str(server.data)}).stdout
    assert {k["name"]: k["revoked"] for k in json.loads(listed)}["temp"] is True
    assert secret not in listed


def test_failed_authentications_are_slowed_per_address(server: Server) -> None:
    """Burst 3 on this server: the 4th failure from one address is refused with 429 before
    any key is checked (a right key too), while other addresses go on."""
    slow, other = {"X-Forwarded-For": "192.0.2.7"}, {"X-Forwarded-For": "192.0.2.8"}
    url, right = f"{server.url}/v1/collections", server.keys["root"].secret
    for _ in range(3):
        r = httpx.get(url, headers={**slow, "Authorization": f"Bearer {WRONG}"})
        assert r.status_code == 401
    for secret in (WRONG, right):
        r = httpx.get(url, headers={**slow, "Authorization": f"Bearer {secret}"})
        assert r.status_code == 429, r.text
        assert 0 < int(r.headers["retry-after"]) <= 600
    assert httpx.get(url, headers=slow).status_code == 401  # no key: nothing to slow
    assert httpx.get(url, headers={**other, "Authorization": f"Bearer {right}"}
                     ).status_code == 200
    chat = httpx.post(f"{server.url}/v1/chat/completions", headers={
        **slow, "Authorization": f"Bearer {right}"}, json={"model": DEFAULT, "messages": []})
    assert chat.status_code == 429 and chat.json()["error"]["type"] == "rate_limit_error"
    login = {"X-Forwarded-For": "192.0.2.9"}
    for _ in range(3):
        r = httpx.post(f"{server.url}/ui/login", headers=login,
                       data={"username": "root", "password": WRONG})
        assert r.status_code == 400
    r = httpx.post(f"{server.url}/ui/login", headers=login,
                   data={"username": "root", "password": right})
    assert r.status_code == 429


def test_the_chat_shows_a_scoped_key_only_its_collections(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "chromium missing: `make test` installs it (apt-get chromium)"
    key = server.keys["acme-reader"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{server.url}/ui/")
        page.fill("input[type=text]", key.name)
        page.fill("input[type=password]", str(key.secret))
        page.keyboard.press("Enter")
        page.wait_for_selector("#cx-question textarea")
        page.click("#cx-filters")
        page.wait_for_function("document.querySelector('#cx-collection input')?.value "
                               "=== 'client-acme'")
        page.click("#cx-collection input")
        options = page.locator("#cx-collection [role=option]")
        options.first.wait_for()
        assert [t.replace("✓", "").strip() for t in options.all_inner_texts()] == [
            "client-acme"]  # the selected option carries a check mark
        page.keyboard.press("Escape")
        page.fill("#cx-question textarea", QUESTION)
        page.click("#cx-ask")
        page.wait_for_function("document.querySelector('#cx-sources details')")
        text = page.evaluate("document.body.textContent")  # folded sources included
        assert "acme-churn.md" in text and leaks(text, key, None) == []
        browser.close()


# --- in-process: the rules that need no served corpus ----------------------------------------

def test_a_key_store_locks_an_open_server_for_good(tmp_path: Path) -> None:
    """Open with no keys; locked once a store exists (no restart); still locked, not open,
    when its last key is revoked."""
    from fastapi.testclient import TestClient

    from assistant.api import create_app
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    app = create_app(AssistantService(load_settings(data_dir=tmp_path)), ui=False)
    with TestClient(app) as client:
        assert client.get("/v1/collections").status_code == 200
        assert client.get("/v1/keys").status_code == 403  # no admin key in an open server
        store = KeyStore(tmp_path)
        _, secret = store.create("only", "*")
        auth = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/collections").status_code == 401
        assert client.get("/v1/collections", headers=auth).status_code == 200
        store.revoke("only")
        assert client.get("/v1/collections").status_code == 401
        assert client.get("/v1/collections", headers=auth).status_code == 401
    assert secret not in (tmp_path / "keys.sqlite3").read_bytes().decode("latin-1")


def test_audit_questions_opt_in_and_rotation(tmp_path: Path) -> None:
    from assistant.audit import AuditLog, AuditRecord
    from assistant.settings import load_settings

    settings = load_settings(data_dir=tmp_path, audit_questions=True, audit_max_bytes=400,
                             audit_backups=2)
    log = AuditLog(settings)
    for i in range(12):
        log.write(AuditRecord(key="k", question=f"question {i}"), route="/v1/search",
                  status=200)
    log.close()
    files = sorted(p.name for p in tmp_path.glob("audit.jsonl*"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    last = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert last["question"] == "question 11" and last["key"] == "k"
    assert load_settings(data_dir=tmp_path, audit_log="-").audit_path is None


def test_back_off_refills_with_time() -> None:
    from assistant.auth import FailureBackoff

    now = [0.0]
    backoff = FailureBackoff(burst=2, refill_s=10, clock=lambda: now[0])
    backoff.fail("a")
    backoff.fail("a")
    assert backoff.retry_after("a") == pytest.approx(10) and backoff.retry_after("b") == 0
    now[0] = 5
    assert backoff.retry_after("a") == pytest.approx(5)
    now[0] = 10
    assert backoff.retry_after("a") == 0
