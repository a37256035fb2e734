"""POST /v1/feedback and GET /v1/feedback/export: thumbs on answers, and the thumbs-down
ones as draft evaluation cases."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from assistant.api.deps import ReadKey, ServiceDep, WriteKey, check_question
from assistant.api.errors import error_responses
from assistant.schemas import FeedbackRequest, FeedbackSaved

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackSaved, status_code=201, dependencies=[ReadKey],
             responses=error_responses(400, 401, 403, 413, 422, 429))
def feedback(body: FeedbackRequest, service: ServiceDep) -> FeedbackSaved:
    """Record a thumbs up/down (and optional comment) on an answer, with its collection (the
    default one when `collection` is omitted), which the key must be able to read."""
    check_question(body.question, "question", service.settings)
    return FeedbackSaved(id=service.add_feedback(body), rating=body.rating)


@router.get("/export", dependencies=[WriteKey], response_class=Response,
            responses={200: {"content": {"application/jsonl": {}}},
                       **error_responses(401, 429)})
def feedback_export(service: ServiceDep) -> Response:
    """Thumbs-down feedback as evaluation-suite JSON Lines, one draft test case per line.

    Each line has `id`, `question`, `relevant` (the documents the disliked answer cited:
    confirm or replace them), `answerable`, `expect_any` (empty: fill in) plus `comment`
    and `answer_given`, ready to edit into `eval/suites/`. Only feedback given on
    collections the key may read is exported.
    """
    lines = service.export_feedback()
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return Response(body, media_type="application/jsonl", headers={
        "content-disposition": 'attachment; filename="feedback-suite.jsonl"'})
