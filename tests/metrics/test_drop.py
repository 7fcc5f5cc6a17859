"""DROP metrics against hand-worked values of the official definitions."""

import pytest

from evalsuite.metrics.drop import (
    answer_to_bags,
    drop_score,
    get_metrics,
    gold_from_drop_json,
    golds_from_drop_qa,
    normalize_answer,
    parse_drop_ref_text,
)


def test_numbers_are_normalised_as_numbers():
    assert normalize_answer("2") == "2.0"
    assert normalize_answer("1,000 yards") == "1000.0 yards"
    # A decimal keeps its point: the number test comes before punctuation removal.
    assert normalize_answer("3.5") == "3.5"
    assert normalize_answer("The $5 bill") == "5.0 bill"


def test_tokens_split_on_spaces_and_hyphens():
    assert normalize_answer("Forty-two  yards") == "forty two yards"
    # The official tokenizer drops a leading minus with the hyphen split.
    assert normalize_answer("-5") == "5.0"


def test_answer_to_bags():
    spans, bags = answer_to_bags(["The Bears", "2 field goals"])
    assert spans == ["bears", "2.0 field goals"]
    assert bags == [{"bears"}, {"2.0", "field", "goals"}]
    assert answer_to_bags("a touchdown") == (["touchdown"], [{"touchdown"}])


def test_integer_matches_its_decimal_spelling():
    assert get_metrics("2", "2.0") == (1.0, 1.0)
    assert get_metrics("1,000", "1000") == (1.0, 1.0)


def test_decimal_survives_and_is_not_merged_into_an_integer():
    assert get_metrics("3.5", "3.5") == (1.0, 1.0)
    # "3.5" vs "35": different numbers, so the number rule zeroes F1.
    assert get_metrics("3.5", "35") == (0.0, 0.0)


def test_two_spans_in_the_other_order_match_exactly():
    assert get_metrics(["Bob", "Alice Smith"], ["alice smith", "bob"]) == (1.0, 1.0)


def test_number_mismatch_zeroes_a_span_that_shares_other_words():
    # Bags {25.0, yards} vs {24.0, yards}: token F1 would be P 1/2, R 1/2 -> 0.5, but the gold
    # number 24 is not among the predicted numbers, so the span scores 0.
    assert get_metrics("25 yards", "24 yards") == (0.0, 0.0)


def test_number_rule_does_not_apply_when_gold_has_no_number():
    # {5.0, touchdowns} vs {touchdowns}: P 1/2, R 1 -> F1 2/3 -> rounded 0.67
    assert get_metrics("5 touchdowns", "touchdowns") == (0.0, 0.67)


def test_hungarian_alignment_pairs_spans_one_to_one():
    # gold g1 = {red, blue}, g2 = {red}; pred p1 = {red, blue}, p2 = {blue}
    #   F1(p1,g1) = 1    F1(p2,g1) = P 1, R 1/2 -> 2/3
    #   F1(p1,g2) = P 1/2, R 1 -> 2/3    F1(p2,g2) = 0
    # Greedy g1->p1 then g2->p2 gives (1 + 0) / 2 = 0.5; letting both golds use p1 would give
    # (1 + 2/3) / 2 = 0.83. The best one-to-one pairing g1->p2, g2->p1 gives (2/3 + 2/3) / 2 = 0.67.
    assert get_metrics(["red blue", "blue"], ["red blue", "red"]) == (0.0, 0.67)


def test_f1_averages_over_the_longer_side():
    # pred [bob], gold [bob, alice]: slots [1, 0] -> 0.5
    assert get_metrics("bob", ["bob", "alice"]) == (0.0, 0.5)
    # pred [bob, alice, carol], gold [bob]: slots [1, 0, 0] -> 1/3 -> 0.33
    assert get_metrics(["bob", "alice", "carol"], "bob") == (0.0, 0.33)


def test_exact_match_needs_the_same_number_of_spans():
    # Both normalise to {"bob"} as a set, but 2 spans are not 1.
    assert get_metrics(["Bob", "bob"], "bob")[0] == 0.0


def test_drop_score_takes_the_best_gold_alternative():
    assert drop_score("2", ["two", "2"]) == {"em": 1.0, "f1": 1.0}
    # EM and F1 are maximised separately: F1 from "4 quarters" (P 1/2, R 1 -> 0.67), EM from none.
    assert drop_score("4 quarters", ["4", "five"]) == {"em": 0.0, "f1": 0.67}


def test_drop_score_skips_blank_golds():
    # A blank gold would "match" an empty prediction; the official evaluation ignores it.
    assert drop_score("", ["", "5"]) == {"em": 0.0, "f1": 0.0}
    assert drop_score("", [[""], "  "]) == {"em": 0.0, "f1": 0.0}


def test_parse_drop_ref_text():
    assert parse_drop_ref_text("2|2.0") == ["2", "2.0"]
    assert parse_drop_ref_text("Tom Brady| |") == ["Tom Brady"]
    assert drop_score("2.00", parse_drop_ref_text("2|2.0")) == {"em": 1.0, "f1": 1.0}


def test_gold_from_drop_json_by_answer_type():
    empty_date = {"day": "", "month": "", "year": ""}
    assert gold_from_drop_json({"number": "12", "date": empty_date, "spans": []}) == "12"
    assert gold_from_drop_json({"number": "", "date": empty_date, "spans": ["Bears", "Lions"]}) == [
        "Bears",
        "Lions",
    ]
    date = {"day": "", "month": "May", "year": "1990"}
    assert gold_from_drop_json({"number": "", "date": date, "spans": []}) == "May 1990"
    with pytest.raises(ValueError):
        gold_from_drop_json({"number": "", "spans": []})


def test_golds_from_drop_qa_lists_answer_then_validated_answers():
    empty_date = {"day": "", "month": "", "year": ""}
    qa = {
        "answer": {"number": "3", "date": empty_date, "spans": []},
        "validated_answers": [{"number": "", "date": empty_date, "spans": ["three"]}],
    }
    assert golds_from_drop_qa(qa) == ["3", ["three"]]
    assert golds_from_drop_qa({"answer": qa["answer"]}) == ["3"]
