"""Fit the extractive answerer's sentence-ranking weights on the golden suite's dev half.

For every answerable dev question with gold quotes, the answerer's candidate sentences (the
chunks it would read) get their `answering.FEATURES`; a sentence is positive when it overlaps
a gold quote (the same rule as the eval metric). An L2-regularised logistic regression,
fitted by Newton's method (nine features do not justify a scikit-learn dependency), gives the
weights; they are rescaled so the cosine weight is 1, keeping the abstention threshold and
the selection windows on the cosine scale. Prints the weights to paste into answering.py,
and the dev figures with the hand-set and fitted weights.

    CX_DATA_DIR=... .venv/bin/python eval/fit_sentence_ranker.py eval/suites/cx_golden.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering import FEATURES, WEIGHTS, analyse, features, reading_list
from assistant.evaluation import quotes_overlap
from assistant.service import AssistantService, condense_question
from assistant.settings import load_settings


def candidates(service: AssistantService, question: str) -> tuple[Any, list[Any]]:
    """(query embedding, reading list with sentence vectors) as `service.answer` builds them."""
    query = condense_question(question, None)
    embedding = service.embedder.encode_query(query)
    chunks = service.retrieve(query, None, service.settings.candidate_k,
                              query_embedding=embedding)
    reading = reading_list(chunks, question, service.settings.answer_chunks)
    return embedding, service.retriever(None).with_sentences(reading)


def design(service: AssistantService, rows: list[dict[str, Any]]) -> tuple[np.ndarray,
                                                                            np.ndarray,
                                                                            np.ndarray]:
    """Feature rows, gold labels, and the question each row belongs to."""
    xs, ys, groups = [], [], []
    for n, row in enumerate(rows):
        embedding, reading = candidates(service, row["question"])
        sentences, cosines, _ = service.answerer.score(embedding, reading)
        if not sentences:
            continue
        xs.append(features(analyse(row["question"]), sentences, cosines))
        ys.append([any(quotes_overlap(s.quote, g) for g in row["gold_quotes"])
                   for s in sentences])
        groups.append(np.full(len(sentences), n))
    return np.concatenate(xs), np.concatenate(ys).astype(float), np.concatenate(groups)


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Weights (intercept last) of an L2-regularised logistic regression, Newton's method."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + reg * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def top1(x: np.ndarray, y: np.ndarray, groups: np.ndarray, w: np.ndarray) -> float:
    """Share of questions whose best-scored sentence is a gold one."""
    hits = []
    for g in np.unique(groups):
        rows = groups == g
        hits.append(y[rows][int(np.argmax(x[rows] @ w[: x.shape[1]]))])
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--split", default="dev")
    args = parser.parse_args()
    service = AssistantService(load_settings())
    rows = [json.loads(line) for line in args.suite.read_text("utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("answerable") and r.get("gold_quotes")
            and r.get("split") == args.split]
    x, y, groups = design(service, rows)
    w = logistic(x, y)
    scaled = w[: x.shape[1]] / w[0]
    print(json.dumps({
        "questions": len(rows), "sentences": len(y), "positives": int(y.sum()),
        "weights": {f: round(float(v), 4) for f, v in zip(FEATURES, scaled, strict=True)},
        "top1_hand_set": round(top1(x, y, groups, WEIGHTS), 4),
        "top1_fitted": round(top1(x, y, groups, scaled), 4),
        "top1_cosine_only": round(top1(x, y, groups, np.eye(len(FEATURES))[0]), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
