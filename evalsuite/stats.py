"""Standard errors, confidence intervals and paired comparisons for per-sample scores.

Every reported metric carries an uncertainty. Means use the plain standard error; ratios of sums
(perplexities) use the delta method; anything else gets a seeded bootstrap over documents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    value: float
    stderr: float | None
    n: int

    def to_json(self) -> dict:
        return {"value": self.value, "stderr": self.stderr, "n": self.n}


def mean_stderr(values: Sequence[float]) -> Metric:
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Metric(float("nan"), None, 0)
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    return Metric(float(x.mean()), se, n)


def mean_metrics(scores: list[dict]) -> dict[str, Metric]:
    """Mean and standard error of every numeric per-sample score (missing values skipped)."""
    keys = [k for k, v in (scores[0] if scores else {}).items() if isinstance(v, (int, float, bool))]
    return {k: mean_stderr([s[k] for s in scores if s.get(k) is not None]) for k in keys}


def ratio_of_sums(numerators: Sequence[float], denominators: Sequence[float]) -> Metric:
    """sum(num)/sum(den) with its delta-method standard error (documents as the sampling unit)."""
    a = np.asarray(numerators, dtype=float)
    b = np.asarray(denominators, dtype=float)
    n = len(a)
    r = float(a.sum() / b.sum())
    if n < 2:
        return Metric(r, None, n)
    resid = a - r * b
    se = float(math.sqrt(n / (n - 1) * (resid**2).sum()) / b.sum())
    return Metric(r, se, n)


def exp_metric(m: Metric, scale: float = 1.0) -> Metric:
    """exp(scale * m) with the delta-method standard error: perplexity from mean negative log-likelihood."""
    value = math.exp(scale * m.value)
    return Metric(value, None if m.stderr is None else value * abs(scale) * m.stderr, m.n)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, samples: int = 1000, seed: int = 1234
) -> tuple[float, float, float]:
    """Standard error and 95% percentile interval of ``statistic(indices)`` over resampled documents."""
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(samples)])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(draws.std(ddof=1)), float(lo), float(hi)


def entropy_bits(p: float) -> float:
    """Entropy of a binary distribution (p, 1-p) in bits: 1.0 means no preference."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))


def binary_from_logprobs(lp_a: float, lp_b: float) -> float:
    """P(a) after normalising two sequence probabilities to a binary distribution (stable in log space)."""
    d = lp_a - lp_b
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
