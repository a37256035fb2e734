"""Command line: `cx-assistant ingest | ask | search | eval | serve | mcp | keys`."""

from assistant.cli import (  # noqa: F401 (each registers its commands on the app)
    eval_tools,
    evaluate,
    keys,
)
from assistant.cli.app import app, fail, main

__all__ = ["app", "fail", "main"]
