"""Ingest throughput: our CLI against the peer recipe and the embedding model's own limit.

For each data set (the sample corpus/ and BEIR SciFact written out as one Markdown file per
abstract), in one run on one machine:
  - ours: `cx-assistant ingest TREE` into an empty data dir (in-process seconds from the
    summary, plus the process's wall time and peak RSS);
  - ours, again on the unchanged tree (must embed nothing), and after changing 1% of files;
  - raw embedder: the same chunk texts our pipeline embeds, through the model alone
    (sentence-transformers encode at our batch size): the practical limit on this machine;
  - peer: eval/bench/peer.py (llama-index defaults) on the same files.

    python eval/bench/ingest.py [--docs N] [--skip-peer] [--datasets corpus,scifact]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    CLI,
    CORPUS,
    RESULTS,
    fresh_dir,
    run_measured,
    scifact_docs,
    show,
    write_json,
    write_tree,
)

PEER = str(Path(__file__).with_name("peer.py"))


def ours(tree: Path, data_dir: Path) -> dict[str, Any]:
    run = run_measured([CLI, "ingest", str(tree), "--json"], {"CX_DATA_DIR": str(data_dir)})
    summary = json.loads(run["stdout"].strip().splitlines()[-1])
    return {"seconds": summary["seconds"], "wall_s": run["wall_s"],
            "peak_rss_mb": run["peak_rss_mb"], "documents": summary["documents"],
            "chunks": summary["chunks"], "embedded_chunks": summary["embedded_chunks"],
            "skipped": len(summary["skipped"])}


def peer(tree: Path, data_dir: Path) -> dict[str, Any]:
    import sys

    run = run_measured([sys.executable, PEER, "ingest", str(tree), str(data_dir)])
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    return {**result, "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"]}


def raw_embedder(tree: Path) -> dict[str, Any]:
    """Read + chunk exactly as ingest does, then time the model alone on those texts."""
    from llama_index.core.schema import MetadataMode

    from assistant.ingest import discover, make_node
    from assistant.service import AssistantService
    from assistant.settings import load_settings

    service = AssistantService(load_settings(data_dir=BENCH_DIR / "raw-unused"))
    embedder, chunker = service.embedder, service.chunker
    started = time.perf_counter()
    _, files = discover(tree)
    texts: list[str] = []
    for source in files:
        loaded = source.load()
        chunks = chunker.split(loaded.text)
        texts += [make_node(source.doc_id, loaded.metadata, c, len(chunks), "0" * 64, "", "")
                  .get_content(MetadataMode.EMBED) for c in chunks]
    read_chunk_s = time.perf_counter() - started
    started = time.perf_counter()
    embedder.encode(texts)
    embed_s = time.perf_counter() - started
    limit = embedder.llama._model.max_seq_length  # what the model sees of each text
    tokens = sum(min(len(ids), limit) for ids in embedder.tokenizer(texts)["input_ids"])
    return {"seconds": round(embed_s, 2), "read_chunk_s": round(read_chunk_s, 2),
            "documents": len(files), "chunks": len(texts), "tokens": tokens,
            "batch_size": embedder.batch_size}


def change_one_percent(tree: Path) -> list[Path]:
    files = sorted(tree.rglob("*.md"))
    step = max(1, len(files) // max(1, len(files) // 100))
    changed = files[::step][: max(1, len(files) // 100)]
    for path in changed:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\nA revised closing note was added for the benchmark.\n")
    return changed


def bench_dataset(name: str, tree: Path, skip_peer: bool) -> dict[str, Any]:
    data = BENCH_DIR / f"ingest-{name}"
    fresh_dir(data)
    result: dict[str, Any] = {"ours": ours(tree, data)}
    result["ours_unchanged"] = ours(tree, data)
    if name == "scifact":  # corpus/ is the repository's own: never modify it
        changed = change_one_percent(tree)
        result["ours_1pct_changed"] = {**ours(tree, data), "files_changed": len(changed)}
    result["raw_embedder"] = raw_embedder(tree)
    if not skip_peer:
        result["peer"] = peer(tree, fresh_dir(BENCH_DIR / f"peer-{name}"))
    return result


def rows_for(name: str, r: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for key, label in (("ours", "ours: full ingest"), ("ours_unchanged", "ours: unchanged"),
                       ("ours_1pct_changed", "ours: 1% changed"),
                       ("raw_embedder", "embedding model alone"), ("peer", "peer recipe")):
        if key not in r:
            continue
        x = r[key]
        secs = x["seconds"]
        rows.append([f"{name} · {label}", x["documents"], x["chunks"], secs,
                     x["documents"] / secs if secs else 0.0,
                     x["chunks"] / secs if secs and key != "ours_unchanged" else "",
                     x.get("embedded_chunks", x["chunks"] if key != "ours" else ""),
                     x.get("wall_s", ""), x.get("peak_rss_mb", "")])
    return rows


def ratios(r: dict[str, Any]) -> dict[str, float]:
    out = {}
    ours_s = r["ours"]["seconds"]
    if "peer" in r:
        out["docs_per_s_vs_peer"] = round(
            (r["ours"]["documents"] / ours_s) / (r["peer"]["documents"] / r["peer"]["seconds"]), 2)
    out["ours_over_raw_embedder"] = round(ours_s / r["raw_embedder"]["seconds"], 2)
    if "peer" in r and r["peer"].get("tokens"):
        # the same model on the same files: tokens per document and tokens per second say
        # whether a docs/s gap is work done or work wasted
        ours_tok = r["raw_embedder"]["tokens"]
        out["tokens_per_doc_vs_peer"] = round(
            (ours_tok / r["ours"]["documents"]) / (r["peer"]["tokens"] / r["peer"]["documents"]),
            2)
        out["tokens_per_s_vs_peer"] = round(
            (ours_tok / ours_s) / (r["peer"]["tokens"] / r["peer"]["seconds"]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="SciFact: first N abstracts.")
    parser.add_argument("--datasets", default="corpus,scifact")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench-ingest.json")
    args = parser.parse_args()
    trees = {"corpus": CORPUS}
    if "scifact" in args.datasets:
        trees["scifact"] = write_tree(scifact_docs(args.docs), BENCH_DIR / "trees" / "scifact")
    results, rows, summary = {}, [], {}
    for name in args.datasets.split(","):
        results[name] = bench_dataset(name, trees[name], args.skip_peer)
        rows += rows_for(name, results[name])
        summary[name] = ratios(results[name])
        if name == "scifact":  # leave the tree as written, for the latency benchmark
            write_tree(scifact_docs(args.docs), trees["scifact"])
    show("Ingest throughput (seconds exclude process start and model load)",
         ["run", "docs", "chunks", "seconds", "docs/s", "chunks/s", "embedded", "wall s",
          "peak RSS MB"], rows)
    show("Ratios", ["data set", "our docs/s ÷ peer's (target ≥ 3)",
                    "our time ÷ model alone (target ≤ 1.3)", "tokens embedded per doc ÷ peer's",
                    "tokens/s ÷ peer's"],
         [[n, s.get("docs_per_s_vs_peer", ""), s["ours_over_raw_embedder"],
           s.get("tokens_per_doc_vs_peer", ""), s.get("tokens_per_s_vs_peer", "")]
          for n, s in summary.items()])
    write_json(args.out, {"docs_limit": args.docs, "results": results, "ratios": summary})


if __name__ == "__main__":
    main()
