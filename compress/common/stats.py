"""Statistics for comparing models: exact tests and distribution-free intervals.

Binomial tails come from ``scipy.stats`` so they stay exact at any sample size
(hand-rolled ``math.comb`` sums overflow past ~1,000 trials).  Latency samples
are skewed, so their intervals use order statistics; normal approximations are
kept to planning (power) and to the effect-size interval shown beside an exact p.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Z95 = 1.959963984540054
_ALTERNATIVES = ("two-sided", "greater", "less")


@functools.cache
def _scipy_stats() -> Any:
    """scipy.stats, imported on first use: its import would otherwise delay the start of every
    command that imports the orchestration, and with it the start of the worker processes
    (measured: docs/benchmarks.md, "Figures behind design decisions")."""
    from scipy import stats

    return stats


def median_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Order-statistic confidence interval of the median (no distribution assumed).

    The interval [x_(j), x_(n-1-j)] covers the median with probability
    1 - 2 * P(Binomial(n, 1/2) <= j); j is the largest index keeping that at
    least ``confidence``.  Fewer than 6 values cannot reach 95%, so the
    interval is then the full range.  j comes from the binomial quantile, so
    large n costs only the sort.
    """
    if not 0 <= confidence <= 1:
        raise ValueError("confidence must be in [0, 1]")
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n == 0:
        raise ValueError("median_ci needs at least one value")
    alpha = 1 - confidence
    # ppf is the smallest k with cdf(k) >= alpha/2; nudge to the largest j with 2*cdf(j) <= alpha.
    binom = _scipy_stats().binom
    j = int(binom.ppf(alpha / 2, n, 0.5))
    while j >= 0 and 2 * binom.cdf(j, n, 0.5) > alpha:
        j -= 1
    while j + 1 < n // 2 and 2 * binom.cdf(j + 1, n, 0.5) <= alpha:
        j += 1
    j = min(j, n // 2 - 1)  # the two order statistics must not cross
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


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """(b, c) = (A right & B wrong, A wrong & B right): all McNemar needs from paired outcomes."""
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError("paired outcomes must have the same shape")
    return int(np.sum(a & ~b_)), int(np.sum(~a & b_))


def sign_test(successes: int, trials: int, alternative: str = "two-sided") -> float:
    """Exact binomial test at p = 1/2, e.g. "candidate faster in k of n interleaved rounds".

    ``alternative="greater"`` tests that successes are more likely than not.
    No trials means no evidence: 1.0.
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}")
    if trials == 0:
        return 1.0
    return float(_scipy_stats().binomtest(successes, trials, 0.5, alternative=alternative).pvalue)


def mcnemar_counts(b: int, c: int, alternative: str = "two-sided") -> float:
    """Exact McNemar p from discordant counts b (A right, B wrong) and c (A wrong, B right).

    ``alternative="greater"`` tests that B is better than A (c > b), "less"
    that B is worse.  To pool seeds, sum b and c over them: given b_i + c_i,
    each b_i is Binomial(b_i + c_i, 1/2) under no difference, so the sums are
    Binomial too and the pooled test stays exact.
    """
    return sign_test(c, b + c, alternative)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes on one test set.

    Only the discordant pairs carry information: b (A right, B wrong) and
    c (A wrong, B right); under no difference b ~ Binomial(b + c, 1/2).
    """
    b, c = discordant(correct_a, correct_b)
    if b + c == 0:
        return 1.0
    return float(_scipy_stats().binomtest(min(b, c), b + c, 0.5).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values; ``None`` (no test) passes through uncounted.

    Holm controls the family-wise error rate (any false verdict at all), which
    a verdict table needs; scipy only ships Benjamini–Hochberg
    (``false_discovery_control``), which controls the false discovery rate.
    """
    tested = [(p, i) for i, p in enumerate(p_values) if p is not None]
    if any(not 0 <= p <= 1 for p, _ in tested):
        raise ValueError("p-values must be in [0, 1]")
    adjusted: list[float | None] = list(p_values)
    m = len(tested)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - rank) * p))  # monotone: never below a smaller p's
        adjusted[i] = running
    return adjusted


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) Student-t interval, for a handful of seeds where z would be too narrow."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(np.mean(x))
    if n == 1:
        return mean, mean, mean
    half = float(_scipy_stats().t.ppf((1 + confidence) / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def _power_z(alpha: float, power: float) -> float:
    norm = _scipy_stats().norm
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def detectable_difference(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest accuracy difference (fraction) a paired McNemar test on n samples detects with ``power``.

    Normal approximation (z_{1-alpha/2} + z_power) * sqrt(discordance / n);
    ``discordance`` is the expected share of samples the two models disagree
    on in correctness.  It says whether "no significant difference" means much.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    return _power_z(alpha, power) * math.sqrt(discordance / n)


def samples_needed(effect: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Smallest n with detectable_difference(n) <= effect: how big a test set must be."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    n = max(1, math.ceil(discordance * (_power_z(alpha, power) / effect) ** 2))
    # Guard the ceil against float rounding so the definition holds exactly.
    if n > 1 and detectable_difference(n - 1, discordance, alpha, power) <= effect:
        n -= 1
    elif detectable_difference(n, discordance, alpha, power) > effect:
        n += 1
    return n


def paired_se(b: int, c: int, n: int, min_discordant: int = 0) -> float:
    """Wald standard error of (c − b)/n for paired proportions; ``min_discordant`` floors b + c
    (3: the rule of three) so identical predictions on a small split do not give zero."""
    if b < 0 or c < 0 or b + c > n:
        raise ValueError("need 0 <= b, c and b + c <= n")
    return math.sqrt(max(0.0, max(b + c, min_discordant) - (c - b) ** 2 / n)) / n


def paired_difference_interval(
    b: int, c: int, n: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Accuracy difference B − A = (c − b)/n with a Wald interval for paired proportions.

    McNemar's exact p says whether there is a difference; this interval, shown
    beside it, says how big it plausibly is.  Clipped to [-1, 1]; n == 0
    gives (0, 0, 0).
    """
    if n == 0:
        return 0.0, 0.0, 0.0
    se = paired_se(b, c, n)
    diff = (c - b) / n
    half = float(_scipy_stats().norm.ppf((1 + confidence) / 2)) * se
    return diff, max(-1.0, diff - half), min(1.0, diff + half)


def noninferiority_p(b: int, c: int, n: int, margin: float) -> float:
    """One-sided p for H0: B − A <= −margin against H1: B − A > −margin (B at most ``margin`` worse).

    A compressed model rarely beats its reference, so "not significantly
    different" is the wrong question; this asks whether the loss is within
    tolerance.  Wald z with the paired se, floored by the rule of three: two models that never
    disagree on 36 rows have not shown they never will (a zero se gave p = 0).  n == 0 is no
    evidence (1.0).
    """
    if n == 0:
        return 1.0
    se = paired_se(b, c, n, min_discordant=3)
    diff = (c - b) / n
    if se == 0:
        return 0.0 if diff > -margin else 1.0
    return float(_scipy_stats().norm.sf((diff + margin) / se))


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


#: A round is steady when its median is within this share of the fastest rounds' level.
STEADY_TOLERANCE = 0.10


@dataclass(frozen=True)
class Spread:
    """Summary of a latency sample in microseconds, over its steady rounds."""

    p50: float
    p50_ci_low: float
    p50_ci_high: float
    p95: float
    p99: float
    iqr: float
    rounds: int
    steady_rounds: int


def steady_rounds(rounds: list[np.ndarray], tolerance: float = STEADY_TOLERANCE) -> np.ndarray:
    """Which rounds ran at the machine's fast level: a median within ``tolerance`` of the
    fastest rounds' (their 10th percentile).

    Slower rounds met a preempted thread or a slowed core (another tenant on a VM's host, a
    frequency drop), which comes and goes (measured: docs/benchmarks.md, "On a busy machine, and
    between processes (issue 18)"); the share of rounds it hits changes from process to process,
    so a median over every round measures the machine.  A
    model's own call-to-call variation shows inside each round, not between them.
    """
    medians = np.array([np.median(r) for r in rounds])
    return medians <= np.percentile(medians, 10) * (1 + tolerance)


def summarize_rounds(rounds: list[np.ndarray], steady: np.ndarray | None = None) -> Spread:
    """Median over the steady rounds' medians, tails over their calls (``steady``: the mask
    ``steady_rounds`` gives, when the caller has it already)."""
    steady = steady_rounds(rounds) if steady is None else steady
    kept = [r for r, keep in zip(rounds, steady, strict=True) if keep]
    medians = np.array([np.median(r) for r in kept])
    calls = np.concatenate(kept)
    low, high = median_ci(medians)
    return Spread(
        p50=float(np.median(medians)),
        p50_ci_low=low,
        p50_ci_high=high,
        p95=float(np.percentile(calls, 95)),
        p99=float(np.percentile(calls, 99)),
        iqr=float(np.subtract(*np.percentile(calls, [75, 25]))),
        rounds=len(rounds),
        steady_rounds=len(kept),
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


def rounds_faster(reference_rounds: list[np.ndarray], candidate_rounds: list[np.ndarray]) -> tuple[int, int]:
    """(rounds where the candidate's median beats the reference's, rounds where they differ).

    Ties are dropped, as a sign test does; feed the pair to ``sign_test``.
    """
    pairs = [(np.median(r), np.median(c)) for r, c in zip(reference_rounds, candidate_rounds, strict=True)]
    return sum(bool(c < r) for r, c in pairs), sum(bool(c != r) for r, c in pairs)


def above_rate(successes: int, trials: int, rate: float) -> float:
    """One-sided exact binomial p-value that the true success rate exceeds ``rate``
    (a teacher against always predicting the majority class)."""
    if trials <= 0:
        return 1.0
    return float(_scipy_stats().binomtest(successes, trials, rate, alternative="greater").pvalue)
