"""Atomic writes, folders built under a temporary name, digests, and text files read with clear errors."""

from __future__ import annotations

import hashlib

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_folder, atomic_write, atomic_write_jsonl, read_jsonl, read_text, sha256_file


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    atomic_write(target, "old")

    def rows():
        yield {"a": 1}
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(target, rows())
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (target / "config.json").read_text() == "{}"


def test_two_builders_of_one_folder_the_second_uses_the_first(tmp_path):
    """Two processes converting the default model at once: the loser keeps the winner's folder."""
    target = tmp_path / "model"
    with atomic_folder(target) as slow:
        (slow / "weights").write_text("slow")
        with atomic_folder(target) as fast:
            (fast / "weights").write_text("fast")
    assert (target / "weights").read_text() == "fast"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_folder_replace(tmp_path):
    target = tmp_path / "ckpt"
    for content in ("one", "two"):
        with atomic_folder(target, replace=True) as tmp:
            (tmp / "w").write_text(content)
    assert (target / "w").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_sha256_file_with_an_unwritable_memo_still_hashes(tmp_path):
    data = tmp_path / "weights.bin"
    data.write_bytes(b"x" * 10_000_000)
    blocker = tmp_path / "file"
    blocker.write_text("")
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    assert sha256_file(data, memo=blocker / "digests.json") == expected  # the memo cannot be written: skipped
    memo = tmp_path / "digests.json"
    assert sha256_file(data, memo=memo) == expected and memo.is_file()
    assert sha256_file(data, memo=memo) == expected


def test_non_utf8_byte_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": "caf\xe9"}\n')
    with pytest.raises(EvalsuiteError, match=r"data.jsonl at line 3: byte 0xe9 is not UTF-8"):
        read_text(path)
    path.write_bytes(b'{"a": 1}\n\n{"a": \n')
    with pytest.raises(EvalsuiteError, match=r"at line 3: not JSON"):
        list(read_jsonl(path))
