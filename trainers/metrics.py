"""Reward-model validation numbers, from the reward margins of ranked pairs.

For every K-choose-2 pair (w ranked above l) with margin ``r_w - r_l``:
- ``accuracy``: share of pairs with a positive margin (an exact tie counts one half), with its
  standard error over pairs;
- ``accuracy_shorter_preferred`` / ``accuracy_longer_preferred``: the same on the pairs whose
  preferred response is the shorter / the longer one (in characters): a reward model that only
  likes length fails the first;
- ``accuracy_length_balanced``: the mean of those two, so that a rule that only looks at length
  ("prefer the longer", or "the shorter") scores exactly 0.5 whatever the labels' own length bias;
  its standard error combines the two groups' (independent pairs);
- ``longer_wins``: on pairs of unequal length, the share where the longer response gets the higher
  reward; compare it with ``labels_longer_preferred``, how often the labels themselves prefer the
  longer one (the data's own length bias).
"""

from __future__ import annotations

import math

from evalsuite.stats import Metric, mean_stderr


def _outcome(margin: float) -> float:
    return 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0


def ranked_pairs(rewards: list[list[float]], lengths: list[list[int]]) -> tuple[list[float], list[int], list[int]]:
    """(margin, winner's length, loser's length) of every K-choose-2 pair of comparisons whose
    rewards and response lengths are listed best first."""
    margins, len_w, len_l = [], [], []
    for r, n in zip(rewards, lengths):
        for i in range(len(r)):
            for j in range(i + 1, len(r)):
                margins.append(r[i] - r[j])
                len_w.append(n[i])
                len_l.append(n[j])
    return margins, len_w, len_l


def balanced(a: Metric, b: Metric) -> Metric:
    """The mean of two accuracies measured on disjoint sets of pairs."""
    if a.n == 0 or b.n == 0:
        return Metric(float("nan"), None, a.n + b.n)
    se = math.sqrt(a.stderr**2 + b.stderr**2) / 2 if a.stderr is not None and b.stderr is not None else None
    return Metric((a.value + b.value) / 2, se, a.n + b.n)


def pairwise_metrics(margins: list[float], len_w: list[int], len_l: list[int]) -> dict[str, dict]:
    correct = [_outcome(m) for m in margins]
    shorter = mean_stderr([c for c, a, b in zip(correct, len_w, len_l) if a < b])
    longer = mean_stderr([c for c, a, b in zip(correct, len_w, len_l) if a > b])
    unequal = [(c, a > b) for c, a, b in zip(correct, len_w, len_l) if a != b]
    longer_wins = [c if w_longer else 1.0 - c for c, w_longer in unequal]
    metrics = {
        "accuracy": mean_stderr(correct),
        "accuracy_length_balanced": balanced(shorter, longer),
        "accuracy_shorter_preferred": shorter,
        "accuracy_longer_preferred": longer,
        "longer_wins": mean_stderr(longer_wins),
        "labels_longer_preferred": mean_stderr([1.0 if w_longer else 0.0 for _, w_longer in unequal]),
    }
    return {name: m.to_json() for name, m in metrics.items()}


def format_metrics(metrics: dict[str, dict]) -> list[str]:
    """One line per number: ``name  value ± stderr  (n pairs)``."""
    lines = []
    for name, m in metrics.items():
        se = f" ± {m['stderr']:.4f}" if m.get("stderr") is not None else ""
        value = "n/a" if m["n"] == 0 or math.isnan(m["value"]) else f"{m['value']:.4f}"
        lines.append(f"{name:<28} {value}{se}  ({m['n']} pairs)")
    return lines
