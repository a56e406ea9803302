"""A tune's trials and how one is chosen: the front, the candidates plausibly within the budget
on the search split, the evidence that confirms one on other seeds' validation splits, and the
words for each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compress.analysis.configurations import SAME_SPEED_MARGIN, paired_test
from compress.common.certify import CONFIDENCE, PLANNING_DISCORDANCE, PairedLoss, rows_for
from compress.common.errors import option
from compress.orchestrate.tune_space import TuneSettings
from compress.results.tune_record import TrialRecord

#: Configurations measured on the test split at the end: the choice, the rest of the
#: validation front within the budget, and the best plain strategy.
FINAL_CONFIGURATIONS = 5


#: Candidates confirmed at a time, the next of the fixed sequence (``candidates``), scored again
#: on the other seeds' validation splits before the choice: one split of a few hundred rows cannot
#: tell 0.5 pp from 2 pp, and a choice made on it alone lands outside the budget on the test split
#: (measured: docs/benchmarks.md, "`compress tune` on digits (issue 17)").
CONFIRM_CANDIDATES = 6


#: One-sided confidence with which a candidate's loss, pooled over the confirmation seeds'
#: validation pairs, must stay within the budget: every budget answer's (``common.certify``).
CONFIRM_CONFIDENCE = CONFIDENCE



#: How often a good candidate disagrees with its teacher, for how many pooled rows the
#: confirmation needs: what every budget's rows are planned on (``common.certify``).
RESOLVE_DISCORDANCE = PLANNING_DISCORDANCE
#: Seeds the confirmation pools at most to resolve the budget, besides the search seed (more only
#: when the user asked for more seeds): each added one costs a teacher and every candidate's
#: training once more.
MAX_EVIDENCE_SEEDS = 5


def margin_pp(b: int, c: int, n: int) -> float:
    """How far a paired loss of (b - c)/n may be off at ``CONFIRM_CONFIDENCE``, one-sided, in pp:
    the bound every budget answer is certified by (``common.certify``)."""
    loss = PairedLoss(b, c, n)
    return loss.upper_pp() - loss.pp


@dataclass
class Trial(TrialRecord):
    """One proposal and what became of it: the record tune.json saves (``TrialRecord``, whose
    fields it fills in as the trial is trained and scored), with what the search asks of it."""

    def value(self, settings: TuneSettings) -> float | None:
        """What the objective minimizes: the file's bytes (gzip, or as stored when the model ships
        to a microcontroller, whose flash holds the file as it is), or latency relative to the
        teacher."""
        if self.status != "ok":
            return None
        if settings.objective == "size":
            return float((self.size_bytes if settings.microcontroller() else self.size_gzip_bytes) or 0)
        return None if not self.speedup else 1 / self.speedup

    def meets(self, budget: float) -> bool:
        return self.status == "ok" and self.drop_pp is not None and self.drop_pp <= budget + 1e-9

    def plausible(self, budget: float) -> bool:
        """Not ruled out by the search split: its loss less the margin of ``CONFIRM_CONFIDENCE``
        (one-sided) is within the budget.  On 180 rows 1 pp is 1.8 samples, and a model that
        loses 1.7 pp there may well lose under 1 pp on 1,000 rows; only the confirmation's pooled
        rows can tell.  Without paired predictions, the loss itself must be within."""
        if self.screen is None or self.drop_pp is None:
            return self.meets(budget)
        return self.status == "ok" and self.drop_pp - margin_pp(*self.screen) <= budget + 1e-9

    def _fast(self, settings: TuneSettings) -> bool:
        """No slower than ``max_slowdown`` allows beyond the margin the report calls the same
        speed (a speed not measured is no evidence either way)."""
        return settings.max_slowdown is None or (
            self.speedup is not None and self.speedup * settings.max_slowdown >= 1 - SAME_SPEED_MARGIN)

    def _deployable(self, settings: TuneSettings) -> bool:
        """Fits the microcontroller ``settings.device`` names, as TFLite Micro measured it (a
        trial not measured there is not known to fit); any model fits another device."""
        return settings.microcontroller() is None or self.fits is True

    def admissible(self, settings: TuneSettings) -> bool:
        """Within the accuracy budget on the search split, fast enough, fitting the device, and
        with a value for the objective: what the search grows from and shows as its best so far."""
        return (self.meets(settings.max_accuracy_drop) and self._fast(settings)
                and self._deployable(settings) and self.value(settings) is not None)

    def candidate(self, settings: TuneSettings) -> bool:
        """Worth confirming: as ``admissible``, but plausibly within the budget is enough."""
        return (self.plausible(settings.max_accuracy_drop) and self._fast(settings)
                and self._deployable(settings) and self.value(settings) is not None)


@dataclass
class SearchResult:
    """The search phase's outcome, on the validation split of the first seed."""

    trials: list[Trial]
    teacher: dict[str, Any]
    chosen: Trial | None
    front: list[Trial]
    final: list[str]  # specs measured on the test split at the end
    seconds: float
    reused: int
    stopped: str  # why the search ended
    space: dict[str, Any] = field(default_factory=dict)
    widened: int = 0  # random chains queued because the sampler repeated itself
    validation_rows: int = 0  # of the search seed's validation split: 1 pp is this many / 100
    #: Candidate spec -> its evidence on every seed's validation split.
    confirmation: dict[str, Evidence] = field(default_factory=dict)
    #: Seeds the confirmation added to the user's, for their validation splits only.
    validation_only_seeds: list[int] = field(default_factory=list)
    #: Added seeds left out, and why (a weak teacher on that split).
    seeds_left_out: dict[int, str] = field(default_factory=dict)
    #: Seed -> the maker of its validation jobs, for the seeds the search already prepared, so
    #: the confirmation does not load their data and teacher again (not saved in tune.json).
    job_makers: dict[int, Callable[[str], Any]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Evidence:
    """A candidate against each seed's teacher on that seed's validation split.

    The decision pools the discordant pairs of the confirmation seeds, every seed but the
    first: the first seed's split chose the candidates, so its pairs flatter them.
    """

    seeds: tuple[int, ...]
    drops: tuple[float | None, ...]  # pp per seed, None where the job failed or skipped
    pooled_seeds: tuple[int, ...]
    b: int  # pooled pairs the teacher got right and the candidate wrong
    c: int  # ... and the other way round
    n: int

    @property
    def drop_pp(self) -> float:
        """Pooled loss on the confirmation seeds (infinite when a seed produced nothing)."""
        return math.inf if not self.n else 100 * (self.b - self.c) / self.n

    @property
    def upper_pp(self) -> float:
        """The loss this evidence cannot rule out at ``CONFIRM_CONFIDENCE`` (``margin_pp``)."""
        return PairedLoss(self.b, self.c, self.n).upper_pp() if self.n else math.inf

    def within(self, budget: float) -> bool:
        return self.upper_pp <= budget + 1e-9

    def record(self, budget: float) -> dict[str, Any]:
        """What tune.json keeps, enough to redo the decision offline."""
        return {"seeds": list(self.seeds),
                "drops_pp": [None if d is None else round(d, 4) for d in self.drops],
                "pooled_seeds": list(self.pooled_seeds), "discordant": [self.b, self.c], "n": self.n,
                "drop_pp": _finite(self.drop_pp), "upper_pp": _finite(self.upper_pp),
                "confidence": CONFIRM_CONFIDENCE, "within_budget": self.within(budget)}


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def pareto_front(trials: Sequence[Trial], settings: TuneSettings) -> list[Trial]:
    """Finished trials no other beats on both the objective and validation accuracy, by objective."""
    done = [t for t in trials if t.value(settings) is not None and t.val_accuracy is not None]
    unique = list({t.spec: t for t in done}.values())
    front = [t for t in unique if not any(
        o.value(settings) <= t.value(settings) and o.val_accuracy >= t.val_accuracy  # type: ignore[operator]
        and (o.value(settings), o.val_accuracy) != (t.value(settings), t.val_accuracy)
        for o in unique)]
    return sorted(front, key=lambda t: (t.value(settings), -(t.val_accuracy or 0)))


def rank(trial: Trial, settings: TuneSettings) -> tuple[float, float, int]:
    """Best objective first; ties go to higher accuracy, then to the simpler pipeline."""
    return (trial.value(settings) or 0.0, -(trial.val_accuracy or 0), trial.stages)


def choose(trials: Sequence[Trial], settings: TuneSettings) -> Trial | None:
    """The best objective among the trials within the budget."""
    feasible = [t for t in trials if t.admissible(settings)]
    return min(feasible, key=lambda t: rank(t, settings)) if feasible else None


def candidates(trials: Sequence[Trial], settings: TuneSettings) -> list[Trial]:
    """Every distinct model plausibly within the budget on the search seed, in the fixed sequence
    the confirmation certifies them in (``common.certify``): the likeliest within the budget
    first, by their loss on the search split (which chose them, and is not the evidence), ties to
    the least compressed.  Specs that produced the same file (a mixed-precision search that
    settles on the same precisions at several ``max_drop``) are one candidate, the simplest
    spec first."""
    feasible = {t.spec: t for t in trials if t.candidate(settings)}.values()
    seen: set[tuple[Any, ...]] = set()
    distinct = []
    for trial in sorted(feasible, key=lambda t: (t.stages, t.spec)):
        outcome = (trial.size_bytes, trial.size_gzip_bytes, trial.val_accuracy)
        if outcome not in seen:
            seen.add(outcome)
            distinct.append(trial)
    return sorted(distinct, key=lambda t: (t.drop_pp or 0.0, -(t.value(settings) or 0.0)))


def certified(order: Sequence[Trial], confirmation: dict[str, Evidence],
              budget: float) -> tuple[list[Trial], bool]:
    """The candidates certified before the first that is not, in the sequence ``order``, and
    whether the sequence is still open: it reached one not yet confirmed, not a failure.  Every
    one certified is within the budget with the stated error rate, so the choice may be the best
    of them."""
    passed = []
    for trial in order:
        proof = confirmation.get(trial.spec)
        if proof is None:
            return passed, True
        if not proof.within(budget):
            return passed, False
        passed.append(trial)
    return passed, False


def final_specs(trials: Sequence[Trial], chosen: Trial, settings: TuneSettings,
                confirmed: Sequence[Trial] = ()) -> list[str]:
    """What the test split measures: the choice, the best plain strategy (one stage) within the
    budget, so the report can say what the search added, then the other confirmed candidates or
    the validation front."""
    front = [t for t in pareto_front(trials, settings) if t.admissible(settings)]
    plain = choose([t for t in trials if t.stages == 1], settings)
    specs = [chosen.spec]
    for trial in [*([plain] if plain else []), *(confirmed or front)]:
        if trial.spec not in specs and len(specs) < FINAL_CONFIGURATIONS:
            specs.append(trial.spec)
    return specs


def describe_trial(trial: Trial, settings: TuneSettings) -> str:
    if settings.objective == "size":
        stored = "flash" if settings.microcontroller() else "gzip"
        cost = f"{(trial.value(settings) or 0) / 1024:.1f} KiB {stored}"
    else:
        cost = f"{trial.speedup or 0:.2f}x faster"
    return f"{trial.label}: {cost}, {trial.drop_pp + 0.0:+.2f} pp lost on validation"  # never -0.00


def rows_to_resolve(budget: float) -> int:
    """Pooled paired rows on which a candidate that disagrees with its teacher on
    ``RESOLVE_DISCORDANCE`` of them gets a ``CONFIRM_CONFIDENCE`` margin of half the budget:
    about 700 rows for 1 pp, so a candidate that truly loses half the budget is confirmed (a
    budget of 0 is counted as 0.1 pp: more rows than ``MAX_EVIDENCE_SEEDS`` splits give)."""
    return rows_for(max(budget, 0.1) / 2, RESOLVE_DISCORDANCE, CONFIRM_CONFIDENCE)


def evidence_seeds(seeds: Sequence[int], rows_per_seed: int, budget: float) -> list[int]:
    """The seeds whose validation splits confirm a candidate, the search seed first: every other
    seed the user asked for, then further seeds (for validation only, never measured on their
    test splits) until the pooled rows resolve the budget, at most ``MAX_EVIDENCE_SEEDS``."""
    chosen = list(seeds)
    needed = math.ceil(rows_to_resolve(budget) / max(1, rows_per_seed))
    extra = max(seeds) + 1
    while len(chosen) - 1 < min(needed, MAX_EVIDENCE_SEEDS):
        chosen.append(extra)
        extra += 1
    return chosen


def evidence(seeds: Sequence[int], teachers: dict[int, dict[str, Any]],
             rows: dict[int, dict[str, Any]]) -> Evidence:
    """One candidate's rows against each seed's teacher row, all on validation splits; a seed
    where it failed or skipped leaves nothing to pool (an infinite loss)."""
    pooled = tuple(seeds[1:])
    drops = tuple(100 * (teachers[s]["accuracy"] - rows[s]["accuracy"]) if rows[s].get("status") == "ok"
                  else None for s in seeds)
    complete = all(rows[s].get("status") == "ok" for s in pooled)
    test = paired_test([(teachers[s], rows[s]) for s in pooled]) if complete else None
    if test is None:
        return Evidence(tuple(seeds), drops, pooled, 0, 0, 0)
    return Evidence(tuple(seeds), drops, pooled, test.b, test.c, test.n)


def trials_per_family(trials: Sequence[Trial], settings: TuneSettings) -> dict[str, dict[str, Any]]:
    """Per family of first stage: proposals, distinct configurations trained, how many of them
    are admissible and how many plausibly so (candidates for the confirmation), and the best
    admissible one: what shows why a family lost."""
    families: dict[str, dict[str, Any]] = {}
    for family in dict.fromkeys(t.family or "?" for t in trials):
        mine = [t for t in trials if (t.family or "?") == family]
        trained = {t.spec: t for t in mine if t.key is not None}
        fit = [t for t in trained.values() if t.admissible(settings)]
        best = min(fit, key=lambda t: rank(t, settings)) if fit else None
        plausible = sum(t.candidate(settings) for t in trained.values())
        families[family] = {"proposals": len(mine), "trained": len(trained), "admissible": len(fit),
                            "plausible": plausible,
                            "best": best.label if best else None,
                            "best_value": best.value(settings) if best else None,
                            "best_drop_pp": best.drop_pp if best else None}
    return families


def nothing_within_budget(found: SearchResult, settings: TuneSettings, seeds: int) -> str:
    """Why nothing was chosen, naming the closest configuration, as ``recommend`` does."""
    budget = settings.max_accuracy_drop
    if found.confirmation:
        spec, closest = min(found.confirmation.items(), key=lambda item: item[1].upper_pp)
        label = next(t.label for t in found.trials if t.spec == spec)
        plural = "s" if len(closest.pooled_seeds) > 1 else ""
        where = (f"seed{plural} {', '.join(map(str, closest.pooled_seeds))}" if closest.pooled_seeds
                 else "any seed but the first (every added seed's teacher was too weak to use)")
        loss = (f"loses {closest.drop_pp:.2f} pp there (up to {closest.upper_pp:.2f} pp)"
                if math.isfinite(closest.drop_pp) else "produced nothing on one of them")
        return (f"{len(found.confirmation)} configurations were plausibly within the {budget:g} pp "
                f"budget on the first seed's validation split, but none held with "
                f"{CONFIRM_CONFIDENCE:.0%} confidence on the validation split of {where}; the closest, "
                f"{label}, {loss}; raise "
                f"{option('max_accuracy_drop')} or {option('time_budget_min')}")
    accurate = [t for t in found.trials if t.meets(budget)]
    device = settings.microcontroller()
    if accurate and device is not None and not any(t.fits for t in accurate):
        measured = [t for t in accurate if t.fits is not None] or accurate
        smallest = min(measured, key=lambda t: (t.size_bytes or 0, t.spec))
        return (f"{len({t.spec for t in accurate})} configurations stay within {budget:g} pp of the "
                f"teacher on validation, but none fits {device.describe()}; the smallest, "
                f"{smallest.label}: {smallest.fit or smallest.reason or 'not measured in TFLite Micro'}; "
                f"raise {option('max_accuracy_drop')} or choose a larger {option('device')}")
    if accurate and settings.max_slowdown is not None:
        fastest = max(accurate, key=lambda t: t.speedup or 0.0)
        return (f"{len({t.spec for t in accurate})} configurations stay within {budget:g} pp of the teacher "
                f"on validation, but none runs within {settings.max_slowdown:g}× the teacher's latency; "
                f"the fastest, {fastest.label}, runs {fastest.speedup or 0:.2f}× as fast as the teacher; "
                f"raise {option('max_slowdown')}")
    closest_trial = min((t for t in found.trials if t.drop_pp is not None), default=None,
                        key=lambda t: t.drop_pp or 0.0)
    hint = (f"; the closest, {closest_trial.label}, loses {closest_trial.drop_pp:.2f} pp at "
            f"{(closest_trial.size_gzip_bytes or 0) / 1024:.1f} KiB gzip" if closest_trial else "")
    return (f"no configuration of {len(found.trials)} trials stays within {budget:g} pp of the "
            f"teacher on validation{hint}; raise {option('max_accuracy_drop')} or "
            f"{option('time_budget_min')}")
