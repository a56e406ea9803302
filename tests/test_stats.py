from __future__ import annotations

import numpy as np
import pytest

from compress.stats import (
    macro_f1,
    mcnemar_exact,
    median_ci,
    paired_ratio,
    summarize_rounds,
    wilson_interval,
)


def test_median_ci_uses_binomial_order_statistics():
    # n = 30: P(Bin(30, 1/2) <= 9) = 0.0214, so the 95% interval is x(10)..x(21), 1-based.
    assert median_ci(np.arange(1, 31)) == (10.0, 21.0)
    # n = 5 cannot reach 95% (2 / 32 > 0.05 already needs j = -1): the whole range.
    assert median_ci(np.array([5.0, 1.0, 3.0, 2.0, 4.0])) == (1.0, 5.0)


def test_median_ci_ignores_order_and_covers_the_median():
    values = np.random.default_rng(0).lognormal(size=101)
    low, high = median_ci(values)
    assert low <= np.median(values) <= high
    assert median_ci(values[::-1]) == (low, high)


@pytest.mark.parametrize(
    ("successes", "total", "expected"),
    [
        (8, 10, (0.4902, 0.9433)),  # textbook Wilson example
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (50, 100, (0.4038, 0.5962)),
    ],
)
def test_wilson_interval_matches_hand_computation(successes, total, expected):
    low, high = wilson_interval(successes, total)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def _pairs(b: int, c: int, both: int = 5) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * b + [False] * c + [True] * both
    z = [False] * b + [True] * c + [True] * both
    return np.array(a), np.array(z)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (1, 9, 22 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (0, 6, 2 / 64),  # 2 * (1/2)^6
        (5, 5, 1.0),  # capped at 1
        (0, 0, 1.0),  # no discordant pair: no evidence
        (3, 7, 2 * (1 + 10 + 45 + 120) / 1024),
    ],
)
def test_mcnemar_exact_against_hand_computed_cases(b, c, p):
    assert mcnemar_exact(*_pairs(b, c)) == pytest.approx(p)
    assert mcnemar_exact(*reversed(_pairs(b, c))) == pytest.approx(p)  # symmetric


def test_macro_f1_by_hand():
    # class 0: tp 1, fn 1 -> 2/3; class 1: tp 2, fp 1 -> 4/5
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_summaries_and_paired_ratio():
    rounds = [np.array([1.0, 2.0, 3.0, 100.0])] * 10
    spread = summarize_rounds(rounds)
    assert spread.p50 == 2.5
    assert spread.p99 == pytest.approx(100.0, rel=0.05)
    assert spread.relative_spread == 0.0
    ratio, low, high = paired_ratio([np.full(5, 4.0)] * 8, [np.full(5, 2.0)] * 8)
    assert (ratio, low, high) == (2.0, 2.0, 2.0)
