"""Opening a document's original: GET /v1/documents/{doc_id}/file over a real keyed `serve`,
page locations on citations and hits, and the chat UI's signed links.

Traversal is tried the way a hostile client would send it: raw request targets over a plain
socket (httpx would normalise `..` away before sending), encoded, doubled, backslashed and
NUL-bearing, plus a symlink inside an ingested folder that points out of it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from helpers.files import write_md, write_pdf
from helpers.processes import CLI, cli_ingest, serve

from assistant.file_links import FileLinks
from assistant.locations import chunk_locations, location_at, make_location

KEY = "key-originals-5Vd8"
SECRET_TEXT = "The quokka vault code is 4471."  # lives outside every ingested folder
PAGES = [
    "Page one sets out the Orchard Telecom review and its scope across three regions.",
    "Page two records that Orchard Telecom first-contact resolution fell to 61 percent in "
    "the third quarter after the billing migration.",
    "Page three lists the owners of each remedial action and the review dates agreed.",
]


@dataclass
class Site:
    url: str
    data: Path
    kb: Path
    outside: Path


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("originals")
    kb, data, outside = root / "kb", root / "data", root / "outside"
    write_pdf(kb / "findings" / "orchard-review.pdf", "Orchard Telecom review", PAGES)
    write_md(kb / "notes" / "gone.md", "Gone note", "# Gone note\n\nThis note is deleted "
             "from disk after it was ingested, so its original is missing.")
    write_md(kb / "notes" / "plain.md", "Plain note", "# Plain note\n\nA plain note about "
             "the Orchard Telecom escalation path and its owners.")
    write_md(outside / "vault.md", "Vault", f"# Vault\n\n{SECRET_TEXT}")
    (kb / "notes" / "leak.md").symlink_to(outside / "vault.md")
    cli_ingest(kb, data)
    (kb / "notes" / "gone.md").unlink()
    with serve(data, CX_API_KEYS=KEY) as served:
        yield Site(served.url, data, kb, outside)


def raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte as given."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_original_comes_back_byte_for_byte_with_its_type(site: Site) -> None:
    pdf = site.kb / "findings" / "orchard-review.pdf"
    r = httpx.get(f"{site.url}/v1/documents/findings/orchard-review.pdf/file", headers=auth())
    assert r.status_code == 200, r.text
    assert r.content == pdf.read_bytes()
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("inline")  # opens at #page=N
    assert r.headers["x-content-type-options"] == "nosniff"
    r = httpx.get(f"{site.url}/v1/documents/notes/plain.md/file", headers=auth())
    assert r.status_code == 200 and r.content == (site.kb / "notes" / "plain.md").read_bytes()
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.headers["content-disposition"].startswith("attachment")
    # an uploaded document's original is the saved upload
    up = httpx.post(f"{site.url}/v1/documents", headers=auth(), timeout=120,
                    files=[("files", ("upload-note.md", b"# Uploaded\n\nAn uploaded note."))])
    assert up.status_code == 200, up.text
    r = httpx.get(f"{site.url}/v1/documents/upload-note.md/file", headers=auth())
    assert r.status_code == 200 and r.content == b"# Uploaded\n\nAn uploaded note."


def test_a_doc_id_never_names_a_file_outside_its_root(site: Site) -> None:
    # the symlink was ingested (its text is indexed) but its original lies outside kb/
    r = httpx.get(f"{site.url}/v1/documents/notes/leak.md/file", headers=auth())
    assert r.status_code == 404, r.text
    assert "no original inside its source folder" in r.json()["detail"]
    tricks = [
        "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e%252fetc%252fpasswd", "findings/../../outside/vault.md",
        "findings/..%2f..%2foutside%2fvault.md", "..\\..\\outside\\vault.md",
        "%2Fetc%2Fpasswd", "/etc/passwd", "//etc/passwd", "notes/plain.md%00.pdf",
        "..%c0%af..%c0%afetc%c0%afpasswd", "．．/．．/outside/vault.md",
        "notes/./../../outside/vault.md", str(site.outside / "vault.md"),
        "uploads/../../" * 3 + "etc/passwd",
    ]
    secrets = (SECRET_TEXT.encode(), b"root:x:0:0")
    for trick in tricks:
        encoded = trick if "%" in trick else quote(trick, safe="/")
        for target in (f"/v1/documents/{encoded}/file", f"/v1/documents/{trick}/file"):
            try:
                status, body = raw_get(site.url, target, auth())
            except (http.client.InvalidURL, UnicodeEncodeError):
                continue  # the client refuses to send it at all
            assert status in (400, 404, 422), (target, status, body[:200])
            assert not any(s in body for s in secrets), target
    # a document whose file went away after its ingest: 404 that says what to do
    r = httpx.get(f"{site.url}/v1/documents/notes/gone.md/file", headers=auth())
    assert r.status_code == 404 and "re-ingest" in r.json()["detail"], r.text


def test_keys_and_signed_links(site: Site) -> None:
    path = "/v1/documents/findings/orchard-review.pdf/file"
    assert httpx.get(site.url + path).status_code == 401
    assert httpx.get(site.url + path, headers=auth("key-wrong-1Aa")).status_code == 401
    links = FileLinks(site.data)  # the server's secret, read from the same data dir
    token = links.sign("chat-user", "cx-knowledge", "findings/orchard-review.pdf")
    r = httpx.get(site.url + path, params={"token": token})
    assert r.status_code == 200 and r.content.startswith(b"%PDF"), r.text
    # the same token names one document of one collection, and nothing else
    other = httpx.get(f"{site.url}/v1/documents/notes/plain.md/file", params={"token": token})
    assert other.status_code == 401 and "link" in other.json()["detail"]
    moved = httpx.get(site.url + path, params={"token": token, "collection": "elsewhere"})
    assert moved.status_code == 401
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert httpx.get(site.url + path, params={"token": tampered}).status_code == 401
    stale = links.sign("chat-user", "cx-knowledge", "findings/orchard-review.pdf",
                       now=time.time() - 2 * links.ttl_s)
    assert httpx.get(site.url + path, params={"token": stale}).status_code == 401
    forged = FileLinks(site.data / "elsewhere").sign(
        "chat-user", "cx-knowledge", "findings/orchard-review.pdf")
    assert httpx.get(site.url + path, params={"token": forged}).status_code == 401
    # a token does not open the other read routes
    r = httpx.get(f"{site.url}/v1/documents/findings/orchard-review.pdf",
                  params={"token": token})
    assert r.status_code == 401


def test_citations_and_hits_name_the_pdf_page(site: Site) -> None:
    question = "What was first-contact resolution at Orchard Telecom after the migration?"
    r = httpx.post(f"{site.url}/v1/answer", headers=auth(), timeout=120,
                   json={"question": question})
    assert r.status_code == 200, r.text
    cited = [c for c in r.json()["citations"] if "61 percent" in c["quote"]]
    assert cited, r.json()
    assert cited[0]["location"] == {"page": 2, "label": "p. 2"}  # the API omits nulls
    r = httpx.post(f"{site.url}/v1/search", headers=auth(), timeout=120,
                   json={"query": "remedial action owners review dates"})
    hit = next(h for h in r.json()["hits"] if h["doc_id"] == "findings/orchard-review.pdf")
    assert hit["location"]["page"] in (1, 2, 3)
    plain = next((h for h in r.json()["hits"] if h["doc_id"] == "notes/plain.md"), None)
    assert plain is None or plain.get("location") is None  # Markdown has no pages
    done = subprocess.run([str(CLI), "ask", question], capture_output=True, text=True,
                          env={**os.environ, "CX_DATA_DIR": str(site.data)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "orchard-review.pdf" in done.stdout and ", p. 2)" in done.stdout, done.stdout


def test_a_quote_takes_the_location_of_its_own_offset() -> None:
    breakpoints = [(0, {"slide": 1}), (40, {"slide": 2}), (90, {"slide": 3})]
    meta = chunk_locations(breakpoints, 30, 100)
    assert meta["slide"] == 1  # the chunk starts on slide 1
    assert json.loads(meta["locations"]) == [[30, {"slide": 1}], [40, {"slide": 2}],
                                             [90, {"slide": 3}]]
    assert location_at(meta, 35).label == "slide 1"
    assert location_at(meta, 60).label == "slide 2"
    assert location_at(meta, 95).label == "slide 3"
    assert location_at(meta).label == "slide 1"
    rows = [(0, {"sheet": "Scores"}), (20, {"sheet": "Scores", "row": 2}),
            (60, {"sheet": "Scores", "row": 3})]
    meta = chunk_locations(rows, 25, 80)
    assert location_at(meta, 70).model_dump() == {
        "page": None, "slide": None, "sheet": "Scores", "row": 3, "label": "Scores, row 3"}
    assert chunk_locations([], 0, 10) == {}
    assert location_at({"locations": "not json", "page": 4}, 3).label == "p. 4"
    assert make_location({"row": 7}).label == "row 7"
    assert make_location({"page": 0}) is None
