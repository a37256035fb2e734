"""The MCP server over one AssistantService: tool listing, tool calls, errors, and stdio.

Built on the SDK's low-level `Server` rather than `MCPServer`: the tools' schemas come from
our own request and response models, and every failure is answered here as a tool error
(`isError`) with the HTTP API's message, so a bad argument never ends a session.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from assistant import __version__
from assistant.access import current
from assistant.auth import LOCAL
from assistant.errors import AssistantError
from assistant.mcp.tools import TOOLS, ToolSpec, invoke
from assistant.service import AssistantService

log = logging.getLogger("assistant.mcp")

INSTRUCTIONS = (
    "Cited answers and search over a Cx consultancy's knowledge base (articles, playbooks, "
    "client findings). Ask questions with `answer`: its claims carry [n] markers backed by "
    "verbatim quotes, and it abstains when the documents do not cover the question. Use "
    "`search`, `get_document` and `list_documents` to explore, `list_collections` to see the "
    "knowledge bases."
)


def create_server(service: AssistantService) -> Server[Any]:
    """An MCP server exposing the service's search, answers and documents as tools."""
    specs = {spec.name: spec for spec in TOOLS}
    listed = [_tool(spec, service) for spec in TOOLS]
    schemas = {tool.name: tool.input_schema for tool in listed}

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = specs.get(params.name)
        if spec is None:  # the spec's "tool not found" is a protocol error, not a tool error
            raise MCPError(types.INVALID_PARAMS,
                           f"unknown tool {params.name!r}; the tools are {', '.join(specs)}")
        # the service blocks (embedding, Chroma): run it off the event loop, as the API does
        return await anyio.to_thread.run_sync(
            functools.partial(call, service, spec, params.arguments or {}))

    return Server(
        "cx-assistant", version=__version__, title="Cx Knowledge Assistant",
        instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool,
        get_tool_input_schema=schemas.get,
    )


def _tool(spec: ToolSpec, service: AssistantService) -> types.Tool:
    return types.Tool(
        name=spec.name, title=spec.title, description=spec.description,
        input_schema=spec.input_schema(service.settings), output_schema=spec.output_schema(),
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True,
                                          open_world_hint=False),
    )


def call(service: AssistantService, spec: ToolSpec,
         arguments: dict[str, Any]) -> types.CallToolResult:
    """One tool call, scoped to the request's caller (over HTTP) or to the local user (stdio,
    who can read CX_DATA_DIR anyway); every failure comes back as a tool error, never an
    exception: a collection outside the key's scopes is the API's 403, as a tool error."""
    try:
        readable, body = invoke(current(service, LOCAL), spec, arguments)
    except ValidationError as exc:
        return invalid_arguments(spec.name, exc)
    except AssistantError as exc:
        return tool_error(exc.message, exc.status)
    except Exception:  # the API answers 500 here; a session must survive it
        log.exception("MCP tool %s failed", spec.name)
        return tool_error("internal error: the server could not complete this call "
                          "(details are in the server log)", 500)
    return types.CallToolResult(content=[types.TextContent(text=readable)],
                                structured_content=body)


def tool_error(message: str, status: int) -> types.CallToolResult:
    """A tool error with the API's message; `status` is the HTTP status the API would send."""
    return types.CallToolResult(content=[types.TextContent(text=message)],
                                structured_content={"detail": message, "status": status},
                                is_error=True)


def invalid_arguments(tool: str, exc: ValidationError) -> types.CallToolResult:
    """The API's 422: the same messages, one line per field, without echoing the input."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    lines = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in errors]
    message = f"invalid arguments for {tool}: " + "; ".join(lines)
    return types.CallToolResult(
        content=[types.TextContent(text=message)],
        structured_content={"detail": [dict(e) for e in errors], "status": 422},
        is_error=True,
    )


async def serve_stdio(service: AssistantService) -> None:
    """Serve one client over stdin/stdout until it closes them (the SDK keeps stray prints
    off stdout while it runs)."""
    server = create_server(service)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run_stdio(service: AssistantService) -> None:
    """Blocking entry point for `cx-assistant mcp`: serve stdio until the client disconnects."""
    anyio.run(serve_stdio, service)
