"""Small, exact statistics for comparing models; pure Python and NumPy.

Everything here is distribution-free or exact, because latency samples are
skewed and test sets are small: normal approximations would mislead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def _binomial_cdf(k: int, n: int, p: float = 0.5) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def median_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic confidence interval of the median (no distribution assumed).

    The interval [x_(j), x_(n-1-j)] covers the median with probability
    1 - 2 * P(Binomial(n, 1/2) <= j); j is the largest index keeping that at
    least ``confidence``.  Fewer than 6 values cannot reach 95%, so the
    interval is then the full range.
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n == 0:
        raise ValueError("median_ci needs at least one value")
    alpha = 1 - confidence
    j = -1
    while j + 1 < n // 2 and 2 * _binomial_cdf(j + 1, n) <= alpha:
        j += 1
    if j < 0:
        return float(ordered[0]), float(ordered[-1])
    return float(ordered[j]), float(ordered[n - 1 - j])


def wilson_interval(successes: int, total: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion: sane even at 0% or 100%."""
    if total <= 0:
        raise ValueError("wilson_interval needs total > 0")
    p = successes / total
    z2 = Z95**2
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total**2)) / (1 + z2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes on one test set.

    Only the discordant pairs carry information: b (A right, B wrong) and
    c (A wrong, B right); under no difference b ~ Binomial(b + c, 1/2).
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * _binomial_cdf(min(b, c), n))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1, so small classes count as much as big ones."""
    scores = []
    for k in range(n_classes):
        tp = np.sum((y_pred == k) & (y_true == k))
        fp = np.sum((y_pred == k) & (y_true != k))
        fn = np.sum((y_pred != k) & (y_true == k))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


@dataclass(frozen=True)
class Spread:
    """Summary of a latency sample in microseconds."""

    p50: float
    p50_ci_low: float
    p50_ci_high: float
    p95: float
    p99: float
    iqr: float
    relative_spread: float  # IQR of round medians over their median


def summarize_rounds(rounds: list[np.ndarray]) -> Spread:
    """Median over round medians (robust to a noisy round), tails over all calls."""
    medians = np.array([np.median(r) for r in rounds])
    calls = np.concatenate(rounds)
    p50 = float(np.median(medians))
    low, high = median_ci(medians)
    q25, q75 = np.percentile(medians, [25, 75])
    return Spread(
        p50=p50,
        p50_ci_low=low,
        p50_ci_high=high,
        p95=float(np.percentile(calls, 95)),
        p99=float(np.percentile(calls, 99)),
        iqr=float(np.subtract(*np.percentile(calls, [75, 25]))),
        relative_spread=float((q75 - q25) / p50) if p50 > 0 else 0.0,
    )


def paired_ratio(reference: list[np.ndarray], candidate: list[np.ndarray]) -> tuple[float, float, float]:
    """Speed-up reference/candidate with a 95% interval, paired by interleaved round.

    Rounds were run back to back, so each round's ratio cancels the machine
    drift both models saw; the median ratio and its order-statistic interval
    then need no assumption about the latency distribution.
    """
    ratios = np.array([np.median(r) / np.median(c) for r, c in zip(reference, candidate, strict=True)])
    low, high = median_ci(ratios)
    return float(np.median(ratios)), low, high
