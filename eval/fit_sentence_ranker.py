"""Fit the extractive answerer's sentence-ranking weights on the golden suite's dev half.

For every answerable question with gold quotes, the answerer's candidate sentences (the
chunks it would read) get their `answering.FEATURES`; a sentence is gold when it overlaps a
gold quote (the eval metric's rule). A conditional logit (softmax over each question's
candidates, L2-regularised, plain gradient descent: thirteen features do not justify a
scikit-learn dependency) is fitted on the dev half; weights are rescaled so the cosine
weight is 1, keeping the abstention threshold and the selection windows on the cosine
scale. Prints the fitted weights and, for dev and test, how often the best-scored sentence
is gold under the hand-set weights, the fitted ones and the cosine alone.

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


def question_rows(service: AssistantService, row: dict[str, Any]) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Feature rows and gold labels of one question's candidate sentences."""
    query = condense_question(row["question"], None)
    embedding = service.embedder.encode_query(query)
    chunks = service.retrieve(query, None, service.settings.candidate_k,
                              query_embedding=embedding)
    reading = service.retriever(None).with_sentences(
        reading_list(chunks, row["question"], service.settings.answer_chunks))
    sentences, cosines, _ = service.answerer.score(embedding, reading)
    x = features(analyse(row["question"]), sentences, cosines)
    y = np.array([any(quotes_overlap(s.quote, g) for g in row["gold_quotes"])
                  for s in sentences], dtype=float)
    return x, y


def conditional_logit(groups: list[tuple[np.ndarray, np.ndarray]], l2: float = 0.1,
                      steps: int = 2000, rate: float = 2.0) -> np.ndarray:
    """Weights maximising the likelihood that each question's gold sentences score best."""
    w = np.zeros(len(FEATURES))
    w[0] = 10.0
    usable = [(x, y / y.sum()) for x, y in groups if y.sum() > 0]
    for _ in range(steps):
        grad = l2 * w
        grad[0] = 0.0
        for x, target in usable:
            z = x @ w
            p = np.exp(z - z.max())
            grad += x.T @ (p / p.sum() - target)
        w -= rate * grad / len(usable)
    return w / w[0]


def top1(groups: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> float:
    """Share of questions (with a gold candidate) whose best-scored sentence is gold."""
    hits = [y[int(np.argmax(x @ w))] for x, y in groups if y.sum() > 0]
    return round(float(np.mean(hits)), 4) if hits else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    args = parser.parse_args()
    service = AssistantService(load_settings())
    rows = [json.loads(line) for line in args.suite.read_text("utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("answerable") and r.get("gold_quotes")]
    halves = {h: [question_rows(service, r) for r in rows if r.get("split") == h]
              for h in ("dev", "test")}
    fitted = conditional_logit(halves["dev"])
    cosine = np.eye(len(FEATURES))[0]
    print(json.dumps({
        "fitted_weights": {f: round(float(v), 3) for f, v in zip(FEATURES, fitted,
                                                                   strict=True)},
        "top1": {h: {"hand_set": top1(g, WEIGHTS), "fitted": top1(g, fitted),
                     "cosine_only": top1(g, cosine)} for h, g in halves.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
