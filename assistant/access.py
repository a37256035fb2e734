"""The service as one caller may use it: every collection a call names (or the default, when
it names none) is checked against the caller's scopes before the service runs, and what the
call touched is noted for the audit log.

The API's routes, the MCP tools and the chat's handlers get a ScopedService, never the bare
AssistantService, so enforcement lives here once: a new route or tool cannot forget it.
Retrieval never crosses collections (each search or answer reads one collection's snapshot),
so checking the collection is what keeps another collection's chunks out of a response,
whatever filters or history the request carries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from assistant.audit import AuditRecord
from assistant.auth import AccessDenied, Principal
from assistant.schemas import (
    AnswerRequest,
    AnswerResponse,
    DocumentDetail,
    DocumentList,
    FeedbackRequest,
    SearchFilters,
    SearchResponse,
    UploadSummary,
)
from assistant.service import AssistantService
from assistant.settings import Settings
from assistant.uploads import Upload

if TYPE_CHECKING:
    from assistant.embeddings import Embedder
    from assistant.evidence import Evidence
    from assistant.llm import LLMClient
    from assistant.llm_answering import AnswerEvent
    from assistant.originals import Original

# The current request's caller and audit record, for code the request reaches through another
# library's tasks and threads (the MCP SDK's tool calls); contextvars follow both.
CALLER: ContextVar[tuple[Principal, AuditRecord] | None] = ContextVar("cx_caller", default=None)


class ScopedService:
    """An AssistantService seen through one Principal; it records into one AuditRecord."""

    def __init__(self, service: AssistantService, principal: Principal,
                 record: AuditRecord | None = None) -> None:
        self.service = service
        self.principal = principal
        self.record = record if record is not None else AuditRecord(key=principal.name)

    # -- what routes read besides the checked calls --
    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def llm(self) -> LLMClient | None:
        return self.service.llm

    @property
    def embedder(self) -> Embedder:
        return self.service.embedder

    # -- the checks --
    def readable(self, collection: str | None) -> str:
        """The collection's name (the default for None) if this caller may read it; else
        AccessDenied naming it, before anything is read (so a missing collection outside the
        scopes is a 403 too, never a 404 that would confirm it exists)."""
        return self._allowed(collection, self.principal.can_read, "read")

    def writable(self, collection: str | None) -> str:
        """As `readable`, for writes (upload, delete)."""
        return self._allowed(collection, self.principal.can_write, "write to")

    def _allowed(self, collection: str | None, may: Callable[[str], bool], verb: str) -> str:
        name = collection or self.settings.collection
        self.record.collection = name
        if not may(name):
            raise AccessDenied(f"the key '{self.principal.name}' may not {verb} the "
                               f"collection '{name}'")
        return name

    def may_read(self, collection: str | None) -> bool:
        return self.principal.can_read(collection or self.settings.collection)

    # -- reads --
    def collections(self) -> list[str]:
        """Only the collections this caller may read."""
        return [c for c in self.service.collections() if self.principal.can_read(c)]

    def search(self, query: str, collection: str | None = None, top_k: int | None = None,
               filters: SearchFilters | None = None) -> SearchResponse:
        self.readable(collection)
        self.record.question = query
        response = self.service.search(query, collection, top_k, filters)
        self.record.add_docs(hit.doc_id for hit in response.hits)
        return response

    def evidence(self, request: AnswerRequest) -> Evidence:
        self.readable(request.collection)
        self.record.question = request.question
        return self.service.evidence(request)

    def answer(self, request: AnswerRequest, **options: Any) -> AnswerResponse:
        self.readable(request.collection)
        self.record.question = request.question
        response = self.service.answer(request, **options)
        self.record.add_docs(c.doc_id for c in response.citations)
        return response

    def answer_stream(self, request: AnswerRequest, **options: Any) -> Iterator[AnswerEvent]:
        """The checks run now, not at the first `next()`: a refusal is a status, not an
        event."""
        self.readable(request.collection)
        self.record.question = request.question
        return self._recorded(self.service.answer_stream(request, **options))

    def _recorded(self, events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
        for event in events:
            if event[0] == "done":
                self.record.add_docs(c.doc_id for c in event[1].citations)
            yield event

    def list_documents(self, collection: str | None = None, limit: int = 50,
                       offset: int = 0) -> DocumentList:
        self.readable(collection)
        page = self.service.list_documents(collection, limit, offset)
        self.record.add_docs(d.doc_id for d in page.data)
        return page

    def document(self, doc_id: str, collection: str | None = None) -> DocumentDetail:
        self.readable(collection)
        detail = self.service.document(doc_id, collection)
        self.record.add_docs([doc_id])
        return detail

    def original(self, doc_id: str, collection: str | None = None) -> Original:
        self.readable(collection)
        found = self.service.original(doc_id, collection)
        self.record.add_docs([doc_id])
        return found

    def metadata_values(self, key: str, collection: str | None = None) -> list[str]:
        self.readable(collection)
        return self.service.metadata_values(key, collection)

    # -- writes --
    def upload(self, uploads: list[Upload], collection: str | None = None) -> UploadSummary:
        self.writable(collection)
        summary = self.service.upload(uploads, collection)
        self.record.add_docs(summary.doc_ids)
        return summary

    def delete_document(self, doc_id: str, collection: str | None = None) -> int:
        self.writable(collection)
        removed = self.service.delete_document(doc_id, collection)
        self.record.add_docs([doc_id])
        return removed

    # -- feedback: stored with its collection, exported only where the caller may read --
    def add_feedback(self, item: FeedbackRequest) -> int:
        name = self.readable(item.collection)
        self.record.question = item.question
        return self.service.feedback.add(item.model_copy(update={"collection": name}))

    def export_feedback(self) -> list[dict[str, Any]]:
        default = self.settings.collection
        lines = self.service.feedback.export_suite(
            lambda collection: self.principal.can_read(collection or default))
        for line in lines:
            self.record.add_docs(line["relevant"])
        return lines


def current(service: AssistantService, fallback: Principal) -> ScopedService:
    """The service scoped to the caller bound in CALLER for this request, or to `fallback`
    where none is (stdio MCP, in-process use)."""
    caller = CALLER.get()
    return ScopedService(service, *caller) if caller else ScopedService(service, fallback)
