"""SQuAD v2 exact match, token F1 and aggregation, as the official ``evaluate-v2.0.py`` defines them.

Per question: ``exact_match`` / ``f1`` of one prediction against its gold answers (an unanswerable
question has the gold list ``[""]``).  Over a run: ``squad_v2_aggregate`` gives the official
``exact``/``f1``/``HasAns_*``/``NoAns_*`` percentages and, when no-answer scores are known, the
``best_*`` numbers of the official threshold sweep.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Model outputs that mean "this question has no answer"; each is compared after normalize_answer,
# so "Unanswerable." or "NO ANSWER" count too.  "" covers output that normalises to nothing.
ABSTENTIONS: tuple[str, ...] = ("unanswerable", "no answer", "")

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    # Same order as the official script: punctuation goes first, so "the-end" -> "theend" keeps its "the".
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_prediction(prediction: str, abstain_phrases: str | Iterable[str] = ()) -> str:
    """Map an abstention to the empty prediction; any other prediction is returned stripped.

    ``abstain_phrases`` adds the task's own wording (e.g. the phrase its prompt asks the model to say)
    to ``ABSTENTIONS``.  The whole normalised prediction must equal a phrase: a sentence that merely
    contains "no answer" is still an answer.
    """
    extra = (abstain_phrases,) if isinstance(abstain_phrases, str) else tuple(abstain_phrases)
    abstentions = {normalize_answer(phrase) for phrase in (*ABSTENTIONS, *extra)}
    return "" if normalize_answer(prediction) in abstentions else prediction.strip()


def _scorable_golds(golds: Sequence[str]) -> list[str]:
    # The official script drops gold answers that normalise to nothing; a question left with none
    # is unanswerable, and then the empty string is its only correct answer.
    return [gold for gold in golds if normalize_answer(gold)] or [""]


def _exact_one(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1_one(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # An empty side means "no answer": full credit only when both abstain.
        return float(pred_tokens == gold_tokens)
    # Multiset overlap: a token counts as often as it occurs on both sides.
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals some normalised gold answer, else 0.0."""
    return max(_exact_one(prediction, gold) for gold in _scorable_golds(golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """Best bag-of-tokens F1 of the prediction against any gold answer (0.0-1.0)."""
    return max(_f1_one(prediction, gold) for gold in _scorable_golds(golds))


def _percent(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values)


def _group_summary(prefix: str, exact: list[float], f1s: list[float]) -> dict[str, float | int]:
    # Like the official script, an empty group reports only its size (0): a mean over nothing is undefined.
    summary: dict[str, float | int] = {f"{prefix}total": len(exact)}
    if exact:
        summary[f"{prefix}exact"] = _percent(exact)
        summary[f"{prefix}f1"] = _percent(f1s)
    return summary


def _apply_na_threshold(records: Sequence[Mapping[str, Any]], key: str, thresh: float) -> list[float]:
    # Above the threshold the model is taken to abstain, which is right exactly on NoAns questions.
    return [
        float(not r["has_answer"]) if r["na_prob"] > thresh else float(r[key])
        for r in records
    ]


def _best_threshold(records: Sequence[Mapping[str, Any]], key: str) -> tuple[float, float]:
    """The official ``find_best_thresh`` sweep over ``records[i][key]`` -> (best %, threshold)."""
    # Threshold below every na_prob: the model abstains everywhere, so only NoAns questions score.
    score = best = float(sum(1 for r in records if not r["has_answer"]))
    best_thresh = 0.0
    # Raising the threshold past a question's na_prob makes the model answer it instead of abstaining.
    # sorted() is stable, so ties keep input order, as the official dict-order sort does.
    for r in sorted(records, key=lambda rec: rec["na_prob"]):
        if r["has_answer"]:
            score += float(r[key])
        elif not r["exact"]:
            # A NoAns question with EM 0 was answered, so it loses its abstention point.  (The official
            # script tests the raw prediction string instead; the two agree once predictions have been
            # through normalize_prediction, which turns anything normalising to "" into "".)
            score -= 1.0
        if score > best:
            best, best_thresh = score, float(r["na_prob"])
    return 100.0 * best / len(records), best_thresh


def squad_v2_aggregate(
    records: Sequence[Mapping[str, Any]], na_prob_thresh: float | None = None
) -> dict[str, float | int]:
    """Official SQuAD v2 summary of per-question records.

    Each record has ``exact`` (0/1), ``f1`` (0-1), ``has_answer`` (bool) and ``na_prob``
    (no-answer probability or score, or None).  Returns ``exact``, ``f1``, ``total``,
    ``HasAns_exact``, ``HasAns_f1``, ``HasAns_total``, ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total``
    (scores in percent; a group with no question gets only its ``_total``), plus ``best_exact``,
    ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh`` when every record has an ``na_prob``.
    ``na_prob_thresh`` (needs ``na_prob``) turns answers whose na_prob exceeds it into abstentions
    before the plain scores are computed, like the official ``--na-prob-thresh``; the ``best_*``
    sweep always starts from the raw scores, as in the official script.
    """
    if not records:
        raise ValueError("squad_v2_aggregate needs at least one record")
    all_have_na_prob = all(r.get("na_prob") is not None for r in records)
    if na_prob_thresh is not None and not all_have_na_prob:
        raise ValueError("na_prob_thresh needs an na_prob in every record")
    if na_prob_thresh is None:
        exact = [float(r["exact"]) for r in records]
        f1s = [float(r["f1"]) for r in records]
    else:
        exact = _apply_na_threshold(records, "exact", na_prob_thresh)
        f1s = _apply_na_threshold(records, "f1", na_prob_thresh)
    has_ans = [bool(r["has_answer"]) for r in records]

    def pick(values: list[float], want: bool) -> list[float]:
        return [v for v, h in zip(values, has_ans) if h == want]

    result = _group_summary("", exact, f1s)
    result.update(_group_summary("HasAns_", pick(exact, True), pick(f1s, True)))
    result.update(_group_summary("NoAns_", pick(exact, False), pick(f1s, False)))
    if all_have_na_prob:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(records, "exact")
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(records, "f1")
    return result
