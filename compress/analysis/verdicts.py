"""The verdict policy: how a claim of the source document becomes a verdict.

Written out in docs/verdicts.md; this module is the only implementation.

- A claim about a deterministic fact (bytes, MACs, training steps) is decided by a
  stated threshold, not a test: "significantly reduces size" means at least
  ``SIGNIFICANT_FACTOR`` times smaller.
- Every other claim is decided by a stated exact test at ``ALPHA`` (two-sided),
  pooled over seeds, with a Holm correction across all tested claims of one report.
  The p-value shown is the corrected one.
- **confirmed**: the corrected test is significant, in the claim's direction, and the
  effect reaches the claim's smallest meaningful size.
- **refuted**: the opposite effect is significant (and meaningful).
- **not shown**: no significant, meaningful effect although the data could have
  detected one of the smallest meaningful size.
- **inconclusive**: no significant effect, and the test split (or the number of
  seeds) is too small to detect the smallest meaningful effect; the verdict says
  how many test samples would be needed.
- **not measured**: the run has no rows that bear on the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from compress.common.stats import holm

ALPHA = 0.05
CONFIRMED, REFUTED, NOT_SHOWN, INCONCLUSIVE, NOT_MEASURED = (
    "confirmed", "refuted", "not shown", "inconclusive", "not measured",
)
VERDICTS = (CONFIRMED, REFUTED, NOT_SHOWN, INCONCLUSIVE, NOT_MEASURED)
#: "Significantly reduces" size or computation: at least this many times less.
SIGNIFICANT_FACTOR = 2.0
#: The smallest accuracy change that matters to a deployment, in percentage points.
MEANINGFUL_ACCURACY_PP = 1.0
#: The smallest speed change that matters: 3% faster or slower.
MEANINGFUL_SPEED = 0.03
#: "Saves training time": at least this many times less than the comparison.
TIME_SAVING_FACTOR = 2.0

#: Columns of claims.csv, in order.
CSV_COLUMNS = ("technique", "claim", "verdict", "effect", "ci_low", "ci_high", "p_value", "seeds",
               "n_test", "unit", "p_raw", "rule", "measured", "needed")


@dataclass(frozen=True)
class Verdict:
    """One claim against one run's measurements."""

    technique: str
    claim: str
    verdict: str  # one of VERDICTS; tested claims are decided by ``decide``
    measured: str
    rule: str  # the test or threshold that decides it, in words
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    unit: str = ""
    p_raw: float | None = None  # None for facts and for claims not measured
    p_value: float | None = None  # after the Holm correction
    supports: bool | None = None  # the direction of the effect, for tested claims
    meaningful: bool = True  # the effect reaches the claim's smallest meaningful size
    detectable: bool = True  # the data could detect the smallest meaningful effect
    needed: str = ""  # what would decide an inconclusive claim
    seeds: int = 0
    n_test: int = 0

    @property
    def tested(self) -> bool:
        return self.p_raw is not None

    def csv_record(self) -> dict[str, object]:
        return {column: getattr(self, column) for column in CSV_COLUMNS}


def fact(technique: str, claim: str, *, holds: bool | None, measured: str, rule: str,
         effect: float | None = None, unit: str = "", seeds: int = 0, n_test: int = 0) -> Verdict:
    """A deterministic claim: ``holds`` True confirms it, False refutes it, None shows nothing."""
    verdict = CONFIRMED if holds else REFUTED if holds is False else NOT_SHOWN
    return Verdict(technique, claim, verdict, measured, rule, effect=effect, unit=unit, seeds=seeds,
                   n_test=n_test)


def not_measured(technique: str, claim: str, why: str) -> Verdict:
    return Verdict(technique, claim, NOT_MEASURED, why, "")


def decide(verdicts: list[Verdict]) -> list[Verdict]:
    """Correct the tested claims' p-values together (Holm) and give each its verdict."""
    adjusted = holm([v.p_raw for v in verdicts])
    out = []
    for verdict, p in zip(verdicts, adjusted, strict=True):
        if not verdict.tested or p is None:
            out.append(verdict)
            continue
        if p <= ALPHA and verdict.meaningful and verdict.supports is not None:
            outcome = CONFIRMED if verdict.supports else REFUTED
        elif not verdict.detectable:
            outcome = INCONCLUSIVE
        else:
            outcome = NOT_SHOWN
        needed = verdict.needed if outcome == INCONCLUSIVE else ""
        out.append(replace(verdict, verdict=outcome, p_value=p, needed=needed))
    return out


def bonferroni(p: float, choices: int) -> float:
    """The p-value of the best of ``choices`` configurations, picked after looking."""
    return min(1.0, p * max(1, choices))


#: Beyond this many seeds, more seeds are no answer: each re-splits the same rows, so their test
#: splits overlap and pooling them overstates the evidence.
MOST_USEFUL_SEEDS = 10


def samples_text(needed: int, n_test: int) -> str:
    """What an inconclusive verdict needs, in test samples and, while a few seeds of this split
    size would do, in seeds; past that, in data."""
    seeds = math.ceil(needed / n_test) if n_test else 0
    if seeds > MOST_USEFUL_SEEDS:
        return (f"needs about {needed:,} test samples, {seeds}× this split's {n_test:,}: more data, "
                "since seeds re-split the same rows")
    more = f" (about {seeds} seeds of this split, --seeds {seeds})" if seeds > 1 else ""
    return f"needs about {needed:,} test samples{more}"
