"""The source document's claims, checked against a run's measurements.

The claims are data (``claims.json``); each names a check here.  A check sees
the technique's configurations (role ``technique`` of the claim's family), the
pairings with their controls, and returns a ``Verdict`` before correction;
``evaluate_claims`` then applies the one verdict policy (``compress.analysis.verdicts``)
to all of a report's claims together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from compress.analysis.configurations import Config, PairedTest, Pairing, between
from compress.analysis.verdicts import (
    MEANINGFUL_ACCURACY_PP,
    MEANINGFUL_SPEED,
    SIGNIFICANT_FACTOR,
    TIME_SAVING_FACTOR,
    Verdict,
    bonferroni,
    decide,
    fact,
    not_measured,
    samples_text,
)
from compress.common.stats import noninferiority_p


def load_claims() -> dict[str, Any]:
    return json.loads(resources.files("compress.analysis").joinpath("claims.json").read_text())


@dataclass(frozen=True)
class Evidence:
    """What one claim is checked against."""

    technique: str  # the document's name for it
    claim: str
    configs: list[Config]  # the family's technique configurations in the claim's scenarios
    pairings: list[Pairing]  # those configurations with their controls, on equal budgets
    threshold: float = SIGNIFICANT_FACTOR
    unequal: tuple[str, ...] = ()  # why pairings were left out: the clock stopped them unequally

    def no_control(self, default: str) -> Verdict:
        """Not measured, for want of a control: none ran, or none ran on the same budget."""
        why = "; ".join(self.unequal) + ", so no control trained on the technique's budget" \
            if self.unequal else default
        return not_measured(self.technique, self.claim, why)

    @property
    def seeds(self) -> int:
        return max(c.seeds for c in self.configs)

    @property
    def n_test(self) -> int:
        return max(c.n_test for c in self.configs)

    def verdict(self, **values: Any) -> Verdict:
        """A tested claim: ``decide`` gives it its verdict after the correction."""
        return Verdict(self.technique, self.claim, seeds=self.seeds, n_test=self.n_test,
                       verdict="", **values)

    def fact(self, **values: Any) -> Verdict:
        return fact(self.technique, self.claim, seeds=self.seeds, n_test=self.n_test, **values)


def _accuracy_test(evidence: Evidence, config: Config, test: PairedTest, p: float, *,
                   supports: bool, rule: str) -> Verdict:
    low, high = test.interval_pp
    needed = "" if test.detectable_pp <= MEANINGFUL_ACCURACY_PP else samples_text(
        test.samples_for(MEANINGFUL_ACCURACY_PP), evidence.n_test)
    return evidence.verdict(
        measured=f"{config.label}: {test.effect_pp:+.1f} pp [{low:+.1f}, {high:+.1f}] "
        f"against the teacher over {test.pairs} seed(s); detects ≥ {test.detectable_pp:.1f} pp",
        rule=rule, effect=test.effect_pp, ci_low=low, ci_high=high, unit="pp", p_raw=p,
        supports=supports, meaningful=abs(test.effect_pp) >= MEANINGFUL_ACCURACY_PP,
        detectable=test.detectable_pp <= MEANINGFUL_ACCURACY_PP, needed=needed,
    )


def check_size(evidence: Evidence) -> Verdict:
    best = max(evidence.configs, key=lambda c: c.size_factor)
    gzip = f" (gzip {best.gzip_factor:.1f}×)" if abs(best.gzip_factor - best.size_factor) > 0.25 else ""
    others = "; ".join(f"{c.label} {c.size_factor:.2f}×" for c in evidence.configs if c is not best)
    measured = f"best {best.label}: {best.size_factor:.2f}× smaller TFLite file{gzip}" + (
        f"; {others}" if others else "")
    holds = True if best.size_factor >= evidence.threshold else False if best.size_factor < 1 else None
    return evidence.fact(holds=holds, measured=measured, effect=best.size_factor, unit="×",
                         rule=f"fact: confirmed at ≥ {evidence.threshold:g}× fewer bytes than the "
                         "teacher's TFLite file, refuted if larger")


def check_compute(evidence: Evidence) -> Verdict:
    """Fewer multiply-accumulates, or the same ones in integer arithmetic."""
    measured = [c for c in evidence.configs if c.row.get("macs") and c.items[0].base.get("macs")]
    if not measured:
        return not_measured(evidence.technique, evidence.claim, "no MAC counts in these rows")
    base_arithmetic = measured[0].items[0].base.get("arithmetic")

    def factor(config: Config) -> float:
        return config.items[0].base["macs"] / config.row["macs"]

    best = max(measured, key=factor)
    integer = [c for c in measured if (c.row.get("arithmetic") or "").startswith("int")
               and c.row.get("arithmetic") != base_arithmetic]
    parts = [f"{c.label} {factor(c):.1f}× fewer MACs, {c.row.get('arithmetic') or 'unknown'} arithmetic"
             for c in measured]
    holds = True if factor(best) >= evidence.threshold or integer else None
    return evidence.fact(holds=holds, measured="; ".join(parts), effect=factor(best), unit="×",
                         rule=f"fact: confirmed at ≥ {evidence.threshold:g}× fewer MACs, or the same "
                         "MACs in integer instead of float arithmetic")


def _times(ratio: float, less: str, more: str) -> str:
    """A ratio to the teacher in the direction it goes: "3.4× larger", never "0.3× smaller"."""
    return f"{ratio:.1f}× {less}" if ratio >= 1 else f"{1 / ratio:.1f}× {more}"


def check_power(evidence: Evidence) -> Verdict:
    """Never a verdict: nothing here measures energy.  The row says which measured inputs
    energy depends on (MACs, arithmetic, bytes the arena moves), so nothing is implied."""
    parts = []
    for config in evidence.configs:
        base = config.items[0].base
        facts = [f"{config.row.get('arithmetic') or 'unknown'} arithmetic"]
        if config.row.get("macs") and base.get("macs"):
            facts.append(_times(base["macs"] / config.row["macs"], "fewer MACs", "more MACs"))
        if config.arena_bytes and base.get("arena_bytes"):
            facts.append("arena " + _times(base["arena_bytes"] / config.arena_bytes, "smaller", "larger"))
        parts.append(f"{config.label}: {', '.join(facts)}")
    return not_measured(evidence.technique, evidence.claim,
                        "energy is not measured (no power meter or energy counter here), nor "
                        "estimated; what it depends on was measured: " + "; ".join(parts))


def check_speed(evidence: Evidence) -> Verdict:
    timed = [c for c in evidence.configs if c.speedup and c.speed_p is not None]
    if not timed:
        return not_measured(evidence.technique, evidence.claim, "no latency measured")
    best = max(timed, key=lambda c: c.speedup[0])  # type: ignore[index]
    ratio, low, high = best.speedup  # type: ignore[misc]
    others = "; ".join(f"{c.label} {c.speedup[0]:.2f}×" for c in timed if c is not best)  # type: ignore[index]
    return evidence.verdict(
        measured=f"fastest {best.label}: {ratio:.2f}× [{low:.2f}, {high:.2f}] the "
        f"teacher's speed at batch 1" + (f"; {others}" if others else ""),
        rule="exact sign test over paired interleaved timing rounds, pooled over seeds; best of "
        f"{len(timed)} configuration(s), Bonferroni; meaningful at ≥ {MEANINGFUL_SPEED:.0%}",
        effect=ratio, ci_low=low, ci_high=high, unit="×",
        p_raw=bonferroni(best.speed_p, len(timed)),  # type: ignore[arg-type]
        supports=ratio > 1, meaningful=abs(ratio - 1) >= MEANINGFUL_SPEED,
    )


def _against_teacher(evidence: Evidence, worst: bool) -> tuple[Config, PairedTest, int] | None:
    """The configuration with the lowest (or highest) accuracy change, its test, and how many
    configurations it was picked from."""
    tested = [(c, t) for c in evidence.configs if (t := c.against_teacher) is not None]
    if not tested:
        return None
    pick = min if worst else max
    config, test = pick(tested, key=lambda pair: pair[1].effect_pp)
    return config, test, len(tested)


def _mcnemar_check(worst: bool, against: str) -> Callable[[Evidence], Verdict]:
    """A claim that the worst (or the best) configuration differs from the teacher."""

    def check(evidence: Evidence) -> Verdict:
        found = _against_teacher(evidence, worst=worst)
        if found is None:
            return not_measured(evidence.technique, evidence.claim, "no per-sample predictions")
        config, test, choices = found
        return _accuracy_test(
            evidence, config, test, bonferroni(test.p(), choices),
            supports=test.effect_pp < 0 if worst else test.effect_pp > 0,
            rule=f"exact McNemar against {against}, pooled over seeds; {'worst' if worst else 'best'} "
            f"of {choices} configuration(s), Bonferroni; meaningful at ≥ {MEANINGFUL_ACCURACY_PP:g} pp")

    return check


#: "May lead to degradation": the worst configuration significantly below the teacher.
check_accuracy_drop = _mcnemar_check(worst=True, against="the teacher")
#: "Quickly adapts" (shift scenario): the best configuration significantly above the zero-shot teacher.
check_adapts = _mcnemar_check(worst=False, against="the zero-shot teacher")


def check_accuracy_kept(evidence: Evidence) -> Verdict:
    """'Maintains accuracy': the best configuration non-inferior to the teacher by 1 pp."""
    found = _against_teacher(evidence, worst=False)
    if found is None:
        return not_measured(evidence.technique, evidence.claim, "no per-sample predictions")
    best, test, choices = found
    margin = MEANINGFUL_ACCURACY_PP / 100
    kept = noninferiority_p(test.b, test.c, test.n, margin)
    p = bonferroni(2 * min(kept, 1 - kept), choices)  # the two one-sided tests
    verdict = _accuracy_test(
        evidence, best, test, p, supports=kept < 0.5,
        rule=f"non-inferiority at a {MEANINGFUL_ACCURACY_PP:g} pp margin (paired z test against the "
        f"teacher, pooled over seeds); best of {choices} configuration(s), Bonferroni")
    return replace(verdict, meaningful=True)  # the margin itself is the meaningful size


def weight_bits(arithmetic: str | None) -> int | None:
    """The narrowest integer width in a row's measured arithmetic ("int8", "int4 weights × ...",
    "float32 + int4 weights × float32 activations" where a layer stayed float), or None."""
    widths = [int(bits) for bits in re.findall(r"u?int(\d+)", arithmetic or "")]
    return min(widths) if widths else None


def check_extreme(evidence: Evidence) -> Verdict:
    """The fewest-bits configuration significantly less accurate than the most-bits one."""
    by_bits = sorted(((bits, c) for c in evidence.configs
                      if (bits := weight_bits(c.row.get("arithmetic"))) is not None), key=lambda p: p[0])
    if len({bits for bits, _ in by_bits}) < 2:
        return not_measured(evidence.technique, evidence.claim,
                            "needs integer rows of two widths, e.g. quantize-int8 and quantize-int4")
    # At each end the least-trained row: the width is what differs, not a training budget.
    def training(config: Config) -> tuple[float, str]:
        return config.row.get("training_cost") or 0.0, config.label

    (low_bits, low), (high_bits, high) = (
        min(((b, c) for b, c in by_bits if b == end), key=lambda p: training(p[1]))
        for end in (by_bits[0][0], by_bits[-1][0]))
    test = between(high, low)
    if test is None:
        return not_measured(evidence.technique, evidence.claim, "no per-sample predictions")
    ladder = "; ".join(f"{c.label} ({bits}-bit) {c.delta_pp:+.1f} pp vs teacher" for bits, c in by_bits)
    verdict = _accuracy_test(
        evidence, low, test, test.p(), supports=test.effect_pp < 0,
        rule=f"exact McNemar of the {low_bits}-bit against the {high_bits}-bit configuration, pooled "
        f"over seeds; meaningful at ≥ {MEANINGFUL_ACCURACY_PP:g} pp")
    return replace(verdict, measured=f"{low.label} against {high.label}: {test.effect_pp:+.1f} pp "
                   f"[{test.interval_pp[0]:+.1f}, {test.interval_pp[1]:+.1f}]; {ladder}")


def check_training(evidence: Evidence) -> Verdict:
    seconds = {c.label: c.train_seconds for c in evidence.configs}
    return evidence.fact(holds=all(s > 0 for s in seconds.values()),
                         measured="; ".join(f"{k} {v:.1f} s of training" for k, v in seconds.items()),
                         rule="fact: the technique's own training time is above zero")


def check_saves_time(evidence: Evidence) -> Verdict:
    """Against the control trained from scratch when the run has one, else the teacher's time."""
    parts, outcomes = [], []
    for config in evidence.configs:
        controls = [p.control for p in evidence.pairings if p.technique is config]
        if controls:
            other, what = controls[0].train_seconds, f"for {controls[0].label}"
        else:
            other = config.mean("teacher_train_seconds") or 0.0
            what = "to train the teacher"
        if not other:
            continue
        outcomes.append(other / max(config.train_seconds, 1e-9))
        parts.append(f"{config.label} {config.train_seconds:.2f} s against {other:.2f} s {what}")
    if not parts:
        return evidence.no_control("no comparison time recorded")
    saving = min(outcomes)
    holds = True if saving >= TIME_SAVING_FACTOR else False if saving < 1 else None
    return evidence.fact(holds=holds, measured="; ".join(parts), effect=saving, unit="×",
                         rule=f"fact: confirmed at ≥ {TIME_SAVING_FACTOR:g}× less training time, "
                         "refuted if it takes longer")


def check_knowledge_transfer(evidence: Evidence) -> Verdict:
    """The technique beats every same-budget control trained without the teacher.

    An intersection-union test: a configuration's p-value is the largest of its
    controls', since it must beat all of them.
    """
    candidates = []
    for config in evidence.configs:
        tests = [(p, p.gain) for p in evidence.pairings if p.technique is config and p.gain]
        if tests:
            weakest = min(tests, key=lambda t: t[1].effect_pp)  # type: ignore[union-attr]
            candidates.append((config, weakest, max(t.p() for _, t in tests)))  # type: ignore[union-attr]
    if not candidates:
        return evidence.no_control("no control trained without the teacher ran beside it")
    config, (pairing, test), p = max(candidates, key=lambda c: c[1][1].effect_pp)  # type: ignore[union-attr]
    assert test is not None
    low, high = test.interval_pp
    wins, seeds = pairing.wins
    detectable = test.detectable_pp <= MEANINGFUL_ACCURACY_PP
    return evidence.verdict(
        measured=f"{config.label} against {pairing.control.label}: "
        f"{test.effect_pp:+.1f} pp [{low:+.1f}, {high:+.1f}], wins {wins} of {seeds} seeds; "
        f"detects ≥ {test.detectable_pp:.1f} pp",
        rule="exact McNemar against each same-budget control, pooled over seeds; must beat every "
        f"control (largest p); best of {len(candidates)} configuration(s), Bonferroni",
        effect=test.effect_pp, ci_low=low, ci_high=high, unit="pp",
        p_raw=bonferroni(p, len(candidates)), supports=test.effect_pp > 0,
        meaningful=abs(test.effect_pp) >= MEANINGFUL_ACCURACY_PP, detectable=detectable,
        needed="" if detectable else samples_text(test.samples_for(MEANINGFUL_ACCURACY_PP),
                                                  evidence.n_test),
    )


CHECKS: dict[str, Callable[[Evidence], Verdict]] = {
    "size": check_size,
    "compute": check_compute,
    "speed": check_speed,
    "accuracy_drop": check_accuracy_drop,
    "extreme": check_extreme,
    "accuracy_kept": check_accuracy_kept,
    "training": check_training,
    "saves_time": check_saves_time,
    "adapts": check_adapts,
    "power": check_power,
    "knowledge_transfer": check_knowledge_transfer,
}


def evaluate_claims(configs: list[Config], pairings: list[Pairing],
                    unfinished: Sequence[dict[str, Any]] = ()) -> list[Verdict]:
    """Every claim of the document, decided together under the verdict policy.  ``unfinished``
    (skipped and failed rows) says why a family the run asked for has nothing to judge."""
    data = load_claims()
    names = {t["family"]: t["technique"] for t in data["techniques"]}
    verdicts = []
    for claim in data["claims"]:
        technique = names[claim["family"]]
        scenarios = claim.get("scenarios", ["standard"])
        family = [c for c in configs if c.family == claim["family"]]
        applied = [c for c in family if c.role == "technique"
                   and (c.row.get("scenario") or "standard") in scenarios]
        chosen = [c for c in applied if not c.budget_cut]  # a cut training is not the technique's
        if not chosen:
            stopped = [r for r in unfinished
                       if r.get("family") == claim["family"] and r.get("role") == "technique"]
            if applied:
                why = ("--time-budget stopped its training ("
                       + "; ".join(f"{c.label} at {c.budget_cut}" for c in applied)
                       + "): what the budget bought, not what the technique does")
            elif family:
                why = f"needs a {' or '.join(scenarios)}-scenario run"
            elif stopped:
                why = "; ".join(sorted({f"{r['label']} {r['status']}: {r.get('reason') or 'no reason given'}"
                                        for r in stopped}))
            else:
                why = f"no {claim['family']} strategy in this run"
            verdicts.append(not_measured(technique, claim["claim"], why))
            continue
        mine = [p for p in pairings if p.technique in chosen]
        evidence = Evidence(technique, claim["claim"], chosen,
                            [p for p in mine if not p.unequal_budgets],
                            claim.get("threshold", SIGNIFICANT_FACTOR),
                            tuple(str(p.unequal_budgets) for p in mine if p.unequal_budgets))
        verdicts.append(CHECKS[claim["check"]](evidence))
    return decide(verdicts)
