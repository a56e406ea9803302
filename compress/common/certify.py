"""The one rule every accuracy-budget answer (``max_drop``, ``tune``'s choice) is made by.

A budget is a promise: "the model handed over loses at most B pp against the teacher".  A
candidate is *certified* when its paired loss on rows no training decision has seen is within B
at ``CONFIDENCE``, one-sided; "not clearly outside the budget" is the wrong side of that
question.  Candidates are tested in a fixed sequence (Learn-then-Test, Angelopoulos et al. 2021):
from the least to the most compressed, in an order set before the evidence is looked at, each
at the full error rate, stopping at the first that is not certified; the most compressed one
certified before it is the answer.  The chance of handing over a model outside the budget is then
at most 1 − ``CONFIDENCE``, however many candidates were tested (docs/verdicts.md, "Budgets").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from compress.common.stats import noninferiority_p, paired_se
from compress.common.text import counted

#: One-sided confidence of every certificate: at most a 20% chance that an answer's expected
#: loss exceeds its budget (docs/verdicts.md, "Budgets"; tune's choice used it first).
CONFIDENCE = 0.8
#: How often a candidate near its teacher disagrees with it, as a share of rows: what the rows a
#: budget needs are planned on before any candidate exists (measured on digits' distilled and
#: pruned models: docs/benchmarks.md, "Figures behind design decisions").
PLANNING_DISCORDANCE = 0.025
#: The rule's name, as every note and record gives it.
TEST_NAME = ("fixed-sequence testing, each step a one-sided paired non-inferiority z-test "
             "(Wald, at least 3 discordant rows)")


def z_value(confidence: float = CONFIDENCE) -> float:
    return NormalDist().inv_cdf(confidence)


@dataclass(frozen=True)
class PairedLoss:
    """A candidate against the teacher on the same rows: ``worse`` rows the teacher got right and
    the candidate wrong, ``better`` the other way round, of ``rows``."""

    worse: int
    better: int
    rows: int

    @classmethod
    def of(cls, teacher_correct: np.ndarray, candidate_correct: np.ndarray) -> PairedLoss:
        teacher, mine = np.asarray(teacher_correct, bool), np.asarray(candidate_correct, bool)
        return cls(int(np.sum(teacher & ~mine)), int(np.sum(~teacher & mine)), len(mine))

    @property
    def pp(self) -> float:
        """Accuracy lost, in percentage points (negative: gained)."""
        return 100 * (self.worse - self.better) / self.rows if self.rows else math.inf

    @property
    def error_pp(self) -> float:
        """Its paired standard error, floored at 3 discordant rows (the rule of three)."""
        if not self.rows:
            return math.inf
        return 100 * paired_se(self.worse, self.better, self.rows, min_discordant=3)

    def upper_pp(self, confidence: float = CONFIDENCE) -> float:
        """The largest loss these rows cannot rule out at ``confidence``, one-sided."""
        return self.pp + z_value(confidence) * self.error_pp

    def p_value(self, budget: float) -> float:
        """One-sided p of "it loses more than ``budget`` pp"."""
        return noninferiority_p(self.worse, self.better, self.rows, budget / 100) if self.rows else 1.0

    def plausible(self, budget: float) -> bool:
        """Within the budget once its standard error is forgiven: a screen's question (worth
        training on, worth climbing past), never a certificate."""
        return self.pp - self.error_pp <= budget

    def within(self, budget: float) -> bool:
        """Within the budget as observed: a screen's question too."""
        return self.pp <= budget + 1e-9

    def certified(self, budget: float, confidence: float = CONFIDENCE) -> bool:
        return self.rows > 0 and self.p_value(budget) <= 1 - confidence + 1e-12

    def rows_needed(self, budget: float, confidence: float = CONFIDENCE) -> int | None:
        """Rows that would certify a candidate losing what this one does, as often as it
        disagrees with the teacher; None when its loss is not below the budget (no rows would)."""
        if self.pp >= budget:
            return None
        discordance = max(self.worse + self.better, 3) / self.rows
        return rows_for(budget - self.pp, discordance, confidence)

    def __str__(self) -> str:
        return f"{-self.pp + 0.0:+.1f}±{self.error_pp:.1f}"  # never -0.0


def rows_for(margin_pp: float, discordance: float = PLANNING_DISCORDANCE,
             confidence: float = CONFIDENCE) -> int:
    """Paired rows at which a loss ``margin_pp`` below the budget is certified, for a candidate
    that disagrees with the teacher on a share ``discordance`` of rows."""
    return math.ceil(z_value(confidence) ** 2 * discordance / (margin_pp / 100) ** 2)


@dataclass
class FixedSequence:
    """Candidates tested one by one on the same evidence rows, in an order the caller fixed
    before looking at them (the likeliest within the budget first: the least compressed, or the
    lowest loss on the rows that chose); ``test`` says whether to go on.  ``kept`` is the last
    certified; ``describe`` is the note every answer carries: the test, the rows, each
    candidate's loss and bound, and where it stopped."""

    budget: float
    evidence: str  # where the rows come from, for the note
    #: False: the rows also chose (no evidence was set aside), so a candidate is kept when its
    #: observed loss is within the budget, and the note says the answer is not certified.
    certifies: bool = True
    confidence: float = CONFIDENCE
    kept: str | None = None
    tried: list[str] = field(default_factory=list)
    stopped: str = ""
    rows: int = 0

    def test(self, label: str, loss: PairedLoss) -> bool:
        self.rows = loss.rows
        if not self.certifies:
            self.tried.append(f"{label} {loss} pp")
            if loss.within(self.budget):
                self.kept = label
                return True
            self.stopped = f"{label} loses {loss.pp:.2f} pp"
            return False
        upper = loss.upper_pp(self.confidence)
        if loss.certified(self.budget, self.confidence):
            self.kept = label
            self.tried.append(f"{label} {loss} pp, at worst {-upper + 0.0:+.2f}: certified")
            return True
        self.tried.append(f"{label} {loss} pp, at worst {-upper + 0.0:+.2f}: not certified")
        needed = loss.rows_needed(self.budget, self.confidence)
        self.stopped = (f"{label} loses {loss.pp:.2f} pp, not below the budget: more rows would "
                        "not certify it" if needed is None else
                        f"certifying {label} at its observed loss would take about "
                        f"{counted(needed, 'evidence row')} (there are {loss.rows:,})")
        return False

    def describe(self) -> str:
        if not self.certifies:
            return (f"Budget {self.budget:g} pp NOT certified: answered as observed on "
                    f"{counted(self.rows, 'row')} of {self.evidence}: {'; '.join(self.tried)}"
                    + (f"; stopped: {self.stopped}." if self.stopped else "."))
        head = (f"Budget {self.budget:g} pp certified by {TEST_NAME} at {self.confidence:.0%} "
                f"confidence (error rate at most {1 - self.confidence:.0%}) on "
                f"{counted(self.rows, 'row')} of {self.evidence}: {'; '.join(self.tried)}")
        return head + (f"; stopped: {self.stopped}." if self.stopped else ".")
