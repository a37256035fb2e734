"""The ingest lock and the collection journal: the only code that reads or writes the generation.

A collection's metadata holds two journal keys. `cx_generation` is a counter readers key their
caches on (the service's retriever cache): every change that readers must see bumps it.
`cx_ingest_pending` is set before a change's first write and cleared by the final bump, in the
same metadata write, so a change killed half-way leaves the flag behind and the next writer
publishes for it (rule 4 of the crash contract, pipeline.py). Ingests and deletions both go
through `Journal`; the store rebuild (repair.py) bumps with `bumped`.

`ingest_lock` serialises the writers of one data dir (flock: the kernel releases it even on
SIGKILL); its `ingest.dirty` marker tells the next holder that the last one died.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.errors import IngestError
from assistant.ingest.faults import Faults

GENERATION_KEY = "cx_generation"
PENDING_KEY = "cx_ingest_pending"


def generation(collection: Any) -> int:
    """The collection's generation: a cache keyed on it is stale once it moves."""
    return int((collection.metadata or {}).get(GENERATION_KEY, 0))


def bumped(meta: Mapping[str, Any]) -> dict[str, Any]:
    """`meta` with the generation one higher: readers rebuild what they cached on it."""
    return {**meta, GENERATION_KEY: int(meta.get(GENERATION_KEY, 0)) + 1}


class Journal:
    """The collection-level journal of one writer: the pending flag and generation bumps.

    `fetch` returns the collection afresh so a bump never works from metadata cached before
    another process (the API's upload, say) bumped it. The journal reaches the fault phases
    `journal`, `publish`, `commit` and `done` itself, so every journalled change (an ingest, a
    deletion) is killable at the same points.
    """

    def __init__(self, fetch: Callable[[], Any], faults: Faults | None = None) -> None:
        self.fetch = fetch
        self.faults = faults or Faults()

    def _metadata(self) -> tuple[Any, dict[str, Any]]:
        collection = self.fetch()
        meta = dict(collection.metadata or {})
        for key in [k for k in meta if k.startswith("hnsw:")]:
            meta.pop(key)  # the distance metric cannot be changed after creation
        return collection, meta

    def pending(self) -> bool:
        """Whether a predecessor died between its first change and its final bump."""
        return bool(self._metadata()[1].get(PENDING_KEY))

    def begin(self) -> None:
        """Set the pending flag: from here until `publish(done=True)` a kill is repaired."""
        collection, meta = self._metadata()
        meta[PENDING_KEY] = 1
        collection.modify(metadata=meta)
        self.faults.reached("journal")

    def publish(self, done: bool) -> None:
        """Bump the generation; with `done`, clear the pending flag in the same write."""
        self.faults.reached("commit" if done else "publish")
        collection, meta = self._metadata()
        meta = bumped(meta)
        meta["cx_updated_at"] = time.time()
        meta[PENDING_KEY] = 0 if done else 1
        collection.modify(metadata=meta)
        if done:
            self.faults.reached("done")

    def delete(self, ids: list[str]) -> None:
        """Delete chunks as a journalled change: flag, delete, final bump.

        A kill in between leaves the flag, so the next ingest publishes (and a retried delete
        removes what is left). With no `ids` it only finishes a predecessor's change.
        """
        if ids:
            self.begin()
            self.faults.reached("remove")
            self.fetch().delete(ids=ids)
        if ids or self.pending():
            self.publish(done=True)


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
