"""Ingestion: files → read → chunk → embed → Chroma, incremental and convergent.

State lives in Chroma itself rather than in a llama-index docstore: every chunk records its
document's `doc_hash` (file bytes + chunking settings) and `chunk_count`, and chunk ids are
derived from (doc_id, doc_hash, index). A docstore would be a second source of truth that a
crash can leave out of step with the vectors; reading the state back from the store means a
re-run always sees what is really indexed. A document is "unchanged" only when all
`chunk_count` chunks of its current hash are present and nothing else is; anything else is
re-indexed, so an interrupted ingest is repaired by running it again. New chunks are written
before the old version's are deleted, so readers see the old or the new version, never none.

Embedding and writing go through llama-index's `IngestionPipeline` (embedding transform plus
the Chroma vector store) in bounded batches, so progress shows and memory stays flat.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.chunking import Chunk, Chunker
from assistant.readers import (
    SUPPORTED_SUFFIXES,
    LoadedFile,
    ReadError,
    normalise_metadata,
    read_file,
)
from assistant.schemas import IngestSummary, SkippedFile

IGNORE_FILE = ".cxignore"
# Chunk metadata that must not be embedded or shown to a model: bookkeeping only.
_BOOKKEEPING = (
    "doc_id", "doc_type", "client", "author", "date", "date_int", "tags", "start", "end",
    "chunk_index", "chunk_count", "doc_hash", "source_root", "ingested_at", "file_size",
)
MAX_FILE_BYTES = 50 * 1024 * 1024


class IngestError(RuntimeError):
    """Ingest cannot start (bad path, lock held); the message says what to do."""


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
    """What the store holds for one document."""

    ids: list[str]
    hashes: set[str]
    chunk_count: int


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
def ingest_lock(data_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """One ingest per data dir at a time: the second waits up to `wait_s`, then refuses."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "ingest.lock"
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
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Ingestor:
    """Brings one collection in line with the files under one path."""

    def __init__(
        self,
        collection: Any,
        embedder: Any,
        chunker: Chunker,
        chunker_signature: str,
        batch_chunks: int = 256,
    ) -> None:
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.collection = collection
        self.embedder = embedder
        self.chunker = chunker
        self.signature = chunker_signature
        self.batch_chunks = batch_chunks
        self.vector_store = ChromaVectorStore(chroma_collection=collection)

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
        """Bring the documents of `source_root` in line with `sources`.

        With `remove_missing`, documents of this root that are not in `sources` are deleted.
        """
        started = time.perf_counter()
        existing = self._existing(source_root)
        summary = IngestSummary(documents=0, chunks=0)

        todo: list[tuple[Source, str, str]] = []  # (source, doc_hash, "added"|"updated")
        seen: set[str] = set()
        for source in sources:
            seen.add(source.doc_id)
            try:
                doc_hash = self._hash(source.content())
            except (OSError, ReadError) as exc:
                summary.skipped.append(SkippedFile(path=source.doc_id, reason=str(exc)))
                continue
            have = existing.get(source.doc_id)
            if have and have.hashes == {doc_hash} and len(have.ids) == have.chunk_count:
                summary.unchanged += 1
                continue
            todo.append((source, doc_hash, "updated" if have else "added"))

        total = len(todo)
        done = 0
        pending: list[tuple[str, list[Any], set[str], str]] = []
        pending_chunks = 0
        for source, doc_hash, kind in todo:
            try:
                nodes = self._nodes(source, source_root, doc_hash)
            except ReadError as exc:
                summary.skipped.append(SkippedFile(path=source.doc_id, reason=str(exc)))
                done += 1
                if progress:
                    progress(done, total)
                continue
            old_ids = set(existing[source.doc_id].ids) if source.doc_id in existing else set()
            pending.append((source.doc_id, nodes, old_ids, kind))
            pending_chunks += len(nodes)
            if pending_chunks >= self.batch_chunks:
                done += self._flush(pending, summary)
                pending, pending_chunks = [], 0
                if progress:
                    progress(done, total)
        if pending:
            done += self._flush(pending, summary)
        if progress:
            progress(total, total)

        stale = [d for d in existing if d not in seen] if remove_missing else []
        for doc_id in stale:
            self.collection.delete(ids=existing[doc_id].ids)
            summary.removed += 1

        final = self._existing(source_root)
        summary.documents = len(final)
        summary.chunks = sum(len(e.ids) for e in final.values())
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _flush(self, pending: list[tuple[str, list[Any], set[str], str]], summary: Any) -> int:
        """Embed and write a batch of documents, then drop their previous versions."""
        from llama_index.core.ingestion import IngestionPipeline

        nodes = [n for _, doc_nodes, _, _ in pending for n in doc_nodes]
        pipeline = IngestionPipeline(
            transformations=[self.embedder.llama], vector_store=self.vector_store
        )
        pipeline.run(nodes=nodes, show_progress=False)
        summary.embedded_chunks += len(nodes)
        for _, doc_nodes, old_ids, kind in pending:
            stale = old_ids - {n.node_id for n in doc_nodes}
            if stale:
                self.collection.delete(ids=sorted(stale))
            setattr(summary, kind, getattr(summary, kind) + 1)
        return len(pending)

    def _hash(self, content: bytes) -> str:
        return hashlib.sha256(self.signature.encode("utf-8") + b"\0" + content).hexdigest()

    def _existing(self, source_root: str) -> dict[str, _Existing]:
        result = self.collection.get(where={"source_root": source_root}, include=["metadatas"])
        docs: dict[str, _Existing] = {}
        for cid, meta in zip(result["ids"], result["metadatas"] or [], strict=False):
            doc_id = str(meta.get("doc_id"))
            entry = docs.setdefault(doc_id, _Existing([], set(), 0))
            entry.ids.append(cid)
            entry.hashes.add(str(meta.get("doc_hash")))
            entry.chunk_count = int(meta.get("chunk_count", 0))
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
