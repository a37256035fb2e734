"""Shared test helpers: files to ingest, real processes to talk to, fake and real LLM servers.

Tests import them as `helpers` (pytest puts tests/ on sys.path for conftest.py); eval/bench
imports them as `tests.helpers`, so the modules inside import each other relatively. Fixtures
stay in tests/conftest.py; no test module imports another.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
