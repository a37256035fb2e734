"""Domain errors, each carrying its HTTP status and the message a user can act on.

One place for the mapping from failure to status and wording: the API (`assistant.api.errors`),
the UI and the CLI all render an `AssistantError` from `status` and `message`, so the three
never drift apart. This module sits at the bottom of the layers (beside settings and schemas):
anything may raise these, nothing here imports the rest of the package.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base of every expected failure; `status` is the HTTP status the API answers with."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        """The user-facing sentence (LookupError's repr quotes are never shown)."""
        return str(self.args[0]) if self.args else type(self).__name__


class SettingsError(AssistantError, ValueError):
    """A setting has an invalid value; the message names the `CX_*` variable."""

    status = 500


class StoreUnavailable(AssistantError, RuntimeError):
    """Chroma cannot be reached: 503, the client should retry shortly."""

    status = 503

    @property
    def message(self) -> str:
        return ("the vector store is unavailable, so nothing can be searched or stored right "
                f"now; try again shortly: {super().message}")


class CollectionNotFound(AssistantError, LookupError):
    """The requested collection does not exist (nothing was ingested into it)."""

    status = 404


class DocumentNotFound(AssistantError, LookupError):
    """No document with that doc_id in the collection."""

    status = 404


class EmbeddingModelError(AssistantError, RuntimeError):
    """The embedding model is missing or unreadable; the message says what to reinstall."""

    status = 503


class IngestError(AssistantError, RuntimeError):
    """Ingest cannot start (bad path, lock held): 409, the message says what to do."""

    status = 409


class UploadError(AssistantError, ValueError):
    """An upload is refused; the message says what to fix (400, 413, 415 or 422)."""

    status = 400


class ReadError(AssistantError, ValueError):
    """A file could not be turned into text; the message says why."""

    status = 422
