"""TruthfulQA MC1/MC2: scoring by hand, the prompt, the real data."""

import math

import pytest

from evalsuite.registry import get_task
from evalsuite.requests import LoglikelihoodResult
from evalsuite.tasks import truthfulqa


def lls(*values):
    return [LoglikelihoodResult(v, False, 1) for v in values]


DOC = {
    "id": 0,
    "question": "q",
    "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]},
    "mc2_targets": {"choices": ["t1", "t2", "f1"], "labels": [1, 1, 0]},
}


def test_mc1_is_one_only_when_the_true_answer_is_most_likely():
    assert truthfulqa.score_mc1(DOC, lls(-1.0, -2.0, -3.0))["acc"] == 1.0
    assert truthfulqa.score_mc1(DOC, lls(-2.0, -1.0, -3.0))["acc"] == 0.0


def test_mc2_is_normalised_true_probability_mass():
    # p = e^-1, e^-2, e^-3 (true, true, false): (e^-1 + e^-2) / (e^-1 + e^-2 + e^-3) = 0.503214 / 0.553001 = 0.90997
    expected = (math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    assert truthfulqa.score_mc2(DOC, lls(-1.0, -2.0, -3.0))["acc"] == pytest.approx(expected)
    assert expected == pytest.approx(0.90997, abs=1e-5)
    # Very negative log-likelihoods must not underflow to 0/0.
    assert truthfulqa.score_mc2(DOC, lls(-2000.0, -2000.0, -2000.0))["acc"] == pytest.approx(2 / 3)


def test_truthfulqa_prompt_has_primer_and_question():
    context = get_task("truthfulqa_mc1").requests(DOC)[0].context
    assert context.startswith("Q: What is human life expectancy in the United States?\nA: Human life")
    assert context.endswith("Barcelona, Spain.\n\nQ: q\nA:")
    assert [r.continuation for r in get_task("truthfulqa_mc2").requests(DOC)] == [" t1", " t2", " f1"]


def test_truthfulqa_true_answer_comes_first(data_dir):
    docs = get_task("truthfulqa_mc1").load(data_dir).docs
    assert all(d["mc1_targets"]["labels"][0] == 1 and sum(d["mc1_targets"]["labels"]) == 1 for d in docs)
