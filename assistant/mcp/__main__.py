"""`python -m assistant.mcp`: the MCP server on stdio over CX_DATA_DIR (`cx-assistant mcp`)."""

from __future__ import annotations

import contextlib
import sys

from assistant.errors import AssistantError
from assistant.mcp.server import run_stdio
from assistant.service import AssistantService
from assistant.settings import load_settings


def main() -> None:
    """Exit 2 with a one-line message on stderr for bad settings, as the CLI does."""
    try:
        settings = load_settings()
    except AssistantError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    with contextlib.suppress(KeyboardInterrupt):
        run_stdio(AssistantService(settings))


if __name__ == "__main__":
    main()
