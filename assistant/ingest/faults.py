"""The crash-test hook: kill this process at a named point of an ingest (never set in production).

`CX_FAULT_KILL=phase:n` makes the process SIGKILL itself the n-th time it reaches `phase`
(one of `PHASES`), and `CX_FAULT_TRACE=file` appends `phase:n unix-time` for every phase
reached, so tests/test_crash.py can kill at exact points and see where a kill at a random
time landed. Each phase names a point where the crash contract (pipeline.py) must hold.
"""

from __future__ import annotations

import os
import signal
import time

from assistant.errors import IngestError

PHASES = (
    "scanned",   # store state read, nothing changed yet
    "journal",   # pending flag set, before the first write
    "embed",     # before embedding a batch
    "write",     # batch embedded, before writing it to Chroma
    "written",   # batch written, before the next one
    "publish",   # every new version written, before the generation bump
    "prune",     # before deleting one document's superseded chunks
    "remove",    # before deleting one document that is gone from disk (or deleted by a user)
    "commit",    # everything deleted, before the final bump that clears the flag
    "done",      # after the final bump
    "rebuild",   # repairing a broken embedded store: before adding a batch to the new one
)


class Faults:
    """Counts the phases one run reaches; kills or traces as the environment asks."""

    def __init__(self) -> None:
        spec = os.environ.get("CX_FAULT_KILL", "")
        phase, _, n = spec.partition(":")
        if spec and (phase not in PHASES or not n.isdigit()):
            raise IngestError(f"CX_FAULT_KILL must be PHASE:N with PHASE in {PHASES}")
        self.kill_at = (phase, int(n)) if spec else None
        self.trace = os.environ.get("CX_FAULT_TRACE") or None
        self.counts: dict[str, int] = {}

    def reached(self, phase: str) -> None:
        """Record `phase`; SIGKILL ourselves if this is the requested time."""
        if self.kill_at is None and self.trace is None:
            return
        n = self.counts[phase] = self.counts.get(phase, 0) + 1
        if self.trace:
            # O_APPEND, one write: a line is whole even if we die right after it
            fd = os.open(self.trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{phase}:{n} {time.time():.6f}\n".encode())
            finally:
                os.close(fd)
        if self.kill_at == (phase, n):
            os.kill(os.getpid(), signal.SIGKILL)
