"""SQuAD v2 metrics against hand-worked values of the official definitions."""

import pytest

from evalsuite.metrics.squad import (
    ABSTENTIONS,
    exact_match,
    f1,
    normalize_answer,
    normalize_prediction,
    squad_v2_aggregate,
)


def test_normalize_answer_lowercases_strips_punctuation_articles_and_spaces():
    assert normalize_answer("  The Eiffel   Tower! ") == "eiffel tower"
    # "&" and "," are punctuation; "a", "an", "the" only go as whole words ("banana" stays).
    assert normalize_answer("A banana, an apple & the pear.") == "banana apple pear"
    # Punctuation goes before articles: "the-end" -> "theend", which is no longer an article.
    assert normalize_answer("the-end") == "theend"


def test_exact_match_after_normalisation():
    assert exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel Tower in Paris", ["eiffel tower"]) == 0.0


def test_f1_partial_overlap():
    # pred tokens: eiffel tower in paris (4); gold: eiffel tower (2); shared: 2
    # precision 2/4 = 0.5, recall 2/2 = 1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert f1("the Eiffel Tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 / 3)


def test_f1_counts_repeated_tokens_as_a_multiset():
    # pred: cat cat cat ("the" removed); gold: cat cat dog; shared = min(3, 2) = 2 cats
    # precision 2/3, recall 2/3 -> F1 2/3
    assert f1("the cat cat cat", ["cat cat dog"]) == pytest.approx(2 / 3)
    # shared = min(2, 1) = 1; precision 1/2, recall 1/3 -> F1 = 2*(1/6)/(5/6) = 0.4
    # (set overlap, as DROP uses, would give {cat} vs {cat, dog}: P 1, R 1/2 -> 2/3)
    assert f1("cat cat", ["cat dog dog"]) == pytest.approx(0.4)


def test_scores_take_the_best_gold():
    # vs "London": 0; vs "Paris, France": P 1/1, R 1/2 -> F1 2/3
    assert f1("Paris", ["London", "Paris, France"]) == pytest.approx(2 / 3)
    assert exact_match("paris", ["London", "Paris"]) == 1.0


def test_no_overlap_gives_zero():
    assert f1("Berlin", ["Paris"]) == 0.0


@pytest.mark.parametrize("said", ["Unanswerable.", "NO ANSWER", "", "   ", "the"])
def test_built_in_abstentions_become_the_empty_prediction(said):
    assert normalize_prediction(said) == ""


def test_task_phrase_is_an_abstention_only_when_passed():
    phrase = "The passage does not say"
    assert normalize_prediction("the passage does not say.", abstain_phrases=phrase) == ""
    assert normalize_prediction("the passage does not say.", abstain_phrases=[phrase]) == ""
    assert normalize_prediction("the passage does not say.") == "the passage does not say."
    assert "unanswerable" in ABSTENTIONS


def test_an_answer_that_only_contains_an_abstention_phrase_stays_an_answer():
    assert normalize_prediction(" There is no answer here ") == "There is no answer here"


def test_correct_abstention_on_unanswerable_scores_one():
    prediction = normalize_prediction("Unanswerable")
    assert exact_match(prediction, [""]) == 1.0
    assert f1(prediction, [""]) == 1.0


def test_answering_an_unanswerable_question_scores_zero():
    assert exact_match("Paris", [""]) == 0.0
    assert f1("Paris", [""]) == 0.0


def test_abstaining_on_an_answerable_question_scores_zero():
    assert exact_match("", ["Paris"]) == 0.0
    assert f1("", ["Paris"]) == 0.0


def test_golds_that_normalise_to_nothing_are_ignored():
    # The official script drops "" here, leaving "Paris" as the only gold: abstaining is wrong.
    assert exact_match("", ["", "Paris"]) == 0.0
    # No gold survives -> unanswerable -> only "" is right.
    assert exact_match("", ["the", "."]) == 1.0
    assert f1("Paris", ["the", "."]) == 0.0


def _record(has_answer, exact, f1_score, na_prob):
    return {"has_answer": has_answer, "exact": exact, "f1": f1_score, "na_prob": na_prob}


# r1 answered right, r2 half right, r3 abstained correctly, r4 answered a NoAns question.
RECORDS = [
    _record(True, 1, 1.0, 0.1),
    _record(True, 0, 0.5, 0.2),
    _record(False, 1, 1.0, 0.9),
    _record(False, 0, 0.0, 0.3),
]


def test_aggregate_plain_and_per_group_percentages():
    result = squad_v2_aggregate(RECORDS)
    assert result["exact"] == pytest.approx(50.0)  # (1 + 0 + 1 + 0) / 4
    assert result["f1"] == pytest.approx(62.5)  # (1 + 0.5 + 1 + 0) / 4
    assert result["total"] == 4
    assert result["HasAns_exact"] == pytest.approx(50.0)  # (1 + 0) / 2
    assert result["HasAns_f1"] == pytest.approx(75.0)  # (1 + 0.5) / 2
    assert result["NoAns_exact"] == pytest.approx(50.0)
    assert result["NoAns_f1"] == pytest.approx(50.0)
    assert (result["HasAns_total"], result["NoAns_total"]) == (2, 2)


def test_best_thresholds_worked_by_hand():
    # Start "abstain everywhere": 2 (the NoAns questions). Sweep by na_prob:
    #   F1:    r1 (0.1) +1 -> 3 best; r2 (0.2) +0.5 -> 3.5 best; r4 (0.3) -1 -> 2.5; r3 (0.9) +0 -> 2.5
    #   exact: r1 (0.1) +1 -> 3 best; r2 (0.2) +0   -> 3 (not better); r4 -1 -> 2; r3 -> 2
    result = squad_v2_aggregate(RECORDS)
    assert result["best_f1"] == pytest.approx(87.5)  # 3.5 / 4
    assert result["best_f1_thresh"] == 0.2
    assert result["best_exact"] == pytest.approx(75.0)  # 3 / 4
    assert result["best_exact_thresh"] == 0.1


def test_applying_the_best_threshold_reproduces_best_f1():
    # At 0.2 the model answers r1, r2 and abstains on r4 (0.3) and r3 (0.9): 1 + 0.5 + 1 + 1 = 3.5
    result = squad_v2_aggregate(RECORDS, na_prob_thresh=0.2)
    assert result["f1"] == pytest.approx(87.5)
    assert result["exact"] == pytest.approx(75.0)
    assert result["NoAns_exact"] == pytest.approx(100.0)


def test_best_threshold_stays_zero_when_abstaining_everywhere_is_best():
    # Start 1 (one NoAns); HasAns with f1 0 adds 0; the answered NoAns takes 1 away -> never above 1.
    records = [_record(True, 0, 0.0, 0.4), _record(False, 0, 0.0, 0.5)]
    result = squad_v2_aggregate(records)
    assert result["best_f1"] == pytest.approx(50.0)
    assert result["best_f1_thresh"] == 0.0


def test_answering_a_noans_question_costs_its_point_in_the_sweep():
    # Start 1 (one NoAns). NoAns answered (EM 0) at 0.1: -1 -> 0; HasAns f1 1 at 0.2: +1 -> 1, not above 1.
    answered = [_record(False, 0, 0.0, 0.1), _record(True, 1, 1.0, 0.2)]
    assert squad_v2_aggregate(answered)["best_f1"] == pytest.approx(50.0)
    assert squad_v2_aggregate(answered)["best_f1_thresh"] == 0.0
    # Same but the NoAns question was abstained on (EM 1): +0 -> 1; then +1 -> 2 at 0.2 -> 100%.
    abstained = [_record(False, 1, 1.0, 0.1), _record(True, 1, 1.0, 0.2)]
    assert squad_v2_aggregate(abstained)["best_f1"] == pytest.approx(100.0)
    assert squad_v2_aggregate(abstained)["best_f1_thresh"] == 0.2


def test_no_best_keys_unless_every_record_has_na_prob():
    records = [dict(r) for r in RECORDS]
    records[0]["na_prob"] = None
    assert "best_f1" not in squad_v2_aggregate(records)
    with pytest.raises(ValueError):
        squad_v2_aggregate(records, na_prob_thresh=0.5)


def test_empty_group_reports_only_its_total():
    result = squad_v2_aggregate([_record(True, 1, 1.0, None)])
    assert result["NoAns_total"] == 0
    assert "NoAns_exact" not in result
    assert result["HasAns_exact"] == pytest.approx(100.0)


def test_aggregate_rejects_no_records():
    with pytest.raises(ValueError):
        squad_v2_aggregate([])
