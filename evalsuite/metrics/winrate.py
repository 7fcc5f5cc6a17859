"""Pairwise win-rate statistics: pure functions on judged pairs, no files, no models.

A judged pair carries the judge's P(model's output is better) for each order it was shown in
(``model_first``, ``baseline_first``; None where not judged). Definitions (docs/pairwise.md):

- ``outcome``: win when every judged order prefers the model (P > 0.5), loss when every one
  prefers the baseline, tie otherwise (an exact 0.5, or two orders that disagree, as MT-bench counts
  them). The win rate scores a win 1, a tie 0.5, a loss 0.
- ``preference``: the mean over judged orders (continuous); the mean preference is its average.
- ``position_bias``: over pairs judged in both orders, mean P(the output shown first wins) - 0.5.
- ``lc_win_rate``: AlpacaEval's length-controlled win rate without its instruction-difficulty
  term: a logistic model of the preference on tanh(length difference / its standard deviation)
  with an intercept (the model term), fit on soft labels; read at zero length difference.
- ``bradley_terry``: FastChat's maximum-likelihood Elo (base 10, scale 400) over all judged
  pairs, with bootstrap intervals.
- ``agreement``: accuracy and Cohen's kappa of a judge's verdicts (a, b, tie) against labels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalsuite.metrics.paired import bootstrap_p, percentile_interval, resample_draws
from evalsuite.stats import mean_stderr

ORDERS = ("model_first", "baseline_first")
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
RESAMPLES = 1000
SEED = 1234
# The fit's inverse L2 strength on the length slope (the intercept is never penalised): weak enough
# that the slope is what the data says, strong enough that it stays finite when every pair agrees.
LC_C = 100.0
# AlpacaEval's ``get_is_extreme_changes``: warn when LC moves beyond both 10 points and a quarter
# of the way to the bound.
WARN_ABS, WARN_REL = 0.10, 4.0
ELO_BASE, ELO_SCALE, ELO_INIT = 10.0, 400.0, 1000.0


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float | None
    ci: tuple[float, float] | None = None
    n: int = 0


def judged(by_order: dict) -> list[float]:
    return [v for k in ORDERS if (v := by_order.get(k)) is not None]


def preference(by_order: dict) -> float | None:
    values = judged(by_order)
    return float(np.mean(values)) if values else None


def outcome(by_order: dict) -> str:
    values = judged(by_order)
    if not values:
        return "excluded"
    if all(v > 0.5 for v in values):
        return "win"
    if all(v < 0.5 for v in values):
        return "loss"
    return "tie"


def _bootstrap_mean(x: np.ndarray, resamples: int, seed: int) -> tuple[float, float] | None:
    if len(x) < 2:
        return None
    interval = percentile_interval(resample_draws(lambda idx: x[idx].mean(axis=1), len(x), resamples, seed))
    return None if interval is None else (interval.low, interval.high)


def win_rate(outcomes: Sequence[str], resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """Ties count one half; excluded pairs are left out. Standard error of the mean, bootstrap 95% CI."""
    x = np.array([SCORE[o] for o in outcomes if o in SCORE])
    m = mean_stderr(x)
    return Estimate(m.value, m.stderr, _bootstrap_mean(x, resamples, seed), m.n)


def mean_preference(preferences: Sequence[float | None]) -> Estimate:
    m = mean_stderr([p for p in preferences if p is not None])
    return Estimate(m.value, m.stderr, None, m.n)


def counts(outcomes: Sequence[str]) -> dict[str, int]:
    return {k: sum(o == k for o in outcomes) for k in ("win", "tie", "loss", "excluded")}


def position_bias(by_orders: Sequence[dict]) -> tuple[float | None, float | None, int]:
    """(mean P(first shown wins) - 0.5, share of pairs whose two orders disagree, pairs judged both ways)."""
    both = [(d["model_first"], d["baseline_first"]) for d in by_orders
            if d.get("model_first") is not None and d.get("baseline_first") is not None]
    if not both:
        return None, None, 0
    mf, bf = np.array(both).T
    # Model first: P(first wins) = mf. Baseline first: P(first wins) = 1 - bf.
    bias = float(np.mean((mf + 1.0 - bf) / 2.0) - 0.5)
    disagree = float(np.mean((mf > 0.5) != (bf > 0.5)))
    return bias, disagree, len(both)


@dataclass(frozen=True)
class Summary:
    """Every statistic of one model's judged pairs against one opponent."""

    rate: Estimate
    preference: Estimate
    lc: Estimate
    position_bias: float | None
    order_disagreement: float | None
    n_both_orders: int
    counts: dict[str, int]


def summarise(outcomes: Sequence[str], preferences: Sequence[float], by_orders: Sequence[dict],
              len_model: Sequence[float], len_baseline: Sequence[float]) -> Summary:
    """The pairs given are the judged ones (excluded pairs already left out)."""
    bias, disagree, n_both = position_bias(by_orders)
    return Summary(win_rate(outcomes), mean_preference(preferences), lc_win_rate(preferences, len_model, len_baseline),
                   bias, disagree, n_both, counts(outcomes))


# --- length control ------------------------------------------------------------------------------


def length_feature(len_model: Sequence[float], len_baseline: Sequence[float]) -> np.ndarray:
    """tanh of the length difference divided by its standard deviation (0 where all differences are equal)."""
    delta = np.asarray(len_model, dtype=float) - np.asarray(len_baseline, dtype=float)
    sd = delta.std(ddof=1) if len(delta) > 1 else 0.0
    return np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)


def fit_lc(preferences: np.ndarray, feature: np.ndarray) -> float:
    """P(model wins) at zero length difference from the soft-label logistic fit: every pair is a
    row labelled 1 with weight p and a row labelled 0 with weight 1 - p (AlpacaEval's device)."""
    from sklearn.linear_model import LogisticRegression

    p = np.clip(preferences, 0.0, 1.0)
    if np.all(p == p[0]) and p[0] in (0.0, 1.0):
        return float(p[0])  # one class only: the fit has nothing to separate
    x = np.concatenate([feature, feature])[:, None]
    y = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    weight = np.concatenate([p, 1.0 - p])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on near-separable draws
        model = LogisticRegression(C=LC_C, max_iter=1000).fit(x, y, sample_weight=weight)
    return float(1.0 / (1.0 + math.exp(-model.intercept_[0])))


def lc_win_rate(preferences: Sequence[float], len_model: Sequence[float], len_baseline: Sequence[float],
                resamples: int = 200, seed: int = SEED) -> Estimate:
    """The length-controlled win rate and its bootstrap standard error (pairs resampled, the
    standardisation and the fit redone on each draw)."""
    p = np.asarray(preferences, dtype=float)
    lm, lb = np.asarray(len_model, dtype=float), np.asarray(len_baseline, dtype=float)
    if len(p) == 0:
        return Estimate(float("nan"), None, None, 0)
    value = fit_lc(p, length_feature(lm, lb))
    if len(p) < 2:
        return Estimate(value, None, None, 1)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(p), len(p))
        draws.append(fit_lc(p[idx], length_feature(lm[idx], lb[idx])))
    return Estimate(value, float(np.std(draws, ddof=1)), None, len(p))


def lc_is_extreme(raw: float, lc: float) -> bool:
    """AlpacaEval's warning rule (on rates in [0, 1])."""
    too_small = lc < min(raw - raw / WARN_REL, raw - WARN_ABS)
    too_large = lc > max(raw + (1.0 - raw) / WARN_REL, raw + WARN_ABS)
    return bool(too_small or too_large)


# --- two models on the same prompts --------------------------------------------------------------


def paired_difference(scores_a: Sequence[float], scores_b: Sequence[float], resamples: int = RESAMPLES,
                      seed: int = SEED) -> dict:
    """Win rate of A minus win rate of B against one baseline, over the prompts both were judged
    on (the same bootstrap draw for both): difference, standard error, 95% CI, two-sided p."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    diff = a - b
    if len(diff) < 2:
        return {"difference": float(diff.mean()) if len(diff) else None, "se": None, "ci": None, "p": None,
                "n": len(diff)}
    draws = resample_draws(lambda idx: diff[idx].mean(axis=1), len(diff), resamples, seed)
    interval = percentile_interval(draws)
    return {"difference": float(diff.mean()), "se": float(draws.std(ddof=1)),
            "ci": None if interval is None else [interval.low, interval.high], "p": bootstrap_p(draws),
            "n": len(diff)}


# --- Bradley-Terry -------------------------------------------------------------------------------


def _bt_fit(players: list[str], battles: list[tuple[int, int, float]], anchor: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    x = np.zeros((2 * len(battles), len(players)))
    y = np.tile([1.0, 0.0], len(battles))
    weight = np.empty(2 * len(battles))
    for row, (i, j, score) in enumerate(battles):
        x[2 * row : 2 * row + 2, i] = math.log(ELO_BASE)
        x[2 * row : 2 * row + 2, j] = -math.log(ELO_BASE)
        weight[2 * row], weight[2 * row + 1] = score, 1.0 - score  # a tie is half a win each way
    with warnings.catch_warnings():  # rows of weight 0 stay: both classes are always present
        warnings.simplefilter("ignore")
        fit = LogisticRegression(fit_intercept=False, C=1e6, max_iter=1000, tol=1e-8)
        fit.fit(x, y, sample_weight=weight)
    elo = ELO_SCALE * fit.coef_[0]
    return elo - elo[anchor] + ELO_INIT


def bradley_terry(players: list[str], battles: list[tuple[int, int, float]], anchor: int = 0,
                  resamples: int = 200, seed: int = SEED) -> dict:
    """Elo-scale ratings (``anchor`` at 1000) from battles (i, j, score of i: 1, 0.5, 0), with
    95% intervals from battles resampled with replacement."""
    if not battles:
        return {}
    ratings = _bt_fit(players, battles, anchor)
    rng = np.random.default_rng(seed)
    draws = np.array([_bt_fit(players, [battles[k] for k in rng.integers(0, len(battles), len(battles))], anchor)
                      for _ in range(resamples)])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {name: {"rating": float(ratings[i]), "ci": [float(low[i]), float(high[i])]}
            for i, name in enumerate(players)}


# --- agreement with labels -----------------------------------------------------------------------


def verdict(p: float) -> str:
    """``a`` (first preferred), ``b`` or ``tie``, from P(first better)."""
    return "a" if p > 0.5 else "b" if p < 0.5 else "tie"


def agreement(judge: Sequence[float], labels: Sequence[float]) -> dict:
    """The judge's verdicts against the labels' on the same pairs (both as P(first better)):
    accuracy (ties must match ties) with its standard error, Cohen's kappa over the three
    verdicts, and how many ties each side gave."""
    ours = [verdict(p) for p in judge]
    theirs = [verdict(p) for p in labels]
    n = len(ours)
    if n == 0:
        return {"n": 0, "accuracy": None, "accuracy_se": None, "kappa": None, "judge_ties": 0, "label_ties": 0}
    match = mean_stderr([float(a == b) for a, b in zip(ours, theirs)])
    expected = sum((ours.count(c) / n) * (theirs.count(c) / n) for c in ("a", "b", "tie"))
    kappa = None if expected >= 1.0 else (match.value - expected) / (1.0 - expected)
    decided = [(a, b) for a, b in zip(ours, theirs) if "tie" not in (a, b)]
    return {"n": n, "accuracy": match.value, "accuracy_se": match.stderr, "kappa": kappa,
            "accuracy_decided": float(np.mean([a == b for a, b in decided])) if decided else None,
            "n_decided": len(decided), "judge_ties": ours.count("tie"), "label_ties": theirs.count("tie")}
