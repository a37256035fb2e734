"""The HTTP API over real HTTP: `cx-assistant serve` on a loopback port, real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.files import write_small_kb
from helpers.processes import cli_ingest, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("api-data")
    kb = tmp_path_factory.mktemp("api-kb")
    write_small_kb(kb)
    cli_ingest(kb, data)
    with serve(data) as served:
        yield served.url


def test_health_and_ready(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200 and ready.json()["chroma"] is True


def test_search_contract(server: str) -> None:
    r = httpx.post(f"{server}/v1/search", json={"query": "churn", "top_k": 1,
                                                 "filters": {"client": "Acme"}})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert [h["doc_id"] for h in hits] == ["findings/acme.md"]
    assert set(hits[0]) >= {"doc_id", "title", "section", "text", "score", "metadata"}


def test_answer_contract(server: str) -> None:
    r = httpx.post(f"{server}/v1/answer", json={"question": "What is a Cx Quality Fault?"})
    assert r.status_code == 200
    body = r.json()
    assert body["abstained"] is False and body["mode"] == "extractive"
    assert body["citations"][0]["doc_id"] == "articles/faults.md"
    assert "[1]" in body["answer"]
    off = httpx.post(f"{server}/v1/answer", json={"question": "Who won the 1998 World Cup?"})
    assert off.json()["abstained"] is True and off.json()["citations"] == []


def test_documents_list(server: str) -> None:
    body = httpx.get(f"{server}/v1/documents", params={"limit": 1}).json()
    assert body["count"] == 2 and len(body["data"]) == 1
    assert set(body["data"][0]) >= {"doc_id", "title", "doc_type", "chunks", "ingested_at"}


@pytest.mark.parametrize(("method", "path", "payload", "status", "fragment"), [
    ("post", "/v1/search", {"query": ""}, 422, "query"),
    ("post", "/v1/search", {"query": "x", "top_k": 0}, 422, "top_k"),
    ("post", "/v1/search", {"query": "x", "top_k": 10_000}, 422, "top_k"),
    ("post", "/v1/search", {"query": "x", "filters": {"colour": "red"}}, 422, "colour"),
    ("post", "/v1/search", {"query": "x", "collection": "no-such-thing"}, 404, "does not exist"),
    ("post", "/v1/answer", {"question": "x" * 5000}, 422, "question"),
    ("post", "/v1/answer", {"question": "   "}, 422, "blank"),
    ("post", "/v1/answer", {"question": "q", "history": [{"role": "bot", "content": "x"}]},
     422, "role"),
    ("post", "/v1/answer", "not json", 422, ""),
    ("delete", "/v1/documents/missing/doc.md", None, 404, "no document"),
])
def test_bad_input_gets_a_clear_4xx(
    server: str, method: str, path: str, payload: object, status: int, fragment: str
) -> None:
    kwargs: dict[str, object] = {}
    if isinstance(payload, str):
        kwargs = {"content": payload, "headers": {"content-type": "application/json"}}
    elif payload is not None:
        kwargs = {"json": payload}
    r = httpx.request(method.upper(), f"{server}{path}", **kwargs)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    assert fragment in str(r.json()["detail"])


def test_api_keys(tmp_path: Path) -> None:
    with serve(tmp_path / "data", CX_API_KEYS="k1,secret-two") as served:
        base = served.url
        assert httpx.get(f"{base}/healthz").status_code == 200
        q = {"query": "x"}
        assert httpx.post(f"{base}/v1/search", json=q).status_code == 401
        wrong = httpx.post(f"{base}/v1/search", json=q, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["detail"]
        right = httpx.post(f"{base}/v1/search", json=q,
                           headers={"Authorization": "Bearer secret-two"})
        assert right.status_code == 404  # authorised; the collection simply does not exist yet
    assert "secret-two" not in served.log_text()
