"""DROP: the real and original files, requests, scoring and aggregation by hand, malformed input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task
from evalsuite.requests import Generate


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def drop_score(prediction: str, golds: list) -> dict:
    doc = {"id": "1", "passage": "P", "question": "Q?", "golds": golds}
    return get_task("drop").score(doc, [[prediction]])


def test_drop_real_file(data_dir):
    dataset = get_task("drop").load(data_dir)
    assert len(dataset.docs) == 9536
    assert len({d["id"] for d in dataset.docs}) == 9536
    # Line 2 and 3 of the file carry alternatives: "Pakistanis and Filipinos|Pakistani and Filipino", "50.6|49.7".
    assert dataset.docs[1]["golds"] == ["Pakistanis and Filipinos", "Pakistani and Filipino"]
    assert dataset.docs[2]["golds"] == ["50.6", "49.7"]
    assert dataset.docs[2]["question"].startswith("How many billions of dollars")
    # The rendered prompt is the file's own context without its "Passage: " label, for every row.
    with gzip.open(data_dir / "drop" / "drop_v0_dev.jsonl.gz", "rt", encoding="utf-8") as handle:
        contexts = [json.loads(line)["context"] for line in handle]
    drop = get_task("drop")
    assert all("Passage: " + drop.requests(doc)[0].context == c for doc, c in zip(dataset.docs, contexts))
    assert drop.score(dataset.docs[2], [[" 49.7"]])["em"] == 1.0  # the second alternative counts


DROP_PASSAGE = "The Otters led 12-3 at halftime. Alice Moore and Bob Lee scored touchdowns. It was 3 June 1990."


NO_DATE = {"day": "", "month": "", "year": ""}


def drop_original() -> dict:
    """An original drop_dataset_dev.json object: a number, a multi-span and a date answer."""
    number = {"number": "12", "date": NO_DATE, "spans": []}
    return {
        "nfl_1": {
            "passage": DROP_PASSAGE,
            "qa_pairs": [
                {"question": "How many points did the Otters have at halftime?", "query_id": "q-num",
                 "answer": number, "validated_answers": [dict(number, number="12.0")]},
                {"question": "Who scored touchdowns?", "query_id": "q-spans",
                 "answer": {"number": "", "date": NO_DATE, "spans": ["Alice Moore", "Bob Lee"]},
                 "validated_answers": []},
                {"question": "When was the game?", "query_id": "q-date",
                 "answer": {"number": "", "date": {"day": "3", "month": "June", "year": "1990"}, "spans": []}},
            ],
        }
    }


@pytest.mark.parametrize("indent", [2, None])  # pretty-printed like the original, and compact on one line
def test_drop_original_json(tmp_path, indent):
    path = tmp_path / "drop_dataset_dev.json"
    path.write_text(json.dumps(drop_original(), indent=indent), encoding="utf-8")
    drop = get_task("drop", file=str(path))
    docs = drop.load(None).docs
    assert [d["id"] for d in docs] == ["q-num", "q-spans", "q-date"]
    assert [d["golds"] for d in docs] == [["12", "12.0"], [["Alice Moore", "Bob Lee"]], ["3 June 1990"]]
    expected = DROP_PASSAGE + "\nQuestion: How many points did the Otters have at halftime?\nAnswer:"
    assert drop.requests(docs[0])[0].context == expected
    # One of two gold spans: EM 0; F1 pairs "Alice Moore" with its gold (1.0) and leaves a slot empty (0) -> 0.5.
    assert drop.score(docs[1], [["Alice Moore"]]) == {"em": 0.0, "f1": 0.5, "prediction": "Alice Moore"}
    assert drop.score(docs[2], [["June 3, 1990"]])["f1"] == 1.0  # same bag of tokens, other order


def test_drop_original_json_gzipped(tmp_path):
    path = tmp_path / "drop_dataset_dev.json.gz"
    path.write_bytes(gzip.compress(json.dumps(drop_original()).encode()))
    assert len(get_task("drop", file=str(path)).load(None).docs) == 3


def test_drop_requests_never_stop_at_a_period():
    doc = {"id": "1", "passage": "The ratio was 3.5.", "question": "What was the ratio?", "golds": ["3.5"]}
    (generate,) = get_task("drop").requests(doc)
    expected = "The ratio was 3.5.\nQuestion: What was the ratio?\nAnswer:"
    assert generate == Generate(expected, stop=("\n",), max_tokens=32)


def test_drop_scoring():
    assert drop_score(" 3.5", ["3.5"])["em"] == 1.0  # the decimal survives
    assert drop_score("3", ["3.5"]) == {"em": 0.0, "f1": 0.0, "prediction": "3"}
    assert drop_score("49.7", ["50.6", "49.7"])["em"] == 1.0  # any alternative
    # {answer, is, 3.5} vs {3.5}: P 1/3, R 1 -> 0.5
    assert drop_score("The answer is 3.5", ["3.5"]) == {"em": 0.0, "f1": 0.5, "prediction": "The answer is 3.5"}


def test_drop_aggregate():
    drop = get_task("drop")
    docs = [{"id": str(i), "passage": "P", "question": "Q?", "golds": ["2"]} for i in range(3)]
    scores = [drop.score(d, [[p]]) for d, p in zip(docs, ["2", "two", "2.0"])]
    m = drop.aggregate(docs, scores)
    assert set(m) == {"em", "f1"}
    assert m["em"].value == pytest.approx(2 / 3) and m["em"].stderr == pytest.approx(1 / 3)  # sd 0.577 / sqrt 3


def test_drop_malformed_line_names_file_and_line(tmp_path):
    good = {"context": "Passage: P\nQuestion: Q?\nAnswer:", "ref_text": "1"}
    bad = {"context": "Passage: P\nQuestion: Q?\nAnswer:"}  # no ref_text
    path = tmp_path / "mine.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in [good, good, bad]).encode()))
    with pytest.raises(EvalsuiteError, match=r"mine\.jsonl\.gz at line 3: needs 'context' and 'ref_text'"):
        get_task("drop", file=str(path)).load(None)


def test_drop_original_answer_without_value(tmp_path):
    data = drop_original()
    data["nfl_1"]["qa_pairs"][1]["answer"] = {"spans": []}  # no number, no spans, no date
    path = write_json(tmp_path / "drop_dataset_dev.json", data)
    with pytest.raises(EvalsuiteError, match=r"drop_dataset_dev\.json at line 2: question 'q-spans'"):
        get_task("drop", file=str(path)).load(None)


def test_drop_sample_offline(offline):
    drop = get_task("drop")
    dataset = drop.load(None)
    assert dataset.source == "sample:drop/drop_v0_dev.jsonl.gz"
    assert [d["golds"] for d in dataset.docs] == [["2", "two"], ["0.1"], ["Sweden and Russia", "Russia and Sweden"]]
    assert dataset.docs[0]["question"] == "How many touchdowns did the Otters score in the first quarter?"
