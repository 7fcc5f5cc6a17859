"""The prompt split: fixed by the prompt text, the same across files; validation by prompt."""

from __future__ import annotations

from evalsuite.trainers.formats import Comparison, load
from evalsuite.trainers.splits import HELDOUT_FRACTION, bucket, part, prompt_key, select, split_valid


def comparison(text: str, responses=("a", "b")) -> Comparison:
    return Comparison([{"role": "user", "content": text}], list(responses), "here")


def test_bucket_is_a_fixed_function_of_the_text():
    assert bucket("hello", "s") == bucket("hello", "s")
    assert bucket("hello", "s") != bucket("hello", "t") and 0 <= bucket("x", "s") < 1
    # a stored value (the first 8 bytes of sha256("evalsuite-part-v1\0user: Hi") over 2^64): changing the
    # hash would move prompts between parts across releases
    assert bucket(prompt_key(comparison("Hi").prompt), "evalsuite-part-v1") == 0.36939708099621177
    assert part(comparison("Hi").prompt) == "train"
    assert prompt_key([{"role": "user", "content": "  Hi \n"}]) == "user: Hi"


def test_parts_and_validation_are_by_prompt():
    many = [comparison(f"prompt {i}") for i in range(2000)]
    heldout = select(many, "heldout")
    assert abs(len(heldout) / len(many) - HELDOUT_FRACTION) < 0.03
    assert {prompt_key(c.prompt) for c in heldout}.isdisjoint(prompt_key(c.prompt) for c in select(many, "train"))
    assert len(select(many, "all")) == 2000
    repeated = [comparison(f"q{i % 50}", (f"r{i}", f"s{i}")) for i in range(500)]  # ten rows per prompt
    train, valid = split_valid(repeated, 0.2)
    assert len(train) + len(valid) == 500 and 0 < len(valid) < 500
    assert {prompt_key(c.prompt) for c in train}.isdisjoint(prompt_key(c.prompt) for c in valid)
    assert split_valid(repeated, 0.0) == (repeated, [])


def test_shared_data_parts_agree_across_files(data_dir):
    harmless = load(str(data_dir / "hh_rlhf/harmless-base/test.jsonl.gz"), "comparisons").examples
    helpful = load(str(data_dir / "hh_rlhf/helpful-base/test.jsonl.gz"), "comparisons").examples
    by_key = {}
    for c in harmless + helpful:
        by_key.setdefault(prompt_key(c.prompt), set()).add(part(c.prompt))
    assert all(len(parts) == 1 for parts in by_key.values())
    share = len(select(harmless + helpful, "heldout")) / len(harmless + helpful)
    assert abs(share - HELDOUT_FRACTION) < 0.03
