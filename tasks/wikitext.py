"""WikiText-2 perplexity: the held-out language-modelling yardstick for the alignment tax.

Each article is scored whole with rolling windows of the model's length (every token predicted
once). Reported as word, byte and token perplexity and bits per byte, where words and bytes are
counted in the original (tokenised) article, as lm-evaluation-harness does, so the numbers are
comparable across tokenisers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from evalsuite.data import load_source
from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import read_text
from evalsuite.registry import task
from evalsuite.requests import LoglikelihoodRolling
from evalsuite.stats import Metric, exp_metric, ratio_of_sums
from evalsuite.task import Dataset, Doc, Task

SPLITS = {"test": "wikitext2/test.txt", "valid": "wikitext2/valid.txt"}
HUB_NAME = "EleutherAI/wikitext_document_level"
LN2 = math.log(2)
TOP_HEADING = re.compile(r"^ = [^=].* = $")  # " = Title = " starts an article; " = = Section = = " does not

SAMPLE = """ 
 = Sample Article = 
 
 The sample article is a short text used when no data folder is available . It has two sections . 
 
 = = History = = 
 
 The article was written in 2024 , and it describes a small town near a river @-@ bank . 
 
 = Second Sample = 
 
 A second article follows , with numbers such as 1 @,@ 000 and 3 @.@ 5 in it . 
"""  # noqa: E501, W291, W293 (sample rows in the dataset's own format)

# WikiText's tokenisation undone (spaces around punctuation, @-@ separators), so the model reads
# ordinary text. The same rules as lm-evaluation-harness, for comparable numbers.
_LITERAL = [
    ("s '", "s'"), (" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "), (" ; ", "; "),
    (" . ", ". "), (" ! ", "! "), (" ? ", "? "), (" , ", ", "),
]
_BRACKETS = [(r"\(\s*([^\)]*?)\s*\)", r"(\1)"), (r"\[\s*([^\]]*?)\s*\]", r"[\1]"), (r"{\s*([^}]*?)\s*}", r"{\1}"),
             (r"\"\s*([^\"]*?)\s*\"", r'"\1"'), (r"'\s*([^']*?)\s*'", r"'\1'")]
_TAIL = [("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"),
         (" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")]


def detokenize(text: str) -> str:
    for old, new in _LITERAL:
        text = text.replace(old, new)
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    for pattern, repl in _BRACKETS:
        text = re.sub(pattern, repl, text)
    for old, new in _TAIL:
        text = text.replace(old, new)
    return text


def parse(path: Path) -> list[Doc]:
    """Split the raw file into articles at each top-level heading."""
    articles: list[list[str]] = []
    for line in read_text(path).splitlines(keepends=True):
        if TOP_HEADING.match(line.rstrip("\n")):
            articles.append([])
        if articles:
            articles[-1].append(line)
    return [{"id": i, "page": "".join(lines)} for i, lines in enumerate(articles)]


def from_hub() -> list[Doc]:
    import datasets

    rows = datasets.load_dataset(HUB_NAME, "wikitext-2-raw-v1", split="test")
    return [{"id": i, "page": r["page"]} for i, r in enumerate(rows)]


def requests(doc: Doc) -> list[LoglikelihoodRolling]:
    return [LoglikelihoodRolling(detokenize(doc["page"]))]


def score(doc: Doc, responses) -> dict:
    page = doc["page"]
    return {
        "logprob": responses[0].logprob,
        "tokens": responses[0].n_tokens,
        "words": len(re.split(r"\s+", page)),
        "bytes": len(page.encode("utf-8")),
    }


def aggregate(docs: list[Doc], scores: list[dict]) -> dict[str, Metric]:
    nll = [-s["logprob"] for s in scores]
    per = {unit: ratio_of_sums(nll, [s[unit] for s in scores]) for unit in ("words", "bytes", "tokens")}
    bpb = per["bytes"]
    return {
        "word_perplexity": exp_metric(per["words"]),
        "byte_perplexity": exp_metric(per["bytes"]),
        "token_perplexity": exp_metric(per["tokens"]),
        "bits_per_byte": Metric(bpb.value / LN2, None if bpb.stderr is None else bpb.stderr / LN2, bpb.n),
    }


@task
def wikitext(split: str = "test") -> Task:
    if split not in SPLITS:
        raise EvalsuiteError(f"Unknown wikitext split '{split}'.", f"use one of {', '.join(SPLITS)}")

    def load(data_dir) -> Dataset:
        hub = from_hub if split == "test" else None
        return load_source("wikitext", SPLITS[split], data_dir, parse, SAMPLE, hub, HUB_NAME)

    return Task(
        name="wikitext",
        load=load,
        requests=requests,
        score=score,
        aggregate=aggregate,
        primary_metric="word_perplexity",
        higher_is_better={"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False},
        version="1",
        data=f"{SPLITS[split]} | hub {HUB_NAME}",
        description="WikiText-2 rolling log-likelihood: word/byte/token perplexity and bits per byte.",
    )
