"""Uploaded files: safe names, the extension allow-list and size caps, saved under the data dir.

Hand-rolled because neither Starlette nor Gradio sanitise client-supplied file names: a name
is reduced to its last path component and a conservative character set, so nothing a client
sends can escape `CX_DATA_DIR/uploads/<collection>/` or hide itself as a dot-file.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import UploadError  # noqa: F401 (re-exported)
from assistant.readers import SUPPORTED_SUFFIXES

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


@dataclass(frozen=True)
class Upload:
    """One uploaded file as the client named it."""

    filename: str
    content: bytes


def safe_filename(name: str) -> str:
    """A file name that is safe to save and to use as a doc_id, or UploadError.

    Drops any directory part (`../../x.md`, `C:\\x.md`, `/etc/x.md` → `x.md`), NUL and control
    characters, leading dots and anything outside letters, digits, `_ . - space`, and keeps
    the name under MAX_NAME_CHARS while keeping its extension.
    """
    name = unicodedata.normalize("NFKC", name or "")
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # NUL, controls
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" ._")
    name = re.sub(r"_{2,}", "_", name)
    if not name or "." not in name:
        raise UploadError(f"file name {_show(name)} has no usable name or extension; "
                          f"name it like report{SUPPORTED_SUFFIXES[0]}")
    stem, suffix = name.rsplit(".", 1)
    suffix = "." + suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadError(f"file type {suffix!r} is not accepted; upload one of "
                          f"{', '.join(SUPPORTED_SUFFIXES)}", status=415)
    stem = stem[: MAX_NAME_CHARS - len(suffix)].rstrip(" ._") or "upload"
    return stem + suffix


def _show(name: str) -> str:
    return repr(name[:60])


def check_uploads(uploads: list[Upload], max_files: int, max_bytes: int) -> list[str]:
    """Validate a batch (count, sizes, names) before anything is written; returns safe names."""
    if not uploads:
        raise UploadError("no files uploaded: send one or more files in the 'files' field")
    if len(uploads) > max_files:
        raise UploadError(f"too many files: {len(uploads)} sent, at most {max_files} per "
                          "request (CX_UPLOAD_MAX_FILES)")
    names: list[str] = []
    for upload in uploads:
        safe = safe_filename(upload.filename)
        if len(upload.content) > max_bytes:
            raise UploadError(f"file {safe!r} is {len(upload.content)} bytes; the limit is "
                              f"{max_bytes} bytes (CX_UPLOAD_MAX_BYTES)", status=413)
        if safe in names:
            raise UploadError(f"two files in this upload are both named {safe!r}; rename one")
        names.append(safe)
    # An empty file among others is ingested like any unreadable one: skipped and reported by
    # name while the rest lands. Only a batch with nothing in it is refused outright.
    if all(not upload.content.strip() for upload in uploads):
        raise UploadError(f"file {names[0]!r} is empty" if len(names) == 1 else
                          f"all {len(names)} files are empty")
    return names


def save_upload(directory: Path, name: str, content: bytes) -> Path:
    """Write atomically (temp file + rename), so a crashed upload never leaves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = (directory / name).resolve()
    if target.parent != directory.resolve():  # belt and braces: safe_filename already ensures it
        raise UploadError(f"file name {_show(name)} is not allowed")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
