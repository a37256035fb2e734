"""Request and response models shared by the service, the API, the CLI and the UI."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$"


class SearchFilters(BaseModel):
    """Metadata filters, applied to both the dense and the BM25 retriever."""

    model_config = ConfigDict(extra="forbid")

    doc_type: list[str] | None = Field(
        default=None, description="Keep these document types (article, playbook, finding)."
    )
    client: list[str] | None = Field(default=None, description="Keep these clients.")
    tags: list[str] | None = Field(default=None, description="Keep documents with ALL tags.")
    date_from: dt.date | None = Field(default=None, description="Documents dated on/after.")
    date_to: dt.date | None = Field(default=None, description="Documents dated on/before.")

    @field_validator("doc_type", "client", "tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    def is_empty(self) -> bool:
        return not any((self.doc_type, self.client, self.tags, self.date_from, self.date_to))


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "Cx Quality Scorecard", "top_k": 5}]},
    )

    query: str = Field(min_length=1, max_length=2000, description="What to look for.")
    top_k: int = Field(default=5, ge=1, le=100, description="Documents to return.")
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    filters: SearchFilters | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class SearchHit(BaseModel):
    doc_id: str
    title: str
    section: str
    text: str = Field(description="The document's best-matching chunk.")
    score: float = Field(description="Fused relevance score (higher is better).")
    metadata: dict[str, object] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How do we define Cx Quality Faults?"}]},
    )

    question: str = Field(min_length=1, max_length=2000)
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    top_k: int | None = Field(default=None, ge=1, le=50, description="Chunks to read from.")
    filters: SearchFilters | None = None
    history: list[HistoryTurn] | None = Field(default=None, max_length=50)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Citation(BaseModel):
    n: int = Field(description="The marker number used in the answer text, as [n].")
    doc_id: str
    title: str
    section: str
    quote: str = Field(description="Verbatim text from the cited chunk.")
    score: float = Field(description="Similarity of the quote to the question.")
    chunk_id: str = ""
    start: int = Field(default=0, description="Offset of the quote in the source text.")
    end: int = 0


class AnswerResponse(BaseModel):
    answer: str
    abstained: bool
    citations: list[Citation]
    mode: Literal["extractive", "llm"] = "extractive"
    warning: str | None = None
    query: str | None = Field(
        default=None, description="The retrieval query, when follow-up rewriting changed it."
    )


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestSummary(BaseModel):
    documents: int = Field(description="Documents of this source now in the collection.")
    chunks: int = Field(description="Chunks of those documents.")
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)
    embedded_chunks: int = 0
    seconds: float = 0.0


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    doc_type: str
    chunks: int
    ingested_at: str


class DocumentList(BaseModel):
    data: list[DocumentInfo]
    count: int
