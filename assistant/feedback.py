"""Answer feedback (thumbs up/down + comment) in SQLite under CX_DATA_DIR, and its export as
evaluation-suite lines so complaints become test cases.

Each row keeps the collection it was given on (the callers store the resolved default, not
None), so an export can be limited to the collections the exporting key may read.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.schemas import FeedbackRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    collection TEXT,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT
)
"""


class FeedbackStore:
    """One SQLite file; a connection per call keeps it safe across server threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        if not self._ready:
            with self._lock:
                conn.execute(_SCHEMA)
                conn.commit()
                self._ready = True
        return conn

    def add(self, item: FeedbackRequest) -> int:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        conn = self._connect()
        try:
            with conn:
                cur = conn.execute(
                    "INSERT INTO feedback (created_at, collection, question, answer, citations,"
                    " rating, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, item.collection, item.question, item.answer,
                     json.dumps(item.citations, ensure_ascii=False, default=str), item.rating,
                     item.comment),
                )
            return int(cur.lastrowid or 0)
        finally:
            conn.close()

    def items(self, rating: str | None = None) -> list[dict[str, Any]]:
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            sql = "SELECT * FROM feedback"
            rows = conn.execute(sql + (" WHERE rating = ? ORDER BY id" if rating else
                                       " ORDER BY id"), (rating,) if rating else ()).fetchall()
            return [dict(row) for row in rows]
        finally:
            conn.close()

    def export_suite(self, readable: Callable[[str | None], bool] | None = None
                     ) -> list[dict[str, Any]]:
        """Thumbs-down items as eval-suite lines (CONTRACT: id, question, relevant, answerable,
        expect_any); with `readable`, only the rows of collections it accepts (None is a row
        stored without a collection, i.e. on the default one).

        The user only said the answer was bad, not what a good one is, so each line is a draft
        for a maintainer: `relevant` holds the documents the bad answer cited (to confirm or
        replace), `answerable` is true (a complaint means the user expected an answer),
        `expect_any` is empty, and the extra keys carry the comment and the answer given.
        """
        lines = []
        for row in self.items("down"):
            if readable is not None and not readable(row["collection"]):
                continue
            cited = [str(c.get("doc_id")) for c in json.loads(row["citations"])
                     if isinstance(c, dict) and c.get("doc_id")]
            lines.append({
                "id": f"feedback-{row['id']}",
                "question": row["question"],
                "relevant": list(dict.fromkeys(cited)),
                "answerable": True,
                "expect_any": [],
                "kind": "feedback",
                "comment": row["comment"] or "",
                "answer_given": row["answer"],
                "collection": row["collection"],
                "created_at": row["created_at"],
            })
        return lines
