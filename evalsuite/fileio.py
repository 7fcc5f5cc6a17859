"""Files written so that a crash or a full disk never leaves half of one, and digests of what was read.

Every file evalsuite writes (run records, checkpoints, reports, converted models, caches of derived
files) goes through ``atomic_write`` or ``atomic_folder``: the content is written to a temporary
name beside the target, flushed to disk, then renamed over it, so a reader sees the old file or the
new one, never a mixture. Every digest (data files, weights, templates) comes from ``sha256_file``
or ``sha256_text``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from evalsuite.errors import EvalsuiteError, malformed

BLOCK = 1 << 22  # 4 MiB reads: weights are hashed without holding them in memory


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    """Digest of a JSON-able value, independent of key order."""
    return sha256_text(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))


def sha256_file(path: Path, memo: Path | None = None) -> str:
    """sha256 of a file's bytes, read in blocks.

    With ``memo`` (a JSON file), the digest is remembered by (path, size, modification time), so a
    multi-gigabyte weight file is hashed once. The memo is only a speed-up: when it cannot be read
    or written (a read-only folder), the file is hashed and nothing else happens.
    """
    path = Path(path)
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known = _read_memo(memo) if memo else {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    value = digest.hexdigest()
    if memo:
        with contextlib.suppress(OSError):  # another process may write it too: last writer wins, both right
            atomic_write(memo, json.dumps(_read_memo(memo) | {key: value}))
    return value


def _read_memo(memo: Path) -> dict[str, str]:
    try:
        value = json.loads(memo.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_full(err: OSError, where: Path) -> EvalsuiteError | None:
    """The standard message for a full disk, or None when ``err`` is something else."""
    if err.errno != errno.ENOSPC:
        return None
    return EvalsuiteError(f"The disk holding {where} is full.", "free space and run the same command again")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    atomic_write_lines(path, [data])


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """One JSON value per line (written as they come, so rows can be a generator)."""
    atomic_write_lines(path, (json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows))


def atomic_write_lines(path: Path, chunks: Iterable[str | bytes]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_folder(path: Path, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``, then rename it into place.

    Yields the temporary folder to fill. On success it becomes ``path`` (an existing ``path`` is
    replaced only with ``replace``: it is renamed aside first and removed after, so a crash in
    between leaves one complete folder). On failure the temporary folder is removed and ``path``
    is untouched. If another process created ``path`` meanwhile and ``replace`` is false, its folder
    wins and ours is discarded (the caller's content is assumed equivalent: a conversion cache).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        if replace and path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, path)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not path.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # lost the race: the winner's folder stays
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: Path) -> str:
    """A UTF-8 text file (a byte-order mark is dropped); a byte that is not UTF-8 is a one-line
    error naming the file and line, like any other malformed row."""
    return decode_text(Path(path).read_bytes(), path)


def decode_text(raw: bytes, path: Path) -> str:
    """``raw`` (the bytes of ``path``) as text; see ``read_text``."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark (TruthfulQA's v0 CSV has one)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        problem = f"byte 0x{raw[err.start]:02x} is not UTF-8 text (re-save the file as UTF-8)"
        raise malformed(path, line, problem) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line; a line that is not JSON is a one-line error."""
    return json_lines(read_text(path), path)


def json_lines(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """``read_jsonl`` on text already read from ``path``."""
    # split("\n"), not splitlines(): JSON strings may hold U+2028, which splitlines() would cut at.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise malformed(path, number, f"not JSON ({err.msg})") from None
