"""Paired statistics for two checkpoints scored on the same documents.

Pure functions, no run records: the paired bootstrap (documents resampled with replacement, the
same draw for both checkpoints), McNemar's exact test for 0/1 scores, the exact swap (paired
permutation) test for a handful of documents, and Holm's step-down correction for a family of
tests. ``reports.tax`` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Rows of resampled indices drawn at once: bounds memory at CHUNK x n integers.
CHUNK = 250


def resample_draws(statistic: Callable[[np.ndarray], np.ndarray], n: int, resamples: int, seed: int) -> np.ndarray:
    """``statistic`` over ``resamples`` bootstrap draws of ``n`` documents.

    ``statistic`` receives a (k, n) array of document indices (k draws at a time) and returns k
    values (or k rows of values); both checkpoints must be read through the same indices, which is
    what makes the bootstrap paired. The draws depend only on ``n``, ``resamples`` and ``seed``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, CHUNK):
        k = min(CHUNK, resamples - start)
        out.append(np.asarray(statistic(rng.integers(0, n, size=(k, n))), dtype=float))
    return np.concatenate(out) if out else np.empty(0)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> Interval | None:
    """The percentile bootstrap interval; None when there are no finite draws."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(low), float(high))


def bootstrap_p(draws: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value for "no difference", by inverting the percentile interval:
    p = 2 (1 + min(#{d* <= 0}, #{d* >= 0})) / (B + 1), at most 1. So the 95% interval excludes 0
    exactly when p < 0.05 (up to the +1, which keeps p above zero with finitely many draws)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return None
    tail = min(np.count_nonzero(finite <= 0), np.count_nonzero(finite >= 0))
    return float(min(1.0, 2 * (1 + tail) / (finite.size + 1)))


# Below this many documents a bootstrap p-value is not trustworthy (two documents that both
# improved give p ~ 0); the exact swap test, 2^n assignments, takes over.
EXACT_SWAP_BELOW = 12


def swap_masks(n: int) -> np.ndarray:
    """Every way of swapping the two runs' scores on a subset of ``n`` documents: (2^n, n) booleans."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)


def exact_swap_p(statistic: Callable[[np.ndarray], np.ndarray], n: int) -> float:
    """Two-sided exact paired permutation test of "no difference": under it, each document's two
    scores are exchangeable, so every one of the 2^n swap patterns is equally likely. ``statistic``
    maps (k, n) swap masks to k values of the difference (row of no swaps: the observed one);
    p = #{patterns with |value| >= |observed|} / 2^n. With n documents p is at least 2 / 2^n."""
    values = np.asarray(statistic(swap_masks(n)), dtype=float)
    observed = abs(values[0])
    return float(np.count_nonzero(np.abs(values) >= observed - 1e-12 * max(1.0, observed)) / values.size)


@dataclass(frozen=True)
class McNemar:
    only_reference: int  # documents right (1) for the reference and wrong (0) for the checkpoint
    only_checkpoint: int  # the reverse
    p: float


def is_binary(values: np.ndarray) -> bool:
    return bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())


def mcnemar_exact(reference: np.ndarray, checkpoint: np.ndarray) -> McNemar:
    """McNemar's exact test on paired 0/1 scores: under "no change", each discordant document is
    equally likely to favour either side, so the count favouring one side is Binomial(b + c, 1/2)."""
    from scipy.stats import binomtest

    ref, ckpt = np.asarray(reference, dtype=float), np.asarray(checkpoint, dtype=float)
    if not (is_binary(ref) and is_binary(ckpt)) or ref.shape != ckpt.shape:
        raise ValueError("McNemar's test needs two equally long arrays of 0/1 scores")
    b = int(np.count_nonzero((ref == 1) & (ckpt == 0)))
    c = int(np.count_nonzero((ref == 0) & (ckpt == 1)))
    p = 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5).pvalue)
    return McNemar(b, c, p)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control); None entries are not tests
    and stay None. adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), sorted ascending."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
