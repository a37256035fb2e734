"""What can be ingested: files found under a path, or in-memory records, each with its doc_id.

A source gives its raw `content()` (hashed to tell whether it changed, without parsing it) and
`load()` (the text and normalised metadata, read only when it must be indexed).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import IngestError, ReadError
from assistant.readers import SUPPORTED_SUFFIXES, LoadedFile, normalise_metadata, read_file

# Bumped when a reader starts extracting more (r2: locations, tables as rows, OCR, decks and
# sheets), so files ingested before are read again on the next ingest.
READER_VERSION = "|r2"

IGNORE_FILE = ".cxignore"
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """A file on disk to ingest under `doc_id`."""

    path: Path
    doc_id: str

    def content(self) -> bytes:
        size = self.path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReadError(f"file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return self.path.read_bytes()

    reader_version = READER_VERSION  # part of the version: a better reader re-reads the file

    def load(self) -> LoadedFile:
        return read_file(self.path, self.doc_id)


@dataclass(frozen=True)
class SourceRecord:
    """An in-memory document (e.g. a BEIR corpus entry) to ingest under `doc_id`."""

    doc_id: str
    text: str
    metadata: dict[str, Any]

    def content(self) -> bytes:
        meta = sorted((k, str(v)) for k, v in self.metadata.items())
        return f"{meta!r}\n{self.text}".encode()

    reader_version = ""  # no reader: the text is given

    def load(self) -> LoadedFile:
        if not self.text.strip():
            raise ReadError("empty text")
        return LoadedFile(self.text, normalise_metadata(self.metadata, self.doc_id, self.text))


Source = SourceFile | SourceRecord


def discover(target: Path) -> tuple[Path, list[SourceFile]]:
    """Files under `target` with a supported suffix, minus hidden/`_` paths and `.cxignore`.

    Returns the root doc_ids are relative to: the directory itself, or a file's parent.
    """
    if not target.exists():
        raise IngestError(f"path does not exist: {target}")
    if target.is_file():
        return target.parent.resolve(), [SourceFile(target.resolve(), target.name)]
    root = target.resolve()
    patterns = ignore_patterns(root)
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.startswith((".", "_")) or not name.lower().endswith(SUPPORTED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            doc_id = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(doc_id, p) for p in patterns):
                continue
            files.append(SourceFile(path, doc_id))
    return root, sorted(files, key=lambda f: f.doc_id)


def ignore_patterns(root: Path) -> list[str]:
    """The glob patterns of `root/.cxignore` (one a line, `#` comments), matched on doc_ids."""
    ignore = root / IGNORE_FILE
    if not ignore.is_file():
        return []
    lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
