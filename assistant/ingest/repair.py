"""Repairing embedded Chroma left unreadable by a killed writer: probe, salvage, rebuild.

Embedded Chroma (SQLite + HNSW files) can be left unreadable by a kill during its HNSW
persistence: every count() and add() then fails ("Failed to apply logs to the hnsw segment
writer"), run after run. `run_repairing` detects it (a probe in a child process when the
previous writer died holding the lock, or an InternalError during the run) and rebuilds the
store from its SQLite tables (`rebuild_embedded_store`), itself resumable after a kill.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.ingest.faults import Faults
from assistant.ingest.journal import bumped
from assistant.ingest.nodes import embed_text
from assistant.store import Store

log = logging.getLogger("assistant.ingest")

_PROBE = r"""
import sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
for col in client.list_collections():
    col = client.get_collection(col if isinstance(col, str) else col.name)
    if col.count():
        got = col.get(limit=1, include=["embeddings"])
        col.query(query_embeddings=[list(got["embeddings"][0])], n_results=1, include=[])
"""
BROKEN_SUFFIX = ".broken"
REBUILD_BATCH = 64
# (name, metadata, distance, [(id, metadata, document)]) of one collection, read from SQLite
Salvaged = tuple[str, dict[str, Any], str, list[tuple[str, dict[str, Any], str]]]


def embedded_store_readable(chroma_dir: Path) -> bool:
    """Whether embedded Chroma opens and answers, tried in a child process.

    A child, because a torn HNSW file can make chromadb segfault, and a store that fails
    must not take the ingest down with it.
    """
    if not (chroma_dir / "chroma.sqlite3").exists():
        return True  # nothing stored yet
    probe = subprocess.run([sys.executable, "-c", _PROBE, str(chroma_dir)],
                           capture_output=True, timeout=3600)
    return probe.returncode == 0


def is_store_fault(exc: BaseException) -> bool:
    """A Chroma InternalError: the embedded store itself failed (e.g. its HNSW files)."""
    return type(exc).__name__ == "InternalError" and type(exc).__module__.startswith("chromadb")


def rebuild_embedded_store(
    chroma_dir: Path, client: Callable[[], Any], embedder: Callable[[], Any]
) -> Path:
    """Rebuild every collection of an unreadable embedded Chroma from its SQLite tables.

    SIGKILL during Chroma's HNSW persistence can leave it failing every count and write
    ("Failed to apply logs to the hnsw segment writer") or segfaulting on open, and by then
    its log has been purged, so Chroma cannot rebuild the index itself. SQLite is
    transactional and still holds every chunk's id, text and metadata, including the node
    JSON llama-index stores, from which the exact text that was embedded is rebuilt. So: the
    store is renamed `chroma.broken`, a fresh one is built from it (vectors recomputed), then
    the old one is renamed `chroma.broken-<time>` to keep for inspection. A kill meanwhile
    leaves `chroma.broken` in place, and the next run starts the rebuild over from it.
    `client` must open `chroma_dir` afresh. Returns where the broken store was kept.
    """
    broken = chroma_dir.with_name(chroma_dir.name + BROKEN_SUFFIX)
    if not broken.exists():
        chroma_dir.rename(broken)
    shutil.rmtree(chroma_dir, ignore_errors=True)  # an earlier, interrupted rebuild
    collections = salvage(broken / "chroma.sqlite3")
    fresh = client()
    model = embedder()
    faults = Faults()
    for name, meta, space, rows in collections:
        meta = bumped({k: v for k, v in meta.items() if not k.startswith("hnsw:")})
        col = fresh.create_collection(name, metadata={"hnsw:space": space, **meta})
        for start in range(0, len(rows), REBUILD_BATCH):
            part = rows[start : start + REBUILD_BATCH]
            faults.reached("rebuild")
            vectors = model.llama.get_text_embedding_batch([embed_text(m, d) for _, m, d in part])
            col.add(ids=[r[0] for r in part], embeddings=vectors,
                    metadatas=[r[1] or None for r in part], documents=[r[2] for r in part])
    kept = broken.with_name(f"{broken.name}-{time.strftime('%Y%m%dT%H%M%S')}")
    broken.rename(kept)
    return kept


def salvage(sqlite_path: Path) -> list[Salvaged]:
    """Every collection's metadata, distance and rows, read from Chroma's SQLite file.

    Read with the sqlite3 module, not chromadb, which is what failed. The schema is
    chromadb's metadata segment (unchanged since 0.4; pinned here at 1.5).
    """
    con = sqlite3.connect(str(sqlite_path))  # read-write: SQLite rolls back a hot journal
    try:
        out: list[Salvaged] = []
        for cid, name, schema in con.execute("SELECT id, name, schema_str FROM collections"):
            meta = {k: _value(s, i, f, b) for k, s, i, f, b in con.execute(
                "SELECT key, str_value, int_value, float_value, bool_value "
                "FROM collection_metadata WHERE collection_id = ?", (cid,))}
            space = meta.get("hnsw:space") or _find_space(json.loads(schema or "{}")) or "l2"
            out.append((name, meta, str(space), _rows(con, cid)))
        return out
    finally:
        con.close()


def _rows(con: sqlite3.Connection, collection_id: str) -> list[tuple[str, dict[str, Any], str]]:
    """(id, metadata, document) of every row in one collection's metadata segment."""
    rows: dict[str, tuple[dict[str, Any], str]] = {}
    for eid, key, s, i, f, b in con.execute(
        "SELECT e.embedding_id, m.key, m.string_value, m.int_value, m.float_value, "
        "m.bool_value FROM embeddings e JOIN segments g ON g.id = e.segment_id "
        "LEFT JOIN embedding_metadata m ON m.id = e.id "
        "WHERE g.collection = ? AND g.scope = 'METADATA' ORDER BY e.id", (collection_id,)):
        meta_i, _ = rows.setdefault(eid, ({}, ""))
        if key == "chroma:document":
            rows[eid] = (meta_i, s or "")
        elif key is not None:
            meta_i[key] = _value(s, i, f, b)
    return [(eid, m, d) for eid, (m, d) in rows.items()]


def _value(s: Any, i: Any, f: Any, b: Any) -> Any:
    """The one typed column of a Chroma metadata row that is set."""
    return s if s is not None else i if i is not None else f if f is not None else (
        bool(b) if b is not None else None)


def _find_space(schema: Any) -> str | None:
    """The distance ("space") recorded in a collection's schema JSON, wherever it sits."""
    if isinstance(schema, dict):
        if isinstance(schema.get("space"), str):
            return str(schema["space"])
        for item in schema.values():
            found = _find_space(item)
            if found:
                return found
    return None


def run_repairing(
    run: Callable[[], Any],
    chroma_dir: Path | None,
    interrupted: bool,
    store: Store,
    embedder: Callable[[], Any],
) -> Any:
    """`run()` an ingest; with embedded Chroma (`chroma_dir`), repair the store if needed.

    Checked before the run when the previous lock holder died (`interrupted`) or a rebuild
    was left unfinished, and after a Chroma InternalError, which then gets one retry.
    `store` is the Store whose client reopens `chroma_dir`.
    """
    if chroma_dir is None:
        return run()

    def repair() -> None:
        _release(store)
        kept = rebuild_embedded_store(chroma_dir, lambda: store.client, embedder)
        log.warning("the embedded Chroma store was unreadable and has been rebuilt from its "
                    "SQLite tables; the broken copy is kept at %s", kept)

    unfinished = chroma_dir.with_name(chroma_dir.name + BROKEN_SUFFIX).exists()
    # A process that has the store open already (the API) is not probed from outside: two
    # processes on one embedded store is what Chroma forbids. Its count() check still runs.
    probe = interrupted and not store.is_open
    if unfinished or (probe and not embedded_store_readable(chroma_dir)):
        repair()
    try:
        return run()
    except Exception as exc:
        if not is_store_fault(exc):
            raise
        _release(store)
        if embedded_store_readable(chroma_dir):
            raise
        repair()
        return run()


def _release(store: Store) -> None:
    """Drop every handle this process has on the store's files."""
    import gc

    from chromadb.api.shared_system_client import SharedSystemClient

    store.reset()
    SharedSystemClient.clear_system_cache()
    gc.collect()
