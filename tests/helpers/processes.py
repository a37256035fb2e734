"""The real processes tests and benchmarks talk to: `cx-assistant serve`, `chroma run`, and a
CLI ingest to fill a data dir before serving it.

Each server gets a free loopback port and is waited for by polling its health route, so a
test starts talking only once the server can answer, and is stopped (SIGTERM, then SIGKILL
if it hangs) however the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
CLI = BIN / "cx-assistant"
CHROMA = BIN / "chroma"
POLL_S = 0.05  # short: the benchmarks time start-up with the same loop
STOP_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_ingest(kb: Path, data_dir: Path) -> None:
    """Ingest `kb` into `data_dir` with the installed CLI, as a user would before `serve`."""
    subprocess.run([str(CLI), "ingest", str(kb)], check=True, capture_output=True,
                   env={**os.environ, "CX_DATA_DIR": str(data_dir)})


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_S)


def _wait_for(url: str, proc: subprocess.Popen[bytes], started: float, wait_s: float,
              what: str, log: Path | None = None) -> float:
    """Poll `url` until it answers 200; seconds since `started`. Fails fast if `proc` dies."""
    while time.perf_counter() - started < wait_s:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what} exited ({proc.returncode}) during start-up:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return round(time.perf_counter() - started, 2)
        except httpx.HTTPError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"{what}: {url} did not answer 200 within {wait_s:.0f} s")


@dataclass
class Served:
    """A running `cx-assistant serve`: its URL, process, log and start-up times."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    healthy_s: float = 0.0
    ready_s: float | None = None
    _final_log: str | None = field(default=None, repr=False)

    def log_text(self) -> str:
        """Everything serve wrote to stdout and stderr so far (all of it once stopped)."""
        if self._final_log is not None:
            return self._final_log
        return self.log.read_text(errors="replace")


@contextmanager
def serve(data_dir: Path, *, log: Path | None = None, launcher: Sequence[str] | None = None,
          ready: bool = False, wait_s: float = 300, args: Sequence[str] = (),
          **env: str) -> Iterator[Served]:
    """`cx-assistant serve` on a free loopback port over `data_dir`, with `env` added to the
    environment; yields once /healthz answers (and /readyz too when `ready`).

    Output goes to `log` (a temporary file when none is given, kept in memory after the stop):
    a pipe nobody reads would fill and block the server under load. `launcher` replaces the
    `cx-assistant` command (e.g. `python -c SCRIPT`); `serve --host --port` follow it, then
    `args` (e.g. `--workers 2`).
    """
    port = free_port()
    temporary = log is None
    if log is None:
        handle, name = tempfile.mkstemp(prefix="cx-serve-", suffix=".log")
        os.close(handle)
        log = Path(name)
    command = [*(launcher or [str(CLI)]), "serve", "--host", "127.0.0.1", "--port", str(port),
               *args]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "CX_DATA_DIR": str(data_dir), **env})
    started = time.perf_counter()
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    try:
        served.healthy_s = _wait_for(f"{served.url}/healthz", proc, started, wait_s,
                                     "cx-assistant serve", log)
        if ready:
            served.ready_s = _wait_for(f"{served.url}/readyz", proc, started, wait_s,
                                       "cx-assistant serve", log)
        yield served
    finally:
        _stop(proc)
        if temporary:
            served._final_log = log.read_text(errors="replace")
            log.unlink(missing_ok=True)


class ChromaServer:
    """A `chroma run` process on a fixed port and data path that can be stopped, signalled
    and restarted on the same port (outage tests); a context manager starts and stops it."""

    def __init__(self, path: Path, port: int | None = None, wait_s: float = 60) -> None:
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_s = wait_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for the heartbeat; returns the seconds that took."""
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started = time.perf_counter()
        try:
            return _wait_for(f"{self.url}/api/v2/heartbeat", self.proc, started, self.wait_s,
                             "chroma run")
        except RuntimeError:
            self.proc.kill()
            self.proc.wait(timeout=STOP_S)
            self.proc = None
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None, "chroma run is not running"
        self.proc.send_signal(sig)
        self.proc.wait(timeout=STOP_S)
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None, "chroma run is not running"
        self.proc.send_signal(sig)

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def close(self) -> None:
        """Stop it if it is running (frozen or not); `contextlib.closing` for a server a test
        starts later itself."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            _stop(self.proc)
            self.proc = None

    def __exit__(self, *exc: object) -> None:
        self.close()
