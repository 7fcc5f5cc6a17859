"""The hallucination task: scoring on hand-worked responses, its documents on the real SQuAD file, and the
judge check set."""

from __future__ import annotations

import json
import math

import pytest

from evalsuite.cache import RequestCache
from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task
from evalsuite.requests import Generate, Score
from evalsuite.runner import evaluate
from evalsuite.scorers.scorer_set import ScorerSet
from evalsuite.tasks import hallucination as hal
from evalsuite.tasks.squad_v2 import SAMPLE as SQUAD_SAMPLE

pytestmark = pytest.mark.usefixtures("in_judge_home")


def test_check_set_file():
    rows = [json.loads(line) for line in hal.CHECK_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 60
    assert all({"id", "source", "output", "supported"} <= set(r) for r in rows)
    assert all(isinstance(r["supported"], bool) and r["source"].strip() and r["output"].strip() for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    n_supported = sum(r["supported"] for r in rows)
    assert 0.4 <= n_supported / len(rows) <= 0.6  # both classes, roughly balanced
    assert len({r["output"] for r in rows}) == len(rows)
    assert get_task("hallucination_judge_check").load(None).docs == rows


def test_check_set_parser_rejects_bad_rows(tmp_path):
    path = tmp_path / "check.jsonl"
    path.write_text('{"id": "a", "source": "S.", "output": "O.", "supported": "yes"}\n', encoding="utf-8")
    with pytest.raises(EvalsuiteError, match=r"line 1: needs .*'supported' \(true/false\)"):
        hal.parse_check(path)
    row = '{"id": "a", "source": "S.", "output": "O.", "supported": true}\n'
    path.write_text(row + row, encoding="utf-8")
    with pytest.raises(EvalsuiteError, match="appears twice"):
        hal.parse_check(path)


def test_check_aggregate_by_hand():
    labels = [True, True, True, False, False, False, False]
    probs = [0.9, 0.6, 0.2, 0.1, 0.3, 0.8, None]  # 2/3 supported right, 2/3 unsupported right, 1 missing
    docs = [{"id": str(i), "source": "S.", "output": "O.", "supported": s} for i, s in enumerate(labels)]
    metrics = hal.check_aggregate(docs, [hal.check_score(d, [p]) for d, p in zip(docs, probs)])
    assert metrics["accuracy"].value == pytest.approx(4 / 6) and metrics["accuracy"].n == 6
    assert metrics["balanced_accuracy"].value == pytest.approx(2 / 3)
    assert metrics["recall_unsupported"].value == pytest.approx(2 / 3)
    assert metrics["precision_unsupported"].value == pytest.approx(2 / 3)  # flagged: 0.2, 0.1, 0.3
    assert (metrics["n_supported"].value, metrics["n_unsupported"].value) == (3, 4)
    assert metrics["judge_missing"].value == 1
    se = metrics["balanced_accuracy"].stderr
    parts = (metrics["recall_unsupported"].stderr, math.sqrt((2 / 3) * (1 / 3) * 3 / 2) / math.sqrt(3))
    assert se == pytest.approx(0.5 * math.hypot(*parts))


def test_check_set_through_the_runner_with_minilm(tiny_model, minilm, tmp_path):
    task = get_task("hallucination_judge_check")
    cache = RequestCache(tmp_path / "c.sqlite")
    (res,), stats = evaluate(tiny_model, [task], None, None, cache, ScorerSet(judge="minilm", device="cpu"))
    docs = res.docs
    direct = minilm.score("supported", [(d["source"], d["output"]) for d in docs])
    assert [r[0] for r in res.responses] == pytest.approx(direct, abs=1e-5)
    correct = [(p >= 0.5) == d["supported"] for d, p in zip(docs, direct)]
    metrics = res.metrics
    assert metrics["accuracy"].value == pytest.approx(sum(correct) / len(docs))
    assert metrics["n_supported"].value + metrics["n_unsupported"].value == len(docs) >= 60
    assert metrics["judge_missing"].value == 0 and res.missing == 0
    print(
        f"\nMiniLM on the check set: accuracy {metrics['accuracy'].value:.3f} ± {metrics['accuracy'].stderr:.3f}, "
        f"balanced {metrics['balanced_accuracy'].value:.3f}, precision_unsupported "
        f"{metrics['precision_unsupported'].value:.3f}, recall_unsupported {metrics['recall_unsupported'].value:.3f}"
    )
    _, again = evaluate(tiny_model, [task], None, None, cache, ScorerSet(judge="minilm", device="cpu"))
    assert again.computed == 0 and again.from_cache == stats.unique_requests == len(docs)


def squad_row(qid: str, context: str, has_answer: bool) -> dict:
    return {"id": qid, "title": "T", "context": context, "question": f"question {qid}?",
            "answers": ["x"] if has_answer else [""], "has_answer": has_answer}


FAKE_SQUAD = [
    squad_row("a1", "Passage A.", True), squad_row("a2", "Passage A.", False),
    squad_row("b1", "Passage B.", True), squad_row("b2", "Passage B.", False), squad_row("b3", "Passage B.", False),
    squad_row("c1", "Passage C.", True),  # no unanswerable question: falls back to its first one
]


def test_paragraph_docs_alternate_kinds_and_questions():
    docs = hal.paragraph_docs(FAKE_SQUAD)
    assert [d["id"] for d in docs] == ["a1/summarise", "a1/qa", "b1/summarise", "b1/qa", "c1/summarise", "c1/qa"]
    assert [d["question"] for d in docs if d["kind"] == "qa"] == ["question a1?", "question b2?", "question c1?"]
    (request,) = hal.requests(docs[3])
    assert request == Generate(
        "Answer the question using only the passage. If the passage does not contain the answer, say so.\n\n"
        "Passage: Passage B.\n\nQuestion: question b2?", stop=("\n\n",), max_tokens=64, chat=True,
    )
    assert hal.requests(docs[0])[0].context == (
        "Summarise the following passage in two sentences, using only information stated in it.\n\nPassage: Passage A."
    )


def test_followup_sends_the_source_to_the_judge():
    summarise, qa = hal.paragraph_docs(FAKE_SQUAD)[:2]
    expected = Score("judge:supported", text="It is A.", context="Passage A.")
    assert hal.followup(summarise, [[" It is A.\n"]]) == [expected]
    assert hal.followup(qa, [["x"]]) == [
        Score("judge:supported", text="x", context="Passage A.\n\nQuestion: question a1?")
    ]


def test_hallucination_scores_by_hand():
    docs = hal.paragraph_docs(FAKE_SQUAD)
    outputs = ["A is a passage.", "x", "", "B.", "C.", "Made up."]
    probs = [0.9, 0.2, None, 0.4, 0.7, 0.1]  # hallucinated: 0, 1, missing, 1, 0, 1
    scores = [hal.score(d, [[o], p]) for d, o, p in zip(docs, outputs, probs)]
    assert [s["hallucinated"] for s in scores] == [0.0, 1.0, None, 1.0, 0.0, 1.0]
    metrics = hal.aggregate(docs, scores)
    rate = metrics["hallucination_rate"]
    assert (rate.value, rate.n) == (pytest.approx(3 / 5), 5) and rate.stderr > 0
    low, high = metrics["hallucination_rate_ci_low"], metrics["hallucination_rate_ci_high"]
    assert low.stderr is None and high.stderr is None and low.value <= 3 / 5 <= high.value
    assert metrics["hallucination_rate/summarise"].value == 0.0 and metrics["hallucination_rate/summarise"].n == 2
    assert metrics["hallucination_rate/qa"].value == 1.0 and metrics["hallucination_rate/qa"].n == 3
    assert metrics["hallucination_rate/qa_unanswerable"].n == 1
    assert metrics["judge_missing"].value == 1 and metrics["empty_output"].value == pytest.approx(1 / 6)


def test_hallucination_with_every_judge_call_failed():
    docs = hal.paragraph_docs(FAKE_SQUAD)
    metrics = hal.aggregate(docs, [hal.score(d, [["out"], None]) for d in docs])
    assert math.isnan(metrics["hallucination_rate"].value) and metrics["hallucination_rate"].n == 0
    assert metrics["judge_missing"].value == len(docs)


def test_hallucination_docs_on_real_squad(data_dir):
    squad = get_task("squad_v2").load(data_dir)
    dataset = get_task("hallucination").load(data_dir)
    assert (dataset.sha256, dataset.source) == (squad.sha256, squad.source)
    docs = dataset.docs
    paragraphs = {d["context"] for d in squad.docs}
    assert len(docs) == 2 * len(paragraphs) and {d["passage"] for d in docs} == paragraphs
    assert [d["kind"] for d in docs[:4]] == ["summarise", "qa", "summarise", "qa"]
    assert len({d["id"] for d in docs}) == len(docs)
    qa = [d for d in docs if d["kind"] == "qa"]
    assert 0.3 < sum(d["has_answer"] for d in qa) / len(qa) < 0.7  # both answerable and unanswerable
    questions = {(d["context"], d["question"]) for d in squad.docs}
    assert all((d["passage"], d["question"]) in questions for d in qa)


def test_hallucination_end_to_end_on_the_sample(tiny_model, tmp_path):
    # The squad_v2 sample (invented rows) as a data folder: generation, then the MiniLM judge.
    path = tmp_path / "data" / "squad_v2" / "dev-v2.0.cs224n-subset.json"
    path.parent.mkdir(parents=True)
    path.write_text(SQUAD_SAMPLE, encoding="utf-8")
    scorers = ScorerSet(judge="minilm", device="cpu")
    (res,), _ = evaluate(tiny_model, [get_task("hallucination")], path.parents[1], None,
                         RequestCache(tmp_path / "c.sqlite"), scorers)
    assert len(res.docs) == 4 and all(len(r) == 2 and 0.0 <= r[1] <= 1.0 for r in res.responses)
    answer = res.responses[1][0][0].strip()
    assert res.requests[1][1] == Score("judge:supported", answer, hal.judge_context(res.docs[1]))
    assert res.metrics["hallucination_rate"].n == 4 and res.metrics["judge_missing"].value == 0
    assert res.task.primary_metric == "hallucination_rate" and not res.task.higher_is_better["hallucination_rate"]
