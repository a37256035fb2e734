"""BEIR-format data sets: load corpus/queries/qrels and score runs exactly as BEIR does.

BEIR scores with pytrec_eval (trec_eval semantics), and so do we, through ir-measures
(assistant/ranking.py): nDCG@k with linear gains (the qrels grade) and the ideal ranking built
from the judged documents, Recall@k over documents judged relevant (> 0), and MRR@k as the
reciprocal rank of the first relevant document within k. Like BEIR, a document retrieved for
a query with the same id as the query is ignored, and a query with no run scores zero.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from assistant.ingest import SourceRecord
from assistant.ranking import score_one, score_rankings

BEIR_MEASURES = ("ndcg@10", "recall@100", "mrr@10")


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
    return score_one(ranked, judged, [f"ndcg@{k}"])[f"ndcg@{k}"]


def recall_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    return score_one(ranked, judged, [f"recall@{k}"])[f"recall@{k}"]


def mrr_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    return score_one(ranked, judged, [f"mrr@{k}"])[f"mrr@{k}"]


def score_queries(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]
                  ) -> dict[str, dict[str, float]]:
    """Per judged query: nDCG@10, Recall@100 and MRR@10 (the query's own id left out)."""
    own_left_out = {qid: [d for d in ranked if d != qid] for qid, ranked in run.items()}
    return score_rankings(own_left_out, qrels, BEIR_MEASURES)


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (missing run → 0)."""
    return mean_scores(score_queries(run, qrels))


def mean_scores(per: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each measure's mean over the queries, rounded for the report."""
    return {k: round(sum(q[k] for q in per.values()) / len(per), 4) if per else 0.0
            for k in BEIR_MEASURES}
