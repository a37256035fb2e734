"""The MCP server through the SDK's own client, over both transports: the real stdio process
(`cx-assistant mcp`) and Streamable HTTP to a real `cx-assistant serve` at /mcp, with the
API's Bearer keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from helpers import REPO
from helpers.files import write_small_kb
from helpers.processes import CLI, cli_ingest, serve
from helpers.settings import make_settings
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from assistant.errors import CollectionNotFound, DocumentNotFound
from assistant.mcp import create_server
from assistant.schemas import AnswerRequest
from assistant.service import AssistantService

KEY = "mcp-test-key"
TOOLS = {"answer", "search", "get_document", "list_documents", "list_collections"}
QUESTION = "What is a Cx Quality Fault?"
OFF_TOPIC = "Who won the 1998 World Cup?"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("mcp-data")
    kb = tmp_path_factory.mktemp("mcp-kb")
    write_small_kb(kb)
    cli_ingest(kb, data)
    return data


@pytest.fixture(scope="module")
def service(data_dir: Path) -> AssistantService:
    """The same data dir in-process: what the HTTP API would answer, to compare with."""
    return AssistantService(make_settings(data_dir))


def expected(service: AssistantService) -> dict[str, Any]:
    """The API's JSON for the calls `exercise` makes, and the API's messages for its errors."""
    with pytest.raises(CollectionNotFound) as missing_collection:
        service.search("churn", "no-such-thing")
    with pytest.raises(DocumentNotFound) as missing_doc:
        service.document("missing/doc.md")
    return {
        "search": service.search("churn", None, 1).model_dump(mode="json"),
        "answer": service.answer(AnswerRequest(question=QUESTION))
        .model_dump(mode="json", exclude_none=True),
        "document": service.document("articles/faults.md").model_dump(mode="json"),
        "documents": service.list_documents(None, 1, 0).model_dump(mode="json"),
        "no_collection": missing_collection.value.message,
        "no_document": missing_doc.value.message,
    }


async def exercise(client: Client, want: dict[str, Any]) -> None:
    """List the tools, call each, an abstention, bad arguments; the session stays usable."""
    listed = await client.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    for tool in listed.tools:
        assert tool.description and tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
    search = await client.call_tool("search", {"query": "churn", "top_k": 1})
    assert not search.is_error and search.structured_content == want["search"]
    assert "findings/acme.md" in search.content[0].text

    answer = await client.call_tool("answer", {"question": QUESTION})
    assert not answer.is_error and answer.structured_content == want["answer"]
    assert "[1]" in answer.content[0].text and "Sources:" in answer.content[0].text

    follow_up = await client.call_tool("answer", {
        "question": "and who receives it?",
        "history": [{"role": "user", "content": QUESTION}]})
    assert not follow_up.is_error and follow_up.structured_content["query"]

    off = await client.call_tool("answer", {"question": OFF_TOPIC})
    assert not off.is_error
    assert off.structured_content["abstained"] is True
    assert off.structured_content["citations"] == []

    doc = await client.call_tool("get_document", {"doc_id": "articles/faults.md"})
    assert not doc.is_error and doc.structured_content == want["document"]
    docs = await client.call_tool("list_documents", {"limit": 1})
    assert not docs.is_error and docs.structured_content == want["documents"]
    assert "offset=1" in docs.content[0].text
    names = await client.call_tool("list_collections", {})
    assert names.structured_content == {"collections": ["cx-knowledge"]}

    await bad_arguments(client, want)
    again = await client.call_tool("search", {"query": "churn", "top_k": 1})
    assert again.structured_content == want["search"]  # the session survived every error


async def bad_arguments(client: Client, want: dict[str, Any]) -> None:
    """Each comes back as a tool error carrying the API's message and status."""
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("search", {"query": "x", "top_k": 0}, 422, "top_k: Input should be greater than or "
         "equal to 1"),
        ("search", {"query": "x", "filters": {"colour": "red"}}, 422, "colour"),
        ("answer", {"question": "   "}, 422, "must not be blank"),
        ("answer", {"question": "x" * 5000}, 422,
         "at most 2000 are accepted (CX_MAX_QUESTION_CHARS)"),
        ("answer", {"question": "q", "stream": True}, 422, "stream"),
        ("search", {"query": "churn", "collection": "no-such-thing"}, 404,
         want["no_collection"]),
        ("get_document", {"doc_id": "missing/doc.md"}, 404, want["no_document"]),
        ("list_documents", {"offset": -1}, 422, "offset"),
    ]
    for tool, arguments, status, message in cases:
        result = await client.call_tool(tool, arguments)
        assert result.is_error, (tool, arguments)
        assert message in result.content[0].text, result.content[0].text
        assert result.structured_content["status"] == status
    missing = await client.call_tool("answer", {"question": OFF_TOPIC, "collection": "nope-x"})
    assert missing.content[0].text == want["no_collection"].replace("no-such-thing", "nope-x")


def test_stdio_process(data_dir: Path, service: AssistantService) -> None:
    """`cx-assistant mcp` as a desktop client starts it. The initialize handshake
    (what deployed clients speak); HTTP below runs both eras, on the same server code."""
    want = expected(service)
    params = StdioServerParameters(
        command=str(CLI), args=["mcp"], cwd=str(REPO),
        env={**os.environ, "CX_DATA_DIR": str(data_dir)})

    async def session() -> None:
        async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
            await exercise(client, want)

    anyio.run(session)


@pytest.fixture(scope="module")
def mcp_url(data_dir: Path) -> Iterator[str]:
    """The real `cx-assistant serve` over the same data dir, with an API key set."""
    with serve(data_dir, CX_API_KEYS=KEY) as served:
        yield f"{served.url}/mcp"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_streamable_http(mcp_url: str, service: AssistantService, mode: str) -> None:
    want = expected(service)

    async def session() -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"},
                                  timeout=httpx2.Timeout(30, read=120))
        async with http, Client(streamable_http_client(mcp_url, http_client=http),
                                mode=mode) as client:
            await exercise(client, want)

    anyio.run(session)


def test_http_needs_the_key(mcp_url: str) -> None:
    """401 with the API's message in a JSON-RPC error: raw HTTP, and the SDK client raises
    it as MCPError."""
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(mcp_url, json=hello, headers={
            "accept": "application/json, text/event-stream", **headers})
        assert r.status_code == 401, r.text
        assert r.json()["error"]["message"] == (
            "missing or invalid API key: send 'Authorization: Bearer <key>'")
        assert r.headers["www-authenticate"] == "Bearer"

    async def session() -> None:
        async with Client(mcp_url, mode="legacy"):
            pass

    with pytest.raises(Exception) as refused:  # noqa: B017 (the SDK wraps it in task groups)
        anyio.run(session)
    error = refused.value
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    assert isinstance(error, MCPError) and "API key" in error.message, repr(refused.value)


def test_failures_never_end_the_session(service: AssistantService,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is a 500-status tool error; an unknown tool a protocol error."""
    def broken() -> list[str]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "collections", broken)

    async def session() -> None:
        async with Client(create_server(service)) as client:  # in-process
            failed = await client.call_tool("list_collections", {})
            assert failed.is_error and failed.structured_content["status"] == 500
            assert "disk on fire" not in failed.content[0].text
            with pytest.raises(MCPError, match="unknown tool 'nope'"):
                await client.call_tool("nope", {})
            listed = await client.call_tool("list_documents", {"limit": 1})
            assert not listed.is_error and listed.structured_content["count"] == 2

    anyio.run(session)
