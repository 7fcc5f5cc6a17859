"""DROP exact match and F1, as the official ``drop_eval.py`` (allennlp-reading-comprehension) defines them.

An answer is a number, a date or one or more text spans.  Each span is normalised token by token
(numbers compared as numbers: "2" == "2.0", "1,000" == "1000"), EM compares the normalised spans
as a set, and F1 pairs predicted and gold spans one-to-one (Hungarian assignment) and averages
the bag-of-tokens F1 of the pairs.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A gold or predicted answer: one span, or several spans (a multi-span answer).
Answer = str | Sequence[str]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
# The official tokenizer splits on single spaces and hyphens only (so "-5" loses its sign).
_TOKEN_SEPARATOR = re.compile(r" |-")


def _is_number(text: str) -> bool:
    # Python's float() is the official test, so "1e3", "nan" and "1_000" count as numbers too.
    try:
        float(text)
    except ValueError:
        return False
    return True


def _normalize_token(token: str) -> str:
    text = token.lower()
    if not _is_number(text):
        # Only non-numbers lose punctuation, which keeps the point of "3.5" (and makes "1,000" -> "1000").
        text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    if _is_number(text):
        # One spelling per value, so "2", "2.0" and "02" compare equal.
        text = str(float(text))
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_answer(text: str) -> str:
    """Official DROP normalisation of one span: per token lowercase, punctuation, numbers, articles."""
    parts = (_normalize_token(token) for token in _TOKEN_SEPARATOR.split(text))
    return " ".join(part for part in parts if part)


def answer_to_bags(answer: Answer) -> tuple[list[str], list[set[str]]]:
    """Normalised spans of an answer, and the set of tokens of each span."""
    spans = [answer] if isinstance(answer, str) else list(answer)
    normalized = [normalize_answer(span) for span in spans]
    return normalized, [set(span.split()) for span in normalized]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    # Set (not multiset) overlap, as in the official script; an empty side counts as fully precise/recalled.
    overlap = len(predicted & gold)
    precision = overlap / len(predicted) if predicted else 1.0
    recall = overlap / len(gold) if gold else 1.0
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _numbers_agree(gold: set[str], predicted: set[str]) -> bool:
    # A gold span with numbers in it is only matched by a prediction sharing one of them: "24 yards"
    # vs "25 yards" must score 0, not the 0.5 that the shared word "yards" would give.
    gold_numbers = {token for token in gold if _is_number(token)}
    predicted_numbers = {token for token in predicted if _is_number(token)}
    return not gold_numbers or bool(gold_numbers & predicted_numbers)


def _aligned_f1s(predicted: list[set[str]], gold: list[set[str]]) -> np.ndarray:
    """Per-slot F1 of the best one-to-one pairing; unpaired spans on the longer side score 0."""
    scores = np.zeros((len(gold), len(predicted)))
    for i, gold_bag in enumerate(gold):
        for j, predicted_bag in enumerate(predicted):
            if _numbers_agree(gold_bag, predicted_bag):
                scores[i, j] = _bag_f1(predicted_bag, gold_bag)
    from scipy.optimize import linear_sum_assignment  # imported on first use: scipy takes a while

    rows, cols = linear_sum_assignment(scores, maximize=True)
    # max(len) slots: extra predicted spans are penalised just like missed gold spans.
    per_slot = np.zeros(max(len(gold), len(predicted)))
    per_slot[rows] = scores[rows, cols]
    return per_slot


def get_metrics(predicted: Answer, gold: Answer) -> tuple[float, float]:
    """(EM, F1) of one predicted answer against one gold answer, F1 rounded to 2 decimals."""
    predicted_spans, predicted_bags = answer_to_bags(predicted)
    gold_spans, gold_bags = answer_to_bags(gold)
    # EM ignores span order but not span count.
    same = set(predicted_spans) == set(gold_spans) and len(predicted_spans) == len(gold_spans)
    # numpy's rounding on purpose: the official script rounds an np.float64, and Python's round()
    # on a float can differ from it in the last digit.
    f1 = float(np.round(np.mean(_aligned_f1s(predicted_bags, gold_bags)), 2))
    return float(same), f1


def _is_blank(gold: Answer) -> bool:
    first = gold if isinstance(gold, str) else (gold[0] if len(gold) else "")
    return not first.strip()


def drop_score(prediction: Answer, golds: Sequence[Answer]) -> dict[str, float]:
    """Best EM and best F1 (each maximised on its own) over the gold alternatives of a question."""
    # The official evaluation skips blank golds: otherwise an empty prediction would "match" them.
    scored = [get_metrics(prediction, gold) for gold in golds if not _is_blank(gold)]
    return {
        "em": max((em for em, _ in scored), default=0.0),
        "f1": max((f1 for _, f1 in scored), default=0.0),
    }


def parse_drop_ref_text(ref_text: str) -> list[str]:
    """Gold alternatives of the one-line DROP format, where they are separated by "|" ("2|2.0")."""
    return [alternative.strip() for alternative in ref_text.split("|") if alternative.strip()]


def gold_from_drop_json(answer: Mapping[str, Any]) -> Answer:
    """One original DROP JSON answer as a gold: number string, "day month year" date, or span list."""
    if answer.get("number"):
        return str(answer["number"])
    if answer.get("spans"):
        return list(answer["spans"])
    if "date" in answer:
        date = answer["date"]
        # Empty parts are left out; normalisation would collapse their spaces anyway.
        parts = (str(date.get(key) or "").strip() for key in ("day", "month", "year"))
        return " ".join(part for part in parts if part)
    raise ValueError(f"DROP answer has no number, spans or date: {dict(answer)!r}")


def golds_from_drop_qa(qa_pair: Mapping[str, Any]) -> list[Answer]:
    """All gold alternatives of a DROP question: its ``answer`` then each of ``validated_answers``."""
    answers = [qa_pair["answer"], *(qa_pair.get("validated_answers") or [])]
    return [gold_from_drop_json(answer) for answer in answers]
