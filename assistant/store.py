"""The vector store: Chroma, embedded under CX_DATA_DIR or a `chroma run` server by URL.

Chroma is the single source of truth for what is indexed: every chunk carries its document's
content hash and chunk count, so the ingest state can always be read back from the store.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlparse

from assistant.settings import Settings

GENERATION_KEY = "cx_generation"


class StoreUnavailable(RuntimeError):
    """Chroma cannot be reached; the API maps this to 503."""


class CollectionNotFound(LookupError):
    """The requested collection does not exist (nothing was ingested into it)."""


def open_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
            raise StoreUnavailable(
                f"Chroma server at {settings.chroma_url} is not reachable: {exc}"
            ) from exc
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class Store:
    """Thin access to Chroma collections, with the errors our callers need."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # chromadb's client registry is not safe against two threads creating the same
        # PersistentClient at once (KeyError in SharedSystemClient): create it under a lock.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = open_client(self.settings)
        return self._client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (CollectionNotFound, StoreUnavailable):
            raise
        except Exception as exc:
            if _is_not_found(exc):
                raise CollectionNotFound(str(exc)) from exc
            if _is_connection_error(exc):
                self._client = None  # reconnect next time
                raise StoreUnavailable(f"Chroma is not reachable: {exc}") from exc
            raise

    def get_collection(self, name: str) -> Any:
        def get() -> Any:
            return self.client.get_collection(name)

        try:
            return self._call(get)
        except CollectionNotFound:
            raise CollectionNotFound(
                f"collection {name!r} does not exist; ingest documents into it first"
            ) from None

    def get_or_create_collection(self, name: str) -> Any:
        return self._call(
            lambda: self.client.get_or_create_collection(
                name, metadata={"hnsw:space": "cosine", GENERATION_KEY: 0}
            )
        )

    def list_collections(self) -> list[str]:
        cols = self._call(lambda: self.client.list_collections())
        return sorted(c if isinstance(c, str) else c.name for c in cols)

    def generation(self, name: str) -> int:
        """A counter bumped by every ingest that changed the collection (cache key)."""
        meta = self.get_collection(name).metadata or {}
        return int(meta.get(GENERATION_KEY, 0))

    def bump_generation(self, collection: Any) -> None:
        meta = dict(collection.metadata or {})
        meta[GENERATION_KEY] = int(meta.get(GENERATION_KEY, 0)) + 1
        meta["cx_updated_at"] = time.time()
        meta.pop("hnsw:space", None)  # distance metric cannot be changed after creation
        self._call(lambda: collection.modify(metadata=meta))

    def heartbeat(self) -> None:
        self._call(lambda: self.client.heartbeat())


def _is_not_found(exc: Exception) -> bool:
    name = type(exc).__name__
    text = str(exc).lower()
    return name in ("NotFoundError", "InvalidCollectionException") or (
        "does not exist" in text and "collection" in text
    )


def _is_connection_error(exc: Exception) -> bool:
    import httpx

    text = str(exc).lower()
    return isinstance(exc, httpx.TransportError | ConnectionError) or any(
        s in text for s in ("could not connect", "connection refused", "connecterror")
    )
