"""The paired statistics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from evalsuite.metrics.paired import (
    bootstrap_p,
    exact_swap_p,
    holm,
    mcnemar_exact,
    percentile_interval,
    resample_draws,
    swap_masks,
)


def test_mcnemar_exact_counts_discordant_pairs_and_uses_the_binomial():
    # b = 1 (reference right, checkpoint wrong), c = 6; under H0 c ~ Binomial(7, 1/2):
    # two-sided p = 2 * P(X <= 1) = 2 * (1 + 7) / 128 = 0.125. Concordant pairs do not count.
    reference = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    checkpoint = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    result = mcnemar_exact(reference, checkpoint)
    assert (result.only_reference, result.only_checkpoint) == (1, 6)
    assert result.p == pytest.approx(0.125)


def test_mcnemar_exact_second_case_and_no_discordance():
    # b = 8, c = 2: 2 * P(X <= 2) with X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    reference = np.array([1] * 8 + [0] * 2 + [1] * 5)
    checkpoint = np.array([0] * 8 + [1] * 2 + [1] * 5)
    assert mcnemar_exact(reference, checkpoint).p == pytest.approx(112 / 1024)
    same = np.array([1, 0, 1])
    assert mcnemar_exact(same, same).p == 1.0


def test_mcnemar_refuses_scores_that_are_not_0_or_1():
    with pytest.raises(ValueError):
        mcnemar_exact(np.array([0.5, 1.0]), np.array([1.0, 0.0]))


def test_holm_step_down_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> kept at 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, None, 0.7]) == [1.0, None, 1.0]
    assert holm([]) == []
    assert holm([0.02]) == [0.02]


def test_bootstrap_p_inverts_the_percentile_interval():
    # nine draws, one <= 0 and eight >= 0: p = 2 * (1 + 1) / (9 + 1)
    draws = np.array([0.2, 0.4, -0.1, 0.3, 0.5, 0.6, 0.7, 0.1, 0.9])
    assert bootstrap_p(draws) == pytest.approx(0.4)
    assert bootstrap_p(np.zeros(5)) == 1.0  # no change in any draw
    assert bootstrap_p(np.full(999, 2.0)) == pytest.approx(2 / 1000)  # every draw better: the floor
    assert bootstrap_p(np.array([np.nan])) is None


def test_percentile_interval_on_known_draws():
    interval = percentile_interval(np.arange(101, dtype=float))  # 0..100: the 2.5th and 97.5th values
    assert (interval.low, interval.high) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan, np.inf])) is None


def test_resample_draws_are_paired_and_reproducible():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = x + 1.0  # the same documents, every one improved by exactly 1
    draws = resample_draws(lambda idx: y[idx].mean(1) - x[idx].mean(1), len(x), 600, seed=7)
    assert draws.shape == (600,)
    assert np.allclose(draws, 1.0)  # an unpaired bootstrap would spread these by ~0.08
    again = resample_draws(lambda idx: x[idx].mean(1), len(x), 600, seed=7)
    assert np.array_equal(again, resample_draws(lambda idx: x[idx].mean(1), len(x), 600, seed=7))


def test_bootstrap_standard_error_of_a_mean_matches_the_formula():
    x = np.random.default_rng(1).exponential(size=400)
    draws = resample_draws(lambda idx: x[idx].mean(1), len(x), 4000, seed=3)
    plug_in_se = x.std(ddof=0) / np.sqrt(len(x))  # the bootstrap's exact limit for a mean
    assert draws.std(ddof=1) == pytest.approx(plug_in_se, rel=0.06)


def mean_difference_under_swaps(ref: np.ndarray, ckpt: np.ndarray):
    return lambda masks: (np.where(masks, ref, ckpt) - np.where(masks, ckpt, ref)).mean(1)


def test_exact_swap_test_by_hand():
    # Differences 1, 2, 3: the 8 sign patterns give sums 6, 4, 2, 0, 0, -2, -4, -6; |sum| >= 6 in 2.
    ref, ckpt = np.zeros(3), np.array([1.0, 2.0, 3.0])
    assert exact_swap_p(mean_difference_under_swaps(ref, ckpt), 3) == pytest.approx(2 / 8)
    # Differences 1, 1, -1, 3 (observed sum 4): the sums are +-3 plus three +-1 terms, i.e. 6, 4 (x3),
    # 2 (x3), 0 and their negatives; |sum| >= 4 in 1 + 3 + 3 + 1 = 8 of 16 patterns.
    ref, ckpt = np.zeros(4), np.array([1.0, 1.0, -1.0, 3.0])
    assert exact_swap_p(mean_difference_under_swaps(ref, ckpt), 4) == pytest.approx(8 / 16)


def test_two_documents_that_both_improved_are_not_significant():
    # The bootstrap says p ~ 0 here (every resample improves); the exact test's smallest p with two
    # documents is 2/4.
    ref, ckpt = np.array([30.0, 31.0]), np.array([29.5, 30.2])
    statistic = mean_difference_under_swaps(ref, ckpt)
    assert exact_swap_p(statistic, 2) == 0.5
    draws = resample_draws(lambda idx: ckpt[idx].mean(1) - ref[idx].mean(1), 2, 2000, 0)
    assert bootstrap_p(draws) < 0.01
    assert swap_masks(2).tolist() == [[False, False], [True, False], [False, True], [True, True]]
