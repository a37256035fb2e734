"""Calibrate CX_ABSTAIN_THRESHOLD on a golden suite over an ingested collection.

For every question it records the evidence the answerer abstains on (the best sentence's
cosine similarity to the question), then picks the threshold with the highest accuracy of the
answer/abstain decision; ties go to the middle of the best interval, away from either edge.

    .venv/bin/python eval/calibrate_abstention.py eval/suites/cx_golden.jsonl --split dev
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assistant.answering import reading_list, uncovered_terms
from assistant.service import AssistantService, condense_question
from assistant.settings import load_settings


def evidence(service: AssistantService, question: str, collection: str | None) -> float:
    """The best sentence cosine among the chunks the answerer would read.

    Questions the name/number check abstains on anyway score -1, so the threshold is
    calibrated for the decisions it actually makes.
    """
    query = condense_question(question, None)
    embedding = service.embedder.encode_query(query)
    chunks = reading_list(service.retrieve(query, collection, service.settings.candidate_k,
                                           query_embedding=embedding),
                          question, service.settings.answer_chunks)
    if uncovered_terms(question, chunks):
        return -1.0
    chunks = service.retriever(collection).with_sentences(chunks)
    _, cosines, _ = service.answerer.score(embedding, chunks)
    return float(cosines.max()) if len(cosines) else -1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--collection")
    parser.add_argument("--split", help="only questions of this split (tune on dev)")
    args = parser.parse_args()
    service = AssistantService(load_settings())
    rows = [json.loads(line) for line in args.suite.read_text("utf-8").splitlines() if line]
    rows = [r for r in rows if not args.split or r.get("split") == args.split]
    scores = np.array([evidence(service, r["question"], args.collection) for r in rows])
    answerable = np.array([bool(r["answerable"]) for r in rows])
    grid = np.round(np.arange(0.20, 0.70, 0.005), 3)
    accuracy = np.array([np.mean((scores >= t) == answerable) for t in grid])
    best = grid[accuracy == accuracy.max()]
    threshold = float(np.round(np.median(best), 3))
    abstained = scores < threshold
    print(json.dumps({
        "threshold": threshold,
        "accuracy": round(float(accuracy.max()), 4),
        "abstain_recall": round(float(np.mean(abstained[~answerable])), 4),
        "false_abstain_rate": round(float(np.mean(abstained[answerable])), 4),
        "n": len(rows),
    }, indent=2))


if __name__ == "__main__":
    main()
