"""Request and response models shared by the service, the API, the CLI and the UI."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# A question or query: whitespace alone is refused with "must not be blank".
NonBlankStr = Annotated[str, AfterValidator(_not_blank)]

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

    query: NonBlankStr = Field(min_length=1, max_length=2000, description="What to look for.")
    top_k: int = Field(default=5, ge=1, le=100, description="Documents to return.")
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    filters: SearchFilters | None = None


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

    question: NonBlankStr = Field(min_length=1, max_length=2000)
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)
    top_k: int | None = Field(default=None, ge=1, le=50, description="Chunks to read from.")
    filters: SearchFilters | None = None
    history: list[HistoryTurn] | None = Field(default=None, max_length=50)
    stream: bool = Field(
        default=False,
        description="Send Server-Sent Events: `delta` events with answer text as it is "
        "produced, then one `done` event carrying the whole answer with its citations.",
    )


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
    supported: bool = Field(
        default=True,
        description="LLM mode: whether the quote supports the sentence citing it (cosine to "
        "that sentence, in `score`, at or above CX_LLM_SUPPORT_THRESHOLD). Show a false one "
        "as unverified. Extractive citations are the sentence itself: always true.",
    )


class VerificationReport(BaseModel):
    """What citation verification did to an LLM answer's [n] markers."""

    kept: int = Field(description="Citations whose source supports the sentence.")
    flagged: int = Field(description="Citations shown with supported=false.")
    dropped: int = Field(description="Markers removed: no such source, or nothing cited.")
    uncited_sentences: int = 0
    prompt_version: str = ""


class AnswerResponse(BaseModel):
    answer: str
    abstained: bool
    citations: list[Citation]
    mode: Literal["extractive", "llm"] = "extractive"
    warning: str | None = None
    query: str | None = Field(
        default=None, description="The retrieval query, when follow-up rewriting changed it."
    )
    verification: VerificationReport | None = Field(
        default=None, description="LLM mode: how the model's citations were checked."
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


class ChunkDetail(BaseModel):
    chunk_id: str
    index: int
    section: str
    text: str
    start: int = Field(description="Offset of the chunk in the document's text.")
    end: int


class DocumentDetail(BaseModel):
    doc_id: str
    title: str
    doc_type: str
    metadata: dict[str, object] = Field(default_factory=dict)
    chunks: list[ChunkDetail]


class UploadSummary(IngestSummary):
    doc_ids: list[str] = Field(default_factory=list, description="doc_ids given to the uploads.")
    collection: str = ""


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "question": "How do we define Cx Quality Faults?",
            "answer": "A Cx Quality Fault is ... [1]",
            "citations": [{"n": 1, "doc_id": "articles/cx-quality-faults.md"}],
            "rating": "down", "comment": "Misses the promise test.",
        }]},
    )

    question: NonBlankStr = Field(min_length=1, max_length=2000)
    answer: str = Field(default="", max_length=20_000)
    citations: list[dict[str, object]] = Field(
        default_factory=list, max_length=50,
        description="The answer's citations as returned by /v1/answer (doc_id is what is kept).",
    )
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=5000)
    collection: str | None = Field(default=None, pattern=COLLECTION_PATTERN)


class FeedbackSaved(BaseModel):
    id: int
    rating: Literal["up", "down"]
