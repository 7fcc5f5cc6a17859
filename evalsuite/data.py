"""Finding a task's data: a local folder, else the Hugging Face Hub, else a small bundled sample.

A data folder (``--data-dir`` or ``EVALSUITE_DATA``) holds each dataset in its original file
format under a fixed relative path (``truthfulqa/v0/mc_task.json``, ...). Without one, tasks load
from the Hub when it is reachable, and otherwise from a few sample rows each task writes in the
same original format, so the whole pipeline runs offline on a fresh machine.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from evalsuite.errors import EvalsuiteError, malformed
from evalsuite.fileio import read_text, sha256_file, sha256_json
from evalsuite.paths import home
from evalsuite.task import Dataset, Doc

DATA_ENV = "EVALSUITE_DATA"


def data_root(data_dir: str | Path | None) -> Path | None:
    root = data_dir or os.environ.get(DATA_ENV)
    return Path(root).expanduser() if root else None


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


def load_source(
    task: str,
    relpath: str,
    data_dir: str | Path | None,
    parse: Callable[[Path], list[Doc]],
    sample: str,
    hub: Callable[[], list[Doc]] | None = None,
    hub_name: str = "",
    extra: dict[str, str] | None = None,
) -> Dataset:
    """Load a task's documents from the first source that has them (see module docstring)."""
    root = data_root(data_dir)
    if root is not None:
        path = root / relpath
        if not path.is_file():
            raise EvalsuiteError(
                f"{task}: data file not found at {path}.",
                f"point --data-dir or {DATA_ENV} at a folder holding {relpath}, or unset both to use the Hub",
            )
        return Dataset(_checked(parse(path), path), str(path), sha256_file(path))
    if hub is not None and hub_reachable():
        docs = hub()
        return Dataset(docs, f"hub:{hub_name}", sha256_json(docs))
    samples = home() / "samples"
    for rel, text in {relpath: sample, **(extra or {})}.items():  # extra: files the parser reads beside it
        _write_if_changed(samples / rel, text)
    path = samples / relpath
    _note_once(
        f"note: {task} runs on a small built-in sample (no data folder set, Hub unreachable); "
        f"set {DATA_ENV} to a folder holding {relpath} for real numbers"
    )
    return Dataset(_checked(parse(path), path), f"sample:{relpath}", sha256_file(path))


@cache
def _note_once(message: str) -> None:
    print(message, file=sys.stderr)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _checked(docs: list[Doc], path: Path) -> list[Doc]:
    if not docs:
        raise EvalsuiteError(f"{path} holds no rows.", "check the file is complete (re-download it)")
    return docs


def read_json(path: Path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise malformed(path, err.lineno, err.msg) from None


def read_csv(path: Path, delimiter: str = ",", columns: tuple[str, ...] = ()) -> list[tuple[int, dict]]:
    """(line number, row) of every row of a CSV/TSV file with a header; ``columns`` must be in it."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise malformed(path, 1, f"missing column(s) {', '.join(missing)}")
    return [(reader.line_num, row) for row in reader]



# --- helpers for tasks that read a user-chosen file and check rows ----------------------------------


@dataclass(frozen=True)
class FileSource:
    """Where a task with a ``file`` parameter (relative to the data folder, or absolute) reads its data."""

    task: str
    default_file: str
    parse: Callable[[Path], list[Doc]]
    sample: str  # a few invented rows in the default file's format
    hub: Callable[[], list[Doc]]
    hub_name: str

    def load(self, file: str, data_dir: str | Path | None) -> Dataset:
        """An absolute path is the user's own file: read from its folder, never replaced by the Hub or
        the sample. Only the default file stands for the Hub dataset, so another relative file with no
        data folder is an error rather than a silent switch to other data."""
        path = Path(file).expanduser()
        if path.is_absolute():
            return load_source(self.task, path.name, path.parent, self.parse, self.sample)
        if file != self.default_file and data_root(data_dir) is None:
            raise EvalsuiteError(
                f"{self.task}: file={file!r} is relative to the data folder, but no data folder is set.",
                f"set --data-dir or {DATA_ENV}, or give an absolute path",
            )
        return load_source(self.task, file, data_dir, self.parse, self.sample, self.hub, self.hub_name)

    def describe(self, file: str) -> str:
        """For `evalsuite tasks`: the file, and the Hub dataset that stands in for the default one."""
        return f"{file} | hub {self.hub_name}" if file == self.default_file else file


def has_fields(obj: Any, **types: type) -> bool:
    """``obj`` is a JSON object whose fields have the given types (has_fields(row, question=str))."""
    return isinstance(obj, dict) and all(isinstance(obj.get(key), kind) for key, kind in types.items())


def expect(ok: bool, path: Path, row: int, problem: str) -> None:
    """Raise the standard malformed-row error unless ``ok``."""
    if not ok:
        raise malformed(path, row, problem)


def check_unique_ids(docs: list[Doc], path: Path) -> None:
    seen: set[str] = set()
    for row, doc in enumerate(docs, start=1):
        expect(doc["id"] not in seen, path, row, f"id {doc['id']!r} appears twice")
        seen.add(doc["id"])
