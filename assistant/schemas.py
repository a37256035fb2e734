"""Request and response models shared by the service, the API, the CLI and the UI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# A question or query: whitespace alone is refused with "must not be blank".
NonBlankStr = Annotated[str, AfterValidator(_not_blank)]


def _iso_date_only(value: object) -> object:
    """Pydantic alone reads 0 and "0" as 1970-01-01 (Unix time): only YYYY-MM-DD is a date."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value  # pydantic parses it, and says so if the day does not exist
    raise ValueError("must be a date written like 2024-01-31")


# A date in a JSON request: "YYYY-MM-DD" (or a date from Python callers), never a number.
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]

# One string or a list of them (a single one is read as a list of one).
OneOrMany = Annotated[list[str] | None, WithJsonSchema({"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]})]

# Chroma's collection-name rules: 3-512 of [A-Za-z0-9._-], alphanumeric at both ends, no "..",
# not an IPv4 address. The pattern says all but the last (and the length, kept in the type).
COLLECTION_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?[A-Za-z0-9]$"


def _not_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return value
    raise ValueError("a collection name must not be an IPv4 address")


# A collection name Chroma accepts, so a bad one is a 422 here rather than a 500 from Chroma.
CollectionName = Annotated[
    str, StringConstraints(min_length=3, max_length=512, pattern=COLLECTION_PATTERN),
    AfterValidator(_not_ipv4),
]

# The longest question or query the models take: the highest CX_MAX_QUESTION_CHARS allows.
# The API enforces the configured value (2000 by default) and its manual shows that one.
QUESTION_CEILING = 100_000
MAX_HISTORY_TURNS = 50  # earlier turns a follow-up question may carry
MAX_TURN_CHARS = 20_000  # characters in one of those turns


def question_length_error(text: str, field: str, limit: int) -> dict[str, Any] | None:
    """The error for a question over CX_MAX_QUESTION_CHARS, or None when it fits.

    The limit is a setting, so the static request models cannot hold it; the API raises this
    as a 422 shaped like the models' own errors and the chat shows its `msg`.
    """
    if len(text) <= limit:
        return None
    return {"type": "string_too_long", "loc": ("body", field),
            "msg": f"{field} is {len(text)} characters; at most {limit} are accepted "
                   "(CX_MAX_QUESTION_CHARS)",
            "ctx": {"max_length": limit}}


def validation_message(exc: ValidationError) -> tuple[str, str]:
    """(where, what) of a request model's first error, for the chat's and the CLI's one line."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]), str(err["msg"])


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx the API sends."""

    detail: str | list[dict[str, Any]] = Field(
        description="What is wrong and what to change: a sentence, or for a request that "
        "fails validation, FastAPI's list of errors (`loc` names the field, `msg` the rule)."
    )


class SearchFilters(BaseModel):
    """Metadata filters, applied to both the dense and the BM25 retriever."""

    model_config = ConfigDict(extra="forbid")

    doc_type: OneOrMany = Field(
        default=None, description="Keep these document types (article, playbook, finding)."
    )
    client: OneOrMany = Field(default=None, description="Keep these clients.")
    tags: OneOrMany = Field(default=None, description="Keep documents with ALL tags.")
    date_from: IsoDate | None = Field(default=None, description="Documents dated on/after.")
    date_to: IsoDate | None = Field(default=None, description="Documents dated on/before.")

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

    query: NonBlankStr = Field(min_length=1, max_length=QUESTION_CEILING,
                               description="What to look for (at most CX_MAX_QUESTION_CHARS).")
    top_k: StrictInt | None = Field(
        default=None, ge=1, le=100,
        description="Documents to return; omitted or null: the server's CX_TOP_K (5 unless set).")
    collection: CollectionName | None = None
    filters: SearchFilters | None = None


class Location(BaseModel):
    """Where a passage sits in its original file: a PDF page, a deck's slide, a sheet row."""

    page: int | None = Field(default=None, description="PDF page, 1-based.")
    slide: int | None = Field(default=None, description="Slide of a deck, 1-based.")
    sheet: str | None = Field(default=None, description="Worksheet of a workbook.")
    row: int | None = Field(default=None, description="Row number as the spreadsheet shows it "
                            "(CSV: the line, header = 1).")
    label: str = Field(description='For display: "p. 12", "slide 4", "Scores, row 7".')


class SearchHit(BaseModel):
    doc_id: str
    title: str
    section: str
    text: str = Field(description="The document's best-matching chunk.")
    score: float = Field(description="Fused relevance score (higher is better).")
    metadata: dict[str, object] = Field(default_factory=dict)
    location: Location | None = Field(
        default=None, description="Where the chunk starts in the original (paged formats).")


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How do we define Cx Quality Faults?"}]},
    )

    question: NonBlankStr = Field(min_length=1, max_length=QUESTION_CEILING,
                                  description="At most CX_MAX_QUESTION_CHARS characters.")
    collection: CollectionName | None = None
    top_k: StrictInt | None = Field(default=None, ge=1, le=50,
                                    description="Chunks to read from.")
    filters: SearchFilters | None = None
    history: list[HistoryTurn] | None = Field(
        default=None, max_length=MAX_HISTORY_TURNS,
        description=f"Earlier turns, oldest first: at most {MAX_HISTORY_TURNS} of "
        f"{MAX_TURN_CHARS:,} characters each.",
    )
    stream: StrictBool = Field(
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
    location: Location | None = Field(
        default=None, description="Where the quote is in the original file: page, slide or "
        "sheet and row. None for formats without pages (Markdown, HTML, DOCX, text).")
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
    warnings: list[SkippedFile] = Field(
        default_factory=list, description="Files ingested with a part left out: a scanned "
        "page OCR could not read, a sheet cut at its row limit.")
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
    location: Location | None = None


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

    question: NonBlankStr = Field(min_length=1, max_length=QUESTION_CEILING,
                                  description="At most CX_MAX_QUESTION_CHARS characters.")
    answer: str = Field(default="", max_length=20_000)
    citations: list[dict[str, object]] = Field(
        default_factory=list, max_length=50,
        description="The answer's citations as returned by /v1/answer (doc_id is what is kept).",
    )
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=5000)
    collection: CollectionName | None = None


class FeedbackSaved(BaseModel):
    id: int
    rating: Literal["up", "down"]
