"""API-key checks shared by the HTTP API and the UI (constant-time, every key compared)."""

from __future__ import annotations

import hmac


def key_matches(supplied: str, keys: list[str]) -> bool:
    """True when `supplied` equals one of `keys`.

    Compares against every key, always, with hmac.compare_digest, so the time taken does not
    reveal which key (or how much of one) matched.
    """
    candidate = supplied.strip().encode("utf-8")
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return ok and bool(candidate)
