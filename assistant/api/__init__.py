"""HTTP API (FastAPI): thin routers over AssistantService; see /docs for the manual.

`app` builds the application, `deps` holds the shared dependencies (the service, the key
checks), `routes/` one router per area, `errors` the exception handlers, `gate` the
pre-body key check and body caps.
"""

from __future__ import annotations

from assistant.api.app import create_app

__all__ = ["create_app"]
