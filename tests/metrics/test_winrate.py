"""The win-rate statistics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.metrics import winrate
from evalsuite.scorers.pairwise import label_value


def test_outcome_needs_every_judged_order_to_agree():
    assert winrate.outcome({"model_first": 0.9, "baseline_first": 0.6}) == "win"
    assert winrate.outcome({"model_first": 0.2, "baseline_first": None}) == "loss"
    assert winrate.outcome({"model_first": 0.9, "baseline_first": 0.3}) == "tie"  # the orders disagree
    assert winrate.outcome({"model_first": 0.5}) == "tie"
    assert winrate.outcome({"model_first": None, "baseline_first": None}) == "excluded"
    assert winrate.preference({"model_first": 0.9, "baseline_first": 0.3}) == pytest.approx(0.6)


def test_win_rate_counts_ties_one_half():
    est = winrate.win_rate(["win", "tie", "loss", "win", "excluded"])
    assert est.value == pytest.approx(0.625) and est.n == 4
    assert est.se == pytest.approx(np.std([1, 0.5, 0, 1], ddof=1) / 2)
    assert est.ci[0] <= 0.625 <= est.ci[1]
    assert winrate.counts(["win", "tie", "excluded"]) == {"win": 1, "tie": 1, "loss": 0, "excluded": 1}


def test_position_bias_is_the_first_shown_outputs_advantage():
    # Model first: P(first wins) = 0.9; baseline first: P(model) = 0.3, so P(first wins) = 0.7.
    bias, disagree, n = winrate.position_bias([{"model_first": 0.9, "baseline_first": 0.3},
                                               {"model_first": 0.6, "baseline_first": None}])
    assert bias == pytest.approx(0.3) and disagree == 1.0 and n == 1
    assert winrate.position_bias([{"model_first": 0.6, "baseline_first": None}]) == (None, None, 0)


def test_lc_equals_the_mean_preference_when_lengths_do_not_differ():
    prefs = [0.9, 0.2, 0.7, 0.4]
    est = winrate.lc_win_rate(prefs, [10, 20, 30, 40], [10, 20, 30, 40], resamples=20)
    assert est.value == pytest.approx(np.mean(prefs), abs=1e-4)


def test_lc_reads_the_fit_at_zero_length_difference():
    # Longer outputs get 0.8, shorter ones 0.5: tanh(+-1/sd) are +-a, so the fit is saturated and
    # intercept = (logit 0.8 + logit 0.5) / 2 = log(4) / 2, i.e. LC = 2/3, below the raw 0.65 mean.
    prefs = [0.8, 0.8, 0.5, 0.5]
    lengths = [110, 110, 90, 90]
    value = winrate.fit_lc(np.array(prefs), winrate.length_feature(lengths, [100] * 4))
    assert value == pytest.approx(2 / 3, abs=2e-3)


def test_lc_warning_follows_alpaca_eval():
    assert winrate.lc_is_extreme(0.5, 0.7) and winrate.lc_is_extreme(0.5, 0.3)
    assert not winrate.lc_is_extreme(0.5, 0.58)
    assert winrate.lc_is_extreme(0.05, 0.3) and not winrate.lc_is_extreme(0.05, 0.1)


def test_agreement_counts_ties_and_kappa():
    got = winrate.agreement([0.9, 0.2, 0.5, 0.7], [1.0, 0.0, 0.5, 0.0])
    assert got["accuracy"] == pytest.approx(0.75) and got["n"] == 4
    # Marginals: judge a2 b1 tie1, labels a1 b2 tie1 -> chance 0.3125.
    assert got["kappa"] == pytest.approx((0.75 - 0.3125) / (1 - 0.3125))
    assert got["judge_ties"] == 1 and got["label_ties"] == 1
    assert got["accuracy_decided"] == pytest.approx(2 / 3) and got["n_decided"] == 3


def test_alpaca_eval_preferences_as_probabilities():
    assert [label_value(v, "f", 1) for v in (1, 2, 1.5, 0, 1.25, None)] == [1.0, 0.0, 0.5, 0.5, 0.75, None]
    with pytest.raises(EvalsuiteError, match="outside 1..2"):
        label_value(3, "f", 7)


def test_bradley_terry_recovers_the_elo_gap():
    # A beats B three times out of four: the maximum-likelihood gap is 400 log10(3).
    battles = [(1, 0, 1.0), (1, 0, 1.0), (1, 0, 1.0), (1, 0, 0.0)]
    got = winrate.bradley_terry(["B", "A"], battles, anchor=0, resamples=20)
    assert got["B"]["rating"] == pytest.approx(1000.0)
    assert got["A"]["rating"] - 1000.0 == pytest.approx(400 * math.log10(3), abs=0.5)
    # A tie is half a win each way: one win and one tie is a 3:1 record too.
    tied = winrate.bradley_terry(["B", "A"], [(1, 0, 1.0), (1, 0, 0.5)], anchor=0, resamples=20)
    assert tied["A"]["rating"] - 1000.0 == pytest.approx(400 * math.log10(3), abs=0.5)


def test_paired_difference_uses_the_same_prompts():
    got = winrate.paired_difference([1, 1, 0, 1, 0.5], [0, 1, 0, 0, 0.5])
    assert got["difference"] == pytest.approx(0.4) and got["n"] == 5
    assert got["ci"][0] <= 0.4 <= got["ci"][1] and 0 < got["p"] <= 1
