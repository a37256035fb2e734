"""Every request limit over real HTTP: just over it gets a 4xx that names the limit (and the
`CX_*` setting where there is one); just under it is served. One `cx-assistant serve` with small
caps and an API key, so the key check can be shown to come before the body is read."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.files import write_md
from helpers.processes import cli_ingest, serve

from assistant.schemas import MAX_HISTORY_TURNS, MAX_TURN_CHARS

MAX_QUESTION = 120
MAX_BYTES = 4096
MAX_FILES = 3
MAX_BODY = 64 * 1024
UPLOAD_CAP = MAX_FILES * MAX_BYTES + 2**20  # the files plus 1 MiB of multipart framing
KEY = "limits-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("limits-data")
    kb = tmp_path_factory.mktemp("limits-kb")
    write_md(kb / "faults.md", "Defining faults",
             "# Defining faults\n\nA Cx Quality Fault is a moment where the customer receives "
             "less than the organisation promised.", doc_type="article")
    cli_ingest(kb, data)
    with serve(data, CX_MAX_QUESTION_CHARS=str(MAX_QUESTION),
               CX_UPLOAD_MAX_BYTES=str(MAX_BYTES), CX_UPLOAD_MAX_FILES=str(MAX_FILES),
               CX_MAX_BODY_BYTES=str(MAX_BODY), CX_API_KEYS=KEY) as served:
        yield served.url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120,
                      headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def details(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


@pytest.mark.parametrize(("path", "field", "extra"), [
    ("/v1/answer", "question", {}), ("/v1/search", "query", {}),
    ("/v1/feedback", "question", {"rating": "up"}),
])
def test_question_length_follows_cx_max_question_chars(
    client: httpx.Client, path: str, field: str, extra: dict[str, str]
) -> None:
    question = "What is a Cx Quality Fault? ".ljust(MAX_QUESTION, "x")
    under = client.post(path, json={field: question, **extra})
    assert under.status_code in (200, 201), under.text
    over = client.post(path, json={field: question + "x", **extra})
    assert over.status_code == 422
    assert "CX_MAX_QUESTION_CHARS" in details(over) and str(MAX_QUESTION) in details(over)
    assert over.json()["detail"][0]["loc"] == ["body", field]


def test_the_manual_shows_the_configured_limits(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["AnswerRequest"]["properties"]["question"]["maxLength"] == MAX_QUESTION
    assert schemas["SearchRequest"]["properties"]["query"]["maxLength"] == MAX_QUESTION
    assert schemas["FeedbackRequest"]["properties"]["question"]["maxLength"] == MAX_QUESTION
    upload = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    ref = upload["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schemas[ref]["properties"]["files"]["maxItems"] == MAX_FILES


@pytest.mark.parametrize(("path", "field", "limit"), [("/v1/search", "query", 100),
                                                      ("/v1/answer", "question", 50)])
def test_top_k(client: httpx.Client, path: str, field: str, limit: int) -> None:
    under = client.post(path, json={field: "Cx Quality Fault", "top_k": limit})
    assert under.status_code == 200, under.text
    over = client.post(path, json={field: "Cx Quality Fault", "top_k": limit + 1})
    assert over.status_code == 422
    assert over.json()["detail"][0]["loc"] == ["body", "top_k"]
    assert f"less than or equal to {limit}" in details(over)


def history(turns: int, chars: int = 40) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": "x" * chars}
            for i in range(turns)]


def test_history_turns(client: httpx.Client) -> None:
    question = "What is a Cx Quality Fault?"
    under = client.post("/v1/answer", json={"question": question,
                                            "history": history(MAX_HISTORY_TURNS)})
    assert under.status_code == 200, under.text
    over = client.post("/v1/answer", json={"question": question,
                                           "history": history(MAX_HISTORY_TURNS + 1)})
    assert over.status_code == 422
    assert over.json()["detail"][0]["loc"] == ["body", "history"]
    assert f"at most {MAX_HISTORY_TURNS} items" in details(over)


def test_history_turn_length(client: httpx.Client) -> None:
    question = "What is a Cx Quality Fault?"
    under = client.post("/v1/answer", json={"question": question,
                                            "history": history(1, MAX_TURN_CHARS)})
    assert under.status_code == 200, under.text
    over = client.post("/v1/answer", json={"question": question,
                                           "history": history(1, MAX_TURN_CHARS + 1)})
    assert over.status_code == 422
    assert over.json()["detail"][0]["loc"] == ["body", "history", 0, "content"]
    assert f"at most {MAX_TURN_CHARS} characters" in details(over)


def text_file(name: str, size: int) -> tuple[str, tuple[str, bytes, str]]:
    words = (b"Limits keep the assistant responsive for every consultant. " * 200)[:size]
    return ("files", (name, words, "text/plain"))


def test_upload_file_size(client: httpx.Client) -> None:
    under = client.post("/v1/documents", files=[text_file("at-cap.txt", MAX_BYTES)])
    assert under.status_code == 200, under.text
    assert under.json()["doc_ids"] == ["at-cap.txt"]
    over = client.post("/v1/documents", files=[text_file("over-cap.txt", MAX_BYTES + 1)])
    assert over.status_code == 413
    assert "CX_UPLOAD_MAX_BYTES" in details(over) and str(MAX_BYTES) in details(over)


def test_upload_file_count(client: httpx.Client) -> None:
    """Starlette's form parser stops at CX_UPLOAD_MAX_FILES itself; its words are replaced
    by ones that name the setting."""
    under = client.post("/v1/documents",
                        files=[text_file(f"count-{i}.txt", 300) for i in range(MAX_FILES)])
    assert under.status_code == 200, under.text
    assert len(under.json()["doc_ids"]) == MAX_FILES
    over = client.post("/v1/documents",
                       files=[text_file(f"more-{i}.txt", 300) for i in range(MAX_FILES + 1)])
    assert over.status_code == 400
    assert "CX_UPLOAD_MAX_FILES" in details(over) and str(MAX_FILES) in details(over)
    assert client.get("/v1/documents/more-0.txt").status_code == 404  # nothing was ingested


def answer_body(size: int) -> bytes:
    """A valid /v1/answer body of exactly `size` bytes (padding in its history)."""
    payload: dict[str, Any] = {"question": "What is a Cx Quality Fault?",
                               "history": history(8, 10)}
    base = len(json.dumps(payload).encode())
    pad = size - base
    for turn in payload["history"]:
        extra = min(pad, MAX_TURN_CHARS - len(turn["content"]))
        turn["content"] += "y" * extra
        pad -= extra
    body = json.dumps(payload).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_request_body_size(client: httpx.Client, chunked: bool) -> None:
    """Declared lengths are refused before reading; chunked bodies as the bytes arrive."""

    def send(body: bytes) -> httpx.Response:
        content: Any = iter([body[i:i + 8192] for i in range(0, len(body), 8192)]) \
            if chunked else body
        return client.post("/v1/answer", content=content,
                           headers={"content-type": "application/json"})

    under = send(answer_body(MAX_BODY))
    assert under.status_code == 200, under.text
    over = send(answer_body(MAX_BODY + 1))
    assert over.status_code == 413
    assert "CX_MAX_BODY_BYTES" in details(over) and str(MAX_BODY) in details(over)


def test_upload_request_body_size(client: httpx.Client) -> None:
    """An upload body over files x bytes (+1 MiB) is refused before any part is parsed."""
    files = [("files", ("big.txt", b"z" * (UPLOAD_CAP + 1), "text/plain"))]
    r = client.post("/v1/documents", files=files)
    assert r.status_code == 413
    assert "CX_UPLOAD_MAX_FILES x CX_UPLOAD_MAX_BYTES" in details(r)
    assert str(UPLOAD_CAP) in details(r)


def raw_headers_only(base: str, path: str, headers: dict[str, str]) -> int:
    """Send a request line and headers that promise a body, send no body, and return the
    status the server answers with (it can only answer if it did not wait for the body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        started = time.monotonic()
        reply = sock.recv(4096).decode("latin-1")
    assert time.monotonic() - started < 15
    return int(reply.split(" ", 2)[1])


def test_key_is_checked_before_the_upload_body_is_read(server: str) -> None:
    promised = {"Content-Type": "multipart/form-data; boundary=xyz",
                "Content-Length": str(MAX_BYTES)}
    assert raw_headers_only(server, "/v1/documents", promised) == 401
    wrong = {**promised, "Authorization": "Bearer nope"}
    assert raw_headers_only(server, "/v1/documents", wrong) == 401
    no_key = httpx.post(f"{server}/v1/documents", files=[text_file("k.txt", 100)])
    assert no_key.status_code == 401 and "API key" in no_key.json()["detail"]


def test_declared_oversize_body_is_refused_before_it_is_sent(server: str) -> None:
    promised = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY + 1),
                "Authorization": f"Bearer {KEY}"}
    assert raw_headers_only(server, "/v1/answer", promised) == 413


def test_unparseable_body_says_what_to_send(client: httpx.Client) -> None:
    r = client.post("/v1/answer", content=b'{"question": "\xff\xfe"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "UTF-8 JSON" in r.json()["detail"]
