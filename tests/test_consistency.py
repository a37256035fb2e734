"""Ingest while the API serves: every query succeeds and sees one whole version of a document.

A real `cx-assistant serve` answers /v1/search and /v1/answer from client threads while the
documents change underneath: through the server itself (upload, delete) over embedded
Chroma, and through CLI ingests in another process over a shared `chroma run` server. Each
response must be a 200 that shows exactly one revision of the changing document, no older
than the last change completed before the request began and no newer than the last change
begun before it ended; a deleted document never reappears once its deletion is done.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.files import write_md
from helpers.processes import CLI, serve

pytestmark = pytest.mark.slow  # each hammers a real serve for a minute or more

POLICY = "refund-policy.md"
MEMO = "retired-memo.md"
QUESTION = "What is the refund window and who approves refunds outside the window?"
_REVISION = re.compile(r"[Rr]efund policy revision (\d+)")


def policy_text(rev: int) -> str:
    """Two sections (two chunks); every sentence names its revision.

    Even and odd revisions are worded differently: two versions in one reading list would
    then both be cited (near-duplicate sentences are not), so a mixture cannot hide.
    """
    if rev % 2 == 0:
        window = (f"Under refund policy revision {rev}, the refund window is {10 + rev} days, "
                  "and refunds outside the window are approved by the service desk lead.")
        late = (f"Refund policy revision {rev} exceptions: refunds outside the window are "
                "approved by the service desk lead after checking the receipt.")
    else:
        window = (f"Refund policy revision {rev}: customers get their money back when they "
                  f"ask within {10 + rev} days; after that window a store manager must approve "
                  "the refund.")
        late = (f"Refund policy revision {rev} exceptions: a store manager approves late "
                "refunds once the customer shows proof of purchase.")
    return (f"---\ntitle: \"Refund policy\"\ndoc_type: playbook\n---\n\n# Refund window\n\n"
            f"{window}\n\n## Exceptions\n\n{late}\n")


MEMO_TEXT = ("---\ntitle: \"Retired refund memo\"\ndoc_type: article\n---\n\n# Refund memo\n\n"
             "This retired memo said the refund window and approvals outside the window were "
             "decided by each store manager.\n")


@dataclass
class Versions:
    """What the writer has begun and finished; readers compare each response against it."""

    begun: int = 0
    done: int = 0
    memo_deleted: bool = False


@dataclass
class Hammer:
    """Client threads that search and answer until stopped, checking every response."""

    base: str
    versions: Versions
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    requests: int = 0

    def run(self, kind: str) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as client:
            while not self.stop.is_set():
                low, memo_gone = self.versions.done, self.versions.memo_deleted
                try:
                    if kind == "search":
                        r = client.post("/v1/search", json={"query": QUESTION, "top_k": 5})
                    else:
                        r = client.post("/v1/answer", json={"question": QUESTION})
                    high = self.versions.begun
                    self.requests += 1
                    if r.status_code != 200:
                        self.failures.append(f"{kind}: HTTP {r.status_code} {r.text[:300]}")
                        continue
                    self.check(kind, r.json(), low, high, memo_gone)
                except Exception as exc:  # a dead thread would hide its failure
                    self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")

    def check(self, kind: str, body: dict[str, Any], low: int, high: int,
              memo_gone: bool) -> None:
        if kind == "search":
            parts = [(h["doc_id"], h["text"], "") for h in body["hits"]]
        else:
            parts = [(c["doc_id"], c["quote"], c["chunk_id"]) for c in body["citations"]]
        revs = {int(v) for doc, text, _ in parts if doc == POLICY
                for v in _REVISION.findall(text)}
        if kind == "answer" and not revs and not memo_gone and \
                any(doc == MEMO for doc, _, _ in parts):
            # While the memo exists its sentence can outscore every policy sentence (odd
            # revisions are worded unlike the question) and be the whole answer: no policy
            # version to compare. After its deletion every answer must quote the policy.
            return
        # chunk ids carry the version's hash: two hashes would be two versions mixed
        hashes = {cid.split("-")[1] for doc, _, cid in parts if doc == POLICY and cid}
        if len(revs) != 1 or len(hashes) > 1:
            self.failures.append(f"{kind}: revisions {sorted(revs)} of {POLICY} in {parts}")
        elif not low <= next(iter(revs)) <= high:
            self.failures.append(f"{kind}: revision {revs} outside [{low}, {high}]")
        if memo_gone and any(doc == MEMO for doc, _, _ in parts):
            self.failures.append(f"{kind}: deleted {MEMO} still returned")
        self.seen |= revs

    def __enter__(self) -> Hammer:
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in ("search", "answer")]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=180)


def errors_in(log: Path) -> str:
    """The server's tracebacks, to show with a failure."""
    text = log.read_text(errors="replace")
    return "\n".join(part[-1500:] for part in text.split("Traceback")[1:4])


def wait_until_answering(base: str) -> None:
    """The first query builds the retriever and loads everything: do it before timing."""
    r = httpx.post(f"{base}/v1/search", json={"query": QUESTION}, timeout=180)
    assert r.status_code == 200, r.text


def notes(kb: Path, count: int, rev: int) -> None:
    """Filler that sorts before the policy: after publishing, the ingest prunes these old
    versions first, so both policy versions stay stored (and published) for a while."""
    for i in range(count):
        write_md(kb / "notes" / f"note-{i:02d}.md", f"Note {i}",
                 f"# Note {i}\n\nNote {i} revision {rev} covers complaint coding for client "
                 f"{i % 7}.\n\n## Actions\n\nAction {i} revision {rev}: review in week {i}.")


def test_uploads_and_deletes_through_the_server_while_it_answers(tmp_path: Path) -> None:
    """Embedded Chroma is single-process, so changes go through the serving process."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    with serve(data, log=log) as served:
        base = served.url
        versions = Versions()
        up = httpx.post(f"{base}/v1/documents", timeout=180, files=[
            ("files", (POLICY, policy_text(0).encode())),
            ("files", (MEMO, MEMO_TEXT.encode())),
        ])
        assert up.status_code == 200, up.text
        wait_until_answering(base)
        with Hammer(base, versions) as hammer:
            for rev in range(1, 9):
                time.sleep(0.5)
                versions.begun = rev
                r = httpx.post(f"{base}/v1/documents", timeout=180,
                               files=[("files", (POLICY, policy_text(rev).encode()))])
                assert r.status_code == 200 and r.json()["updated"] == 1, r.text
                versions.done = rev
                if rev == 4:
                    d = httpx.delete(f"{base}/v1/documents/{MEMO}", timeout=180)
                    assert d.status_code == 200, d.text
                    versions.memo_deleted = True
            time.sleep(1.0)
        assert hammer.failures == [], (hammer.failures[:5], errors_in(log))
        assert hammer.requests >= 16, hammer.requests
        assert len(hammer.seen) >= 3 and 8 in hammer.seen, hammer.seen


def test_cli_ingest_into_a_chroma_server_while_serve_answers(
    chroma_url: str, tmp_path: Path,
) -> None:
    """Another process re-ingests a changed tree into the same `chroma run` server."""
    kb = tmp_path / "kb"
    notes(kb, 40, 0)
    (kb / POLICY).write_text(policy_text(0), "utf-8")
    (kb / MEMO).write_text(MEMO_TEXT, "utf-8")
    env = {**os.environ, "CX_CHROMA_URL": chroma_url, "CX_DATA_DIR": str(tmp_path / "ingest"),
           "CX_INGEST_BATCH": "4"}  # many small batches and deletes: long windows

    def ingest() -> None:
        done = subprocess.run([str(CLI), "ingest", str(kb)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    ingest()
    log = tmp_path / "serve.log"
    with serve(tmp_path / "serve", log=log, CX_CHROMA_URL=chroma_url) as served:
        base = served.url
        versions = Versions()
        wait_until_answering(base)
        with Hammer(base, versions) as hammer:
            for rev in (1, 2):
                notes(kb, 40, rev)  # every note changes too: the ingest has many batches
                (kb / POLICY).write_text(policy_text(rev), "utf-8")
                if rev == 1:
                    (kb / MEMO).unlink()
                versions.begun = rev
                ingest()
                versions.done = rev
                versions.memo_deleted = True
            time.sleep(1.0)
        assert hammer.failures == [], (hammer.failures[:5], errors_in(log))
        assert hammer.requests >= 10, hammer.requests
        assert len(hammer.seen) >= 2 and 2 in hammer.seen, hammer.seen


DECK, BOOK = "pilot-roadmap.pptx", "pilot-scores.xlsx"
PILOT_QUESTION = "When does the callback pilot start and what score is the pilot targeting?"
_PILOT_REVISION = {DECK: re.compile(r"[Rr]oadmap revision (\d+)"),
                   BOOK: re.compile(r"[Ss]corecard revision (\d+)")}


def pilot_files(tmp: Path, rev: int) -> list[tuple[str, tuple[str, bytes]]]:
    """A deck and a workbook in which every slide and every row names revision `rev`
    (worded differently for odd revisions, as in policy_text)."""
    from helpers.files import write_pptx, write_xlsx

    if rev % 2 == 0:
        starts = f"Roadmap revision {rev}: the callback pilot starts in week {rev + 2}."
        owner = f"Roadmap revision {rev}: the pilot is owned by the service desk lead."
    else:
        starts = f"In roadmap revision {rev} the pilot of callbacks begins after {rev + 2} weeks."
        owner = f"In roadmap revision {rev} a store manager owns the callback pilot."
    deck = write_pptx(tmp / f"r{rev}" / DECK, [
        {"title": "Callback pilot", "bullets": [starts]},
        {"title": "Pilot ownership", "bullets": [owner]},
    ], title="Pilot roadmap")
    book = write_xlsx(tmp / f"r{rev}" / BOOK, {"Targets": [
        ["Measure", "Target", "Note"],
        ["Pilot score", 60 + rev, f"scorecard revision {rev}"],
        ["Callback rate", 90 + rev, f"scorecard revision {rev}"],
    ]}, title="Pilot scores")
    return [("files", (p.name, p.read_bytes())) for p in (deck, book)]


@dataclass
class Steps:
    """The writer's changes in order: after step j, `states[j]` maps doc → revision (None:
    deleted). A response may show only states from the last step done when it was sent to
    the last step begun when it came back."""

    states: list[dict[str, int | None]]
    begun: int = 0
    done: int = 0

    def allowed(self, doc_id: str, low: int, high: int) -> set[int | None]:
        return {self.states[j][doc_id] for j in range(low, high + 1)}


def check_formats(kind: str, body: dict[str, Any], steps: Steps, low: int, high: int,
                  seen: set[int]) -> list[str]:
    """Every deck or workbook in a response is one whole revision the window allows."""
    if kind == "search":
        parts = [(h["doc_id"], h["text"], "") for h in body["hits"]]
    else:
        parts = [(c["doc_id"], c["quote"], c["chunk_id"]) for c in body["citations"]]
    failures = []
    for doc_id, pattern in _PILOT_REVISION.items():
        mine = [(text, cid) for doc, text, cid in parts if doc == doc_id]
        if not mine:
            continue
        revs = {int(v) for text, _ in mine for v in pattern.findall(text)}
        hashes = {cid.split("-")[1] for _, cid in mine if cid}
        allowed = steps.allowed(doc_id, low, high)
        seen |= revs
        if len(revs) > 1 or len(hashes) > 1 or not revs <= allowed:
            failures.append(f"{kind}: {doc_id} revisions {sorted(revs)} (allowed "
                            f"{allowed}) in {mine}")
    return failures


def test_deck_and_workbook_uploads_and_deletes_while_it_answers(tmp_path: Path) -> None:
    """A deck and a workbook uploaded, replaced, deleted and uploaded again through the
    server while it answers: never half a document, never a deleted one."""
    both = (DECK, BOOK)
    plan: list[tuple[str, int | None]] = [("upload", 1), ("upload", 2), ("delete", None),
                                          ("upload", 3), ("upload", 4)]
    states: list[dict[str, int | None]] = [dict.fromkeys(both, 0)]
    for _, rev in plan:
        states.append(dict.fromkeys(both, rev))
    steps = Steps(states)
    failures: list[str] = []
    counts = {"requests": 0}
    seen: set[int] = set()
    stop = threading.Event()
    with serve(tmp_path / "data", log=tmp_path / "serve.log") as served:
        base = served.url
        up = httpx.post(f"{base}/v1/documents", files=pilot_files(tmp_path, 0), timeout=180)
        assert up.status_code == 200 and up.json()["added"] == 2, up.text
        r = httpx.post(f"{base}/v1/search", json={"query": PILOT_QUESTION}, timeout=180)
        assert r.status_code == 200 and {h["doc_id"] for h in r.json()["hits"]} == set(both)

        def hammer(kind: str) -> None:
            path, key = ("/v1/search", "query") if kind == "search" else ("/v1/answer",
                                                                            "question")
            with httpx.Client(base_url=base, timeout=120) as client:
                while not stop.is_set():
                    low = steps.done
                    try:
                        resp = client.post(path, json={key: PILOT_QUESTION})
                        high = steps.begun
                        counts["requests"] += 1
                        if resp.status_code != 200:
                            failures.append(f"{kind}: HTTP {resp.status_code} {resp.text[:300]}")
                            continue
                        failures.extend(check_formats(kind, resp.json(), steps, low, high,
                                                      seen))
                    except Exception as exc:  # a dead thread would hide its failure
                        failures.append(f"{kind}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=hammer, args=(k,), daemon=True)
                   for k in ("search", "answer")]
        for t in threads:
            t.start()
        try:
            for step, (action, rev) in enumerate(plan, start=1):
                time.sleep(0.5)
                steps.begun = step
                if action == "delete":
                    for doc_id in both:
                        d = httpx.delete(f"{base}/v1/documents/{doc_id}", timeout=180)
                        assert d.status_code == 200, d.text
                else:
                    assert rev is not None
                    r = httpx.post(f"{base}/v1/documents", files=pilot_files(tmp_path, rev),
                                   timeout=180)
                    after_delete = step > 1 and plan[step - 2][0] == "delete"
                    want = "added" if after_delete else "updated"
                    assert r.status_code == 200 and r.json()[want] == 2, r.text
                steps.done = step
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=180)
        assert failures == [], (failures[:5], errors_in(served.log))
        assert counts["requests"] >= 10, counts
        assert len(seen) >= 3 and 4 in seen, seen
        final = httpx.post(f"{base}/v1/answer", json={"question": PILOT_QUESTION}, timeout=120)
        quotes = " ".join(c["quote"] for c in final.json()["citations"])
        assert "revision 4" in quotes, final.json()
