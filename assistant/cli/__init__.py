"""Command line: `cx-assistant ingest | ask | search | eval | serve | mcp`."""

from assistant.cli import evaluate  # noqa: F401 (registers the eval command on the app)
from assistant.cli.app import app, fail, main

__all__ = ["app", "fail", "main"]
