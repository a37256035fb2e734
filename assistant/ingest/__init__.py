"""Ingestion: files → read → chunk → embed → Chroma, incremental, convergent and crash-safe.

One module per concern, in the order a run meets them:

- `sources`: what can be ingested (files under a path, in-memory records) and its doc_ids.
- `journal`: the one-writer lock, and the collection journal, the only code that reads or
  writes the generation readers cache on.
- `nodes`: chunk ids, llama-index nodes, and how they are written to Chroma.
- `pipeline`: `Ingestor.sync` as plan → write → publish → prune; its docstring states the
  crash contract that tests/test_crash.py proves.
- `repair`: rebuilding an embedded Chroma store a kill left unreadable.
- `faults`: the CX_FAULT_KILL / CX_FAULT_TRACE hook that names every point a kill may land.
"""

from assistant.errors import IngestError, ReadError
from assistant.ingest.faults import PHASES, Faults
from assistant.ingest.journal import (
    GENERATION_KEY,
    PENDING_KEY,
    Journal,
    bumped,
    generation,
    ingest_lock,
)
from assistant.ingest.nodes import add_nodes, chunk_id, doc_hash, embed_text, make_node
from assistant.ingest.pipeline import Existing, Ingestor, Plan, Reindex
from assistant.ingest.repair import (
    BROKEN_SUFFIX,
    embedded_store_readable,
    is_store_fault,
    rebuild_embedded_store,
    run_repairing,
)
from assistant.ingest.sources import (
    IGNORE_FILE,
    MAX_FILE_BYTES,
    Source,
    SourceFile,
    SourceRecord,
    discover,
)

__all__ = [
    "BROKEN_SUFFIX", "GENERATION_KEY", "IGNORE_FILE", "MAX_FILE_BYTES", "PENDING_KEY", "PHASES",
    "Existing", "Faults", "IngestError", "Ingestor", "Journal", "Plan", "ReadError", "Reindex",
    "Source", "SourceFile", "SourceRecord", "add_nodes", "bumped", "chunk_id", "discover",
    "doc_hash", "embed_text", "embedded_store_readable", "generation", "ingest_lock",
    "is_store_fault", "make_node", "rebuild_embedded_store", "run_repairing",
]
