"""A SQLite store of every response, keyed by model identity + request.

Responses are written as soon as each chunk of requests is computed, so a run killed at any point
loses at most the chunk in flight; running the same command again computes only what is missing.
The cache is only a cache: a damaged one is refused with advice to move it aside, and a new one
recomputes what it held (run records never depend on it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

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


def check_cache_path(path: Path) -> None:
    """Refuse a --cache that cannot be a SQLite file, before anything is loaded."""
    if path.is_dir():
        raise EvalsuiteError(f"--cache {path} is a folder, not a cache file.",
                             f"pass a file path such as {path / 'cache.sqlite'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise EvalsuiteError(f"--cache {path}: {parent} is a file, so no folder can be made there.",
                                     "pass a --cache path inside a folder")
            break


class RequestCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        check_cache_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EvalsuiteError(f"Cannot create the cache folder {self.path.parent} ({err.strerror}).",
                                 "pass --cache a path in a writable folder") from None
        with self._guard():
            self.conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        """Several data-parallel processes open and write at once: WAL and a generous busy timeout.
        Switching to WAL ignores the busy timeout, so a process that finds the file locked while
        another one switches it waits and tries again."""
        deadline = time.monotonic() + 120
        while True:
            conn = sqlite3.connect(self.path, timeout=120)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(SCHEMA)
                conn.commit()
                return conn
            except sqlite3.OperationalError as err:
                conn.close()
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextlib.contextmanager
    def _guard(self):
        """Every way a cache file can be damaged (garbage at its start, in its middle, a truncated
        file) surfaces as ``sqlite3.DatabaseError`` somewhere: all get the same message."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if "full" in str(err) or getattr(err, "sqlite_errorcode", None) == errno.ENOSPC:
                raise EvalsuiteError(
                    f"The disk holding the cache {self.path} is full.",
                    "free space (or use --cache on another disk) and run the same command again to resume",
                ) from None
            if "unable to open" in str(err) or "readonly" in str(err):
                raise EvalsuiteError(f"The cache {self.path} cannot be opened for writing ({err}).",
                                     "pass --cache a path in a writable folder") from None
            raise self._damaged(err) from None
        except sqlite3.DatabaseError as err:
            raise self._damaged(err) from None

    def _damaged(self, err: Exception) -> EvalsuiteError:
        return EvalsuiteError(
            f"The cache {self.path} is damaged ({err}).",
            f"move it aside (mv {self.path} {self.path}.damaged) or pass --cache another.sqlite: it only holds "
            "responses, so run records are unaffected and the next run recomputes what it held",
        )

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, object]:
        """Cached responses of ``keys`` under ``namespace`` (the identity of whatever computed them)."""
        keys = list(keys)
        found: dict[str, object] = {}
        with self._guard():
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
        with self._guard(), self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?)", rows)

    def close(self) -> None:
        self.conn.close()
