"""The reward model's validation numbers against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from evalsuite.trainers.metrics import format_metrics, pairwise_metrics, ranked_pairs


def test_pairs_of_a_ranked_comparison_keep_the_lengths_of_winner_and_loser():
    margins, len_w, len_l = ranked_pairs([[3.0, 1.0, 2.0]], [[10, 20, 30]])
    assert margins == [2.0, 1.0, -1.0] and len_w == [10, 10, 20] and len_l == [20, 30, 30]


def test_accuracy_and_its_length_breakdown():
    # six pairs (winner length, loser length, margin): three where the shorter is preferred, two where
    # the longer is, one of equal lengths; a tie (margin 0) counts one half
    pairs = [(10, 20, 1.0), (10, 30, -1.0), (5, 50, 0.0), (40, 20, 2.0), (60, 10, 3.0), (7, 7, -0.5)]
    margins, len_w, len_l = [p[2] for p in pairs], [p[0] for p in pairs], [p[1] for p in pairs]
    m = pairwise_metrics(margins, len_w, len_l)
    assert m["accuracy"]["value"] == pytest.approx(3.5 / 6) and m["accuracy"]["n"] == 6
    assert m["accuracy_shorter_preferred"]["value"] == pytest.approx(0.5) and m["accuracy_shorter_preferred"]["n"] == 3
    assert m["accuracy_longer_preferred"]["value"] == 1.0 and m["accuracy_longer_preferred"]["n"] == 2
    # balanced: (0.5 + 1.0) / 2; standard errors: shorter group sd(1, 0, 0.5) / sqrt 3 = 0.288675, longer 0
    assert m["accuracy_length_balanced"]["value"] == pytest.approx(0.75) and m["accuracy_length_balanced"]["n"] == 5
    assert m["accuracy_length_balanced"]["stderr"] == pytest.approx(0.5 / math.sqrt(3) / 2)  # 0.144338
    # unequal pairs: the longer response got the higher reward in 0 + 1 + 0.5 (tie) + 1 + 1 of 5
    assert m["longer_wins"]["value"] == pytest.approx(0.7) and m["labels_longer_preferred"]["value"] == 0.4


def test_a_rule_that_only_looks_at_length_scores_one_half_balanced():
    # labels prefer the longer response in 4 of 5 pairs; "prefer the longer" is right on those 4 and
    # wrong on the fifth: accuracy 0.8, length-balanced exactly 0.5
    len_w, len_l = [20, 30, 40, 50, 5], [10, 10, 10, 10, 50]
    margins = [math.log(a) - math.log(b) for a, b in zip(len_w, len_l)]
    m = pairwise_metrics(margins, len_w, len_l)
    assert m["accuracy"]["value"] == pytest.approx(0.8) and m["accuracy_length_balanced"]["value"] == 0.5
    assert m["longer_wins"]["value"] == 1.0


def test_without_pairs_on_one_side_the_balanced_accuracy_is_undefined():
    m = pairwise_metrics([1.0, -1.0], [20, 30], [10, 10])
    assert math.isnan(m["accuracy_length_balanced"]["value"]) and m["accuracy_length_balanced"]["stderr"] is None
    assert "accuracy_length_balanced     n/a  (2 pairs)" in format_metrics(m)
