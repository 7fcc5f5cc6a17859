"""Demonstration and comparison formats: detected per file, parsed, reported; bad rows are one line."""

from __future__ import annotations

import gzip
import json

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.trainers.formats import load


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


USER = [{"role": "user", "content": "Hi"}]


def test_demonstration_formats(tmp_path):
    cases = {
        "prompt-response": [{"prompt": "Say hi", "response": "hi"}, {"prompt": USER, "completion": "hello"}],
        "alpaca": [{"instruction": "Add", "input": "2 and 3", "output": "5"}, {"instruction": "Wave", "output": "o/"}],
        "messages": [{"messages": [*USER, {"role": "assistant", "content": "Hello!"}]}],
        "self-instruct": [{"id": "t0", "instruction": "Sort", "instances": [{"input": "b a", "output": "a b"},
                                                                          {"input": "", "output": "-"}]}],
        "hh-rlhf": [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: How are you?\n\nAssistant: Fine."}],
    }
    for name, rows in cases.items():
        data = load(write_jsonl(tmp_path / f"{name}.jsonl", rows), "demonstrations")
        assert data.format == name and data.rows == len(rows)
    alpaca = load(str(tmp_path / "alpaca.jsonl"), "demonstrations").examples
    assert alpaca[0].prompt == [{"role": "user", "content": "Add\n\n2 and 3"}] and alpaca[0].response == "5"
    assert alpaca[1].prompt == [{"role": "user", "content": "Wave"}]
    assert len(load(str(tmp_path / "self-instruct.jsonl"), "demonstrations").examples) == 2  # one per instance
    hh = load(str(tmp_path / "hh-rlhf.jsonl"), "demonstrations").examples[0]
    assert hh.prompt == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": "How are you?"}]
    assert hh.response == "Fine." and hh.where.endswith("hh-rlhf.jsonl:1")


def test_comparison_formats(tmp_path):
    ranked = load(write_jsonl(tmp_path / "r.jsonl", [
        {"prompt": "Q", "responses": ["best", "mid", "worst"]},
        {"prompt": "Q2", "responses": ["c", "a", "b"], "ranks": [3, 1, 2]},
        {"prompt": USER, "responses": [{"text": "x", "rank": 2}, {"text": "y", "rank": 1}]},
    ]), "comparisons")
    assert ranked.format == "ranked"
    assert [c.responses for c in ranked.examples] == [["best", "mid", "worst"], ["a", "b", "c"], ["y", "x"]]
    pairs = load(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}]),
                 "comparisons")
    assert pairs.format == "pairs" and pairs.examples[0].responses == ["good", "bad"]
    hh = tmp_path / "hh.jsonl.gz"
    hh.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."},
        {"chosen": "\n\nHuman: A\n\nAssistant: B", "rejected": "\n\nHuman: other\n\nAssistant: C"},
        {"chosen": "\n\nHuman: A\n\nAssistant: same", "rejected": "\n\nHuman: A\n\nAssistant: same"},
    ])))
    data = load(str(hh), "comparisons")
    assert data.format == "hh-rlhf" and len(data.examples) == 1
    assert data.examples[0].prompt == [{"role": "user", "content": "Hi"}]
    assert data.examples[0].responses == ["Hello!", "Go away."]
    assert data.skipped == {"whose chosen and rejected dialogues differ before the last reply": 1,
                            "with identical responses": 1}
    assert "skipped: 1 whose chosen" in data.summary()


def test_alpaca_eval_annotations_ties_are_skipped_and_counted(tmp_path):
    rows = [
        {"instruction": "I1", "output_1": "a", "output_2": "b", "preference": 1},
        {"instruction": "I2", "output_1": "a", "output_2": "b", "preference": 2.0},
        {"instruction": "I3", "output_1": "a", "output_2": "b", "preference": 1.93},  # soft: output_2
        {"instruction": "I4", "output_1": "a", "output_2": "b", "preference": 0},
        {"instruction": "I5", "output_1": "a", "output_2": "b", "preference": 1.5},
    ]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))  # AlpacaEval ships a JSON array
    data = load(str(path), "comparisons")
    assert data.format == "alpaca-eval"
    assert [c.responses for c in data.examples] == [["a", "b"], ["b", "a"], ["b", "a"]]
    assert data.skipped == {"ties": 2} and data.describe()["examples"] == 3


@pytest.mark.parametrize(("rows", "kind", "expected"), [
    ([{"prompt": "Q", "responses": ["only one"]}], "comparisons", "line 1: a comparison needs at least two responses"),
    ([{"prompt": "Q", "responses": ["a", "b"]}, {"prompt": "Q", "responses": ["a", "b"], "ranks": [1, 1]}],
     "comparisons", "line 2: equal ranks [1, 1]"),
    ([{"prompt": "Q", "response": "a"}, {"prompt": "Q", "response": 3}], "demonstrations",
     "line 2: field 'response' (or 'completion') must be text"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], "demonstrations", "must end with an assistant reply"),
    ([{"chosen": "no markers here"}], "demonstrations", "not an HH-RLHF dialogue"),
])
def test_bad_rows_name_file_and_line(tmp_path, rows, kind, expected):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(EvalsuiteError) as err:
        load(path, kind)
    assert "Malformed row in" in str(err.value) and "bad.jsonl" in str(err.value) and expected in str(err.value)


def test_not_json_and_unknown_format(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{not json\n')
    with pytest.raises(EvalsuiteError, match=r"broken.jsonl at line 2: not JSON"):
        load(str(path), "demonstrations")
    with pytest.raises(EvalsuiteError) as err:
        load(write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}]), "demonstrations")
    message = str(err.value)
    assert "unknown demonstrations format (line 1 has fields answer, question)" in message
    assert "prompt/response" in message and "instruction/input/output" in message
    with pytest.raises(EvalsuiteError, match="does not exist"):
        load(str(tmp_path / "missing.jsonl"), "demonstrations")


def test_the_shared_data_files(data_dir):
    seed = load(str(data_dir / "stanford_alpaca/seed_tasks.jsonl"), "demonstrations")
    user = load(str(data_dir / "self_instruct/user_oriented_instructions.jsonl"), "demonstrations")
    assert (seed.format, len(seed.examples), user.format, len(user.examples)) == ("self-instruct", 175,
                                                                                  "self-instruct", 252)
    for name, expected in (("harmless-base", 2312), ("helpful-base", 2354)):
        hh = load(str(data_dir / f"hh_rlhf/{name}/test.jsonl.gz"), "comparisons")
        assert hh.format == "hh-rlhf" and len(hh.examples) + sum(hh.skipped.values()) == expected
        assert all(len(c.responses) == 2 and c.prompt[-1]["role"] == "user" for c in hh.examples)
    assert load(str(data_dir / "hh_rlhf/helpful-base/test.jsonl.gz"), "demonstrations").format == "hh-rlhf"


def test_a_dataset_folder_is_read_through_datasets(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}] * 3)
    data = load(str(folder), "comparisons")  # the same code path as a Hub dataset name
    assert data.format == "pairs" and len(data.examples) == 3 and data.path.endswith("my_dataset:train")
    assert len(data.sha256) == 64
    with pytest.raises(EvalsuiteError, match="does not exist and the Hub is not reachable"):
        load("someone/no-such-dataset", "comparisons")
