"""Fuzz the HTTP API from its own OpenAPI schema with schemathesis, against a real
`cx-assistant serve` over HTTP with a few documents of the sample corpus ingested.

Every route the schema lists (search, answer and its stream, documents list/get/upload/delete,
collections, feedback and its export, healthz, readyz) gets schema examples, boundary values
(coverage phase), random valid and invalid data (fuzzing phase) and call sequences that follow
the ids one response gives to the next request (stateful phase), from a fixed seed. No
response may be a 5xx or differ from the schema in status, content type, headers or body, and
every request the schema forbids must get a 4xx. Below it, one test per fuzzer finding keeps
that finding fixed without a fuzz run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import CORPUS
from helpers.processes import BIN, cli_ingest, serve

TESTS = Path(__file__).resolve().parent
SEED = int(os.environ.get("CX_FUZZ_SEED", "8"))
MAX_EXAMPLES = 100  # per operation and phase; about 1,900 cases in all
MIN_CASES = 1000
SCOPED_EXAMPLES = 8  # the scoped-key run: modest, about 400 cases
SCOPED_MIN_CASES = 200
SCOPED_DOCS = [  # (collection, doc_id, text): the fuzzing key may read the first two only
    ("client-acme", "acme-churn.md", "# Acme churn\n\nAcme's churn fell to 1.6% after the "
     "billing fix."),
    ("client-acme", "acme-nps.md", "# Acme NPS\n\nAcme's NPS rose to 31 in March."),
    ("secret-bw", "secret-brightwave.md", "# Brightwave\n\nBrightwave's QUOKKA release "
     "doubled churn."),
]
FORBIDDEN = ["secret-brightwave.md", "QUOKKA", "doubled churn"]
MAX_BYTES = 4096  # small upload caps, so the fuzzer's files reach them
MAX_FILES = 3
DOCS = ["articles/cx-quality-faults.md", "articles/cx-quality-scorecard.md",
        "articles/nps-limits.html", "findings/brightwave-churn.md",
        "findings/meridian-claims.pdf"]
CHECKS = [
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance",
    "negative_data_rejection", "allow_header_conformance", "unsupported_method",
    "missing_required_header",
]
# Left out on purpose: positive_data_acceptance (a schema-valid upload can still be refused
# for its file name or content, a schema-valid collection name can name no collection), and
# use_after_free / ensure_resource_availability: a document is (collection, doc_id) with the
# collection in the query string, which the stateful links do not carry, so those two compare
# a document deleted from one collection with its namesake in another.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kb = tmp_path_factory.mktemp("fuzz-kb")
    for doc in DOCS:
        (kb / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / doc, kb / doc)
    data = tmp_path_factory.mktemp("fuzz-data")
    cli_ingest(kb, data)
    with serve(data, CX_UPLOAD_MAX_BYTES=str(MAX_BYTES),
               CX_UPLOAD_MAX_FILES=str(MAX_FILES)) as served:
        yield served.url


def fuzz(url: str, tmp_path: Path, max_examples: int, *args: str,
         **env: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str], str]:
    """One schemathesis run over the server's schema: (its JSON report, the process, output)."""
    report = tmp_path / "schemathesis.json"
    command = [
        str(BIN / "schemathesis"), "run", f"{url}/openapi.json",
        "--max-examples", str(max_examples),
        "--seed", str(SEED), "--generation-database", "none", "--workers", "1",
        "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout", "60",
        # Generator-side only: doc_id's 1-1024 characters make Hypothesis discard many draws.
        "--suppress-health-check", "filter_too_much",
        "--report", "json", "--report-json-path", str(report), "--no-color", *args,
    ]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=tmp_path,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": "helpers.fuzz_hooks",
                              "PYTHONPATH": str(TESTS), **env})
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    assert report.exists(), output[-5000:]
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"\nschemathesis {result['schemathesis_version']}, seed {SEED}: "
          f"{cases['generated']} cases over {result['operations']['tested']} operations in "
          f"{seconds:.0f} s; failures {len(result['failures'])}, errors {len(result['errors'])}")
    return result, run, output


@pytest.mark.slow
def test_fuzz_the_api_from_its_openapi_schema(server: str, tmp_path: Path) -> None:
    result, run, output = fuzz(server, tmp_path, MAX_EXAMPLES, "--checks", ",".join(CHECKS))
    cases = result["test_cases"]
    assert result["failures"] == [] and result["errors"] == [], output[-12000:]
    assert run.returncode == 0, output[-12000:]
    assert result["operations"]["tested"] == result["operations"]["selected"] >= 11
    assert all(p["status"] == "success" for p in result["phases"].values()), result["phases"]
    assert cases["generated"] >= MIN_CASES, cases


@pytest.fixture(scope="module")
def scoped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, key) of a serve whose key store holds a fuzzing key that reads `client-*` and
    writes `client-acme` (the default collection), beside `secret-bw`, which it may not read."""
    from assistant.keys import KeyStore

    data = tmp_path_factory.mktemp("fuzz-scoped-data")
    store = KeyStore(data)
    _, key = store.create("fuzzer", "client-*", "client-acme")
    _, seeder = store.create("seeder", "*", "*")
    with serve(data, CX_COLLECTION="client-acme", CX_UPLOAD_MAX_BYTES=str(MAX_BYTES),
               CX_UPLOAD_MAX_FILES=str(MAX_FILES)) as served:
        for collection, name, text in SCOPED_DOCS:
            r = httpx.post(f"{served.url}/v1/documents", params={"collection": collection},
                           files=[("files", (name, text.encode()))], timeout=120,
                           headers={"Authorization": f"Bearer {seeder}"})
            assert r.status_code == 200, r.text
        yield served.url, key


@pytest.mark.slow
def test_fuzz_with_a_scoped_key(scoped_server: tuple[str, str], tmp_path: Path) -> None:
    """The same fuzzing with a key scoped to `client-*`: no 5xx, every status in the manual
    (403 included), and no response ever carrying the other collection's doc_id or words."""
    url, key = scoped_server
    result, run, output = fuzz(
        url, tmp_path, SCOPED_EXAMPLES, "--checks", ",".join([*CHECKS,
                                                              "no_forbidden_documents"]),
        "--header", f"Authorization: Bearer {key}",
        CX_FUZZ_FORBIDDEN=",".join(FORBIDDEN))
    assert result["failures"] == [] and result["errors"] == [], output[-12000:]
    assert run.returncode == 0, output[-12000:]
    assert result["operations"]["tested"] == result["operations"]["selected"] >= 14
    assert result["test_cases"]["generated"] >= SCOPED_MIN_CASES, result["test_cases"]
    listing = httpx.get(f"{url}/v1/collections", headers={"Authorization": f"Bearer {key}"})
    assert "secret-bw" not in listing.text  # the fuzzing key still sees only its own


# --- what the fuzzer found, kept fixed ---------------------------------------------------

@pytest.mark.parametrize("name", ["fuzz..notes", "192.168.1.1", "ab", "-abc", "a" * 513])
def test_collection_names_chroma_refuses_are_a_422_not_a_500(server: str, name: str) -> None:
    """Found: `collection=a..b` passed our pattern, and Chroma's refusal became a 500."""
    upload = httpx.post(f"{server}/v1/documents", params={"collection": name},
                        files=[("files", ("n.txt", b"Some words to ingest.", "text/plain"))])
    search = httpx.post(f"{server}/v1/search", json={"query": "faults", "collection": name})
    listing = httpx.get(f"{server}/v1/documents", params={"collection": name})
    for r in (upload, search, listing):
        assert r.status_code == 422, r.text
        assert "collection" in json.dumps(r.json()["detail"])


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/answer", {"question": "What is a fault?", "stream": 0}, "stream"),
    ("/v1/answer", {"question": "What is a fault?", "top_k": "5"}, "top_k"),
    ("/v1/search", {"query": "faults", "top_k": True}, "top_k"),
    ("/v1/search", {"query": "faults", "filters": {"date_to": 0}}, "date_to"),
    ("/v1/search", {"query": "faults", "filters": {"date_from": "0"}}, "date_from"),
    ("/v1/search", {"query": "faults", "filters": {"doc_type": 7}}, "doc_type"),
])
def test_values_of_the_wrong_json_type_are_refused(
    server: str, path: str, body: dict[str, object], field: str
) -> None:
    """Found: pydantic's lax mode read `"stream": 0` as false and `"date_to": 0` (or "0") as
    1970-01-01, so requests the schema forbids were answered."""
    r = httpx.post(f"{server}{path}", json=body, timeout=60)
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"])


def test_method_not_allowed_lists_every_method_of_the_path(server: str) -> None:
    """Found: Starlette's 405 `Allow` named only the first route's methods."""
    docs = httpx.request("PUT", f"{server}/v1/documents")
    one = httpx.request("PATCH", f"{server}/v1/documents/articles/cx-quality-faults.md")
    assert (docs.status_code, docs.headers["allow"]) == (405, "GET, POST")
    assert (one.status_code, one.headers["allow"]) == (405, "DELETE, GET")


def test_error_statuses_are_in_the_manual(server: str) -> None:
    """Found: 400/404/409/413/415/503 answers that the schema did not declare."""
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    declared = {(path, method): set(op["responses"]) for path, ops in paths.items()
                for method, op in ops.items()}
    assert {"400", "404", "413", "422", "503"} <= declared[("/v1/answer", "post")]
    assert {"400", "409", "413", "415", "422"} <= declared[("/v1/documents", "post")]
    assert {"404", "422"} <= declared[("/v1/documents/{doc_id}", "delete")]
    assert "503" in declared[("/readyz", "get")]
    files = httpx.post(f"{server}/v1/documents", content=b"--b--\r\n",
                       headers={"content-type": "multipart/form-data; boundary=b"})
    assert files.status_code == 422 and "files" in files.text  # minItems 1, as documented
