"""Shared fixtures: real embedder, real embedded Chroma in a temp CX_DATA_DIR, real files.

Helpers (file writers, `serve`, `ChromaServer`, settings) live in tests/helpers/; only
fixtures live here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CORPUS
from helpers.processes import ChromaServer
from helpers.settings import make_settings

from assistant.service import AssistantService


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test reads the developer's .env or data dir."""
    for key in list(os.environ):
        if key.startswith("CX_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CX_DATA_DIR", str(tmp_path_factory.mktemp("default-data")))


@pytest.fixture
def service(tmp_path: Path) -> AssistantService:
    """A fresh service over an empty data dir (the embedder is shared per process)."""
    return AssistantService(make_settings(tmp_path / "data"))


@pytest.fixture(scope="session")
def corpus_service(tmp_path_factory: pytest.TempPathFactory) -> AssistantService:
    """The sample corpus ingested once per session into its own data dir."""
    svc = AssistantService(make_settings(tmp_path_factory.mktemp("corpus-data")))
    summary = svc.ingest([CORPUS])
    assert summary.skipped == [], summary.skipped
    return svc


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    """A real `chroma run` on loopback for one test: its URL, for CX_CHROMA_URL."""
    with ChromaServer(tmp_path / "chroma-server") as chroma:
        yield chroma.url
