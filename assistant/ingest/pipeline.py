"""The sync pipeline: plan → write → publish → prune, incremental, convergent and crash-safe.

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
   journal.py owns the flag and the generation; deleting a document goes through it too.

`Plan` is rules 3 and 4 applied to the store's state; `Ingestor.sync` then carries out rule 2.
Readers never see a mixture: retrieval.py shows, per document, only one complete version
(`visible_rows`), and filters live hits to its snapshot.

Embedding goes through llama-index's `IngestionPipeline` (the embedding transform) and
writing through its Chroma vector store, in batches of `batch_chunks`, so progress shows and
memory stays flat. Each named point of the run is a fault phase (faults.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assistant.chunking import Chunker
from assistant.errors import ReadError
from assistant.ingest.journal import Journal
from assistant.ingest.nodes import add_nodes, doc_hash, make_node
from assistant.ingest.sources import Source, discover
from assistant.schemas import IngestSummary, SkippedFile

Progress = Callable[[int, int], None]


@dataclass
class Existing:
    """What the store holds for one document: its chunk ids by version (doc_hash)."""

    versions: dict[str, set[str]]
    counts: dict[str, int]  # doc_hash -> the chunk_count its chunks record

    @property
    def ids(self) -> set[str]:
        return set().union(*self.versions.values())

    def complete(self, doc_hash: str) -> bool:
        have = self.versions.get(doc_hash, set())
        return bool(have) and len(have) == self.counts.get(doc_hash)


@dataclass(frozen=True)
class Reindex:
    """A document whose current version is not complete in the store (rule 3: re-index)."""

    source: Source
    doc_hash: str
    kind: Literal["added", "updated"]


@dataclass
class Plan:
    """What one sync will do, decided from the store before it changes anything.

    Each field is one case of the module's rules: `unchanged` and `prune` (a complete current
    version, with nothing else or with leftovers) and `reindex` are rule 3, `remove` the
    documents gone from disk, `resume` rule 4 (a predecessor left the journal pending).
    """

    existing: dict[str, Existing]
    reindex: list[Reindex] = field(default_factory=list)
    prune: dict[str, set[str]] = field(default_factory=dict)  # doc_id -> chunk ids to delete
    remove: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    resume: bool = False

    @property
    def changes(self) -> bool:
        """Whether the store will change: the journal must be pending meanwhile."""
        return bool(self.reindex or self.prune or self.remove)


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
        self.faults = self.journal.faults

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

    def run(self, target: Path, progress: Progress | None = None) -> IngestSummary:
        """Sync the collection with the files under `target` (a directory or one file)."""
        root, files = discover(target)
        return self.sync(str(root), files, progress, remove_missing=not target.is_file())

    def sync(
        self,
        source_root: str,
        sources: Sequence[Source],
        progress: Progress | None = None,
        remove_missing: bool = True,
    ) -> IngestSummary:
        """Bring the documents of `source_root` in line with `sources` (see the module docs).

        With `remove_missing`, documents of this root that are not in `sources` are deleted.
        """
        started = time.perf_counter()
        # count() makes embedded Chroma apply its log to the HNSW index: a store broken by a
        # kill fails here (InternalError, see repair.py), before anything is written.
        self.collection.count()
        plan = self.plan(source_root, sources, remove_missing)
        summary = IngestSummary(documents=0, chunks=0, unchanged=plan.unchanged,
                                updated=len(plan.prune), skipped=list(plan.skipped))
        if plan.changes and not plan.resume:
            self.journal.begin()
        prune = {**plan.prune, **self.write(plan, source_root, summary, progress)}
        if summary.added or summary.updated:
            self.journal.publish(done=False)  # readers switch to the new versions
        self.delete(prune, {d: plan.existing[d].ids for d in plan.remove})
        summary.removed += len(plan.remove)
        if plan.changes or plan.resume:
            self.journal.publish(done=True)

        final = self._existing(source_root)
        summary.documents = len(final)
        summary.chunks = sum(len(e.ids) for e in final.values())
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def plan(self, source_root: str, sources: Sequence[Source], remove_missing: bool) -> Plan:
        """Compare `sources` with what the store holds (rule 3); nothing is changed yet."""
        plan = Plan(existing=self._existing(source_root))
        self.faults.reached("scanned")
        for source in sources:
            try:
                version = doc_hash(self.signature + source.reader_version, source.content())
            except (OSError, ReadError) as exc:
                plan.skipped.append(SkippedFile(path=source.doc_id, reason=str(exc)))
                continue
            have = plan.existing.get(source.doc_id)
            if have and have.complete(version):
                leftovers = have.ids - have.versions[version]
                if leftovers:  # an interrupted update: the new version is in, the old is not out
                    plan.prune[source.doc_id] = leftovers
                else:
                    plan.unchanged += 1
                continue
            plan.reindex.append(Reindex(source, version, "updated" if have else "added"))
        if remove_missing:
            seen = {source.doc_id for source in sources}
            plan.remove = sorted(d for d in plan.existing if d not in seen)
        plan.resume = self.journal.pending()
        return plan

    def write(
        self, plan: Plan, source_root: str, summary: IngestSummary, progress: Progress | None,
    ) -> dict[str, set[str]]:
        """Embed and write the missing chunks of every re-indexed document (rules 1 and 2).

        Old versions stay; returns, per document, the chunks its new version supersedes.
        """
        total = len(plan.reindex)
        done = 0
        prune: dict[str, set[str]] = {}
        batch: list[tuple[list[Any], str]] = []  # (nodes to write, kind) per document
        batch_chunks = 0
        for item in plan.reindex:
            doc_id = item.source.doc_id
            try:
                nodes = self._nodes(item.source, source_root, item.doc_hash, summary)
            except ReadError as exc:
                summary.skipped.append(SkippedFile(path=doc_id, reason=str(exc)))
                done += 1
                if progress:
                    progress(done, total)
                continue
            have = plan.existing.get(doc_id)
            present = have.ids if have else set()
            leftovers = present - {n.node_id for n in nodes}
            if leftovers:
                prune[doc_id] = leftovers
            missing = [n for n in nodes if n.node_id not in present]
            batch.append((missing, item.kind))
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
        return prune

    def delete(self, prune: dict[str, set[str]], remove: dict[str, set[str]]) -> None:
        """After publishing: superseded versions, then documents gone from disk (rule 2)."""
        for doc_id in sorted(prune):
            self.faults.reached("prune")
            self.collection.delete(ids=sorted(prune[doc_id]))
        for doc_id in remove:
            self.faults.reached("remove")
            self.collection.delete(ids=sorted(remove[doc_id]))

    def _write(self, batch: list[tuple[list[Any], str]], summary: IngestSummary) -> int:
        """Embed and write the missing chunks of a batch of documents (old versions stay)."""
        from llama_index.core.ingestion import IngestionPipeline

        nodes = [n for doc_nodes, _ in batch for n in doc_nodes]
        if nodes:
            self.faults.reached("embed")
            # disable_cache: ids already make writes idempotent, and llama-index's cache
            # would hash and keep every node's text for nothing.
            pipeline = IngestionPipeline(transformations=[self._embed_transform()],
                                         disable_cache=True)
            embedded = pipeline.run(nodes=nodes, show_progress=False)
            self.faults.reached("write")
            add_nodes(self.collection, embedded)
            self.faults.reached("written")
            summary.embedded_chunks += len(nodes)
        for _, kind in batch:
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

    def _existing(self, source_root: str) -> dict[str, Existing]:
        """What the store holds under `source_root`, per document, read back from Chroma."""
        from assistant.retrieval import read_all

        result = read_all(self.collection, ["metadatas"], where={"source_root": source_root})
        docs: dict[str, Existing] = {}
        for cid, meta in zip(result["ids"], result["metadatas"] or [], strict=False):
            entry = docs.setdefault(str(meta.get("doc_id")), Existing({}, {}))
            version = str(meta.get("doc_hash"))
            entry.versions.setdefault(version, set()).add(cid)
            entry.counts[version] = int(meta.get("chunk_count", 0))
        return docs

    def _nodes(self, source: Source, source_root: str, version: str,
               summary: IngestSummary) -> list[Any]:
        """The nodes of a source's current version (ReadError if it yields no text); what the
        reader left out (a page OCR could not read) goes into the summary's warnings."""
        loaded = source.load()
        chunks = self.chunker.split(loaded.text)
        if not chunks:
            raise ReadError("no text could be extracted")
        summary.warnings += [SkippedFile(path=source.doc_id, reason=w) for w in loaded.warnings]
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return [
            make_node(source.doc_id, loaded.metadata, chunk, len(chunks), version,
                      source_root, now, loaded.locations)
            for chunk in chunks
        ]
