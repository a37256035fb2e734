"""The API's shape: CX_TOP_K reaches search through HTTP and the CLI, the service is a
replaceable dependency, and the manual declares the bearer-key scheme on every /v1 route."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.files import write_md
from helpers.processes import CLI, cli_ingest, serve

from assistant.schemas import SearchResponse

TOPICS = ["faults", "scorecards", "promises", "surveys", "churn", "complaints", "journeys"]


def _kb(root: Path) -> Path:
    """Seven documents that all match the query, so a cap of 3 (not 5) is what limits hits."""
    for topic in TOPICS:
        write_md(root / f"{topic}.md", f"Customer {topic}",
                 f"# Customer {topic}\n\nCustomer experience work on {topic}: how the "
                 f"customer experience team reviews {topic} every quarter.")
    return root


def test_cx_top_k_sets_the_default_for_api_and_cli_search(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli_ingest(_kb(tmp_path / "kb"), data)
    query = "customer experience review"
    with serve(data, CX_TOP_K="3") as served:
        hits = httpx.post(f"{served.url}/v1/search", json={"query": query}, timeout=60)
        assert hits.status_code == 200, hits.text
        assert len(hits.json()["hits"]) == 3
        explicit = httpx.post(f"{served.url}/v1/search", json={"query": query, "top_k": 6},
                              timeout=60)
        assert len(explicit.json()["hits"]) == 6  # a request's own top_k still wins

    env = {**os.environ, "CX_DATA_DIR": str(data), "CX_TOP_K": "3"}
    run = subprocess.run([str(CLI), "search", query, "--json"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["hits"]) == 3
    wider = subprocess.run([str(CLI), "search", query, "--top-k", "6", "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert len(json.loads(wider.stdout)["hits"]) == 6


class FakeService:
    """Stands in for AssistantService: only what /v1/search and the key checks touch."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.calls: list[tuple[Any, ...]] = []

    def search(self, *args: Any) -> SearchResponse:
        self.calls.append(args)
        return SearchResponse(hits=[])


def _app(data: Path, **settings: Any) -> Any:
    from assistant.api import create_app
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    return create_app(AssistantService(load_settings(data_dir=data, **settings)), ui=False)


def test_dependency_overrides_replace_the_service(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant.api.deps import get_service

    app = _app(tmp_path / "data")
    fake = FakeService(app.state.service.settings)
    app.dependency_overrides[get_service] = lambda: fake
    with TestClient(app) as client:
        r = client.post("/v1/search", json={"query": "anything", "top_k": 2})
    assert r.status_code == 200 and r.json() == {"hits": []}
    assert fake.calls == [("anything", None, 2, None)]


def _security(spec: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {(method, path): op.get("security", []) for path, operations in spec["paths"].items()
            for method, op in operations.items()}


@pytest.mark.parametrize("public_read", [False, True])
def test_openapi_declares_the_bearer_scheme_on_v1_routes(tmp_path: Path,
                                                         public_read: bool) -> None:
    """Every /v1 route names the HTTP bearer scheme; where the server takes requests without
    a key (no CX_API_KEYS, or a read with CX_PUBLIC_READ) the manual says the key is optional."""
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path / "open")) as client:
        open_spec = client.get("/openapi.json").json()
    with TestClient(_app(tmp_path / "keyed", api_keys="k-1", public_read=public_read)) as client:
        keyed_spec = client.get("/openapi.json").json()
    schemes = keyed_spec["components"]["securitySchemes"]
    bearer = {name for name, s in schemes.items() if (s["type"], s.get("scheme")) ==
              ("http", "bearer")}
    assert bearer, schemes
    writes = {("post", "/v1/documents"), ("delete", "/v1/documents/{doc_id}"),
              ("get", "/v1/feedback/export"),
              ("get", "/v1/keys"), ("post", "/v1/keys"), ("delete", "/v1/keys/{name}")}
    keyed, open_ = _security(keyed_spec), _security(open_spec)
    for (method, path), requirements in keyed.items():
        names = {name for requirement in requirements for name in requirement}
        if not path.startswith("/v1/"):
            assert not names, (method, path)  # /healthz and /readyz stay open
            continue
        assert names == bearer, (method, path)
        optional = public_read and (method, path) not in writes
        assert ({} in requirements) is optional, (method, path, requirements)
        assert {} in open_[(method, path)], (method, path)  # no keys set: nothing needs one
    top_k = keyed_spec["components"]["schemas"]["SearchRequest"]["properties"]["top_k"]
    assert top_k.get("default") is None and "CX_TOP_K" in top_k["description"]
