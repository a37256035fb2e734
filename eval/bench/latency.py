"""Query latency, throughput, start-up and memory: ours (service and HTTP) against the peer.

Needs the collections `eval/bench/ingest.py` builds (`.cx-bench/ingest-scifact`, and
`.cx-bench/peer-scifact` for the peer). On SciFact's test queries, in one run:
  - service, in-process: `search` (top-10) and extractive `answer`, single client and 8
    concurrent; caches emptied before each pass (every pass asks the same questions), plus
    one answer pass with the question vectors cached (a repeated question);
  - HTTP: `cx-assistant serve` (question cache off) on a copy of the data dir: time to a
    healthy /healthz and a ready /readyz, /v1/search and /v1/answer single client and 8
    concurrent, then the server's peak RSS after that load;
  - peer: `index.as_retriever(similarity_top_k=10).retrieve(q)` on the same queries;
  - 10× scale: SciFact's chunks copied under distinct ids (and doc ids) until ≥ 50k chunks,
    searched by ours and by the peer's retriever.
Also nDCG@10 of each system's ranking, so speed is never bought with quality unseen.

    python eval/bench/latency.py [--queries N] [--skip-peer] [--skip-scale]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH_DIR,
    OFFLINE_ENV,
    RESULTS,
    peak_rss_mb,
    percentiles,
    scifact_queries,
    self_peak_rss_mb,
    serve,
    show,
    write_json,
)

from assistant.beir import ndcg_at

SCALE_CHUNKS = 50_000
CONCURRENCY = 8


def timed(fn: Callable[[str], Any], questions: list[str]) -> tuple[list[float], list[Any]]:
    lat, out = [], []
    for q in questions:
        started = time.perf_counter()
        out.append(fn(q))
        lat.append((time.perf_counter() - started) * 1000)
    return lat, out


def concurrent(fn: Callable[[str], Any], questions: list[str]) -> dict[str, Any]:
    """`CONCURRENCY` clients sending the questions back to back: latency and requests/s."""
    lat: list[float] = []

    def one(q: str) -> None:
        started = time.perf_counter()
        fn(q)
        lat.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, questions))
    wall = time.perf_counter() - started
    return {**percentiles(lat), "rps": round(len(questions) / wall, 1)}


def ndcg(rankings: list[list[str]], qids: list[str], qrels: dict) -> float:
    scores = [ndcg_at(r, qrels[q], 10) for r, q in zip(rankings, qids, strict=True)]
    return round(sum(scores) / len(scores), 4)


def doc_of(doc_id: str) -> str:
    return doc_id.rsplit("/", 1)[-1].removesuffix(".md")


def service_for(data_dir: Path) -> Any:
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    return AssistantService(load_settings(data_dir=data_dir))


def uncached(svc: Any) -> Any:
    """The service with its question-vector and sentence caches emptied.

    Every pass asks the same 300 questions: without this, the second pass onwards would
    time cache hits, not the query encode a new question pays.
    """
    svc.embedder._queries.clear()
    svc.answerer.cache._items.clear()
    return svc


def bench_service(data_dir: Path, questions: list[str], qids: list[str],
                  qrels: dict) -> dict[str, Any]:
    from assistant.schemas import AnswerRequest

    def answer(q: str) -> Any:
        return svc.answer(AnswerRequest(question=q))

    svc = service_for(data_dir)
    started = time.perf_counter()
    svc.search("warm-up", top_k=10)  # loads the model and builds the retriever
    warm_s = time.perf_counter() - started
    lat, results = timed(lambda q: svc.search(q, top_k=10), questions)
    out: dict[str, Any] = {
        "first_query_s": round(warm_s, 2),
        "search": percentiles(lat),
        "ndcg@10": ndcg([[doc_of(h.doc_id) for h in r.hits] for r in results], qids, qrels),
    }
    uncached(svc)
    out["answer"] = percentiles(timed(answer, questions)[0])
    # the same questions again: their vectors now come from the question cache
    out["answer_repeat"] = percentiles(timed(answer, questions)[0])
    uncached(svc)
    out["search_8_clients"] = concurrent(lambda q: svc.search(q, top_k=10), questions)
    uncached(svc)
    out["answer_8_clients"] = concurrent(answer, questions)
    out["process_peak_rss_mb"] = self_peak_rss_mb()
    return out


def bench_http(data_dir: Path, questions: list[str]) -> dict[str, Any]:
    copy = BENCH_DIR / "serve-copy"  # embedded Chroma is one process's: serve gets a copy
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data_dir, copy)
    # no question cache in this server: every request pays for its query encode
    with serve(copy, ready=True, CX_QUERY_CACHE_SIZE="0", **OFFLINE_ENV) as served, \
            httpx.Client(base_url=served.url, timeout=120) as client:
        def search(q: str) -> None:
            client.post("/v1/search", json={"query": q, "top_k": 10}).raise_for_status()

        def answer(q: str) -> None:
            client.post("/v1/answer", json={"question": q}).raise_for_status()

        search("warm-up")
        out: dict[str, Any] = {"healthy_s": served.healthy_s, "ready_s": served.ready_s}
        out["search"] = percentiles(timed(search, questions)[0])
        out["answer"] = percentiles(timed(answer, questions)[0])
        out["search_8_clients"] = concurrent(search, questions)
        out["answer_8_clients"] = concurrent(answer, questions)
        out["serve_peak_rss_mb"] = peak_rss_mb(served.proc.pid)
    return out


def bench_peer(data_dir: Path, questions: list[str], qids: list[str], qrels: dict,
               collection: str = "peer") -> dict[str, Any]:
    from peer import PeerRetriever

    peer = PeerRetriever(data_dir, k=10, collection=collection)
    peer.doc_ids("warm-up")
    lat, results = timed(peer.doc_ids, questions)
    return {"retrieve": percentiles(lat), "ndcg@10": ndcg(results, qids, qrels)}


def build_scale(source: Path, target: Path, min_chunks: int = SCALE_CHUNKS) -> int:
    """SciFact's chunks (vectors, text, metadata) copied under distinct ids until ≥ 50k.

    Copy n's chunk ids get a `c<n>-` prefix and its doc ids a `c<n>/` prefix, so documents
    stay distinct for document-level results; vectors are copied as they are (re-embedding
    50k chunks would take the better part of an hour here and measure nothing new).
    """
    import chromadb

    from assistant.settings import load_settings
    from assistant.store import Store

    name = load_settings().collection
    have = chromadb.PersistentClient(path=str(target / "chroma")) if target.exists() else None
    if have is not None:
        try:
            count = have.get_collection(name).count()
            if count >= min_chunks:
                return count
        except Exception:  # noqa: BLE001 - absent or broken: rebuild it
            pass
    shutil.rmtree(target, ignore_errors=True)
    src = chromadb.PersistentClient(path=str(source / "chroma")).get_collection(name)
    got = src.get(include=["embeddings", "documents", "metadatas"])
    dst = Store(load_settings(data_dir=target)).get_or_create_collection(name)
    copies = -(-min_chunks // len(got["ids"]))
    for n in range(copies):
        metas = []
        for meta in got["metadatas"]:
            meta = dict(meta)
            meta["doc_id"] = f"c{n}/{meta['doc_id']}"
            for key in ("document_id", "ref_doc_id"):
                if key in meta:
                    meta[key] = meta["doc_id"]
            metas.append(meta)
        ids = [f"c{n}-{i}" for i in got["ids"]]
        for i in range(0, len(ids), 5000):
            dst.add(ids=ids[i:i + 5000], embeddings=got["embeddings"][i:i + 5000],
                    documents=got["documents"][i:i + 5000], metadatas=metas[i:i + 5000])
    return dst.count()


def bench_scale(questions: list[str], qids: list[str], qrels: dict,
                skip_peer: bool) -> dict[str, Any]:
    from assistant.settings import load_settings

    target = BENCH_DIR / "scale"
    started = time.perf_counter()
    chunks = build_scale(BENCH_DIR / "ingest-scifact", target)
    out: dict[str, Any] = {"chunks": chunks, "build_s": round(time.perf_counter() - started, 1)}
    svc = service_for(target)
    started = time.perf_counter()
    svc.search("warm-up", top_k=10)
    out["first_query_s"] = round(time.perf_counter() - started, 2)
    uncached(svc)
    out["search"] = percentiles(timed(lambda q: svc.search(q, top_k=10), questions)[0])
    uncached(svc)
    out["search_8_clients"] = concurrent(lambda q: svc.search(q, top_k=10), questions)
    if not skip_peer:
        out["peer"] = bench_peer(target / "chroma", questions, qids, qrels,
                                 collection=load_settings().collection)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=None, help="First N test queries.")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench-latency.json")
    args = parser.parse_args()
    data = BENCH_DIR / "ingest-scifact"
    if not data.exists():
        raise SystemExit("run eval/bench/ingest.py first: it builds .cx-bench/ingest-scifact")
    tree_ids = {p.stem for p in (BENCH_DIR / "trees" / "scifact").glob("*.md")}
    queries, qrels = scifact_queries(tree_ids)
    qids = sorted(queries)[: args.queries]
    questions = [queries[q] for q in qids]

    result: dict[str, Any] = {"queries": len(questions), "chunks_docs": len(tree_ids)}
    result["service"] = bench_service(data, questions, qids, qrels)
    if not args.skip_peer:
        result["peer"] = bench_peer(BENCH_DIR / "peer-scifact", questions, qids, qrels)
    if not args.skip_http:
        result["http"] = bench_http(data, questions)
    if not args.skip_scale:
        result["scale"] = bench_scale(questions, qids, qrels, args.skip_peer)
    report(result)
    write_json(args.out, result)


def report(r: dict[str, Any]) -> None:
    rows = []

    def add(label: str, x: dict[str, Any] | None) -> None:
        if x:
            rows.append([label, x["p50"], x["p95"], x["p99"], x.get("rps", "")])

    s = r["service"]
    add("service · search top-10", s["search"])
    add("service · answer (extractive)", s["answer"])
    add("service · answer, question asked before", s["answer_repeat"])
    add("service · search, 8 clients", s["search_8_clients"])
    add("service · answer, 8 clients", s["answer_8_clients"])
    if "peer" in r:
        add("peer · retriever top-10", r["peer"]["retrieve"])
    if "http" in r:
        h = r["http"]
        add("HTTP · /v1/search top-10", h["search"])
        add("HTTP · /v1/answer", h["answer"])
        add("HTTP · /v1/search, 8 clients", h["search_8_clients"])
        add("HTTP · /v1/answer, 8 clients", h["answer_8_clients"])
    if "scale" in r:
        sc = r["scale"]
        add(f"{sc['chunks']:,} chunks · service search top-10", sc["search"])
        add(f"{sc['chunks']:,} chunks · search, 8 clients", sc["search_8_clients"])
        if "peer" in sc:
            add(f"{sc['chunks']:,} chunks · peer retriever top-10", sc["peer"]["retrieve"])
    show(f"Latency in ms over {r['queries']} SciFact test queries",
         ["run", "p50", "p95", "p99", "req/s"], rows)
    facts = [["nDCG@10 ours (hybrid)", s["ndcg@10"]]]
    if "peer" in r:
        facts += [["nDCG@10 peer (dense)", r["peer"]["ndcg@10"]],
                  ["search p50 speed-up vs peer (target ≥ 4)",
                   round(r["peer"]["retrieve"]["p50"] / max(s["search"]["p50"], 0.1), 2)]]
    if "http" in r:
        facts += [["serve: healthy /healthz (s)", r["http"]["healthy_s"]],
                  ["serve: ready /readyz (s)", r["http"]["ready_s"]],
                  ["serve: peak RSS after load (MB)", r["http"]["serve_peak_rss_mb"]]]
    show("Quality, start-up and memory", ["measure", "value"], facts)


if __name__ == "__main__":
    main()
