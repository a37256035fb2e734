"""The vector store: Chroma, embedded under CX_DATA_DIR or a `chroma run` server by URL.

Chroma is the single source of truth for what is indexed: every chunk carries its document's
content hash and chunk count, so the ingest state can always be read back from the store.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlparse

from assistant.errors import CollectionNotFound, StoreUnavailable  # noqa: F401 (re-exported)
from assistant.settings import Settings

CONNECT_TIMEOUT_S = 2.0  # connecting, and the readiness heartbeat: loopback or LAN answers fast
# After a failure, calls fail at once for this long rather than each waiting out a timeout
# against a frozen server (every waiting request holds an API worker thread).
RETRY_AFTER_S = 1.0


def open_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        # chromadb's HttpClient validates the tenant on creation with no timeout at all, so a
        # frozen server would hang us here forever: ask it for a heartbeat, bounded, first.
        ping_server(settings)
        url = urlparse(settings.chroma_url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
            raise unreachable(settings, exc) from exc
        _bound_requests(client, settings)
        return client
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _bound_requests(client: Any, settings: Settings) -> None:
    """Give every request of an HttpClient a timeout (CX_CHROMA_TIMEOUT_S).

    chromadb 1.5 creates its httpx session with `timeout=None` and offers no setting for it
    (its Settings' request timeouts apply to the distributed server, not to this client), so
    one stalled request would hold an API worker, and its caller, forever. Hence this reach
    into the private session (`client._server._session`, chromadb 1.5.x), kept here alone:
    recheck it when chromadb is upgraded. The session is shared per host:port.
    """
    import httpx

    client._server._session.timeout = httpx.Timeout(
        settings.chroma_timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.chroma_timeout_s))


def ping_server(settings: Settings) -> None:
    """GET the server's heartbeat within CONNECT_TIMEOUT_S, or raise StoreUnavailable."""
    import httpx

    timeout = min(CONNECT_TIMEOUT_S, settings.chroma_timeout_s)
    try:
        response = httpx.get(f"{settings.chroma_url}/api/v2/heartbeat", timeout=timeout)
    except httpx.HTTPError as exc:
        raise unreachable(settings, exc) from exc
    if response.status_code != 200:
        raise unreachable(settings, f"heartbeat answered HTTP {response.status_code}")


def unreachable(settings: Settings, why: object) -> StoreUnavailable:
    """The one message for a Chroma outage: where, why, and what to do about it."""
    reason = why if isinstance(why, str) else _describe(why)
    return StoreUnavailable(
        f"Chroma server at {settings.chroma_url} (CX_CHROMA_URL) is not reachable ({reason}); "
        "check that `chroma run` is up at that address, then retry: the assistant reconnects "
        "by itself"
    )


def _describe(exc: object) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within the timeout, {type(exc).__name__}"
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Store:
    """Thin access to Chroma collections, with the errors our callers need.

    Every Chroma call, including those llama-index and the retriever make on a collection
    later, goes through `_call`: a dropped connection or timeout becomes StoreUnavailable (503)
    and the client is rebuilt on the next call, so the API recovers by itself when a `chroma
    run` server comes back, without a restart.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()
        self._down: tuple[float, StoreUnavailable] | None = None  # last failure: when, what

    @property
    def client(self) -> Any:
        # chromadb's client registry is not safe against two threads creating the same
        # PersistentClient at once (KeyError in SharedSystemClient): create it under a lock.
        client = self._client
        if client is None:
            down = self._down
            if down is not None and time.monotonic() - down[0] < RETRY_AFTER_S:
                raise StoreUnavailable(str(down[1]))
            if self.settings.chroma_url:
                # Fail fast, outside the lock: callers must not queue one behind another's
                # timeout while the server is frozen. open_client pings again, under the lock.
                self._ping()
            with self._lock:
                if self._client is None:
                    self._client = open_client(self.settings)
                client = self._client
        return client

    @property
    def is_open(self) -> bool:
        """Whether this process has a client on the store (then it must not be probed)."""
        return self._client is not None

    def reset(self) -> None:
        """Forget the client; the next call opens a new one (after a store rebuild)."""
        with self._lock:
            self._client = None

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
                err = unreachable(self.settings, exc) if self.settings.chroma_url else (
                    StoreUnavailable(f"Chroma is not reachable: {_describe(exc)}"))
                self._down = (time.monotonic(), err)
                raise err from exc
            raise

    def _ping(self) -> None:
        """ping_server, remembering the outcome for the fail-fast window."""
        try:
            ping_server(self.settings)
        except StoreUnavailable as exc:
            self._down = (time.monotonic(), exc)
            raise
        self._down = None

    def _guard(self, collection: Any) -> Any:
        return collection if isinstance(collection, GuardedCollection) else GuardedCollection(
            self, collection)

    def get_collection(self, name: str) -> Any:
        def get() -> Any:
            return self.client.get_collection(name)

        try:
            return self._guard(self._call(get))
        except CollectionNotFound:
            raise CollectionNotFound(
                f"collection {name!r} does not exist; ingest documents into it first "
                f"(upload files, or run `cx-assistant ingest PATH --collection {name}`)"
            ) from None

    def get_or_create_collection(self, name: str) -> Any:
        return self._guard(self._call(
            lambda: self.client.get_or_create_collection(
                name, metadata={"hnsw:space": "cosine"}
            )
        ))

    def list_collections(self) -> list[str]:
        cols = self._call(lambda: self.client.list_collections())
        return sorted(c if isinstance(c, str) else c.name for c in cols)

    def heartbeat(self) -> None:
        """Raise StoreUnavailable unless Chroma answers (a server within CONNECT_TIMEOUT_S)."""
        if self.settings.chroma_url:
            self._ping()  # always a real, bounded probe: a frozen server must not hang /readyz
            return
        self._call(lambda: self.client.heartbeat())


class GuardedCollection:
    """A Chroma collection whose every method call goes through Store._call.

    The retriever cache and llama-index's ChromaVectorStore keep a collection for many
    requests; without this, a Chroma outage in the middle of a query or an ingest batch
    escapes as a raw httpx error (a 500) instead of StoreUnavailable (a 503).
    """

    def __init__(self, store: Store, collection: Any) -> None:
        self._store = store
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._collection, name)
        if not callable(value):
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._store._call(value, *args, **kwargs)

        return guarded


def _is_not_found(exc: Exception) -> bool:
    name = type(exc).__name__
    text = str(exc).lower()
    return name in ("NotFoundError", "InvalidCollectionException") or (
        "does not exist" in text and "collection" in text
    )


def _is_connection_error(exc: Exception) -> bool:
    """Refused, reset or timed out: the server is down, frozen or cut off."""
    import httpx

    text = str(exc).lower()
    return isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError) or any(
        s in text for s in ("could not connect", "connection refused", "connecterror")
    )
