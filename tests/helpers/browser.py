"""The browser the UI tests drive: Debian's chromium (`make browser`), never a download."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# OFFLINE.md: Playwright's own browser download fails here; these flags keep chromium quiet.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
