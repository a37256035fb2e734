"""The question-suite format (CONTRACT: JSON Lines of `SuiteQuestion`), its dev/test split and
the metric keys every suite report carries; shared by the runner, the gate, compare and lint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KS = (1, 3, 5, 10)
RETRIEVAL_KEYS = ("hit@1", "hit@3", "hit@5", "hit@10", "recall@5", "recall@10", "mrr@10",
                  "ndcg@10")
ANSWER_KEYS = ("answered_rate", "abstain_precision", "abstain_recall", "citation_validity",
               "citation_precision", "expect_any", "latency_ms_p50", "latency_ms_p95")
# In `answers` only when some question of the run has gold quotes.
GOLD_KEYS = ("gold_quote_recall", "answer_precision")
SPLITS = ("dev", "test")


class SuiteError(ValueError):
    """The suite file is malformed; the message names the line."""


class SuiteQuestion(BaseModel):
    # Unknown fields (notes such as "source" or "topic_docs") are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str = Field(min_length=1)
    relevant: list[str] = Field(default_factory=list)
    answerable: bool = True
    expect_any: list[str] = Field(default_factory=list)
    kind: str | None = None
    gold_quotes: list[str] = Field(default_factory=list)
    split: Literal["dev", "test"] | None = None


def assign_split(question_id: str) -> str:
    """The fixed dev/test split: "dev" when the first byte of sha256(id) is even, else "test".

    Depends on the id alone, so a question keeps its half when others are added or removed.
    """
    return "dev" if hashlib.sha256(question_id.encode("utf-8")).digest()[0] % 2 == 0 \
        else "test"


def select_split(questions: list[SuiteQuestion], split: str) -> list[SuiteQuestion]:
    """The questions of one half of the suite; an error when there are none."""
    if split not in SPLITS:
        raise SuiteError(f"split must be dev or test, not {split!r}")
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        raise SuiteError(f"no question of the suite has split {split!r} "
                         "(eval/split_suite.py writes the field)")
    return chosen




def load_suite(path: Path) -> list[SuiteQuestion]:
    """Every question of a JSON Lines suite; a SuiteError names the first bad line."""
    if not Path(path).is_file():
        raise SuiteError(f"suite file not found: {path}")
    out = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(SuiteQuestion.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if isinstance(exc, json.JSONDecodeError) else (
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
            raise SuiteError(f"{path}:{n}: {first}") from None
    if not out:
        raise SuiteError(f"suite file has no questions: {path}")
    return out
