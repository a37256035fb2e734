"""The full HTTP API over real HTTP (`cx-assistant serve`): streaming, documents, uploads,
feedback, auth modes and the 4xx answer to every kind of bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.files import write_md
from helpers.processes import cli_ingest, serve

from assistant.uploads import UploadError, safe_filename

MAX_BYTES = 4096
MAX_FILES = 3


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small KB ingested once; each server gets its own copy (embedded Chroma is
    single-process)."""
    data = tmp_path_factory.mktemp("api-full-pristine") / "data"
    kb = tmp_path_factory.mktemp("api-full-kb")
    write_md(kb / "articles" / "faults.md", "Defining faults",
             "# Defining faults\n\nA Cx Quality Fault is a moment where the customer receives "
             "less than the organisation promised. Faults are counted per journey every month.",
             doc_type="article", date="2024-01-05")
    write_md(kb / "findings" / "acme.md", "Acme churn",
             "# Acme churn\n\nAcme's churn fell from 2.1% to 1.6% after the billing fix.",
             doc_type="finding", client="Acme")
    (kb / "handbook.md").write_text("The handbook says faults are reviewed monthly.\n")
    cli_ingest(kb, data)
    return data


def copy_of(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("api-full-data") / "data"
    shutil.copytree(pristine, target)
    return target


@pytest.fixture(scope="module")
def data_dir(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(pristine, tmp_path_factory)


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[str]:
    with serve(data_dir, CX_UPLOAD_MAX_BYTES=str(MAX_BYTES),
               CX_UPLOAD_MAX_FILES=str(MAX_FILES)) as served:
        yield served.url


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    """Parse a text/event-stream body into (event, json data) pairs."""
    events, kind, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            events.append((kind, json.loads("\n".join(data))))
            kind, data = "message", []
    return events


def test_answer_stream_sends_deltas_then_the_cited_answer(server: str) -> None:
    question = {"question": "What is a Cx Quality Fault?"}
    plain = httpx.post(f"{server}/v1/answer", json=question, timeout=60).json()
    with httpx.stream("POST", f"{server}/v1/answer", json={**question, "stream": True},
                      timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    done = events[-1][1]
    assert "".join(str(d["text"]) for _, d in events[:-1]) == done["answer"]
    assert done["answer"] == plain["answer"]  # the stream answers exactly as the plain route
    assert done["citations"][0]["doc_id"] == "articles/faults.md" and "[1]" in done["answer"]


def test_answer_stream_abstains_and_reports_errors_before_streaming(server: str) -> None:
    with httpx.stream("POST", f"{server}/v1/answer", timeout=60, json={
            "question": "Who won the 1998 World Cup?", "stream": True}) as r:
        events = sse_events(r)
    assert events[-1][0] == "done" and events[-1][1]["abstained"] is True
    assert events[-1][1]["citations"] == []
    missing = httpx.post(f"{server}/v1/answer", timeout=60, json={
        "question": "anything", "stream": True, "collection": "no-such-collection"})
    assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
    assert missing.headers["content-type"].startswith("application/json")


def test_get_document_with_chunks(server: str) -> None:
    r = httpx.get(f"{server}/v1/documents/findings/acme.md")
    assert r.status_code == 200
    body = r.json()
    assert (body["doc_id"], body["title"], body["doc_type"]) == (
        "findings/acme.md", "Acme churn", "finding")
    assert body["metadata"]["client"] == "Acme"
    assert body["chunks"] and "2.1%" in body["chunks"][0]["text"]
    assert [c["index"] for c in body["chunks"]] == sorted(c["index"] for c in body["chunks"])
    missing = httpx.get(f"{server}/v1/documents/findings/nope.md")
    assert missing.status_code == 404 and "no document" in missing.json()["detail"]


def test_collections_and_readyz(server: str) -> None:
    assert "cx-knowledge" in httpx.get(f"{server}/v1/collections").json()["collections"]
    ready = httpx.get(f"{server}/readyz").json()
    assert ready["status"] == "ready" and ready["collection"] is True


def test_upload_ingests_and_answers_then_delete_removes(server: str, data_dir: Path) -> None:
    files = [
        ("files", ("../../../escape/zephyr-notes.md",
                   b"---\ntitle: Zephyr notes\ndoc_type: finding\nclient: Zephyr\n---\n\n"
                   b"Zephyr Airlines cut rebooking time from 40 minutes to 6 minutes.",
                   "text/markdown")),
        ("files", ("quokka.txt", b"The Quokka programme trains 300 frontline agents a year.",
                   "text/plain")),
    ]
    r = httpx.post(f"{server}/v1/documents", files=files, timeout=120)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["added"] == 2 and sorted(summary["doc_ids"]) == ["quokka.txt",
                                                                     "zephyr-notes.md"]
    saved = data_dir / "uploads" / "cx-knowledge"
    assert sorted(p.name for p in saved.iterdir()) == ["quokka.txt", "zephyr-notes.md"]
    assert not (data_dir.parent / "escape").exists()

    answer = httpx.post(f"{server}/v1/answer", timeout=60, json={
        "question": "How long did Zephyr Airlines rebooking take after the change?"}).json()
    assert answer["citations"] and answer["citations"][0]["doc_id"] == "zephyr-notes.md"
    doc = httpx.get(f"{server}/v1/documents/zephyr-notes.md").json()
    assert doc["metadata"]["client"] == "Zephyr"

    again = httpx.post(f"{server}/v1/documents", timeout=120, files=[
        ("files", ("quokka.txt", b"The Quokka programme trains 450 frontline agents a year.",
                   "text/plain"))]).json()
    assert (again["updated"], again["added"]) == (1, 0)

    for doc_id in ("zephyr-notes.md", "quokka.txt"):
        gone = httpx.delete(f"{server}/v1/documents/{doc_id}")
        assert gone.status_code == 200 and gone.json()["deleted_chunks"] >= 1
    assert httpx.get(f"{server}/v1/documents/quokka.txt").status_code == 404


def test_upload_name_clashing_with_another_source_is_refused(server: str) -> None:
    """`handbook.md` was ingested from a directory: an upload must not shadow it."""
    clash = httpx.post(f"{server}/v1/documents", timeout=120, files=[
        ("files", ("handbook.md", b"A different handbook.", "text/markdown"))])
    assert clash.status_code == 409 and "another source" in clash.json()["detail"]
    assert httpx.get(f"{server}/v1/documents/handbook.md").json()["chunks"][0]["text"].startswith(
        "The handbook says")


@pytest.mark.parametrize(("files", "status", "fragment"), [
    ([("files", ("tool.exe", b"MZ binary", "application/octet-stream"))], 415, ".exe"),
    ([("files", ("notes", b"no extension here", "text/plain"))], 400, "extension"),
    ([("files", ("big.txt", b"x" * (MAX_BYTES + 1), "text/plain"))], 413, "limit"),
    ([("files", (f"f{i}.txt", b"some words", "text/plain")) for i in range(MAX_FILES + 1)],
     400, "files"),
    ([("files", ("empty.md", b"   \n", "text/markdown"))], 400, "empty"),
    ([("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf"))],
     422, "broken.pdf"),
    ([("files", ("a.md", b"first text", "text/plain")),
      ("files", ("dir/a.md", b"second text", "text/plain"))], 400, "both named"),
    ([("other", ("a.md", b"text", "text/plain"))], 422, "files"),
])
def test_bad_uploads_get_a_clear_4xx(
    server: str, files: list[tuple[str, tuple[str, bytes, str]]], status: int, fragment: str
) -> None:
    r = httpx.post(f"{server}/v1/documents", files=files, timeout=60)
    assert r.status_code == status, r.text
    assert fragment in str(r.json()["detail"])


def test_upload_to_a_bad_collection_name(server: str) -> None:
    r = httpx.post(f"{server}/v1/documents", params={"collection": "../etc"},
                   files=[("files", ("a.md", b"text here", "text/plain"))])
    assert r.status_code == 422 and "collection" in str(r.json()["detail"])


def test_feedback_round_trip_and_export(server: str) -> None:
    answer = httpx.post(f"{server}/v1/answer", timeout=60,
                        json={"question": "What is a Cx Quality Fault?"}).json()
    down = httpx.post(f"{server}/v1/feedback", json={
        "question": "What is a Cx Quality Fault?", "answer": answer["answer"],
        "citations": answer["citations"], "rating": "down", "comment": "Too vague"})
    assert down.status_code == 201 and down.json()["rating"] == "down"
    up = httpx.post(f"{server}/v1/feedback", json={
        "question": "Acme churn?", "answer": "1.6% [1]", "citations": [], "rating": "up"})
    assert up.status_code == 201 and up.json()["id"] > down.json()["id"]

    export = httpx.get(f"{server}/v1/feedback/export")
    assert export.status_code == 200
    lines = [json.loads(line) for line in export.text.splitlines()]
    mine = [x for x in lines if x["comment"] == "Too vague"]
    assert len(mine) == 1 and all(x["question"] != "Acme churn?" for x in lines)
    item = mine[0]
    assert {"id", "question", "relevant", "answerable", "expect_any"} <= set(item)
    assert item["relevant"] == ["articles/faults.md"] and item["answerable"] is True
    assert isinstance(item["expect_any"], list)


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"question": "q", "answer": "a", "rating": "meh"}, "rating"),
    ({"answer": "a", "rating": "up"}, "question"),
    ({"question": "  ", "rating": "up"}, "blank"),
    ({"question": "q", "rating": "down", "comment": "x" * 6000}, "comment"),
    ({"question": "q", "rating": "down", "mood": "sad"}, "mood"),
])
def test_bad_feedback_gets_422(server: str, payload: dict[str, object], fragment: str) -> None:
    r = httpx.post(f"{server}/v1/feedback", json=payload)
    assert r.status_code == 422 and fragment in str(r.json()["detail"])


@pytest.mark.parametrize(("method", "path", "payload", "status", "fragment"), [
    ("post", "/v1/answer", {"question": "q", "top_k": 0}, 422, "top_k"),
    ("post", "/v1/answer", {"question": "q", "top_k": 51}, 422, "top_k"),
    ("post", "/v1/answer", {"question": "q", "stream": "sometimes"}, 422, "stream"),
    ("post", "/v1/answer", {"question": "q", "history": [{"role": "user", "content": "x"}] * 51},
     422, "history"),
    ("post", "/v1/answer", {"question": "q", "filters": {"date_from": "yesterday"}}, 422,
     "date_from"),
    ("get", "/v1/documents?limit=0", None, 422, "limit"),
    ("get", "/v1/documents?offset=-1", None, 422, "offset"),
    ("get", "/v1/documents?collection=a", None, 422, "collection"),
    ("get", "/v1/documents/x.md?collection=no-such-collection", None, 404, "does not exist"),
])
def test_more_bad_input_gets_a_clear_4xx(
    server: str, method: str, path: str, payload: object, status: int, fragment: str
) -> None:
    r = httpx.request(method.upper(), f"{server}{path}", json=payload)
    assert r.status_code == status, r.text
    assert fragment in str(r.json()["detail"])


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd.md") == "passwd.md"
    assert safe_filename("/abs/path/report.PDF") == "report.pdf"
    assert safe_filename("C:\\Users\\x\\notes.txt") == "notes.txt"
    assert safe_filename("a\x00b.md") == "ab.md"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert safe_filename("<img src=x onerror=alert(1)>.md") == "img src_x onerror_alert_1.md"
    long = safe_filename("x" * 500 + ".md")
    assert len(long) <= 120 and long.endswith(".md")
    for bad in ("", "..", "/", "noext", "evil.sh", "x.md/"):
        with pytest.raises(UploadError):
            safe_filename(bad)


def test_keys_required_everywhere_when_reads_are_not_public(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = {"Authorization": "Bearer secret-two"}
    with serve(copy_of(pristine, tmp_path_factory), CX_API_KEYS="k1,secret-two") as served:
        base = served.url
        for method, path, body in [("get", "/v1/documents", None),
                                   ("get", "/v1/documents/findings/acme.md", None),
                                   ("get", "/v1/collections", None),
                                   ("post", "/v1/answer", {"question": "Acme churn?"}),
                                   ("post", "/v1/feedback", {"question": "q", "rating": "up"}),
                                   ("get", "/v1/feedback/export", None)]:
            r = httpx.request(method.upper(), f"{base}{path}", json=body)
            assert r.status_code == 401 and "API key" in r.json()["detail"], path
            ok = httpx.request(method.upper(), f"{base}{path}", json=body, headers=key,
                               timeout=60)
            assert ok.status_code in (200, 201), (path, ok.text)
        # The UI is behind a login that takes an API key as password.
        assert httpx.get(f"{base}/ui/config").status_code in (401, 403)
        login = httpx.post(f"{base}/ui/login", data={"username": "me", "password": "k1"})
        assert login.status_code == 200, login.text
        bad = httpx.post(f"{base}/ui/login", data={"username": "me", "password": "nope"})
        assert bad.status_code >= 400


def test_public_read_opens_reads_but_not_writes(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with serve(copy_of(pristine, tmp_path_factory), CX_API_KEYS="writer-key",
               CX_PUBLIC_READ="true") as served:
        base = served.url
        assert httpx.get(f"{base}/v1/documents").status_code == 200
        assert httpx.post(f"{base}/v1/search", json={"query": "churn"}).status_code == 200
        assert httpx.post(f"{base}/v1/answer", json={"question": "Acme churn?"},
                          timeout=60).status_code == 200
        assert httpx.post(f"{base}/v1/feedback",
                          json={"question": "q", "rating": "up"}).status_code == 201
        assert httpx.get(f"{base}/ui/config").status_code == 200  # the chat is open too
        upload = [("files", ("w.txt", b"Writers need keys to upload.", "text/plain"))]
        writes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/v1/documents", {"files": upload}),
            ("DELETE", "/v1/documents/findings/acme.md", {}),
            ("GET", "/v1/feedback/export", {}),
        ]
        for method, path, kwargs in writes:
            r = httpx.request(method, f"{base}{path}", **kwargs)
            assert r.status_code == 401, (path, r.text)
            wrong = httpx.request(method, f"{base}{path}",
                                  headers={"Authorization": "Bearer nope"}, **kwargs)
            assert wrong.status_code == 401, path
        ok = httpx.post(f"{base}/v1/documents", files=upload, timeout=120,
                        headers={"Authorization": "Bearer writer-key"})
        assert ok.status_code == 200 and ok.json()["doc_ids"] == ["w.txt"]
        assert httpx.delete(f"{base}/v1/documents/w.txt",
                            headers={"Authorization": "Bearer writer-key"}).status_code == 200


def test_openapi_manual_lists_every_route(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/v1/answer", "post"), ("/v1/documents", "post"),
                         ("/v1/documents/{doc_id}", "get"), ("/v1/feedback", "post"),
                         ("/v1/feedback/export", "get"), ("/v1/collections", "get")]:
        assert method in paths[path], path
    answer = paths["/v1/answer"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in answer  # the streaming form is documented
    assert httpx.get(f"{server}/docs").status_code == 200
