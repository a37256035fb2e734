"""One APIRouter per area of the API, included by `assistant.api.app` in this order."""

from __future__ import annotations

from assistant.api.routes import (
    answer,
    collections,
    documents,
    feedback,
    health,
    keys,
    openai,
    search,
)

ROUTERS = [health.router, search.router, answer.router, documents.router,
           collections.router, feedback.router, keys.router, openai.router]
