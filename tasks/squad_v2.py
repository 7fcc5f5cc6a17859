"""SQuAD 2.0 (Rajpurkar, Jia & Liang, 2018): extractive reading comprehension with abstention.

Zero-shot generation: the prompt gives the article title, the paragraph and the question and asks
for the answer, or "unanswerable" when the paragraph does not hold one. The greedy answer (up to
the first newline) is scored with the official exact match and token F1, after an abstention
("unanswerable", "no answer", nothing) is mapped to the empty prediction, which is the only
correct answer to an unanswerable question. A second request scores the continuation
`` unanswerable``: its probability is the no-answer score the official ``best_exact``/``best_f1``
threshold sweep needs.

The ``file`` parameter points at any file in the official SQuAD JSON format, relative to the data
folder (default: the CS224N half of the dev set) or absolute (e.g. the official ``dev-v2.0.json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalsuite.data import FileSource, check_unique_ids, expect, has_fields, read_json
from evalsuite.metrics.squad import exact_match, f1, normalize_prediction, squad_v2_aggregate
from evalsuite.registry import task
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult, Request
from evalsuite.stats import Metric, mean_stderr
from evalsuite.task import Dataset, Doc, Task

DEFAULT_FILE = "squad_v2/dev-v2.0.cs224n-subset.json"
HUB_NAME = "rajpurkar/squad_v2"
ABSTAIN_PHRASE = "unanswerable"  # what the prompt tells the model to say; also the no-answer continuation
MAX_TOKENS = 32

# Invented rows in the official dev-v2.0.json format, for runs with no data folder and no Hub.
SAMPLE = """{"version": "v2.0", "data": [
 {"title": "Lighthouses", "paragraphs": [
  {"context": "The Skerry Light was built in 1852 on a rock off the northern coast. Its lamp burned whale oil until 1890, when it was replaced by a paraffin burner. The keeper's cottage was painted white.",
   "qas": [
    {"question": "When was the Skerry Light built?", "id": "sample-1",
     "answers": [{"text": "1852", "answer_start": 30}, {"text": "in 1852", "answer_start": 27}], "is_impossible": false},
    {"question": "What did the lamp burn until 1890?", "id": "sample-2",
     "answers": [{"text": "whale oil", "answer_start": 85}], "is_impossible": false},
    {"question": "Who painted the keeper's cottage?", "id": "sample-3",
     "answers": [], "plausible_answers": [{"text": "white", "answer_start": 183}], "is_impossible": true}]}]},
 {"title": "Bread", "paragraphs": [
  {"context": "Sourdough bread is leavened by wild yeast and lactic acid bacteria rather than by baker's yeast. A starter is fed with flour and water every day.",
   "qas": [
    {"question": "What leavens sourdough bread?", "id": "sample-4",
     "answers": [{"text": "wild yeast and lactic acid bacteria", "answer_start": 31}], "is_impossible": false},
    {"question": "How much flour is the starter fed each day?", "id": "sample-5",
     "answers": [], "plausible_answers": [{"text": "flour and water", "answer_start": 119}], "is_impossible": true}]}]}
]}
"""  # noqa: E501 (sample rows in the dataset's own format)


def prompt(doc: Doc) -> str:
    return (
        f"Title: {doc['title']}\n\nBackground: {doc['context']}\n\nQuestion: {doc['question']}\n\n"
        f'Answer the question from the background. If it cannot be answered from the background, '
        f'answer "{ABSTAIN_PHRASE}".\n\nAnswer:'
    )


# --- loading -------------------------------------------------------------------------------------


def _answer_texts(qa: Any, path: Path, row: int) -> list[str]:
    expect(has_fields(qa, id=str, question=str, answers=list), path, row, "needs 'id', 'question' and 'answers'")
    where = f"question {qa['id']!r}"
    expect(all(has_fields(a, text=str) for a in qa["answers"]), path, row, f"{where}: every answer needs a 'text'")
    texts = [a["text"] for a in qa["answers"]]
    # The official script decides "has an answer" from the answers list; is_impossible must agree with it.
    impossible = qa.get("is_impossible", not texts)
    problem = f"{where}: is_impossible is {impossible} but it has {len(texts)} answer(s)"
    expect(impossible == (not texts), path, row, problem)
    return texts


def _paragraphs(raw: Any, path: Path) -> Iterator[tuple[str, dict]]:
    """(title, paragraph) pairs of a SQuAD file, each checked to hold a context and a question list."""
    expect(has_fields(raw, data=list), path, 1, "expected an object with a 'data' list")
    for number, article in enumerate(raw["data"], start=1):
        expect(has_fields(article, paragraphs=list), path, number, f"article {number} needs a 'paragraphs' list")
        for paragraph in article["paragraphs"]:
            ok = has_fields(paragraph, context=str, qas=list)
            expect(ok, path, number, f"a paragraph of article {number} needs a 'context' and a 'qas' list")
            yield str(article.get("title", "")), paragraph


def parse_squad_json(path: Path) -> list[Doc]:
    """Official SQuAD JSON: ``data[].paragraphs[].qas[]`` -> one document per question.

    The file is one JSON object, not lines, so errors give the question's number (from 1, in file
    order) and its id; an article-level error gives the article's number.
    """
    docs: list[Doc] = []
    for title, paragraph in _paragraphs(read_json(path), path):
        for qa in paragraph["qas"]:
            texts = _answer_texts(qa, path, len(docs) + 1)
            docs.append(
                {
                    "id": qa["id"],
                    "title": title,
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": texts or [""],  # "" is the one correct answer to an unanswerable question
                    "has_answer": bool(texts),
                }
            )
    check_unique_ids(docs, path)
    return docs


def from_hub() -> list[Doc]:
    import datasets

    rows = datasets.load_dataset(HUB_NAME, split="validation")
    return [
        {
            "id": r["id"],
            "title": r["title"],
            "context": r["context"],
            "question": r["question"],
            "answers": list(r["answers"]["text"]) or [""],
            "has_answer": bool(r["answers"]["text"]),
        }
        for r in rows
    ]


SOURCE = FileSource("squad_v2", DEFAULT_FILE, parse_squad_json, SAMPLE, from_hub, HUB_NAME)


# --- requests, scoring, aggregation --------------------------------------------------------------


def requests(doc: Doc) -> list[Request]:
    context = prompt(doc)
    return [
        Generate(context, stop=("\n",), max_tokens=MAX_TOKENS),  # greedy: temperature 0 is the default
        Loglikelihood(context, " " + ABSTAIN_PHRASE),
    ]


def score(doc: Doc, responses: list[Any]) -> dict[str, Any]:
    generations: list[str] = responses[0]
    no_answer: LoglikelihoodResult = responses[1]
    raw = generations[0]
    prediction = normalize_prediction(raw, abstain_phrases=ABSTAIN_PHRASE)
    golds = doc["answers"]
    return {
        "exact": exact_match(prediction, golds),
        "f1": f1(prediction, golds),
        "has_answer": doc["has_answer"],
        "na_prob": math.exp(no_answer.logprob),
        "prediction": raw,
        "prediction_normalized": prediction,
    }


# The official summary's percentages, each with the per-question scores it averages (None: all).
_GROUPS = {"": None, "HasAns_": True, "NoAns_": False}


def aggregate(docs: list[Doc], scores: list[dict[str, Any]]) -> dict[str, Metric]:
    summary = squad_v2_aggregate(scores)
    metrics: dict[str, Metric] = {}
    for prefix, has_answer in _GROUPS.items():
        members = [s for s in scores if has_answer is None or s["has_answer"] == has_answer]
        for key in ("exact", "f1"):
            if f"{prefix}{key}" in summary:  # an empty group has no score, only its size
                # Value from the official summary; stderr of the same mean over per-question scores x100.
                stderr = mean_stderr([100.0 * s[key] for s in members]).stderr
                metrics[f"{prefix}{key}"] = Metric(summary[f"{prefix}{key}"], stderr, len(members))
    for key in ("best_exact", "best_f1"):
        # A maximum over thresholds chosen on the same data: no plain standard error applies.
        metrics[key] = Metric(summary[key], None, len(scores))
    return metrics


@task
def squad_v2(file: str = DEFAULT_FILE) -> Task:
    def load(data_dir) -> Dataset:
        return SOURCE.load(file, data_dir)

    metrics = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1")
    return Task(
        name="squad_v2",
        load=load,
        requests=requests,
        score=score,
        aggregate=aggregate,
        primary_metric="f1",
        higher_is_better=dict.fromkeys(metrics, True),
        version="1",
        data=SOURCE.describe(file),
        description='SQuAD 2.0 zero-shot: answer from the paragraph or say "unanswerable"; official EM/F1 (%).',
    )
