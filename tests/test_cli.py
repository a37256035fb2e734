"""The installed `cx-assistant` command: exit codes and --json shapes (CONTRACT)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from helpers.files import write_md
from helpers.processes import CLI


def run(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CX_DATA_DIR": str(data_dir), **env}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_ingest_ask_search_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = tmp_path / "kb"
    write_md(kb / "playbooks" / "review.md", "Fault review",
             "# Fault review\n\nThe monthly Cx Quality Fault review samples 200 interactions "
             "per journey and is chaired by the journey owner.", doc_type="playbook",
             tags="[faults]")
    write_md(kb / "articles" / "effort.md", "Effort",
             "# Effort\n\nCustomer effort predicts loyalty better than delight does.",
             doc_type="article")

    result = run("ingest", str(kb), "--json", data_dir=data)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"documents", "chunks", "added", "updated", "removed", "unchanged"} <= set(summary)
    assert (summary["documents"], summary["added"]) == (2, 2)

    again = json.loads(run("ingest", str(kb), "--json", data_dir=data).stdout)
    assert (again["unchanged"], again["added"], again["updated"]) == (2, 0, 0)

    ask = run("ask", "Who chairs the fault review?", "--json", data_dir=data)
    assert ask.returncode == 0, ask.stderr
    body = json.loads(ask.stdout)
    assert set(body) >= {"answer", "abstained", "citations", "mode"}
    assert body["abstained"] is False and body["mode"] == "extractive"
    citation = body["citations"][0]
    assert set(citation) >= {"n", "doc_id", "title", "section", "quote", "score"}
    assert citation["doc_id"] == "playbooks/review.md"
    assert f"[{citation['n']}]" in body["answer"]

    search = run("search", "customer effort loyalty", "--top-k", "1", "--json", data_dir=data)
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)["hits"]
    assert len(hits) == 1
    assert set(hits[0]) >= {"doc_id", "title", "section", "text", "score", "metadata"}
    assert hits[0]["doc_id"] == "articles/effort.md"

    text = run("ask", "Who chairs the fault review?", data_dir=data)
    assert text.returncode == 0 and "Sources:" in text.stdout and "[1]" in text.stdout


def test_failures_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = run("ingest", str(tmp_path / "nope"), data_dir=data)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [
        f"error: path does not exist: {tmp_path / 'nope'}"]

    unknown = run("search", "anything", "--collection", "never-made", data_dir=data)
    assert unknown.returncode != 0
    assert "collection 'never-made' does not exist" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    bad_setting = run("search", "x", data_dir=data, CX_CHUNK_SIZE="5")
    assert bad_setting.returncode != 0
    assert "CX_CHUNK_SIZE" in bad_setting.stderr and "Traceback" not in bad_setting.stderr

    blank = run("ask", "   ", data_dir=data)
    assert blank.returncode != 0 and "must not be blank" in blank.stderr
