"""A SQLite store of every response, keyed by model identity + request.

Responses are written as soon as each chunk of requests is computed, so a run killed at any point
loses at most the chunk in flight; running the same command again computes only what is missing.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path
from typing import Iterable

from evalsuite.errors import EvalsuiteError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
)
"""


class RequestCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Several data-parallel processes may write at once: WAL + a generous busy timeout.
            self.conn = sqlite3.connect(self.path, timeout=120)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(SCHEMA)
            self.conn.commit()
        except sqlite3.DatabaseError as err:
            raise EvalsuiteError(
                f"The cache {self.path} cannot be opened ({err}).", "delete it, or pass --cache another/path.sqlite"
            ) from None

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, object]:
        """Cached responses of ``keys`` under ``namespace`` (the identity of whatever computed them)."""
        keys = list(keys)
        found: dict[str, object] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key, response FROM responses WHERE namespace=? AND key IN ({marks})", [namespace, *chunk]
            )
            found.update((key, json.loads(resp)) for key, resp in rows)
        return found

    def put_many(self, namespace: str, items: Iterable[tuple[str, str, object]]) -> None:
        """Store (key, kind, response) triples in one transaction."""
        rows = [(namespace, key, kind, json.dumps(resp)) for key, kind, resp in items]
        try:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?)", rows)
        except sqlite3.OperationalError as err:
            if "full" in str(err) or getattr(err, "sqlite_errorcode", None) == errno.ENOSPC:
                raise EvalsuiteError(
                    f"The disk holding the cache {self.path} is full.",
                    "free space (or use --cache on another disk) and run the same command again to resume",
                ) from None
            raise

    def close(self) -> None:
        self.conn.close()
