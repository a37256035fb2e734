"""The MCP tools: each one's arguments, description and output, and the service call behind it.

Arguments are validated by the same pydantic models the HTTP API uses (so a bad `top_k` or an
unknown filter is refused with the API's wording), results are the service's own response
models dumped as the API dumps them, and nothing here answers or searches by itself: every
tool is one call on the service scoped to the caller (assistant.access), so a collection
outside the caller's key is refused as on the API, and list_collections lists only readable
ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from assistant.access import ScopedService
from assistant.mcp import text
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    CollectionName,
    DocumentDetail,
    DocumentList,
    SearchRequest,
    SearchResponse,
)
from assistant.settings import Settings

_COLLECTION = "Collection to use (see list_collections); omit for the default."


# `/v1/answer`'s request without `stream`: a tool result arrives whole. (Argument models have
# comments, not docstrings: a docstring would become the schema's description.)
class AnswerArguments(AnswerRequest):
    stream: SkipJsonSchema[Literal[False]] = False


class DocumentArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(min_length=1, max_length=1024, description=(
        "The document's id, e.g. 'playbooks/quality-faults.md', as search hits, answer "
        "citations and list_documents give it."))
    collection: CollectionName | None = Field(default=None, description=_COLLECTION)


# `GET /v1/documents`'s query parameters, with the same bounds.
class ListArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: CollectionName | None = Field(default=None, description=_COLLECTION)
    limit: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=50, description="Documents per page.")
    offset: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Documents to skip (the next page starts at offset + limit).")


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


# `GET /v1/collections`'s body.
class CollectionList(BaseModel):
    collections: list[str]


@dataclass(frozen=True)
class ToolSpec:
    """One tool: `run` is the service call, `render` the text a model reads beside the JSON."""

    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    output: type[BaseModel]
    run: Callable[[ScopedService, Any], BaseModel]
    render: Callable[[ScopedService, Any, Any], str]
    question: str | None = None  # the argument CX_MAX_QUESTION_CHARS limits, as in the API
    exclude_none: bool = False  # as the API's response_model_exclude_none for this route

    def input_schema(self, settings: Settings) -> dict[str, Any]:
        """The arguments' JSON schema, showing the configured question limit (as /docs does)."""
        schema = self.arguments.model_json_schema()
        if self.question:
            schema["properties"][self.question]["maxLength"] = settings.max_question_chars
        return schema

    def output_schema(self) -> dict[str, Any]:
        return self.output.model_json_schema(mode="serialization")


def invoke(service: ScopedService, spec: ToolSpec,
           arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate, call the service, and return (readable text, the API's JSON body).

    Raises pydantic's ValidationError for bad arguments and AssistantError for domain
    failures; the server turns both into tool errors.
    """
    args = spec.arguments.model_validate(arguments)
    if spec.question:
        _check_length(getattr(args, spec.question), spec.question,
                      service.settings.max_question_chars, spec.arguments.__name__)
    result = spec.run(service, args)
    body = result.model_dump(mode="json", exclude_none=spec.exclude_none)
    return spec.render(service, args, result), body


def _check_length(value: str, field: str, limit: int, title: str) -> None:
    """CX_MAX_QUESTION_CHARS is configurable, so it is checked here (as the API does), with
    the API's message."""
    if len(value) > limit:
        message = (f"{field} is {len(value)} characters; at most {limit} are accepted "
                   "(CX_MAX_QUESTION_CHARS)")
        raise ValidationError.from_exception_data(title, [{
            "type": PydanticCustomError("string_too_long", message),
            "loc": (field,), "input": value}])


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="answer", title="Answer with citations",
        description=(
            "Answer a question from the Cx knowledge base, citing every claim. The answer "
            "marks claims with [n]; citations[n] gives the document (doc_id, title, section) "
            "and the verbatim quote the claim rests on. When the knowledge base does not cover "
            "the question, `abstained` is true, the answer says so and there are no citations: "
            "report that rather than guessing. For a follow-up, pass the earlier turns in "
            "`history`. Prefer this tool for questions; use `search` to explore."),
        arguments=AnswerArguments, output=AnswerResponse,
        run=lambda svc, a: svc.answer(a),
        render=lambda svc, a, r: text.answer_text(r),
        question="question", exclude_none=True,
    ),
    ToolSpec(
        name="search", title="Search documents",
        description=(
            "Find the documents that best match a query (hybrid keyword and semantic search), "
            "best first: each document once, with its best-matching passage, section and "
            "score. Use it to see what the knowledge base holds on a topic or to gather "
            "passages; `filters` narrows by doc_type (article, playbook, finding), client, "
            "tags (all must match) and date_from/date_to."),
        arguments=SearchRequest, output=SearchResponse,
        run=lambda svc, a: svc.search(a.query, a.collection, a.top_k, a.filters),
        render=lambda svc, a, r: text.search_text(r),
        question="query",
    ),
    ToolSpec(
        name="get_document", title="Read a document",
        description=(
            "Read one document in full: its metadata (title, doc_type, client, author, date, "
            "tags) and all its chunks in order. Use it after search or answer to read the "
            "context around a passage or citation."),
        arguments=DocumentArguments, output=DocumentDetail,
        run=lambda svc, a: svc.document(a.doc_id, a.collection),
        render=lambda svc, a, r: text.document_text(r),
    ),
    ToolSpec(
        name="list_documents", title="List documents",
        description=(
            "List the documents in a collection by doc_id, a page at a time: doc_id, title, "
            "doc_type, chunk count and ingest time. `count` is the total; pass "
            "offset=offset+limit for the next page."),
        arguments=ListArguments, output=DocumentList,
        run=lambda svc, a: svc.list_documents(a.collection, a.limit, a.offset),
        render=lambda svc, a, r: text.documents_text(r, a.offset),
    ),
    ToolSpec(
        name="list_collections", title="List collections",
        description=(
            "Names of the collections (separate knowledge bases) on this server that this key "
            "may read. The other tools use the default collection unless given `collection`."),
        arguments=NoArguments, output=CollectionList,
        run=lambda svc, a: CollectionList(collections=svc.collections()),
        render=lambda svc, a, r: text.collections_text(r.collections, svc.settings.collection),
    ),
)
