"""Planning a run: which rows, paired with which controls, in which files, and how a
``--time-budget`` is shared among the teachers and the rows.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compress.analysis.devices import Device
from compress.common.errors import UserError, option
from compress.strategies import Strategy, registry, strategies_from_spec
from compress.strategies.baseline import Baseline
from compress.strategies.resolve import strategy_from_name

#: A teacher's training weighs this much against strategies' ``cost`` in --time-budget shares
#: (it trains for about as long as a distilled student).
TEACHER_COST = 4.0


def artifact_name(stem: str, taken: set[str]) -> str:
    """A file name per row, safe for any strategy name and unique within the run."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    name, n = f"{stem}.tflite", 2
    while name in taken:
        name, n = f"{stem}-{n}.tflite", n + 1
    return name


@dataclass(frozen=True)
class Step:
    """One row to produce: a strategy and, for a control, the technique it is paired with."""

    strategy: Strategy
    control_of: str | None = None  # the spec of the technique row this control judges

    @property
    def role(self) -> str:
        return self.strategy.role


#: What each requirement a device may have of a model's form means, for its messages.
_NEEDS = {"int8-io": "int8 inputs and outputs"}


def device_needs(device: Device | None) -> set[str]:
    """What a device requires of a model's form (``Strategy.provides``): int8 inputs and outputs
    for a profile that says so."""
    return {"int8-io"} if device is not None and device.int8 else set()


def for_device(specs: Sequence[str], device: Device | None) -> tuple[str, ...]:
    """``specs`` and the rows a device needs beside them: every registered technique that
    provides what it requires (``Strategy.provides``: int8 inputs and outputs), at its defaults,
    alone and after each asked technique whose family it may follow (``follows``), so that a
    distilled or pruned model gets the form the device takes too."""
    needs = device_needs(device)
    asked = [s for spec in specs for s in strategies_from_spec(spec)]
    added: list[str] = []
    for name, cls in registry().items():
        if cls.role != "technique" or not needs & set(cls.provides):
            continue
        if name not in {s.name for s in asked}:
            added.append(name)
        added += [f"{s.spec()}>{name}" for s in asked
                  if s.role == "technique" and not s.produces_tflite and s.family in cls.follows]
    return (*specs, *dict.fromkeys(a for a in added if a not in specs))


def device_form(strategy: Strategy, device: Device | None) -> str:
    """The spec of ``strategy`` whose model the device takes: itself when the device requires
    nothing of the model's form or its last stage provides it, else followed by the first
    registered technique that provides it and may follow that stage.  A one-line UserError when
    none may (its last stage writes a file of another form)."""
    needs = device_needs(device)
    last = getattr(strategy, "parts", [strategy])[-1]
    if needs <= set(last.provides):
        return strategy.spec()
    if not last.produces_tflite:
        for name, cls in registry().items():
            if cls.role == "technique" and needs <= set(cls.provides) and last.family in cls.follows:
                return f"{strategy.spec()}>{name}"
    assert device is not None  # needs is empty without one
    raise UserError(f"{last.name} writes a model without {_NEEDS[min(needs - set(last.provides))]}, "
                    f"which {device.name} requires, and no stage that gives it may follow {last.name}")


def plan_steps(specs: Sequence[str], epochs: int | None = None) -> list[Step]:
    """Every row of a run: the baseline first, each technique followed by its own controls.

    Each technique configuration gets its own copy of every control it declares
    (``companions``) or the user asked for, configured by ``paired_with`` so that
    only the technique differs.  ``epochs`` overrides each strategy's own default,
    never a parameter a control inherits.
    """
    overrides = {} if epochs is None else {"epochs": epochs}
    requested = [s for spec in specs for s in strategies_from_spec(spec, overrides)]
    techniques = list({s.spec(): s for s in requested if s.role == "technique"}.values())
    templates = list({s.spec(): s for s in requested if s.role == "control"}.values())
    for template in templates:
        if not any(t.controlled(str(template.control_of)) for t in techniques):
            raise UserError(f"{template.name} is a control for {template.control_of}; add "
                            f"{option('strategies', [template.control_of])} to the run, or drop "
                            f"{template.name}")
    steps = [Step(Baseline())]
    for technique in techniques:
        steps.append(Step(technique))
        explicit = [c for c in templates if technique.controlled(str(c.control_of))]
        named = {c.name for c in explicit}
        defaults = [strategy_from_name(name, overrides) for name in technique.companions
                    if name not in named]
        for control in [*explicit, *defaults]:
            source = technique.controlled(str(control.control_of))
            if source is not None:
                steps.append(Step(control.paired_with(source), control_of=technique.spec()))
    return steps


class TimeBudget:
    """``--time-budget`` shared among a run's steps, each claiming its share as it starts.

    Steps start cheapest first.  Each has a fixed cost (building, converting, scoring), learnt
    from the steps that train nothing (their whole time is fixed cost), and a training cost in
    proportion to ``Strategy.cost``.  When a step starts, the time left pays first for the
    fixed costs of as many of the next steps as it can, then what remains is split among those
    steps by cost (times the worker count, at most all of it).  Claiming at the start means
    time a quick step leaves unused goes to the steps after it; a step the time left cannot
    pay for is not started, so the costliest steps are the ones a short budget leaves out.

    Teachers are claimed the same way, first (``claim_alone``): each trains while nothing else
    does, so its share is its ``TEACHER_COST`` against every teacher still to train and the
    rows' work spread over the workers.
    """

    def __init__(self, deadline: float, costs: Sequence[float], workers: int = 1,
                 by_index: dict[int, float] | None = None, alone: Sequence[float] = ()) -> None:
        self.deadline = deadline  # time.time(), so worker processes share the clock
        self.costs = list(costs)  # of the steps not started yet, in the order they start
        self.workers = workers
        self.by_index = by_index or {}  # a row's cost, by its index in the run
        self.alone = list(alone)  # of the teachers still to train, one at a time before any row
        self.fixed: list[float] = []

    @classmethod
    def for_run(cls, deadline: float, ordered: Sequence[PlannedRow], workers: int,
                teachers: int) -> TimeBudget:
        """A run's budget: ``teachers`` to train first, then the rows in the order they start."""
        costs = row_costs(ordered)
        return cls(deadline, [costs[item.index] for item in ordered], workers, costs,
                   alone=[TEACHER_COST] * teachers)

    def claim_alone(self, cost: float = TEACHER_COST) -> float:
        """The training deadline of a step that runs with nothing beside it (a teacher)."""
        self.alone.remove(cost)
        now = time.time()
        share = cost / (cost + sum(self.alone) + sum(self.costs) / self.workers)
        return now + max(0.0, self.deadline - now) * share

    def claim(self, cost: float) -> float:
        """The training deadline of the step starting now (the next in line); a time already
        past means: do not start it."""
        self.costs.remove(cost)
        now = time.time()
        left, fixed = self.deadline - now, statistics.median(self.fixed) if self.fixed else 0.0
        if left <= fixed:
            return now - 1.0
        fitting = len(self.costs) + 1 if fixed <= 0 else max(1, int(left * self.workers / fixed))
        ahead = [cost, *self.costs[:fitting - 1]]
        if cost <= 0 or sum(ahead) <= 0:
            return self.deadline
        spare = max(0.0, left - fixed * math.ceil(len(ahead) / self.workers))
        return now + fixed + spare * min(1.0, self.workers * cost / sum(ahead))

    def skip(self, cost: float) -> None:
        """A planned step that will not run (its row is taken from the folder): it no longer
        shares the time."""
        self.costs.remove(cost)

    def finished(self, cost: float, seconds: float, row: dict[str, Any]) -> None:
        """A step took ``seconds`` from its start to its row: all fixed cost if it trains nothing
        and really ran (a skipped or failed row says nothing about what a step costs)."""
        if cost <= 0 and row["status"] == "ok":
            self.fixed.append(seconds)


@dataclass(frozen=True)
class PlannedRow:
    """One row of a run: a step for one seed, and the file its model is saved as."""

    index: int
    seed: int
    step: Step
    artifact: str


def plan_rows(steps: Sequence[Step], seeds: Sequence[int]) -> list[PlannedRow]:
    """Every (seed, step) in report order, each with its own artifact name."""
    planned: list[PlannedRow] = []
    for seed in seeds:
        for step in steps:
            stem = f"{step.strategy.name}-seed{seed}" if len(seeds) > 1 else step.strategy.name
            artifact = artifact_name(stem, {p.artifact for p in planned})
            planned.append(PlannedRow(len(planned), seed, step, artifact))
    return planned


def row_costs(planned: Sequence[PlannedRow]) -> dict[int, float]:
    """What each row weighs in a time budget: its strategy's ``cost``, or for a control its
    technique's, since it trains the same student for the same budget."""
    techniques = {(i.seed, i.step.strategy.spec()): i.step.strategy.cost for i in planned}
    return {i.index: techniques.get((i.seed, i.step.control_of), i.step.strategy.cost)
            for i in planned}


class TechniquesFirst:
    """Which rows may start as far as their techniques go: a control that trains what its
    technique's row chose (``Strategy.after_technique``) waits until that row of its seed has
    finished; every other row may start at once."""

    def __init__(self, planned: Sequence[PlannedRow]) -> None:
        self.planned = {(item.seed, item.step.strategy.spec()) for item in planned}
        self.finished: set[tuple[int, str]] = set()

    def ready(self, item: PlannedRow) -> bool:
        technique = (item.seed, item.step.control_of or "")
        return not (item.step.strategy.after_technique and technique in self.planned
                    and technique not in self.finished)

    def done(self, item: PlannedRow) -> None:
        self.finished.add((item.seed, item.step.strategy.spec()))


def start_order(planned: Sequence[PlannedRow], workers: int, budgeted: bool) -> list[PlannedRow]:
    """The order rows start in.  Side by side, the costliest first, so that no worker is left
    with a long step at the end (a control weighs what its technique does: weighed as a
    fine-tune, the distill controls started late and one ran last, alone; measured:
    docs/benchmarks.md, "The default run on 50,000 rows and on 5,391 images");
    under a time budget, the cheapest first (a control right after its technique): a
    quantizer's row is complete in seconds, a training cut short is worth less, and what a
    budget cannot start is skipped."""
    costs = row_costs(planned)
    if budgeted:
        return sorted(planned, key=lambda item: costs[item.index])
    return sorted(planned, key=lambda item: -costs[item.index]) if workers > 1 else list(planned)
