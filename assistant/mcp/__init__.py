"""The MCP surface: the service's search, answers and documents as Model Context Protocol tools.

A surface beside the API, the UI and the CLI (it calls the service, nothing below imports it).
`create_server(service)` builds the server; `run_stdio(service)` serves it on stdin/stdout
(`cx-assistant mcp`); `McpHttpApp(create_server(service), check).attach(app)` serves it as
Streamable HTTP at `/mcp` inside the API app.
"""

from assistant.mcp.http import Check, McpHttpApp
from assistant.mcp.server import create_server, run_stdio, serve_stdio

__all__ = ["Check", "McpHttpApp", "create_server", "run_stdio", "serve_stdio"]
