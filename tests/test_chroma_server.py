"""Server mode: a real `chroma run` on loopback, selected by CX_CHROMA_URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.files import write_md
from helpers.processes import free_port
from helpers.settings import make_settings

from assistant.service import AssistantService
from assistant.store import StoreUnavailable


def test_ingest_search_answer_over_chroma_server(chroma_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", chroma_url=chroma_url)
    service = AssistantService(settings)
    kb = tmp_path / "kb"
    write_md(kb / "a.md", "Task force", "# Task force\n\nThe Cx task force meets weekly for "
             "ninety days and includes promise makers and promise keepers.")
    write_md(kb / "b.md", "Scorecard", "# Scorecard\n\nThe scorecard is reviewed monthly.")
    summary = service.ingest([kb])
    assert summary.added == 2
    assert not (tmp_path / "data" / "chroma").exists()  # nothing embedded locally

    hits = service.search("how long does the task force run?", top_k=2).hits
    assert hits[0].doc_id == "a.md"
    assert service.ingest([kb]).unchanged == 2

    # a second service (another process, in real life) sees the same data through the server
    other = AssistantService(make_settings(tmp_path / "other-data", chroma_url=chroma_url))
    assert [d.doc_id for d in other.list_documents().data] == ["a.md", "b.md"]


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    service = AssistantService(make_settings(tmp_path / "data", chroma_url=url))
    with pytest.raises(StoreUnavailable, match="not reachable"):
        service.search("anything")
