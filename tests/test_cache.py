"""The response cache: every kind of damage gets the same clear message, and paths that cannot be a
cache file are refused before anything is loaded."""

from __future__ import annotations

import pytest

from evalsuite.cache import RequestCache
from evalsuite.errors import EvalsuiteError


def filled_cache(path, rows: int = 3000) -> None:
    cache = RequestCache(path)
    cache.put_many("ns", [(f"key-{i:05d}", "Loglikelihood", [-1.5 * i, False, 3]) for i in range(rows)])
    cache.close()


def damage(path, where: str) -> None:
    data = bytearray(path.read_bytes())
    if where == "start":
        data[:100] = b"\x00garbage" * 12 + b"\x00" * 4
    elif where == "middle":
        middle = len(data) // 2
        data[middle : middle + 8192] = b"\xff" * 8192
    else:  # truncated
        data = data[: len(data) // 3 + 17]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["start", "middle", "truncated"])
def test_every_damage_gets_the_same_message(tmp_path, where):
    path = tmp_path / "cache.sqlite"
    filled_cache(path)
    damage(path, where)
    with pytest.raises(EvalsuiteError) as err:
        cache = RequestCache(path)
        cache.get_many("ns", [f"key-{i:05d}" for i in range(3000)])
    message = str(err.value)
    assert f"The cache {path} is damaged" in message and "move it aside" in message
    assert "run records are unaffected" in message


def test_a_folder_is_not_a_cache_file(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(EvalsuiteError, match="is a folder, not a cache file") as err:
        RequestCache(runs)
    assert "delete" not in str(err.value)  # never advise deleting what may be a folder of runs


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(EvalsuiteError, match="notes.txt is a file, so no folder can be made there"):
        RequestCache(blocker / "sub" / "cache.sqlite")


def test_round_trip_and_namespaces(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    cache.put_many("model-a", [("k1", "Generate", ["text"])])
    assert cache.get_many("model-a", ["k1", "k2"]) == {"k1": ["text"]}
    assert cache.get_many("model-b", ["k1"]) == {}
    cache.close()
