"""The audit log: one JSON line per request, for the people who must answer "who saw this
document": when, which request, which key (by name, never the secret), which route and
collection, the status, and the doc_ids returned or cited.

Lines go to CX_DATA_DIR/audit.jsonl (rotated by size through the standard library's
RotatingFileHandler) or to stdout with CX_AUDIT_LOG=-. The question text is written only with
CX_AUDIT_QUESTIONS=true: a question can be as confidential as the answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
from typing import Any

from assistant.settings import Settings


@dataclass
class AuditRecord:
    """What one request did, filled in as it runs: by the key check (the key's name) and by
    the scoped service (the collection, the doc_ids, the question)."""

    key: str | None = None
    collection: str | None = None
    doc_ids: list[str] = field(default_factory=list)
    question: str | None = None

    def add_docs(self, doc_ids: Iterable[str]) -> None:
        """Append doc_ids not yet recorded, in order."""
        seen = set(self.doc_ids)
        for doc_id in doc_ids:
            if doc_id not in seen:
                seen.add(doc_id)
                self.doc_ids.append(doc_id)


class AuditLog:
    """Writes audit lines; safe across threads (the handler locks each write)."""

    def __init__(self, settings: Settings) -> None:
        self.questions = settings.audit_questions
        path = settings.audit_path
        self.target = str(path) if path is not None else "-"
        self.handler: logging.Handler
        if path is None:
            self.handler = logging.StreamHandler(sys.stdout)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handler = RotatingFileHandler(
                path, maxBytes=settings.audit_max_bytes, backupCount=settings.audit_backups,
                encoding="utf-8")  # opened now: the file is there from start-up
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, record: AuditRecord, *, route: str, status: int,
              request_id: str | None = None, method: str | None = None,
              client: str | None = None) -> dict[str, Any]:
        """Write one line (and return it): the fields the README's "Keys and access" lists."""
        line: dict[str, Any] = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id, "key": record.key, "method": method, "route": route,
            "collection": record.collection, "status": status, "doc_ids": record.doc_ids,
            "client": client,
        }
        if self.questions and record.question is not None:
            line["question"] = record.question
        text = json.dumps(line, ensure_ascii=False)
        self.handler.handle(logging.makeLogRecord({"msg": text, "levelno": logging.INFO,
                                                   "levelname": "INFO"}))
        return line

    def close(self) -> None:
        self.handler.close()
