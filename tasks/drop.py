"""DROP (Dua et al., 2019): reading comprehension that needs counting, arithmetic and dates.

Zero-shot generation: ``{passage}\\nQuestion: {question}\\nAnswer:``, greedy, cut at the first
newline only (a "." stop would cut "3.5" to "3"). The answer is scored with the official DROP
exact match and F1, each the best over the question's gold alternatives.

The ``file`` parameter takes either format, told apart by content (gzip or plain):
- the one-line-per-question form of OpenAI's simple-evals (``drop_v0_dev.jsonl.gz``, the default):
  ``{"context": "Passage: ...\\nQuestion: ...\\nAnswer:", "ref_text": "gold|alternative", ...}``;
  it has no question ids, so a document's id is its line number;
- the original ``drop_dataset_dev.json``: ``{passage_id: {passage, qa_pairs: [{question, query_id,
  answer, validated_answers}]}}``, whose multi-span answers stay span lists.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

from evalsuite.data import FileSource, check_unique_ids, expect, has_fields
from evalsuite.errors import malformed
from evalsuite.fileio import decode_text, json_lines
from evalsuite.metrics.drop import drop_score, golds_from_drop_qa, parse_drop_ref_text
from evalsuite.registry import task
from evalsuite.requests import Generate
from evalsuite.task import Dataset, Doc, Task

DEFAULT_FILE = "drop/drop_v0_dev.jsonl.gz"
HUB_NAME = "ucinlp/drop"
MAX_TOKENS = 32
GZIP_MAGIC = b"\x1f\x8b"
# The one-line form's context; greedy up to the last "\nQuestion: ", so a passage may contain one.
ONE_LINE_CONTEXT = re.compile(r"Passage: (?P<passage>.*)\nQuestion: (?P<question>.*)\nAnswer:", re.DOTALL)

# Invented rows in the simple-evals one-line format, for runs with no data folder and no Hub.
SAMPLE = "\n".join(
    json.dumps(row)
    for row in [
        {"context": "Passage: The Otters scored two touchdowns in the first quarter, a 12-yard run and a 40-yard pass. "
                    "In the second quarter kicker Sam Reed made a 33-yard field goal.\nQuestion: How many touchdowns "
                    "did the Otters score in the first quarter?\nAnswer:", "completion": " 2", "ref_text": "2|two"},
        {"context": "Passage: The town's population was 12,400 in 1990 and 15,900 in 2000. The average household "
                    "size was 2.5 in 1990 and 2.4 in 2000.\nQuestion: By how much did the average household size fall "
                    "between 1990 and 2000?\nAnswer:", "completion": " 0.1", "ref_text": "0.1"},
        {"context": "Passage: The treaty was signed on 4 March 1721 by the envoys of Sweden and Russia, ending a war "
                    "that had lasted 21 years.\nQuestion: Which two countries signed the treaty?\nAnswer:",
         "completion": " Sweden and Russia", "ref_text": "Sweden and Russia|Russia and Sweden"},
    ]
) + "\n"


def prompt(doc: Doc) -> str:
    return f"{doc['passage']}\nQuestion: {doc['question']}\nAnswer:"


# --- loading -------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    # By content, not name: the offline sample is plain text under the default ".gz" name.
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise malformed(path, 1, f"the gzip data is damaged ({err})") from None
    return decode_text(data, path)


def _is_one_line_format(path: Path, text: str) -> bool:
    if ".jsonl" in path.name:
        return True
    # A pretty-printed original file starts with a lone "{"; a compact one is one object of passages.
    try:
        first = json.loads(text.lstrip().split("\n", 1)[0])
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict) and "context" in first


def _one_line_doc(row, path: Path, number: int) -> Doc:
    expect(has_fields(row, context=str, ref_text=str), path, number, "needs 'context' and 'ref_text' strings")
    match = ONE_LINE_CONTEXT.fullmatch(row["context"])
    expect(match is not None, path, number, "context is not 'Passage: ...\\nQuestion: ...\\nAnswer:'")
    golds = parse_drop_ref_text(row["ref_text"])
    expect(bool(golds), path, number, "ref_text holds no answer")
    return {"id": str(number), "passage": match["passage"], "question": match["question"], "golds": golds}


def parse_one_line(path: Path, text: str) -> list[Doc]:
    return [_one_line_doc(row, path, n) for n, row in json_lines(text, path)]


def _original_doc(qa: Any, passage: str, path: Path, row: int) -> Doc:
    ok = has_fields(qa, question=str, query_id=str, answer=dict)
    expect(ok, path, row, "needs 'question', 'query_id' and an 'answer' object")
    try:
        golds = golds_from_drop_qa(qa)
    except (ValueError, TypeError, AttributeError) as err:
        raise malformed(path, row, f"question {qa['query_id']!r}: {err}") from None
    return {"id": qa["query_id"], "passage": passage, "question": qa["question"], "golds": golds}


def parse_original(path: Path, text: str) -> list[Doc]:
    """Original DROP JSON; errors give the question's number (from 1, in file order) and its id."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise malformed(path, err.lineno, err.msg) from None
    expect(isinstance(raw, dict), path, 1, "expected an object mapping passage ids to passages")
    docs: list[Doc] = []
    for passage_id, section in raw.items():
        ok = has_fields(section, passage=str, qa_pairs=list)
        expect(ok, path, len(docs) + 1, f"passage {passage_id!r} needs a 'passage' and a 'qa_pairs' list")
        for qa in section["qa_pairs"]:
            docs.append(_original_doc(qa, section["passage"], path, len(docs) + 1))
    check_unique_ids(docs, path)
    return docs


def parse_drop(path: Path) -> list[Doc]:
    text = _read_text(path)
    return parse_one_line(path, text) if _is_one_line_format(path, text) else parse_original(path, text)


def from_hub() -> list[Doc]:
    import datasets

    rows = datasets.load_dataset(HUB_NAME, split="validation")
    # The Hub copy flattens the spans of all answers into one list, so a multi-span answer cannot be
    # rebuilt: each distinct span counts as an alternative answer.
    return [
        {"id": r["query_id"], "passage": r["passage"], "question": r["question"],
         "golds": list(dict.fromkeys(r["answers_spans"]["spans"]))}
        for r in rows
    ]


SOURCE = FileSource("drop", DEFAULT_FILE, parse_drop, SAMPLE, from_hub, HUB_NAME)


# --- requests and scoring ------------------------------------------------------------------------


def requests(doc: Doc) -> list[Generate]:
    # Greedy (temperature 0 is the default); never stop at ".", or decimals would be cut.
    return [Generate(prompt(doc), stop=("\n",), max_tokens=MAX_TOKENS)]


def score(doc: Doc, responses: list[Any]) -> dict[str, Any]:
    prediction: str = responses[0][0]
    return {**drop_score(prediction, doc["golds"]), "prediction": prediction}


@task
def drop(file: str = DEFAULT_FILE) -> Task:
    def load(data_dir) -> Dataset:
        return SOURCE.load(file, data_dir)

    return Task(
        name="drop",
        load=load,
        requests=requests,
        score=score,
        # The default aggregate: mean and standard error of em and f1 (the only numeric scores).
        primary_metric="f1",
        higher_is_better={"em": True, "f1": True},
        version="1",
        data=SOURCE.describe(file),
        description="DROP zero-shot: numerical reading comprehension; official EM/F1 (0-1), best over alternatives.",
    )
