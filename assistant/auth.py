"""API-key checks shared by the HTTP API and the UI (constant-time, every key compared)."""

from __future__ import annotations

import hashlib
import hmac


def key_matches(supplied: str, keys: list[str]) -> bool:
    """True when `supplied` equals one of `keys`.

    Compares against every key, always, with hmac.compare_digest, so the time taken does not
    reveal which key (or how much of one) matched. Both sides are SHA-256 digests first:
    compare_digest returns early on a length mismatch, which would reveal a key's length.
    """
    candidate = supplied.strip().encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(candidate).digest()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(digest, hashlib.sha256(key.encode("utf-8")).digest())
    return ok and bool(candidate)
