"""Who is calling and what they may touch: keys resolved to a Principal with collection scopes,
and the per-address back-off on failed authentications. Shared by the API, the UI and MCP.

Two sources of keys, both honoured: `CX_API_KEYS` (each key reads and writes every
collection, as before scopes existed) and the key store (assistant.keys). With neither the
server is open; once a key store exists it never is again, even with every key revoked.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from assistant.errors import AssistantError
from assistant.keys import KeyRecord, KeyStore
from assistant.settings import Settings

MISSING_KEY = "missing or invalid API key: send 'Authorization: Bearer <key>'"
ALL = ("*",)


class Unauthorized(AssistantError):
    """No usable key (401). `key` names a revoked key that was presented, for the audit log."""

    status = 401

    def __init__(self, message: str = MISSING_KEY, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class AccessDenied(AssistantError):
    """A valid key asked for a collection outside its scopes, or for key management (403)."""

    status = 403


class TooManyFailures(AssistantError):
    """This address failed to authenticate too often; `retry_after` seconds until it may
    try again (429)."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed authentications from this address: try again in "
                         f"{self.retry_after} s")


def matches(collection: str, patterns: tuple[str, ...]) -> bool:
    """Whether a scope list covers the collection (`*` and `?` are wildcards, case-sensitive
    like collection names)."""
    return any(fnmatch.fnmatchcase(collection, p) for p in patterns)


@dataclass(frozen=True)
class Principal:
    """A caller: the key's name (what the audit log shows, never the secret) and its scopes."""

    name: str
    read: tuple[str, ...]
    write: tuple[str, ...] = ()
    admin: bool = False

    def can_read(self, collection: str) -> bool:
        return matches(collection, self.read)

    def can_write(self, collection: str) -> bool:
        return matches(collection, self.write)

    @classmethod
    def of(cls, record: KeyRecord) -> Principal:
        return cls(record.name, record.read, record.write, record.admin)


OPEN = Principal("anonymous", ALL, ALL)  # no keys anywhere: everything open, as before keys
PUBLIC = Principal("public", ALL)  # CX_PUBLIC_READ without a key: reads only
LOCAL = Principal("local", ALL, ALL)  # the CLI and stdio MCP: whoever can read CX_DATA_DIR


def key_matches(supplied: str, keys: list[str]) -> bool:
    """True when `supplied` equals one of `keys` (constant-time: see legacy_index)."""
    return legacy_index(supplied, keys) is not None


def legacy_index(supplied: str, keys: list[str]) -> int | None:
    """Position of `supplied` among `keys`, or None.

    Compares against every key, always, with hmac.compare_digest, so the time taken does not
    reveal which key (or how much of one) matched. Both sides are SHA-256 digests first:
    compare_digest returns early on a length mismatch, which would reveal a key's length.
    """
    candidate = supplied.strip().encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(candidate).digest()
    found = None
    for i, key in enumerate(keys):
        if hmac.compare_digest(digest, hashlib.sha256(key.encode("utf-8")).digest()):
            found = i
    return found if candidate else None


class FailureBackoff:
    """A token bucket per client address, spent by failed authentications: `burst` failures
    are free, then one more each `refill_s` seconds. While the bucket is empty the address
    gets 429 with Retry-After before any key is checked, so guessing goes no faster than the
    refill. Full buckets are forgotten; at most `max_addresses` are kept (oldest dropped)."""

    def __init__(self, burst: int, refill_s: float,
                 clock: Callable[[], float] = time.monotonic, max_addresses: int = 10_000):
        self.burst, self.refill_s, self.clock = burst, refill_s, clock
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) / self.refill_s)

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try a key again; 0 when it may now."""
        with self._lock:
            tokens = self._tokens(address, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) * self.refill_s

    def fail(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            tokens = max(0.0, self._tokens(address, now) - 1)
            self._buckets[address] = (tokens, now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)


class Authenticator:
    """Turns a presented secret (or a UI login) into a Principal, reading the key store on
    every call so creations and revocations apply at once."""

    def __init__(self, settings: Settings, keys: KeyStore | None = None,
                 backoff: FailureBackoff | None = None) -> None:
        self.settings = settings
        self.keys = keys or KeyStore(settings.data_dir)
        self.backoff = backoff or FailureBackoff(settings.auth_backoff_burst,
                                                 settings.auth_backoff_refill_s)

    @property
    def keyed(self) -> bool:
        """Whether requests need a key: CX_API_KEYS is set or a key store exists."""
        return bool(self.settings.api_key_list) or self.keys.exists()

    def _legacy(self, secret: str) -> Principal | None:
        index = legacy_index(secret, self.settings.api_key_list)
        return None if index is None else Principal(f"CX_API_KEYS#{index + 1}", ALL, ALL)

    def authenticate(self, secret: str | None, *, write: bool,
                     address: str | None = None) -> Principal:
        """The caller behind `secret`. Without a usable key: PUBLIC for a read when
        CX_PUBLIC_READ=true (as before, whatever the header holds), else Unauthorized; a
        wrong or revoked secret also spends the address's back-off."""
        if not self.keyed:
            return OPEN
        secret = (secret or "").strip()
        public = self.settings.public_read and not write
        if not secret:
            if public:
                return PUBLIC
            raise Unauthorized()
        record = self.keys.lookup(secret) if self.keys.exists() else None
        if record is not None and not record.revoked:
            self.keys.touch(record.name)
            return Principal.of(record)
        legacy = self._legacy(secret)
        if legacy is not None:
            return legacy
        if public:
            return PUBLIC
        self.backoff.fail(address or "unknown")
        if record is not None:
            raise Unauthorized(f"the API key '{record.name}' has been revoked: ask an "
                               "administrator for a new one", key=record.name)
        raise Unauthorized()

    def login(self, username: str, password: str) -> bool:
        """The chat's login: a store key's name and secret, or any name with a CX_API_KEYS
        key. The name is what later requests carry (see ui_principal), so a store key only
        logs in under its own name."""
        record = self.keys.lookup(password) if password and self.keys.exists() else None
        if record is not None:
            return not record.revoked and record.name == username.strip()
        return self._legacy(password) is not None

    def ui_principal(self, username: str | None) -> Principal:
        """The Principal of a chat session, re-read on every action (revocation applies)."""
        if not self.keyed:
            return OPEN
        if not username:
            if self.settings.public_read:
                return PUBLIC
            raise Unauthorized("this server now needs an API key: reload the page to sign "
                               "in (restart the server if no login appears)")
        record = self.keys.get(username) if self.keys.exists() else None
        if record is not None:
            if record.revoked:
                raise Unauthorized(f"the API key '{username}' has been revoked: sign in "
                                   "with another key", key=username)
            return Principal.of(record)
        if self.settings.api_key_list:
            return Principal("CX_API_KEYS", ALL, ALL)
        raise Unauthorized()
