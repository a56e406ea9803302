from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from compress.common.stats import (
    Z95,
    detectable_difference,
    discordant,
    holm,
    macro_f1,
    mcnemar_counts,
    mcnemar_exact,
    mean_interval,
    median_ci,
    noninferiority_p,
    paired_difference_interval,
    paired_ratio,
    rounds_faster,
    samples_needed,
    sign_test,
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


@pytest.mark.parametrize("slow_share", [0.0, 0.3, 0.7, 0.85])
def test_rounds_on_a_slowed_core_leave_the_median_alone(slow_share):
    """A VM's host slows its core 1.4x for about a second at a time; the share of rounds that
    hits changes from process to process.  The summary must read 15 µs whatever that share."""
    rng = np.random.default_rng(0)
    slow = int(100 * slow_share)
    rounds = [rng.normal(21.0 if i < slow else 15.0, 0.3, size=200) for i in range(100)]
    spread = summarize_rounds(rounds)
    assert spread.p50 == pytest.approx(15.0, rel=0.01)
    assert (spread.rounds, spread.steady_rounds) == (100, 100 - slow)
    assert spread.p99 < 17  # the tails come from the steady rounds too


def test_summaries_and_paired_ratio():
    rounds = [np.array([1.0, 2.0, 3.0, 100.0])] * 10
    spread = summarize_rounds(rounds)
    assert spread.p50 == 2.5
    assert spread.p99 == pytest.approx(100.0, rel=0.05)
    assert (spread.rounds, spread.steady_rounds) == (10, 10)
    ratio, low, high = paired_ratio([np.full(5, 4.0)] * 8, [np.full(5, 2.0)] * 8)
    assert (ratio, low, high) == (2.0, 2.0, 2.0)


def _old_median_j(n: int, confidence: float) -> int:
    """The old loop with the binomial tail in exact integers: the definition median_ci keeps."""
    alpha = 1 - confidence
    j = -1
    while j + 1 < n // 2 and 2 * sum(math.comb(n, i) for i in range(j + 2)) / 2**n <= alpha:
        j += 1
    return j


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_median_ci_matches_the_old_definition_at_small_n(confidence):
    for n in range(1, 61):
        values = np.arange(n, dtype=float)  # x_(k) == k, so the interval reveals j
        j = _old_median_j(n, confidence)
        expected = (0.0, float(n - 1)) if j < 0 else (float(j), float(n - 1 - j))
        assert median_ci(values, confidence) == expected, n
    assert all(_old_median_j(n, 0.95) < 0 for n in range(1, 6))
    assert _old_median_j(6, 0.95) == 0


def test_median_ci_at_large_n():
    n = 100_000
    values = np.random.default_rng(1).lognormal(size=n)
    low, high = median_ci(values)
    assert low <= np.median(values) <= high
    ordered = np.sort(values)
    j = int(np.searchsorted(ordered, low))
    assert (ordered[j], ordered[n - 1 - j]) == (low, high)
    # j is the largest index with 2 * P(Bin(n, 1/2) <= j) <= 5%: about n/2 - 1.96 * sqrt(n) / 2.
    assert 2 * binom.cdf(j, n, 0.5) <= 0.05 < 2 * binom.cdf(j + 1, n, 0.5)
    assert j == pytest.approx(n / 2 - Z95 * math.sqrt(n) / 2, abs=2)


def test_median_ci_rejects_bad_input():
    with pytest.raises(ValueError):
        median_ci(np.array([]))
    with pytest.raises(ValueError):
        median_ci(np.arange(10.0), confidence=1.5)


def test_mcnemar_exact_with_many_discordant_pairs():
    # The old hand-written tail overflowed at ~1,030 discordant pairs.
    a, b = _pairs(9_000, 11_000)
    p = mcnemar_exact(a, b)
    assert math.isfinite(p)
    assert 0 < p < 1e-40
    assert p == pytest.approx(binomtest(9_000, 20_000, 0.5).pvalue)
    assert mcnemar_exact(b, a) == pytest.approx(p)


def test_discordant_counts_each_direction():
    assert discordant(*_pairs(3, 7, both=4)) == (3, 7)
    assert discordant(np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])) == (1, 1)
    with pytest.raises(ValueError):
        discordant(np.ones(3), np.ones(4))


def test_mcnemar_counts_sides_and_pooling():
    assert mcnemar_counts(3, 7) == pytest.approx(mcnemar_exact(*_pairs(3, 7)))
    assert mcnemar_counts(0, 0) == 1.0
    # B better (c = 9 > b = 1): "greater" is P(c >= 9) = 11/1024, "less" is P(c <= 9) = 1023/1024.
    assert mcnemar_counts(1, 9, "greater") == pytest.approx(11 / 1024)
    assert mcnemar_counts(1, 9, "less") == pytest.approx(1023 / 1024)
    assert mcnemar_counts(9, 1, "less") == pytest.approx(11 / 1024)
    # Pooling seeds is summing their counts; large pooled counts stay exact.
    seeds = [(400, 460), (390, 470), (410, 455)]
    b, c = (sum(column) for column in zip(*seeds, strict=True))
    assert (b, c) == (1200, 1385)
    assert mcnemar_counts(b, c, "greater") == pytest.approx(binomtest(c, b + c, 0.5, "greater").pvalue)
    pooled = mcnemar_counts(b, c, "greater")
    assert pooled < 1e-3 < min(mcnemar_counts(*seed, "greater") for seed in seeds)
    with pytest.raises(ValueError):
        mcnemar_counts(1, 2, "bigger")


def test_sign_test_by_hand_and_symmetric():
    assert sign_test(8, 8, "greater") == pytest.approx(1 / 256)
    assert sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sign_test(5, 10) == 1.0
    assert sign_test(0, 0) == 1.0
    for k in range(13):
        assert sign_test(k, 12) == pytest.approx(sign_test(12 - k, 12))
        assert sign_test(k, 12, "greater") == pytest.approx(sign_test(12 - k, 12, "less"))


def test_rounds_faster_drops_ties():
    reference = [np.array([10.0, 11.0, 12.0])] * 4
    candidate = [
        np.array([5.0, 6.0, 7.0]),  # faster
        np.array([1.0, 6.0, 99.0]),  # faster by median, despite a slow call
        np.array([9.0, 11.0, 13.0]),  # tie: dropped
        np.array([20.0, 21.0, 22.0]),  # slower
    ]
    assert rounds_faster(reference, candidate) == (2, 3)
    with pytest.raises(ValueError):
        rounds_faster(reference, candidate[:3])


def test_holm_by_hand():
    # m = 3: sorted 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.001, 0.2]) == pytest.approx([0.002, 0.2])
    assert holm([None, None]) == [None, None]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, float("nan")])


def test_mean_interval_by_hand():
    # mean 2.5, sd sqrt(5/3), t(0.975, 3 df) = 3.182446305
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    mean, low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (mean, low, high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
    assert mean_interval([0.7]) == (0.7, 0.7, 0.7)
    assert mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        mean_interval([])


def test_detectable_difference_and_samples_needed():
    assert detectable_difference(1000, 0.1) == pytest.approx(0.028, abs=0.001)
    assert detectable_difference(4000, 0.1) == pytest.approx(detectable_difference(1000, 0.1) / 2)
    assert detectable_difference(1000, 0.1, power=0.9) > detectable_difference(1000, 0.1)
    for effect in (0.005, 0.01, 0.028, 0.05):
        for discordance in (0.02, 0.1, 0.3):
            n = samples_needed(effect, discordance)
            assert detectable_difference(n, discordance) <= effect
            assert n == 1 or detectable_difference(n - 1, discordance) > effect
    assert samples_needed(detectable_difference(1000, 0.1), 0.1) == 1000
    with pytest.raises(ValueError):
        samples_needed(0.0, 0.1)


def test_paired_difference_interval_by_hand():
    # b = 10, c = 30, n = 1000: diff 0.02, se = sqrt(40 - 400 / 1000) / 1000
    half = Z95 * math.sqrt(39.6) / 1000
    assert paired_difference_interval(10, 30, 1000) == pytest.approx((0.02, 0.02 - half, 0.02 + half))
    diff, low, high = paired_difference_interval(30, 10, 1000)
    assert (diff, low, high) == pytest.approx((-0.02, -0.02 - half, -0.02 + half))
    assert paired_difference_interval(0, 0, 0) == (0.0, 0.0, 0.0)
    assert paired_difference_interval(0, 10, 10) == (1.0, 1.0, 1.0)
    assert paired_difference_interval(0, 9, 10)[2] == 1.0  # clipped
    with pytest.raises(ValueError):
        paired_difference_interval(6, 6, 10)


def test_noninferiority_p():
    # b = 30, c = 10, n = 1000, margin 3 points: z = (-0.02 + 0.03) / (sqrt(39.6) / 1000)
    z = 0.01 / (math.sqrt(39.6) / 1000)
    assert noninferiority_p(30, 10, 1000, 0.03) == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    ps = [noninferiority_p(30, 10, 1000, m) for m in np.linspace(0.0, 0.06, 25)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(ps))
    assert ps[0] > 0.99 > 0.001 > ps[-1]
    # p = 5% exactly at the margin where the 90% two-sided (95% one-sided) interval's low end sits.
    low = paired_difference_interval(30, 10, 1000, confidence=0.90)[1]
    assert noninferiority_p(30, 10, 1000, -low) == pytest.approx(0.05)
    # Never disagreeing proves little on a small split (the rule of three floors the se), and
    # much on a large one.
    assert noninferiority_p(0, 0, 36, 0.01) > 0.3
    assert noninferiority_p(0, 0, 1000, 0.01) < 1e-6
    assert noninferiority_p(0, 0, 100, 0.0) == pytest.approx(0.5)
    assert noninferiority_p(5, 0, 5, 0.5) == 1.0  # se == 0: every row lost
    assert noninferiority_p(0, 0, 0, 0.01) == 1.0


def test_sample_advice_asks_for_data_where_seeds_would_only_re_split_the_same_rows():
    from compress.analysis.verdicts import samples_text

    assert samples_text(300, 100) == "needs about 300 test samples (about 3 seeds of this split, --seeds 3)"
    assert samples_text(6_541, 36) == ("needs about 6,541 test samples, 182× this split's 36: more data, "
                                       "since seeds re-split the same rows")
