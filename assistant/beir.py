"""BEIR-format data sets: load corpus/queries/qrels and score runs exactly as BEIR does.

BEIR scores with pytrec_eval (trec_eval semantics); we reproduce its three measures here
rather than add that C extension: nDCG@k with linear gains (the qrels grade) and the ideal
ranking built from the judged documents, Recall@k over documents judged relevant (> 0), and
MRR@k as the reciprocal rank of the first relevant document within k. Like BEIR, a document
retrieved for a query with the same id as the query is ignored.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from assistant.ingest import SourceRecord


class BeirError(ValueError):
    """The directory is not a usable BEIR data set; the message says what is missing."""


@dataclass
class BeirDataset:
    name: str
    corpus: list[SourceRecord]
    queries: dict[str, str]  # query id → text, only the queries judged in the split
    qrels: dict[str, dict[str, int]]  # query id → {doc id: grade}


def load_beir(directory: Path, split: str = "test") -> BeirDataset:
    directory = Path(directory)
    paths = {
        "corpus": directory / "corpus.jsonl",
        "queries": directory / "queries.jsonl",
        "qrels": directory / "qrels" / f"{split}.tsv",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise BeirError(f"not a BEIR data set, missing: {', '.join(missing)}")
    qrels: dict[str, dict[str, int]] = {}
    with open(paths["qrels"], encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise BeirError(f"{paths['qrels']} is empty")
        for row in reader:
            if len(row) >= 3 and row[0].strip():
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2])
    queries: dict[str, str] = {}
    for line in paths["queries"].read_text("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if str(item["_id"]) in qrels:
                queries[str(item["_id"])] = item["text"]
    corpus = []
    for line in paths["corpus"].read_text("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            corpus.append(SourceRecord(
                doc_id=str(item["_id"]), text=item.get("text") or item.get("title") or "",
                metadata={"title": item.get("title") or "", "doc_type": "other"},
            ))
    return BeirDataset(directory.resolve().name, corpus, queries, qrels)


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {d for d, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (missing run → 0)."""
    per: dict[str, list[float]] = {"ndcg@10": [], "recall@100": [], "mrr@10": []}
    for qid, judged in qrels.items():
        ranked = [d for d in run.get(qid, []) if d != qid]
        per["ndcg@10"].append(ndcg_at(ranked, judged, 10))
        per["recall@100"].append(recall_at(ranked, judged, 100))
        per["mrr@10"].append(mrr_at(ranked, judged, 10))
    return {k: round(sum(v) / len(v), 4) if v else 0.0 for k, v in per.items()}
