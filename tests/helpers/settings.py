"""Settings for a service under test, built from keyword overrides (no environment needed)."""

from __future__ import annotations

from pathlib import Path

from assistant.settings import Settings, load_settings


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, **overrides)
