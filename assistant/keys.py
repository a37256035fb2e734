"""The key store: API keys scoped to collections, in SQLite at CX_DATA_DIR/keys.sqlite3.

Per key: a name, the SHA-256 digest of its secret (the secret itself is shown once, at
creation, and never stored), read and write scopes as collection names or patterns (`*`,
`client-*`), an admin flag, created and last-used times, and a revoked flag. Revoking keeps the
row: a revoked key is refused as such, its name cannot be reused, and the file (so the rule
"once a key store exists the server never falls back to open access") stays.

Every lookup reads the file, so a key created or revoked by `cx-assistant keys` takes effect on
the server's next request, with no restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError

FILE_NAME = "keys.sqlite3"
SECRET_PREFIX = "cx_"  # marks a secret as ours in logs and secret scanners
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# A collection name (letters, digits, '.', '_', '-') in which '*' and '?' are wildcards.
SCOPE = re.compile(r"^[A-Za-z0-9._*?-]{1,512}$")
TOUCH_EVERY_S = 60.0  # last_used is a day-to-day aid, not an audit trail: one write a minute

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    read_scopes TEXT NOT NULL,
    write_scopes TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
)
"""


class KeyStoreError(AssistantError):
    """A key operation is refused: a bad name or scope (422), a name taken (409), none such
    (404)."""

    status = 422


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored, without its digest."""

    name: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    admin: bool
    created_at: str
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None

    def public(self) -> dict[str, Any]:
        """What `keys list` and GET /v1/keys show."""
        return {"name": self.name, "read": list(self.read), "write": list(self.write),
                "admin": self.admin, "created_at": self.created_at,
                "last_used_at": self.last_used_at, "revoked": self.revoked,
                "revoked_at": self.revoked_at}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.strip().encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    """`C1,C2` (or a list) as validated, de-duplicated scopes; KeyStoreError names the bad one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    for scope in scopes:
        if not SCOPE.match(scope):
            raise KeyStoreError(f"invalid {what} scope {scope!r}: use collection names or "
                                "patterns of letters, digits, '.', '_', '-' with '*' and '?'")
    return scopes


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class KeyStore:
    """The SQLite file of keys; a connection per call keeps it safe across server threads
    and processes (`serve --workers N`, the CLI beside a running server)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def exists(self) -> bool:
        """Whether a key store was ever created here: from then on keys are required."""
        return self.path.exists()

    def _connect(self, create: bool = False, timeout: float = 30) -> sqlite3.Connection:
        if create and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # digests only, but nobody else on the machine needs to read them
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=timeout)
        conn.row_factory = sqlite3.Row
        if create:
            with conn:
                conn.execute(_SCHEMA)
        return conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.exists():
            return []
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # created but its table not yet written
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def create(self, name: str, read: str | Iterable[str], write: str | Iterable[str] = (),
               admin: bool = False) -> tuple[KeyRecord, str]:
        """Add a key; returns it and its secret (shown once: only the digest is kept)."""
        if not NAME.match(name):
            raise KeyStoreError(f"invalid key name {name!r}: 1-64 letters, digits, '.', '_', "
                                "'@' or '-', starting with a letter or digit")
        reads, writes = parse_scopes(read, "read"), parse_scopes(write, "write")
        if not reads:
            raise KeyStoreError("a key needs at least one read scope (a collection or '*')")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        conn = self._connect(create=True)
        try:
            with conn:
                conn.execute(
                    "INSERT INTO keys (name, digest, read_scopes, write_scopes, admin, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, digest(secret), json.dumps(reads), json.dumps(writes), int(admin),
                     _now()))
        except sqlite3.IntegrityError:
            raise KeyStoreError(f"a key named {name!r} already exists (revoked keys keep "
                                "their names): choose another name", status=409) from None
        finally:
            conn.close()
        record = self.get(name)
        assert record is not None
        return record, secret

    def records(self) -> list[KeyRecord]:
        """Every key, revoked ones too, oldest first."""
        return [_record(row) for row in self._query("SELECT * FROM keys ORDER BY created_at, "
                                                      "name")]

    def get(self, name: str) -> KeyRecord | None:
        rows = self._query("SELECT * FROM keys WHERE name = ?", (name,))
        return _record(rows[0]) if rows else None

    def lookup(self, secret: str) -> KeyRecord | None:
        """The key whose secret this is (revoked or not), by digest: an unknown secret
        reveals nothing, and the digest is all the file holds."""
        rows = self._query("SELECT * FROM keys WHERE digest = ?", (digest(secret),))
        return _record(rows[0]) if rows else None

    def revoke(self, name: str) -> KeyRecord:
        """Mark a key revoked; the next request with it is refused."""
        record = self.get(name)
        if record is None:
            raise KeyStoreError(f"no key named {name!r}", status=404)
        if not record.revoked:
            conn = self._connect()
            try:
                with conn:
                    conn.execute("UPDATE keys SET revoked = 1, revoked_at = ? WHERE name = ?",
                                 (_now(), name))
            finally:
                conn.close()
        revoked = self.get(name)
        assert revoked is not None
        return revoked

    def touch(self, name: str) -> None:
        """Record a use, at most once a TOUCH_EVERY_S per key and process."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(name, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
                return
            self._touched[name] = now
        conn = self._connect(timeout=1)  # runs on the request path: never wait long
        try:
            with conn:
                conn.execute("UPDATE keys SET last_used_at = ? WHERE name = ?", (_now(), name))
        except sqlite3.OperationalError:  # busy: a missed timestamp is not worth a failure
            pass
        finally:
            conn.close()


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        name=row["name"], read=tuple(json.loads(row["read_scopes"])),
        write=tuple(json.loads(row["write_scopes"])), admin=bool(row["admin"]),
        created_at=row["created_at"], last_used_at=row["last_used_at"],
        revoked=bool(row["revoked"]), revoked_at=row["revoked_at"])
