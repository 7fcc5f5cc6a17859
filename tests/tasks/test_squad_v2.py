"""SQuAD v2: the real and official files, requests, abstention scoring and aggregation by hand, malformed input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult

CONFIDENT_ANSWER = LoglikelihoodResult(logprob=-5.0, is_greedy=False, n_tokens=3)  # na_prob = e^-5


def squad_file(questions: list[dict], title: str = "Rivers") -> dict:
    """An official dev-v2.0.json-shaped object with one paragraph holding ``questions``."""
    context = "The Arno flows through Florence and Pisa before it reaches the Ligurian Sea."
    return {"version": "v2.0", "data": [{"title": title, "paragraphs": [{"context": context, "qas": questions}]}]}


def answerable(qid: str, *texts: str) -> dict:
    return {"id": qid, "question": f"Question {qid}?", "is_impossible": False,
            "answers": [{"text": t, "answer_start": 0} for t in texts]}


def unanswerable(qid: str) -> dict:
    return {"id": qid, "question": f"Question {qid}?", "is_impossible": True, "answers": [],
            "plausible_answers": [{"text": "Pisa", "answer_start": 36}]}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def squad_doc(*golds: str) -> dict:
    return {"id": "q", "title": "T", "context": "C", "question": "Q?", "answers": list(golds) or [""],
            "has_answer": bool(golds)}


def squad_score(doc: dict, prediction: str, na_logprob: float = -5.0) -> dict:
    return get_task("squad_v2").score(doc, [[prediction], LoglikelihoodResult(na_logprob, False, 3)])


def test_squad_real_file(data_dir):
    dataset = get_task("squad_v2").load(data_dir)
    docs = {d["id"]: d for d in dataset.docs}
    assert len(dataset.docs) == len(docs) == 6078
    assert sum(not d["has_answer"] for d in dataset.docs) == 3168  # the count SOURCES.md gives
    first = dataset.docs[0]
    assert (first["title"], first["question"]) == ("Normans", "In what country is Normandy located?")
    assert first["answers"] == ["France"] * 4 and first["has_answer"]
    impossible = docs["c42edddd0f45b968cc4c512e5"]  # "Who gave their name to Normandy in the 1000's and 1100's"
    assert impossible["answers"] == [""] and not impossible["has_answer"]
    assert dataset.source.endswith("dev-v2.0.cs224n-subset.json")


def test_squad_official_format_by_absolute_path(tmp_path):
    path = write_json(tmp_path / "dev-v2.0.json", squad_file([answerable("a1", "Florence", "Florence and Pisa"),
                                                              unanswerable("u1")]))
    dataset = get_task("squad_v2", file=str(path)).load(None)  # absolute: no data folder needed
    assert [d["id"] for d in dataset.docs] == ["a1", "u1"]
    assert dataset.docs[0]["answers"] == ["Florence", "Florence and Pisa"]
    assert dataset.docs[1]["answers"] == [""] and not dataset.docs[1]["has_answer"]
    assert dataset.source == str(path)


def test_squad_official_format_relative_to_data_folder(tmp_path):
    (tmp_path / "squad_v2").mkdir()
    write_json(tmp_path / "squad_v2" / "dev-v2.0.json", squad_file([unanswerable("u1")]))
    docs = get_task("squad_v2", file="squad_v2/dev-v2.0.json").load(tmp_path).docs
    assert [d["answers"] for d in docs] == [[""]]


def test_squad_other_relative_file_needs_a_data_folder(monkeypatch):
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)
    with pytest.raises(EvalsuiteError, match="relative to the data folder"):
        get_task("squad_v2", file="squad_v2/dev-v2.0.json").load(None)


def test_squad_requests():
    doc = {"id": "q", "title": "Rivers", "context": "The Arno flows through Florence.", "question": "Where?",
           "answers": ["Florence"], "has_answer": True}
    generate, no_answer = get_task("squad_v2").requests(doc)
    expected = ('Title: Rivers\n\nBackground: The Arno flows through Florence.\n\nQuestion: Where?\n\n'
                'Answer the question from the background. If it cannot be answered from the background, '
                'answer "unanswerable".\n\nAnswer:')
    assert generate == Generate(expected, stop=("\n",), max_tokens=32, temperature=0.0)
    assert no_answer == Loglikelihood(expected, " unanswerable")


@pytest.mark.parametrize("prediction", ["unanswerable", " Unanswerable.", "", "No answer"])
def test_squad_abstention_on_unanswerable_scores_one(prediction):
    scores = squad_score(squad_doc(), prediction, na_logprob=-0.5)
    assert (scores["exact"], scores["f1"]) == (1.0, 1.0)
    assert scores["prediction_normalized"] == "" and scores["prediction"] == prediction
    assert scores["na_prob"] == pytest.approx(math.exp(-0.5)) and scores["has_answer"] is False


def test_squad_answer_on_unanswerable_scores_zero():
    scores = squad_score(squad_doc(), "Pisa")
    assert (scores["exact"], scores["f1"]) == (0.0, 0.0)


def test_squad_answerable():
    doc = squad_doc("Florence", "Florence and Pisa")
    assert squad_score(doc, " the Florence.")["exact"] == 1.0  # articles, punctuation, spaces go
    # "in florence" vs "florence": P 1/2, R 1 -> 2/3 (the other gold gives P 1/2, R 1/3 -> 0.4)
    assert squad_score(doc, "in Florence")["f1"] == pytest.approx(2 / 3)
    assert (squad_score(doc, "unanswerable")["exact"], squad_score(doc, "unanswerable")["f1"]) == (0.0, 0.0)
    # A sentence that merely mentions the phrase is an answer, not an abstention.
    assert squad_score(doc, "it is unanswerable here")["prediction_normalized"] == "it is unanswerable here"


def test_squad_aggregate_hand_computed():
    # Two answerable (EM 1 / F1 1, and EM 0 / F1 2/3) and two unanswerable (abstained; answered).
    cases = [(squad_doc("Florence"), "Florence", 0.1), (squad_doc("Florence"), "in Florence", 0.2),
             (squad_doc(), "unanswerable", 0.9), (squad_doc(), "Pisa", 0.6)]
    docs = [doc for doc, _, _ in cases]
    scores = [squad_score(doc, pred, math.log(na)) for doc, pred, na in cases]
    m = get_task("squad_v2").aggregate(docs, scores)
    assert m["exact"].value == pytest.approx(50.0) and m["exact"].n == 4
    assert m["f1"].value == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert m["exact"].stderr == pytest.approx(100 / math.sqrt(3) / 2)  # sd of (100, 0, 100, 0) / sqrt(4)
    assert (m["HasAns_exact"].value, m["HasAns_f1"].value) == pytest.approx((50.0, 100 * (1 + 2 / 3) / 2))
    assert (m["NoAns_exact"].value, m["NoAns_f1"].value, m["NoAns_exact"].n) == pytest.approx((50.0, 50.0, 2))
    assert m["HasAns_exact"].stderr == pytest.approx(50.0)  # sd of (100, 0) is 70.71, / sqrt(2)
    # Threshold sweep, by na_prob: abstain everywhere = 2 (the NoAns); answer the 0.1 one: +1 = 3;
    # the 0.2 one: EM +0, F1 +2/3; the 0.6 one (wrong answer on NoAns): -1; the 0.9 one: still right.
    assert m["best_exact"].value == pytest.approx(75.0) and m["best_exact"].stderr is None
    assert m["best_f1"].value == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert set(m) == {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1"}


def test_squad_aggregate_without_unanswerable_questions():
    docs = [squad_doc("Florence")] * 2
    m = get_task("squad_v2").aggregate(docs, [squad_score(d, "Florence") for d in docs])
    assert "NoAns_exact" not in m and m["HasAns_exact"].value == 100.0


def test_squad_malformed_question_names_file_and_row(tmp_path):
    broken = {"id": "b1", "question": "Why?", "is_impossible": False, "answers": []}  # answerable with no answer
    path = write_json(tmp_path / "dev-v2.0.json", squad_file([answerable("a1", "Florence"), broken]))
    with pytest.raises(EvalsuiteError, match=r"dev-v2\.0\.json at line 2: question 'b1': is_impossible is False"):
        get_task("squad_v2", file=str(path)).load(None)


def test_squad_duplicate_id(tmp_path):
    path = write_json(tmp_path / "dev.json", squad_file([unanswerable("u1"), unanswerable("u1")]))
    with pytest.raises(EvalsuiteError, match=r"dev\.json at line 2: id 'u1' appears twice"):
        get_task("squad_v2", file=str(path)).load(None)


def test_squad_sample_offline(offline):
    squad = get_task("squad_v2")
    dataset = squad.load(None)
    assert dataset.source == "sample:squad_v2/dev-v2.0.cs224n-subset.json"
    assert [d["id"] for d in dataset.docs] == [f"sample-{i}" for i in range(1, 6)]
    assert [d["has_answer"] for d in dataset.docs] == [True, True, False, True, False]
    # A perfect reader scores 100 on the sample: the golds, and abstentions, are consistent.
    scores = [squad.score(d, [[d["answers"][0] or "unanswerable"], CONFIDENT_ANSWER]) for d in dataset.docs]
    assert squad.aggregate(dataset.docs, scores)["f1"].value == 100.0
