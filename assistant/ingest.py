"""Ingestion: files → read → chunk → embed → Chroma, incremental, convergent and crash-safe.

State lives in Chroma itself rather than in a llama-index docstore: every chunk records its
document's `doc_hash` (file bytes + chunking settings) and `chunk_count`, and chunk ids are
derived from (doc_id, doc_hash, index). A docstore would be a second source of truth that a
crash can leave out of step with the vectors; reading the state back from the store means a
re-run always sees what is really indexed.

Crash safety (a SIGKILL at any instant, proven by tests/test_crash.py) rests on four rules:

1. **Idempotent writes.** A chunk id names its content, so writing a chunk twice is a no-op
   and a re-run only embeds the chunks of the current version that are missing.
2. **Write, publish, then delete.** A run first writes every new version, then bumps the
   collection's generation (readers switch to the new versions), then deletes superseded
   versions and documents gone from disk, then bumps again. Until the new version of a
   document is complete its old one stays whole, so a store left by a crash holds, for every
   document, a complete version (plus perhaps leftovers), never only a fragment of the old.
3. **Convergence by comparison.** A document is "unchanged" only when all `chunk_count`
   chunks of its current hash are present and nothing else is; a complete current version
   with leftovers is pruned without embedding; anything else is re-indexed. Re-running after
   any interruption therefore ends in exactly the state a clean ingest produces.
4. **A journal for readers.** Before its first change a run sets `cx_ingest_pending` in the
   collection metadata; the final generation bump clears it in the same metadata write. A run
   that finds the flag (its predecessor died before publishing) publishes even if nothing is
   left to do, so a server's cached retriever (keyed on the generation) can never stay stale.

Readers never see a mixture: retrieval.py shows, per document, only one complete version
(`visible_rows`), and filters live hits to its snapshot.

Embedded Chroma (SQLite + HNSW files) can itself be left unreadable by a kill during its HNSW
persistence: every count() and add() then fails ("Failed to apply logs to the hnsw segment
writer"), run after run. `run_repairing` detects it (a probe in a child process when the
previous writer died holding the lock, or an InternalError during the run) and rebuilds the
store from its SQLite tables (`rebuild_embedded_store`), itself resumable after a kill.
Two writers on one data dir are serialised by `ingest_lock` (flock: released by the kernel
even on SIGKILL); its `ingest.dirty` marker tells the next holder that the last one died.

Embedding goes through llama-index's `IngestionPipeline` (the embedding transform) and
writing through its Chroma vector store, in batches of `batch_chunks`, so progress shows and
memory stays flat.

Test hook (never set in production): `CX_FAULT_KILL=phase:n` makes the process SIGKILL
itself at the n-th time it reaches `phase` (see `PHASES`), and `CX_FAULT_TRACE=file` appends
`phase:n unix-time` for every phase reached, so a harness can kill at exact points and see
where a kill at a random time landed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.chunking import Chunk, Chunker
from assistant.errors import IngestError  # noqa: F401 (re-exported)
from assistant.readers import (
    SUPPORTED_SUFFIXES,
    LoadedFile,
    ReadError,
    normalise_metadata,
    read_file,
)
from assistant.schemas import IngestSummary, SkippedFile

log = logging.getLogger("assistant.ingest")
IGNORE_FILE = ".cxignore"
# Chunk metadata that must not be embedded or shown to a model: bookkeeping only.
_BOOKKEEPING = (
    "doc_id", "doc_type", "client", "author", "date", "date_int", "tags", "start", "end",
    "chunk_index", "chunk_count", "doc_hash", "source_root", "ingested_at", "file_size",
)
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """A file on disk to ingest under `doc_id`."""

    path: Path
    doc_id: str

    def content(self) -> bytes:
        size = self.path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReadError(f"file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return self.path.read_bytes()

    def load(self) -> LoadedFile:
        return read_file(self.path, self.doc_id)


@dataclass(frozen=True)
class SourceRecord:
    """An in-memory document (e.g. a BEIR corpus entry) to ingest under `doc_id`."""

    doc_id: str
    text: str
    metadata: dict[str, Any]

    def content(self) -> bytes:
        meta = sorted((k, str(v)) for k, v in self.metadata.items())
        return f"{meta!r}\n{self.text}".encode()

    def load(self) -> LoadedFile:
        if not self.text.strip():
            raise ReadError("empty text")
        return LoadedFile(self.text, normalise_metadata(self.metadata, self.doc_id, self.text))


Source = SourceFile | SourceRecord


@dataclass
class _Existing:
    """What the store holds for one document: its chunk ids by version (doc_hash)."""

    versions: dict[str, set[str]]
    counts: dict[str, int]  # doc_hash -> the chunk_count its chunks record

    @property
    def ids(self) -> set[str]:
        return set().union(*self.versions.values())

    def complete(self, doc_hash: str) -> bool:
        have = self.versions.get(doc_hash)
        return bool(have) and len(have) == self.counts.get(doc_hash)


PHASES = (
    "scanned",   # store state read, nothing changed yet
    "journal",   # pending flag set, before the first write
    "embed",     # before embedding a batch
    "write",     # batch embedded, before writing it to Chroma
    "written",   # batch written, before the next one
    "publish",   # every new version written, before the generation bump
    "prune",     # before deleting one document's superseded chunks
    "remove",    # before deleting one document that is gone from disk
    "commit",    # everything deleted, before the final bump that clears the flag
    "done",      # after the final bump
    "rebuild",   # repairing a broken embedded store: before adding a batch to the new one
)


class _Faults:
    """The CX_FAULT_KILL / CX_FAULT_TRACE test hook (see the module docstring)."""

    def __init__(self) -> None:
        spec = os.environ.get("CX_FAULT_KILL", "")
        phase, _, n = spec.partition(":")
        if spec and (phase not in PHASES or not n.isdigit()):
            raise IngestError(f"CX_FAULT_KILL must be PHASE:N with PHASE in {PHASES}")
        self.kill_at = (phase, int(n)) if spec else None
        self.trace = os.environ.get("CX_FAULT_TRACE") or None
        self.counts: dict[str, int] = {}

    def reached(self, phase: str) -> None:
        if self.kill_at is None and self.trace is None:
            return
        n = self.counts[phase] = self.counts.get(phase, 0) + 1
        if self.trace:
            fd = os.open(self.trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{phase}:{n} {time.time():.6f}\n".encode())
            finally:
                os.close(fd)
        if self.kill_at == (phase, n):
            os.kill(os.getpid(), signal.SIGKILL)


PENDING_KEY = "cx_ingest_pending"


class Journal:
    """The collection-level ingest journal: the generation readers cache on, and a pending flag.

    `fetch` returns the collection afresh so a bump never works from metadata cached before
    another process (the API's upload, say) bumped it.
    """

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self.fetch = fetch

    def _metadata(self) -> tuple[Any, dict[str, Any]]:
        collection = self.fetch()
        meta = dict(collection.metadata or {})
        for key in [k for k in meta if k.startswith("hnsw:")]:
            meta.pop(key)  # the distance metric cannot be changed after creation
        return collection, meta

    def pending(self) -> bool:
        return bool(self._metadata()[1].get(PENDING_KEY))

    def begin(self) -> None:
        collection, meta = self._metadata()
        meta[PENDING_KEY] = 1
        collection.modify(metadata=meta)

    def publish(self, done: bool) -> None:
        """Bump the generation; with `done`, clear the pending flag in the same write."""
        from assistant.store import GENERATION_KEY

        collection, meta = self._metadata()
        meta[GENERATION_KEY] = int(meta.get(GENERATION_KEY, 0)) + 1
        meta["cx_updated_at"] = time.time()
        meta[PENDING_KEY] = 0 if done else 1
        collection.modify(metadata=meta)


def discover(target: Path) -> tuple[Path, list[SourceFile]]:
    """Files under `target` with a supported suffix, minus hidden/`_` paths and `.cxignore`.

    Returns the root doc_ids are relative to: the directory itself, or a file's parent.
    """
    if not target.exists():
        raise IngestError(f"path does not exist: {target}")
    if target.is_file():
        return target.parent.resolve(), [SourceFile(target.resolve(), target.name)]
    root = target.resolve()
    patterns = _ignore_patterns(root)
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.startswith((".", "_")) or not name.lower().endswith(SUPPORTED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            doc_id = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(doc_id, p) for p in patterns):
                continue
            files.append(SourceFile(path, doc_id))
    return root, sorted(files, key=lambda f: f.doc_id)


def _ignore_patterns(root: Path) -> list[str]:
    ignore = root / IGNORE_FILE
    if not ignore.is_file():
        return []
    lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def chunk_id(doc_id: str, doc_hash: str, index: int) -> str:
    digest = hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:16]
    return f"{digest}-{doc_hash[:16]}-{index:05d}"


@contextmanager
def ingest_lock(data_dir: Path, wait_s: float = 0.0) -> Iterator[bool]:
    """One writer per data dir at a time: the second waits up to `wait_s`, then refuses.

    Yields whether the previous holder died holding it: its `ingest.dirty` marker, written
    on taking the lock and removed on leaving it (also by an exception), is still there. A
    writer killed mid-write can leave embedded Chroma unreadable, so that calls for a check.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "ingest.lock"
    marker = data_dir / "ingest.dirty"
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IngestError(
                        f"another ingest is running on {data_dir}; wait for it to finish"
                    ) from None
                time.sleep(0.2)
        try:
            interrupted = marker.exists()
            marker.write_text(f"{os.getpid()}\n", "utf-8")
            yield interrupted
            marker.unlink(missing_ok=True)
        except BaseException:
            marker.unlink(missing_ok=True)  # an exception is no crash: the store is intact
            raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Ingestor:
    """Brings one collection in line with the files under one path.

    `embedder` and `chunker` may be zero-argument callables: they are then called on first
    need, so a run with nothing to embed (an unchanged tree, deletions only, finishing an
    interrupted run) never pays for loading the model.
    """

    def __init__(
        self,
        collection: Any,
        embedder: Any | Callable[[], Any],
        chunker: Chunker | Callable[[], Chunker],
        chunker_signature: str,
        batch_chunks: int = 256,
        journal: Journal | None = None,
    ) -> None:
        self.collection = collection
        self._embedder = embedder
        self._chunker = chunker
        self._transform: Any = None
        self.signature = chunker_signature
        self.batch_chunks = batch_chunks
        self.journal = journal or Journal(lambda: collection)
        self.faults = _Faults()

    @property
    def embedder(self) -> Any:
        if callable(self._embedder):
            self._embedder = self._embedder()
        return self._embedder

    @property
    def chunker(self) -> Chunker:
        if callable(self._chunker):
            self._chunker = self._chunker()
        return self._chunker

    def run(
        self,
        target: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestSummary:
        """Sync the collection with the files under `target` (a directory or one file)."""
        root, files = discover(target)
        return self.sync(str(root), files, progress, remove_missing=not target.is_file())

    def sync(
        self,
        source_root: str,
        sources: list[Source],
        progress: Callable[[int, int], None] | None = None,
        remove_missing: bool = True,
    ) -> IngestSummary:
        """Bring the documents of `source_root` in line with `sources` (see the module docs).

        With `remove_missing`, documents of this root that are not in `sources` are deleted.
        """
        started = time.perf_counter()
        # count() makes embedded Chroma apply its log to the HNSW index: a store broken by a
        # kill fails here (InternalError, see run_repairing), before anything is written.
        self.collection.count()
        existing = self._existing(source_root)
        self.faults.reached("scanned")
        summary = IngestSummary(documents=0, chunks=0)

        todo: list[tuple[Source, str, str]] = []  # (source, doc_hash, "added"|"updated")
        prune: dict[str, set[str]] = {}  # doc_id -> chunks to delete once new ones are in
        seen: set[str] = set()
        for source in sources:
            seen.add(source.doc_id)
            try:
                doc_hash = self._hash(source.content())
            except (OSError, ReadError) as exc:
                summary.skipped.append(SkippedFile(path=source.doc_id, reason=str(exc)))
                continue
            have = existing.get(source.doc_id)
            if have and have.complete(doc_hash):
                leftovers = have.ids - have.versions[doc_hash]
                if leftovers:  # an interrupted update: the new version is in, the old is not out
                    prune[source.doc_id] = leftovers
                    summary.updated += 1
                else:
                    summary.unchanged += 1
                continue
            todo.append((source, doc_hash, "updated" if have else "added"))
        stale = sorted(d for d in existing if d not in seen) if remove_missing else []

        interrupted = self.journal.pending()
        if (todo or prune or stale) and not interrupted:
            self.journal.begin()
            self.faults.reached("journal")

        total = len(todo)
        done = 0
        batch: list[tuple[str, list[Any], str]] = []  # (doc_id, nodes to write, kind)
        batch_chunks = 0
        for source, doc_hash, kind in todo:
            try:
                nodes = self._nodes(source, source_root, doc_hash)
            except ReadError as exc:
                summary.skipped.append(SkippedFile(path=source.doc_id, reason=str(exc)))
                done += 1
                if progress:
                    progress(done, total)
                continue
            have = existing.get(source.doc_id)
            present = have.ids if have else set()
            leftovers = present - {n.node_id for n in nodes}
            if leftovers:
                prune[source.doc_id] = leftovers
            missing = [n for n in nodes if n.node_id not in present]
            batch.append((source.doc_id, missing, kind))
            batch_chunks += len(missing)
            if batch_chunks >= self.batch_chunks:
                done += self._write(batch, summary)
                batch, batch_chunks = [], 0
                if progress:
                    progress(done, total)
        if batch:
            done += self._write(batch, summary)
        if progress:
            progress(total, total)

        if summary.added or summary.updated:
            self.faults.reached("publish")
            self.journal.publish(done=False)  # readers switch to the new versions
        for doc_id in sorted(prune):
            self.faults.reached("prune")
            self.collection.delete(ids=sorted(prune[doc_id]))
        for doc_id in stale:
            self.faults.reached("remove")
            self.collection.delete(ids=sorted(existing[doc_id].ids))
            summary.removed += 1
        if todo or prune or stale or interrupted:
            self.faults.reached("commit")
            self.journal.publish(done=True)
            self.faults.reached("done")

        final = self._existing(source_root)
        summary.documents = len(final)
        summary.chunks = sum(len(e.ids) for e in final.values())
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _write(self, batch: list[tuple[str, list[Any], str]], summary: IngestSummary) -> int:
        """Embed and write the missing chunks of a batch of documents (old versions stay)."""
        from llama_index.core.ingestion import IngestionPipeline

        nodes = [n for _, doc_nodes, _ in batch for n in doc_nodes]
        if nodes:
            self.faults.reached("embed")
            # disable_cache: ids already make writes idempotent, and llama-index's cache
            # would hash and keep every node's text for nothing.
            pipeline = IngestionPipeline(transformations=[self._embed_transform()],
                                         disable_cache=True)
            embedded = pipeline.run(nodes=nodes, show_progress=False)
            self.faults.reached("write")
            _add_nodes(self.collection, embedded)
            self.faults.reached("written")
            summary.embedded_chunks += len(nodes)
        for _, _, kind in batch:
            setattr(summary, kind, getattr(summary, kind) + 1)
        return len(batch)

    def _embed_transform(self) -> Any:
        """Our length-sorted batch embedding when the embedder offers it (see embeddings.py)."""
        if self._transform is None:
            from assistant.embeddings import Embedder, embedding_transform

            embedder = self.embedder
            self._transform = (embedding_transform(embedder) if isinstance(embedder, Embedder)
                               else embedder.llama)
        return self._transform

    def _hash(self, content: bytes) -> str:
        return hashlib.sha256(self.signature.encode("utf-8") + b"\0" + content).hexdigest()

    def _existing(self, source_root: str) -> dict[str, _Existing]:
        from assistant.retrieval import read_all

        result = read_all(self.collection, ["metadatas"], where={"source_root": source_root})
        docs: dict[str, _Existing] = {}
        for cid, meta in zip(result["ids"], result["metadatas"] or [], strict=False):
            entry = docs.setdefault(str(meta.get("doc_id")), _Existing({}, {}))
            doc_hash = str(meta.get("doc_hash"))
            entry.versions.setdefault(doc_hash, set()).add(cid)
            entry.counts[doc_hash] = int(meta.get("chunk_count", 0))
        return docs

    def _nodes(self, source: Source, source_root: str, doc_hash: str) -> list[Any]:
        loaded = source.load()
        chunks = self.chunker.split(loaded.text)
        if not chunks:
            raise ReadError("no text could be extracted")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return [
            make_node(source.doc_id, loaded.metadata, chunk, len(chunks), doc_hash,
                      source_root, now)
            for chunk in chunks
        ]


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
    import shutil

    from assistant.store import GENERATION_KEY

    broken = chroma_dir.with_name(chroma_dir.name + BROKEN_SUFFIX)
    if not broken.exists():
        chroma_dir.rename(broken)
    shutil.rmtree(chroma_dir, ignore_errors=True)  # an earlier, interrupted rebuild
    collections = _salvage(broken / "chroma.sqlite3")
    fresh = client()
    model = embedder()
    faults = _Faults()
    for name, meta, space, rows in collections:
        meta = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
        meta[GENERATION_KEY] = int(meta.get(GENERATION_KEY, 0)) + 1  # readers: rebuild caches
        col = fresh.create_collection(name, metadata={"hnsw:space": space, **meta})
        for start in range(0, len(rows), 64):
            part = rows[start : start + 64]
            faults.reached("rebuild")
            vectors = model.llama.get_text_embedding_batch([_embed_text(m, d) for _, m, d in part])
            col.add(ids=[r[0] for r in part], embeddings=vectors,
                    metadatas=[r[1] or None for r in part], documents=[r[2] for r in part])
    kept = broken.with_name(f"{broken.name}-{time.strftime('%Y%m%dT%H%M%S')}")
    broken.rename(kept)
    return kept


def _add_nodes(collection: Any, nodes: list[Any]) -> None:
    """Write embedded nodes as llama-index's ChromaVectorStore.add does, with one change.

    A chunk's sentence vectors (node.metadata[SENTENCES_KEY], set by the embedding
    transform) become a flat metadata key only: left in node.metadata, llama-index would
    also copy them into the `_node_content` JSON it stores, doubling their size.
    """
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from assistant.sentences import SENTENCES_KEY

    for at in range(0, len(nodes), 5000):  # under Chroma's maximum batch size
        part = nodes[at : at + 5000]
        metadatas = []
        for node in part:
            blob = node.metadata.pop(SENTENCES_KEY, None)
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
            meta = {k: "" if v is None else v for k, v in meta.items()}
            if blob:
                meta[SENTENCES_KEY] = blob
            metadatas.append(meta)
        collection.add(ids=[n.node_id for n in part],
                       embeddings=[n.get_embedding() for n in part], metadatas=metadatas,
                       documents=[n.get_content(metadata_mode=MetadataMode.NONE) for n in part])


def _embed_text(meta: dict[str, Any], document: str) -> str:
    """What ingest embedded for a chunk: llama-index's node, rebuilt from its stored JSON."""
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    if "_node_content" not in meta:
        return document
    return metadata_dict_to_node(meta, text=document).get_content(MetadataMode.EMBED)


def _salvage(sqlite_path: Path) -> list[tuple[str, dict[str, Any], str, list[Any]]]:
    """(name, metadata, distance, [(id, metadata, document)]) per collection, from SQLite.

    Read with the sqlite3 module, not chromadb, which is what failed. The schema is
    chromadb's metadata segment (unchanged since 0.4; pinned here at 1.5).
    """
    import json
    import sqlite3

    def value(s: Any, i: Any, f: Any, b: Any) -> Any:
        return s if s is not None else i if i is not None else f if f is not None else (
            bool(b) if b is not None else None)

    con = sqlite3.connect(str(sqlite_path))  # read-write: SQLite rolls back a hot journal
    try:
        out = []
        for cid, name, schema in con.execute("SELECT id, name, schema_str FROM collections"):
            meta = {k: value(s, i, f, b) for k, s, i, f, b in con.execute(
                "SELECT key, str_value, int_value, float_value, bool_value "
                "FROM collection_metadata WHERE collection_id = ?", (cid,))}
            space = meta.get("hnsw:space") or _find_space(json.loads(schema or "{}")) or "l2"
            rows: dict[str, tuple[dict[str, Any], str]] = {}
            for eid, key, s, i, f, b in con.execute(
                "SELECT e.embedding_id, m.key, m.string_value, m.int_value, m.float_value, "
                "m.bool_value FROM embeddings e JOIN segments g ON g.id = e.segment_id "
                "LEFT JOIN embedding_metadata m ON m.id = e.id "
                "WHERE g.collection = ? AND g.scope = 'METADATA' ORDER BY e.id", (cid,)):
                meta_i, doc = rows.setdefault(eid, ({}, ""))
                if key == "chroma:document":
                    rows[eid] = (meta_i, s or "")
                elif key is not None:
                    meta_i[key] = value(s, i, f, b)
            out.append((name, meta, str(space),
                        [(eid, m, d) for eid, (m, d) in rows.items()]))
        return out
    finally:
        con.close()


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
    store: Any,
    embedder: Callable[[], Any],
) -> Any:
    """`run()` an ingest; with embedded Chroma (`chroma_dir`), repair the store if needed.

    Checked before the run when the previous lock holder died (`interrupted`) or a rebuild
    was left unfinished, and after a Chroma InternalError, which then gets one retry.
    `store` is the Store whose client reopens `chroma_dir`.
    """
    if chroma_dir is None:
        return run()

    def release() -> None:
        """Drop every handle this process has on the store's files."""
        import gc

        from chromadb.api.shared_system_client import SharedSystemClient

        store.reset()
        SharedSystemClient.clear_system_cache()
        gc.collect()

    def repair() -> None:
        release()
        kept = rebuild_embedded_store(chroma_dir, lambda: store.client, embedder)
        log.warning("the embedded Chroma store was unreadable and has been rebuilt from its "
                    "SQLite tables; the broken copy is kept at %s", kept)

    unfinished = chroma_dir.with_name(chroma_dir.name + BROKEN_SUFFIX).exists()
    # A process that has the store open already (the API) is not probed from outside: two
    # processes on one embedded store is what Chroma forbids. Its count() check still runs.
    probe = interrupted and getattr(store, "_client", None) is None
    if unfinished or (probe and not embedded_store_readable(chroma_dir)):
        repair()
    try:
        return run()
    except Exception as exc:
        if not is_store_fault(exc):
            raise
        release()
        if embedded_store_readable(chroma_dir):
            raise
        repair()
        return run()


def make_node(
    doc_id: str,
    doc_meta: dict[str, Any],
    chunk: Chunk,
    chunk_count: int,
    doc_hash: str,
    source_root: str,
    ingested_at: str,
) -> Any:
    """A llama-index TextNode for one chunk, with flat (Chroma-compatible) metadata.

    Tags become one flag key each (`tag:<name>`) so Chroma and BM25 can filter on them;
    the date also becomes an integer so date ranges are numeric comparisons.
    """
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    tags = doc_meta.get("tags") or []
    metadata: dict[str, Any] = {
        "doc_id": doc_id,
        "title": doc_meta["title"],
        "section": chunk.section,
        "doc_type": doc_meta["doc_type"],
        "tags": ", ".join(tags),
        "start": chunk.start,
        "end": chunk.end,
        "chunk_index": chunk.index,
        "chunk_count": chunk_count,
        "doc_hash": doc_hash,
        "source_root": source_root,
        "ingested_at": ingested_at,
    }
    for key in ("client", "author", "date"):
        if doc_meta.get(key):
            metadata[key] = doc_meta[key]
    if doc_meta.get("date"):
        metadata["date_int"] = int(doc_meta["date"].replace("-", ""))
    for tag in tags:
        metadata[f"tag:{tag}"] = 1  # an int: llama-index filters take no booleans
    hidden = [k for k in metadata if k.startswith("tag:")]
    if not chunk.section:
        hidden.append("section")  # an empty "section:" line would only add noise
    node = TextNode(
        id_=chunk_id(doc_id, doc_hash, chunk.index),
        text=chunk.text,
        metadata=metadata,
        excluded_embed_metadata_keys=[*_BOOKKEEPING, *hidden],
        excluded_llm_metadata_keys=[*_BOOKKEEPING, *hidden],
        metadata_template="{key}: {value}",
    )
    # ref_doc_id = our doc_id, so Chroma's doc_id/document_id/ref_doc_id keys agree with ours.
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
    return node
