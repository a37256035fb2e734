"""Crash safety: SIGKILL the real `cx-assistant ingest` anywhere, re-run, and converge.

Each run is the installed CLI in its own process over embedded Chroma. Kills land at named
points (the CX_FAULT_KILL hook in assistant/ingest.py) and at seeded random times, some just
after a Chroma add or delete has begun, so they fall inside Chroma's own writes. After the
last kill an uninterrupted run must leave exactly what a clean ingest of the same tree
leaves: same chunk ids, texts, hashes, counts and vectors (found by HNSW queries), nothing
else. Chroma's HNSW files, torn by a kill while it persists them, are the last test's case.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.files import write_csv, write_md, write_pptx, write_scanned_pdf, write_xlsx
from helpers.processes import CLI
from helpers.settings import make_settings

from assistant.readers import SUPPORTED_SUFFIXES
from assistant.service import AssistantService

pytestmark = pytest.mark.slow  # real CLI ingests of hundreds of files, killed and re-run

COLLECTION = "cx-knowledge"
N_DOCS = 300
BATCH = "16"  # chunks per ingest batch: many small flushes, so many distinct kill points
RUN_TIMEOUT_S = 300
TOPICS = ("complaint coding", "journey mapping", "promise keeping", "fault reviews",
          "survey design", "frontline empowerment", "closed-loop feedback")

# A standalone reader: it needs only chromadb, so it starts in seconds, and it reads a data
# dir no process of ours still has open (PersistentClient is single-process).
DUMP = r"""
import json, sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1],
                                   settings=Settings(anonymized_telemetry=False))
col = client.get_collection(sys.argv[2])
got = col.get(include=["documents", "metadatas", "embeddings"])
emb = [[float(x) for x in e] for e in got["embeddings"]]
near = col.query(query_embeddings=emb, n_results=1, include=[])["ids"] if emb else []
json.dump({"count": col.count(), "meta": col.metadata, "ids": got["ids"],
           "documents": got["documents"], "metadatas": got["metadatas"], "embeddings": emb,
           "nearest": [n[0] if n else None for n in near]}, sys.stdout)
"""


def doc_path(root: Path, i: int) -> Path:
    return root / f"area{i % 6}" / f"note-{i:03d}.md"


def write_doc(root: Path, i: int, rev: int) -> None:
    """A short note: one section for even i, two for odd i (so 1 or 2 chunks)."""
    topic = TOPICS[i % len(TOPICS)]
    body = (f"# Note {i}\n\nNote {i}, revision {rev}, records what client {i % 17} said "
            f"about {topic}: finding {i * 7 + rev} was confirmed in workshop {i % 11}.\n")
    if i % 2:
        body += (f"\n## Follow-up\n\nFollow-up {i} (revision {rev}): owner {i % 5} closes "
                 f"the {topic} action within {i % 9 + 1} weeks.\n")
    write_md(doc_path(root, i), f"Note {i}", body, doc_type="finding" if i % 3 else "article",
             client=f"Client{i % 17}")


def set_tree(root: Path, revs: dict[int, int | None]) -> None:
    """Make the tree hold note i at revision revs[i] (None: no such file)."""
    for i, rev in revs.items():
        if rev is None:
            doc_path(root, i).unlink(missing_ok=True)
        else:
            write_doc(root, i, rev)


def tree_doc_ids(root: Path) -> set[str]:
    """Every file ingest would index (the notes trees hold only .md files)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES}


@dataclass
class Run:
    """One CLI ingest: how it was stopped, what it reached, how it ended."""

    label: str
    rc: int
    events: list[str]
    stderr: str


@dataclass
class Chain:
    """A sequence of ingests of one tree into one data dir, most of them killed."""

    kb: Path
    data: Path
    trace: Path
    rng: random.Random
    runs: list[Run] = field(default_factory=list)

    def ingest(self, kill: str | None = None, after: str | None = None,
               within: float = 0.0) -> Run:
        """Run the CLI; `kill` = PHASE:N hook, or SIGKILL `within` seconds after `after`."""
        self.trace.unlink(missing_ok=True)
        env = {**os.environ, "CX_DATA_DIR": str(self.data), "CX_INGEST_BATCH": BATCH,
               "CX_FAULT_TRACE": str(self.trace)}
        if kill:
            env["CX_FAULT_KILL"] = kill
        proc = subprocess.Popen([str(CLI), "ingest", str(self.kb)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if after:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while proc.poll() is None and after not in self._events():
                assert time.monotonic() < deadline, f"{after} never reached"
                time.sleep(0.002)
            time.sleep(self.rng.uniform(0.0, within))
            proc.send_signal(signal.SIGKILL)
        try:
            _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"ingest hung (kill={kill}, after={after})") from None
        events = self._events()
        if kill:
            label = kill
        elif after:
            label = f"~{events[-1] if events else 'start'} ({after}+{within * 1000:.0f}ms)"
        else:
            label = "full"
        run = Run(label, proc.returncode, events, err)
        self.runs.append(run)
        # Every run either dies by our SIGKILL or finishes cleanly: a Chroma left unreadable by
        # an earlier kill, or any other error, fails here with the CLI's own message.
        assert run.rc in (0, -signal.SIGKILL), f"run {label} exited {run.rc}: {err[-2000:]}"
        if kill:
            assert run.rc == -signal.SIGKILL, f"kill point {kill} was never reached: {events}"
        return run

    def _events(self) -> list[str]:
        try:
            return [ln.split()[0] for ln in self.trace.read_text().splitlines() if ln]
        except FileNotFoundError:
            return []

    def killed(self) -> list[Run]:
        return [r for r in self.runs if r.rc == -signal.SIGKILL]


def dump(data_dir: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", DUMP, str(data_dir / "chroma"), COLLECTION],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def clean_reference(kb: Path, data: Path) -> dict[str, Any]:
    """What one uninterrupted ingest of `kb` leaves (in-process, default batch size)."""
    summary = AssistantService(make_settings(data)).ingest([kb])
    assert summary.skipped == [] and summary.added == summary.documents
    return dump(data)


def assert_converged(got: dict[str, Any], want: dict[str, Any], kb: Path) -> None:
    """`got` holds exactly the chunks, vectors and bookkeeping of the clean ingest `want`."""
    assert got["count"] == len(got["ids"]) == len(set(got["ids"])), "duplicate chunk ids"
    assert sorted(got["ids"]) == sorted(want["ids"])

    def rows(d: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        return {cid: (m["doc_id"], m["doc_hash"], m["chunk_count"], m["chunk_index"],
                      m["source_root"], text)
                for cid, m, text in zip(d["ids"], d["metadatas"], d["documents"], strict=True)}

    got_rows, want_rows = rows(got), rows(want)
    assert got_rows == want_rows
    docs = {r[0] for r in got_rows.values()}
    assert docs == tree_doc_ids(kb), "orphaned or missing documents"
    for doc_id in docs:  # every document whole: chunk_count chunks, one version
        mine = [r for r in got_rows.values() if r[0] == doc_id]
        assert len(mine) == mine[0][2] and len({r[1] for r in mine}) == 1, doc_id
    want_vec = dict(zip(want["ids"], want["embeddings"], strict=True))
    for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
        assert np.allclose(vec, want_vec[cid], atol=1e-4), f"vector of {cid} differs"
    # the HNSW index, not just SQLite, holds every vector: each finds itself first
    assert got["nearest"] == got["ids"]
    assert not got["meta"].get("cx_ingest_pending"), "journal left pending"
    assert int(got["meta"].get("cx_generation", 0)) > 0


def chain_first_ingest(chain: Chain) -> None:
    """A first ingest of 300 notes, killed 14 times (11 named points, 3 random)."""
    for kill in ("scanned:1", "journal:1", "embed:1", "write:1"):
        chain.ingest(kill=kill)
    chain.ingest(after="write:2", within=0.01)  # inside Chroma's add (it takes 15-50 ms)
    for kill in ("written:2", "write:4"):
        chain.ingest(kill=kill)
    chain.ingest(after="embed:1", within=2.0)  # anywhere: a random wall-clock time
    for kill in ("embed:3", "written:3"):
        chain.ingest(kill=kill)
    chain.ingest(after="write:3", within=0.01)
    # After `publish` everything is written: the next run has nothing to embed, and only the
    # pending flag left by the killed run makes it reach `commit` (the journal at work).
    for kill in ("publish:1", "commit:1", "done:1"):
        chain.ingest(kill=kill)
    chain.ingest()


def chain_changing_tree(chain: Chain) -> None:
    """Updates, deletions and additions, with the tree edited again between kills."""
    revs: dict[int, int | None] = {i: 0 for i in range(N_DOCS)}
    set_tree(chain.kb, revs)
    chain.ingest()  # the starting point: a complete first ingest

    for i in range(N_DOCS):  # v1: 30 changed, 30 deleted, 20 added
        revs[i] = 1 if i % 10 == 0 else None if i % 10 == 5 else revs[i]
    revs.update({i: 0 for i in range(N_DOCS, N_DOCS + 20)})
    set_tree(chain.kb, revs)
    for kill in ("write:2", "written:1", "publish:1"):
        chain.ingest(kill=kill)

    # v2, while both versions of the changed notes are stored and nothing is pruned yet:
    # revert some to their original text, delete others, bring back deleted ones, edit more.
    edits: dict[int, int | None] = {}
    for i in range(N_DOCS):
        if i % 20 == 0:
            edits[i] = 0
        elif i % 20 == 10:
            edits[i] = None
        elif i % 20 == 5 or i % 10 == 3:
            edits[i] = 2
    revs.update(edits)
    set_tree(chain.kb, revs)
    chain.ingest(kill="prune:1")
    chain.ingest(after="prune:3", within=0.01)  # inside a Chroma delete, most likely
    for kill in ("prune:4", "remove:1"):
        chain.ingest(kill=kill)
    chain.ingest(after="remove:2", within=0.01)
    chain.ingest(kill="remove:5")

    # v3: 90 two-chunk notes edited, 5 deleted, 10 added: enough batches for four kills
    revs.update({i: 3 for i in range(N_DOCS) if i % 10 in (1, 7, 9)})
    revs.update({i: None for i in range(N_DOCS, N_DOCS + 5)})
    revs.update({i: 0 for i in range(N_DOCS + 20, N_DOCS + 30)})
    set_tree(chain.kb, revs)
    for kill in ("embed:2", "write:3", "written:4"):
        chain.ingest(kill=kill)
    chain.ingest(after="scanned:1", within=1.5)  # anywhere: a random wall-clock time
    chain.ingest()


def test_sigkill_anywhere_converges_to_a_clean_ingest(tmp_path: Path) -> None:
    first = Chain(tmp_path / "kb-first", tmp_path / "data-first", tmp_path / "trace-first",
                  random.Random(8))
    for i in range(N_DOCS):
        write_doc(first.kb, i, 0)
    changing = Chain(tmp_path / "kb-changing", tmp_path / "data-changing",
                     tmp_path / "trace-changing", random.Random(9))
    # The two chains are independent; run side by side, each mostly waits on imports.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(chain_first_ingest, first),
                pool.submit(chain_changing_tree, changing)]
        for job in jobs:
            job.result()

    for chain, name in ((first, "ref-first"), (changing, "ref-changing")):
        want = clean_reference(chain.kb, tmp_path / name)
        assert_converged(dump(chain.data), want, chain.kb)

    killed = first.killed() + changing.killed()
    points = {r.label.split(" ")[0] for r in killed}
    print(f"\n{len(killed)} kills, {len(points)} distinct points survived: {sorted(points)}")
    assert len(points) >= 20, sorted(points)
    named = {r.label for r in killed if not r.label.startswith("~")}
    assert len(named) >= 20, sorted(named)
    # Random kills that fell inside Chroma: after its add began (write:N) or during a
    # delete (prune:N / remove:N), before the next phase was reached.
    inside = [r.label for r in killed if r.label.startswith(("~write:", "~prune:", "~remove:"))]
    assert len(inside) >= 2, [r.label for r in killed]


def test_two_cli_ingests_on_one_data_dir(tmp_path: Path) -> None:
    """Two CLI processes started together: one ingests, the other refuses in one line."""
    kb, data = tmp_path / "kb", tmp_path / "data"
    for i in range(120):
        write_doc(kb, i, 0)
    env = {**os.environ, "CX_DATA_DIR": str(data)}
    procs = [subprocess.Popen([str(CLI), "ingest", str(kb)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(*p.communicate(timeout=RUN_TIMEOUT_S), p.returncode) for p in procs]
    results = [(rc, out, err) for out, err, rc in results]
    ok = [r for r in results if r[0] == 0]
    refused = [r for r in results if r[0] != 0]
    # the lock is taken before the model loads (seconds), so the two always overlap
    assert len(ok) == 1 and len(refused) == 1, results
    err = refused[0][2].strip()
    assert err.count("\n") == 0, err
    assert err.startswith("error: another ingest is running on ") and str(data) in err
    assert refused[0][1] == ""
    assert "120 documents" in ok[0][1]
    assert_converged(dump(data), clean_reference(kb, tmp_path / "ref"), kb)


LOCATED = ("page", "slide", "sheet", "row", "locations", "ocr")  # what readers add per chunk


def write_formats(root: Path, rev: int) -> None:
    """A deck, a workbook, a CSV and a one-page scan, each naming revision `rev`."""
    folder = root / "formats"
    write_pptx(folder / "review.pptx", [
        {"title": "Callback review",
         "bullets": [f"Revision {rev}: Harbourline missed {14 + rev} callbacks in March."]},
        {"title": "Next steps", "bullets": [f"Revision {rev}: the journey team redraws the map."]},
    ], title="Review deck")
    write_xlsx(folder / "scores.xlsx", {"Scores": [["Client", "NPS", "Revision"],
                                                   ["Verdant", 41 + rev, rev],
                                                   ["Orchid Bank", 22, rev]]}, title="Scores")
    write_csv(folder / "tickets.csv", [["Ticket", "Days", "Revision"], ["T-101", str(3 + rev),
                                                                        str(rev)],
                                       ["T-102", "12", str(rev)]])
    write_scanned_pdf(folder / "audit-scan.pdf",
                      [f"Audit revision {rev}: refunds took {19 + rev} days on average."])


def test_sigkill_with_decks_workbooks_and_scans_converges(tmp_path: Path) -> None:
    """Every reader under the crash contract: kills while a tree of notes, a deck, a
    workbook, a CSV and a scan (OCR'd on each run that reads it) is first ingested and then
    changed leave, after one clean run, what a clean ingest leaves, locations included."""
    chain = Chain(tmp_path / "kb", tmp_path / "data", tmp_path / "trace", random.Random(11))
    revs: dict[int, int | None] = {i: 0 for i in range(10)}
    set_tree(chain.kb, revs)
    write_formats(chain.kb, 0)
    chain.ingest(kill="embed:2")  # the first batch written, the rest not
    chain.ingest(kill="written:1")  # the rest written, nothing published
    revs.update({0: 1, 3: 1, 5: None, 10: 0})
    set_tree(chain.kb, revs)
    write_formats(chain.kb, 1)  # every new-format file changes
    chain.ingest(kill="write:1")  # the changes embedded, not written
    chain.ingest(kill="prune:1")  # new versions published, the old ones not yet pruned
    chain.ingest()
    assert len(chain.killed()) == 4

    want = clean_reference(chain.kb, tmp_path / "ref")
    got = dump(chain.data)
    assert_converged(got, want, chain.kb)

    def places(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {cid: {k: m.get(k) for k in LOCATED}
                for cid, m in zip(d["ids"], d["metadatas"], strict=True)}

    assert places(got) == places(want)
    # the reference really holds every kind: a slide, a sheet row, a CSV row, an OCR'd page
    stored = {k for m in want["metadatas"] for k in LOCATED if m.get(k) not in (None, "")}
    assert stored == set(LOCATED), stored
    assert {m["doc_id"] for m in want["metadatas"] if m.get("ocr")} == {
        "formats/audit-scan.pdf"}


# 1200 vectors in and out of a collection: past Chroma's sync threshold (1000 writes) it
# persists its HNSW files and purges its log, as it does in any store of real size. From then
# on the vectors live only in those files, which a kill can leave torn.
PERSIST = r"""
import random, sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1],
                                   settings=Settings(anonymized_telemetry=False))
col = client.get_collection(sys.argv[2])
rng = random.Random(0)
ids = [f"zz-filler-{i}" for i in range(1200)]
for k in range(0, len(ids), 300):
    col.add(ids=ids[k:k + 300], documents=["filler"] * 300,
            embeddings=[[rng.gauss(0, 1) for _ in range(384)] for _ in range(300)])
col.delete(ids=ids)
"""


def persist_hnsw(data: Path) -> Path:
    """Make Chroma persist the collection's HNSW files; returns their directory."""
    proc = subprocess.run([sys.executable, "-c", PERSIST, str(data / "chroma"), COLLECTION],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (pickle,) = (data / "chroma").glob("*/index_metadata.pickle")
    return pickle.parent


def tear(path: Path) -> None:
    """Cut a file short, as a kill while Chroma rewrites it leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_unreadable_embedded_store_is_rebuilt(tmp_path: Path) -> None:
    """Torn HNSW metadata makes Chroma fail every count and write; ingest rebuilds it.

    Found by SIGKILLing chromadb writers during HNSW persistence: after a few kills the store
    answered every count() and add() with "Failed to apply logs to the hnsw segment writer",
    for good. The rebuild works from SQLite, re-embedding the stored chunk texts.
    """
    kb, data = tmp_path / "kb", tmp_path / "data"
    for i in range(60):
        write_doc(kb, i, 0)
    chain = Chain(kb, data, tmp_path / "trace", random.Random(3))
    chain.ingest()

    # An InternalError during the run: the rebuild starts; killed halfway, it resumes.
    tear(persist_hnsw(data) / "index_metadata.pickle")
    chain.ingest(kill="rebuild:2")
    assert (data / "chroma.broken").is_dir()
    run = chain.ingest()
    assert "rebuilt from its SQLite tables" in run.stderr, run.stderr
    assert not (data / "chroma.broken").exists()
    assert len(list(data.glob("chroma.broken-*"))) == 1
    assert_converged(dump(data), clean_reference(kb, tmp_path / "ref"), kb)

    # A writer killed mid-run leaves its marker: the next run probes the store first.
    set_tree(kb, {1: 1, 2: None, 60: 0})
    hnsw = persist_hnsw(data)
    chain.ingest(kill="journal:1")
    tear(hnsw / "index_metadata.pickle")
    run = chain.ingest()
    assert "rebuilt from its SQLite tables" in run.stderr, run.stderr
    assert_converged(dump(data), clean_reference(kb, tmp_path / "ref2"), kb)


# A document delete in its own process, as the API's DELETE /v1/documents/{doc_id} runs it.
DELETE = r"""
import sys
from assistant.service import AssistantService
from assistant.settings import load_settings
AssistantService(load_settings()).delete_document(sys.argv[1])
"""


def delete(data: Path, doc_id: str, kill: str | None = None) -> int:
    """Delete `doc_id` from the collection in a child process; its exit status."""
    env = {**os.environ, "CX_DATA_DIR": str(data)}
    if kill:
        env["CX_FAULT_KILL"] = kill
    proc = subprocess.run([sys.executable, "-c", DELETE, doc_id], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return proc.returncode


def test_killed_delete_is_finished_by_the_next_writer(tmp_path: Path) -> None:
    """A delete is journalled like an ingest: killed midway, the next delete or ingest ends it.

    Either way the pending flag is cleared and the generation moves, so a server's cached
    retriever cannot keep showing the deleted document.
    """
    kb, data = tmp_path / "kb", tmp_path / "data"
    for i in range(12):
        write_doc(kb, i, 0)
    chain = Chain(kb, data, tmp_path / "trace", random.Random(5))
    chain.ingest()
    first, second = (doc_path(kb, i).relative_to(kb).as_posix() for i in (1, 2))

    def state() -> tuple[bool, int, set[str]]:
        got = dump(data)
        return (bool(got["meta"].get("cx_ingest_pending")),
                int(got["meta"].get("cx_generation", 0)), {m["doc_id"] for m in got["metadatas"]})

    _, start, docs = state()
    # killed before deleting anything: flagged, the document whole; a retried delete ends it
    assert delete(data, first, kill="remove:1") == -signal.SIGKILL
    assert state() == (True, start, docs)
    assert delete(data, first) == 0
    pending, gen, docs = state()
    assert not pending and gen > start and first not in docs

    # killed after deleting, before publishing: an ingest with nothing else to do publishes
    assert delete(data, second, kill="commit:1") == -signal.SIGKILL
    assert state() == (True, gen, docs - {second})
    for i in (1, 2):
        doc_path(kb, i).unlink()
    chain.ingest()
    pending, last, _ = state()
    assert not pending and last > gen
    assert_converged(dump(data), clean_reference(kb, tmp_path / "ref"), kb)
