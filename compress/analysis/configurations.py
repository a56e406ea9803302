"""Comparisons derived from saved rows, through roles, never through strategy names.

A row's ``role`` says what it is for (``baseline``, ``technique``, ``control``)
and a control's ``control_of`` names the technique spec it judges.  Every
consumer (report, claims, plots, recommend, the terminal summary) pairs and
selects rows only through the functions here: ``compared`` (each row with its
seed's baseline), ``configurations`` (one configuration over its seeds) and
``pairings`` (a technique configuration with each of its controls).
Pure Python, NumPy and SciPy; no TensorFlow.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from compress.common.stats import (
    detectable_difference,
    discordant,
    mcnemar_counts,
    mean_interval,
    paired_difference_interval,
    samples_needed,
    sign_test,
)

Row = dict[str, Any]

SIGNIFICANCE = 0.05
#: Speed ratios within this margin of 1 are the same speed: a 1% gap can be real (memory
#: layout) yet meaningless, and a tight interval would otherwise call it "faster".
SAME_SPEED_MARGIN = 0.03
#: Sizes within this fraction of each other are the same size for recommendations.
SAME_SIZE_MARGIN = 0.01

#: The source document's distillation setting (teacher outputs computed once, no transfer set)
#: and its single, unseeded result.
DOCUMENT_DISTILL_PARAMS = {"temperature": 2.0, "alpha": 0.5, "epochs": 20, "batch_size": 32,
                           "transfer": "none"}
DOCUMENT_STUDENT_ACCURACY = 0.78


def group_key(row: Row) -> tuple[str, int]:
    """Rows of one run and seed share a test split and a baseline."""
    return (str(row.get("run_id")), int(row.get("seed") or 0))


def _correct(row: Row) -> np.ndarray:
    return np.array([c == "1" for c in row.get("test_correct") or ""], dtype=bool)


@dataclass(frozen=True)
class PairedTest:
    """B against A on the same test samples, pooled over seeds by summing discordant pairs.

    Under no difference each seed's b given b + c is Binomial(b + c, 1/2), so the sums
    are too: the pooled exact McNemar test needs no approximation.
    """

    b: int  # A right, B wrong
    c: int  # A wrong, B right
    n: int  # test samples over all pairs
    pairs: int  # how many (run, seed) pairs were pooled

    @property
    def effect_pp(self) -> float:
        return 100 * (self.c - self.b) / self.n if self.n else 0.0

    @property
    def interval_pp(self) -> tuple[float, float]:
        _, low, high = paired_difference_interval(self.b, self.c, self.n)
        return 100 * low, 100 * high

    def p(self, alternative: str = "two-sided") -> float:
        """``greater``: B better than A; ``less``: B worse."""
        return mcnemar_counts(self.b, self.c, alternative)

    @property
    def discordance(self) -> float:
        """Share of samples on which the two disagree; at least 3/n (the rule of three), so
        identical predictions on this split do not claim infinite resolution."""
        return max((self.b + self.c) / self.n, 3 / self.n) if self.n else 1.0

    @property
    def detectable_pp(self) -> float:
        """The smallest difference this comparison detects with 80% power at alpha = 0.05."""
        return 100 * detectable_difference(self.n, self.discordance) if self.n else float("inf")

    def samples_for(self, effect_pp: float) -> int:
        return samples_needed(effect_pp / 100, self.discordance)


def paired_test(pairs: Iterable[tuple[Row, Row]]) -> PairedTest | None:
    """Pooled test of the second row of each pair against the first (None without predictions)."""
    b = c = n = count = 0
    for first, second in pairs:
        a_ok, b_ok = _correct(first), _correct(second)
        if not len(a_ok) or len(a_ok) != len(b_ok):
            return None
        right_wrong, wrong_right = discordant(a_ok, b_ok)
        b, c, n, count = b + right_wrong, c + wrong_right, n + len(a_ok), count + 1
    return PairedTest(b, c, n, count) if count else None


@dataclass(frozen=True)
class Compared:
    """A finished row and the baseline (teacher) row of its own run and seed."""

    row: Row
    base: Row

    @property
    def size_factor(self) -> float:
        """How many times smaller than the teacher (raw TFLite bytes)."""
        return self.base["size_bytes"] / self.row["size_bytes"]

    @property
    def gzip_factor(self) -> float:
        return self.base["size_gzip_bytes"] / self.row["size_gzip_bytes"]

    @property
    def delta_pp(self) -> float:
        """Accuracy change against the teacher in percentage points, without the float noise
        that printed 0.25 as +0.3 in one table and +0.2 in another (see ``Config.delta_pp``)."""
        return round((self.row["accuracy"] - self.base["accuracy"]) * 100, 9)


def compared(rows: Iterable[Row]) -> list[Compared]:
    """Every finished row paired with its run's and seed's baseline (rows without one left out)."""
    rows = list(rows)
    bases = {group_key(r): r for r in rows if r.get("role") == "baseline" and r["status"] == "ok"}
    return [Compared(r, bases[group_key(r)]) for r in rows
            if r["status"] == "ok" and group_key(r) in bases]


def speed_verdict(ratio: float | None, low: float | None, high: float | None) -> str:
    """'faster' or 'slower' only when the 95% interval excludes 1 by more than the margin."""
    if ratio is None or low is None or high is None:
        return ""
    if low <= 1 <= high:
        return "no significant difference"
    if abs(ratio - 1) < SAME_SPEED_MARGIN:
        return f"same speed (within {SAME_SPEED_MARGIN:.0%})"
    return "faster" if ratio > 1 else "slower"


def _interval(values: list[float], single: tuple[float, float] | None) -> tuple[float, float, float]:
    """Mean with a t interval over seeds; one seed keeps its own measurement interval."""
    if len(values) == 1 and single is not None:
        return values[0], single[0], single[1]
    return mean_interval(values)


@dataclass(frozen=True)
class Config:
    """One configuration (its spec, and for a control the technique it judges) over its seeds."""

    items: tuple[Compared, ...]  # one per (run, seed), all finished
    #: A display name unique within the report (``configurations`` sets it).
    name: str = ""
    #: The (run, seed) pairs the runs asked of it, finished or not (``configurations`` sets it).
    planned: int = 0

    @property
    def row(self) -> Row:
        return self.items[0].row

    @property
    def key(self) -> tuple[str, str, str | None]:
        return config_key(self.row)

    @property
    def spec(self) -> str:
        return str(self.row["spec"])

    @property
    def label(self) -> str:
        return self.name or str(self.row.get("label") or self.row["spec"])

    @property
    def family(self) -> str:
        return str(self.row["family"])

    @property
    def role(self) -> str:
        return str(self.row.get("role"))

    @property
    def budget_cut(self) -> str | None:
        """What ``--time-budget`` cut of its training on some seed ("21 of 300 epochs"), or None:
        such a row shows what the budget bought, not what the technique does."""
        return next((str(i.row["budget_stopped"]) for i in self.items if i.row.get("budget_stopped")), None)

    @property
    def control_of(self) -> str | None:
        return self.row.get("control_of")

    @property
    def seeds(self) -> int:
        return len(self.items)

    @property
    def whole(self) -> bool:
        """Finished on every seed asked of it: a configuration skipped on some answers only for
        the rest, so it is never recommended as if it answered for all."""
        return self.seeds >= self.planned

    @property
    def seeds_text(self) -> str:
        return str(self.seeds) if self.whole else f"{self.seeds} of {self.planned} seeds"

    @property
    def n_test(self) -> int:
        return len(self.row.get("test_correct") or "")

    def values(self, field: str) -> list[float]:
        return [float(i.row[field]) for i in self.items if i.row.get(field) is not None]

    def mean(self, field: str) -> float | None:
        values = self.values(field)
        return statistics.fmean(values) if values else None

    @cached_property
    def accuracy(self) -> tuple[float, float, float]:
        row = self.row
        return _interval(self.values("accuracy"), (row["accuracy_ci_low"], row["accuracy_ci_high"])
                         if row.get("accuracy_ci_low") is not None else None)

    @cached_property
    def latency(self) -> tuple[float, float, float] | None:
        values = self.values("latency_us_p50")
        if len(values) != self.seeds:
            return None
        row = self.row
        return _interval(values, (row["latency_us_p50_ci_low"], row["latency_us_p50_ci_high"]))

    @cached_property
    def speedup(self) -> tuple[float, float, float] | None:
        values = self.values("speedup")
        if len(values) != self.seeds or self.role == "baseline":
            return None
        row = self.row
        return _interval(values, (row["speedup_ci_low"], row["speedup_ci_high"]))

    @property
    def speed(self) -> str:
        return speed_verdict(*self.speedup) if self.speedup else ""

    @cached_property
    def speed_p(self) -> float | None:
        """Exact sign test over every paired timing round of every seed (two-sided)."""
        faster, rounds = self.values("speedup_rounds_faster"), self.values("speedup_rounds")
        if len(rounds) != self.seeds or self.role == "baseline":
            return None
        return sign_test(int(sum(faster)), int(sum(rounds)))

    @property
    def size_bytes(self) -> float:
        return statistics.fmean(self.values("size_bytes"))

    @property
    def gzip_bytes(self) -> float:
        return statistics.fmean(self.values("size_gzip_bytes"))

    @property
    def arena_bytes(self) -> float | None:
        return self.mean("arena_bytes")

    @property
    def model_rss_bytes(self) -> float | None:
        return self.mean("model_rss_bytes")

    @property
    def size_factor(self) -> float:
        return statistics.fmean(i.size_factor for i in self.items)

    @property
    def gzip_factor(self) -> float:
        return statistics.fmean(i.gzip_factor for i in self.items)

    @property
    def delta_pp(self) -> float:
        """Mean change over seeds; rounded to 1e-9 pp, so every table rounds it alike."""
        return round(statistics.fmean(i.delta_pp for i in self.items), 9)

    @property
    def train_seconds(self) -> float:
        return statistics.fmean(self.values("train_seconds") or [0.0])

    @cached_property
    def against_teacher(self) -> PairedTest | None:
        """This configuration (B) against the teacher (A), pooled over seeds."""
        if self.role == "baseline":
            return None
        return paired_test((i.base, i.row) for i in self.items)

    @property
    def unstable(self) -> bool:
        return any(i.row.get("latency_warning") for i in self.items)


def config_key(row: Row) -> tuple[str, str, str | None]:
    return (str(row.get("dataset")), str(row["spec"]), row.get("control_of"))


def configurations(rows: Iterable[Row]) -> list[Config]:
    """Finished rows grouped into configurations over seeds, in first-seen order."""
    rows = list(rows)
    groups: dict[tuple[str, str, str | None], list[Compared]] = defaultdict(list)
    for item in compared(rows):
        groups[config_key(item.row)].append(item)
    asked: dict[tuple[str, str, str | None], set[tuple[str, int]]] = defaultdict(set)
    for row in rows:
        asked[config_key(row)].add(group_key(row))
    configs = [Config(tuple(items)) for items in groups.values()]
    return [Config(c.items, name, len(asked[c.key])) for c, name in
            zip(configs, _unique_names(configs), strict=True)]


def _unique_names(configs: list[Config]) -> list[str]:
    """Short labels, told apart where they clash: a control by its technique, then the dataset."""
    labels = {c.spec: c.label for c in configs}
    names = [c.label for c in configs]
    clashes = {n for n in names if names.count(n) > 1}
    names = [f"{n} for {labels.get(str(c.control_of), c.control_of)}" if n in clashes and c.control_of
             else n for c, n in zip(configs, names, strict=True)]
    clashes = {n for n in names if names.count(n) > 1}
    names = [f"{n} ({c.row.get('dataset')})" if n in clashes else n
             for c, n in zip(configs, names, strict=True)]
    clashes = {n for n in names if names.count(n) > 1}  # e.g. runs of versions with other defaults
    return [f"{c.spec}" + (f" for {c.control_of}" if c.control_of else "") if n in clashes else n
            for c, n in zip(configs, names, strict=True)]


def between(first: Config, second: Config) -> PairedTest | None:
    """``second`` against ``first`` on the seeds both have (same run, same test split)."""
    mine = {group_key(i.row): i.row for i in second.items}
    return paired_test((i.row, mine[group_key(i.row)]) for i in first.items
                       if group_key(i.row) in mine)


@dataclass(frozen=True)
class Pairing:
    """A technique configuration and one of its controls, seed by seed."""

    technique: Config
    control: Config

    @cached_property
    def gain(self) -> PairedTest | None:
        """The technique (B) against its control (A)."""
        return between(self.control, self.technique)

    @cached_property
    def teacher_gap(self) -> PairedTest | None:
        """The teacher (B) against the control (A): what there is to close."""
        return paired_test((c.row, c.base) for c in self.control.items)

    @property
    def unequal_budgets(self) -> str | None:
        """Why the pair did not train on the same budget, or None: ``--time-budget`` stops each
        row's training by the clock, so a control and its technique stop at different points."""
        cut = [f"{c.label} at {c.budget_cut}" for c in (self.technique, self.control) if c.budget_cut]
        return f"--time-budget stopped {' and '.join(cut)}" if cut else None

    @property
    def wins(self) -> tuple[int, int]:
        """Seeds on which the technique beat the control, of the seeds both ran."""
        mine = {group_key(i.row): i.row["accuracy"] for i in self.technique.items}
        shared = [(mine[group_key(c.row)], c.row["accuracy"]) for c in self.control.items
                  if group_key(c.row) in mine]
        return sum(t > c for t, c in shared), len(shared)

    def gap_closure(self) -> tuple[float | None, str]:
        """(closure, why it is not shown): only where the teacher clearly beats the control."""
        gap, gain = self.teacher_gap, self.gain
        teacher = statistics.fmean(i.base["accuracy"] for i in self.control.items)
        control = self.control.accuracy[0]
        if gap is None or gain is None:
            return None, "n/a (no per-sample predictions)"
        if gap.effect_pp <= 0 or gap.p("greater") > SIGNIFICANCE:
            return None, (f"n/a (teacher not better than control: {teacher:.3f} vs {control:.3f}, "
                          f"p = {gap.p('greater'):.2f})")
        return gain.effect_pp / gap.effect_pp, ""


def pairings(configs: Sequence[Config]) -> list[Pairing]:
    """Every control configuration with the technique configuration it names in control_of."""
    techniques = {(c.row.get("dataset"), c.spec): c for c in configs if c.role == "technique"}
    out = []
    for control in configs:
        technique = techniques.get((control.row.get("dataset"), control.control_of))
        if control.role == "control" and technique is not None:
            out.append(Pairing(technique, control))
    return out


def frontier(configs: Sequence[Config], cost: str) -> list[Config]:
    """The accuracy/cost frontier through configurations that are significantly better.

    Controls never take part.  Walking from the cheapest, a configuration joins only if it
    is significantly more accurate than the last one on the frontier (pooled McNemar);
    costs within noise (latency within 3%, sizes within 1%) count as equal.
    """
    def value(config: Config) -> float | None:
        if cost == "size":
            return config.size_bytes
        return config.latency[0] if config.latency else None

    margin = SAME_SPEED_MARGIN if cost == "latency" else SAME_SIZE_MARGIN
    candidates = sorted((c for c in configs if c.role != "control" and value(c) is not None),
                        key=lambda c: (value(c), -c.accuracy[0]))
    front: list[Config] = []
    for config in candidates:
        if not front:
            front.append(config)
            continue
        last = front[-1]
        test = between(last, config)
        better = (config.accuracy[0] > last.accuracy[0] and test is not None
                  and test.p("greater") <= SIGNIFICANCE)
        same_cost = value(config) <= value(last) * (1 + margin)  # type: ignore[operator]
        if better and same_cost:
            front[-1] = config
        elif better:
            front.append(config)
    return front


def against_teacher(rows: Iterable[Row], spec: str) -> dict[str, Any] | None:
    """A technique configuration over its seeds against each seed's teacher, as tune.json keeps
    its choice: the same means as the report's table, or None when no seed finished it."""
    config = next((c for c in configurations(rows) if c.spec == spec and c.control_of is None), None)
    if config is None:
        return None

    def mean(values: Iterable[float]) -> float | None:
        values = list(values)
        return round(statistics.fmean(values), 6) if values else None

    return {
        "seeds": config.seeds,
        "accuracy": mean(config.values("accuracy")),
        "teacher_accuracy": mean(i.base["accuracy"] for i in config.items),
        "drop_pp": mean(-i.delta_pp for i in config.items),
        "times_smaller_gzip": mean(i.gzip_factor for i in config.items),
        "times_smaller_raw": mean(i.size_factor for i in config.items),
        "speedup": mean(config.values("speedup")),
    }
