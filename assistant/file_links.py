"""Signed links to a document's original, for the chat UI's "Open original".

A browser following a link sends no bearer key, and a key in a URL would end up in history
and logs. So the UI, having checked that the signed-in key may read the collection, signs a
link to that one document in that one collection for a short while (CX_FILE_LINK_TTL_S);
the file route accepts the signature in place of a key, as a read of exactly that document.
The secret is a random file in CX_DATA_DIR (mode 0600), shared by every worker and process
of the server and kept across restarts, so a link works whichever worker serves it.
Revoking a key does not recall the links it signed: they lapse with their TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "file-links.key"


@dataclass(frozen=True)
class LinkGrant:
    """What a valid signature allows: reading `doc_id` of `collection`, as `key` did."""

    key: str
    collection: str
    doc_id: str


class FileLinks:
    """Signs and checks `token`s for GET /v1/documents/{doc_id}/file."""

    def __init__(self, data_dir: Path, ttl_s: int = 3600) -> None:
        self.data_dir = data_dir
        self.ttl_s = ttl_s
        self._secret: bytes | None = None

    def sign(self, key: str, collection: str, doc_id: str, now: float | None = None) -> str:
        """A token: expiry, the signing key's name, and an HMAC over both plus the target."""
        expires = int((now if now is not None else time.time()) + self.ttl_s)
        name = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
        return f"{expires}.{name}.{self._mac(expires, key, collection, doc_id)}"

    def check(self, token: str, collection: str, doc_id: str,
              now: float | None = None) -> LinkGrant | None:
        """The grant of a valid, unexpired token for this document, else None."""
        try:
            expires_text, name, mac = token.split(".")
            expires = int(expires_text)
            key = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if expires < (now if now is not None else time.time()):
            return None
        if not hmac.compare_digest(mac, self._mac(expires, key, collection, doc_id)):
            return None
        return LinkGrant(key, collection, doc_id)

    def _mac(self, expires: int, key: str, collection: str, doc_id: str) -> str:
        message = "\0".join([str(expires), key, collection, doc_id]).encode()
        digest = hmac.new(self._key(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _key(self) -> bytes:
        if self._secret is None:
            path = self.data_dir / SECRET_FILE
            try:  # O_EXCL: of two workers starting together, one writes and both read it
                self.data_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
            except FileExistsError:
                pass
            secret = path.read_bytes()
            while len(secret) < 32:  # the other worker is still writing it
                time.sleep(0.01)
                secret = path.read_bytes()
            self._secret = secret
        return self._secret
