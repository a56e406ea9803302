"""What ``compress tune`` searches: the settings a user gives, and the space of strategies and
chains read from the registered strategies (``Strategy.tunable``, ``follows``, ``cost``), so a
plugin is searched with no change here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.analysis.devices import Device, parse_device
from compress.common.errors import UserError, option
from compress.strategies.base import Choice, Range, RegistryError, Task

OBJECTIVES = ("size", "latency")
MAX_STAGES = 4
DEFAULT_TIME_BUDGET_MIN = 15.0


@dataclass(frozen=True)
class TuneSettings:
    """What to search for and for how long."""

    max_accuracy_drop: float
    objective: str = "size"
    time_budget_min: float = DEFAULT_TIME_BUDGET_MIN
    max_trials: int | None = None
    #: Strategy name patterns the search may use (wildcards allowed); empty: every tunable one.
    strategies: tuple[str, ...] = ()
    #: The slowest a choice may be against the teacher at batch 1: 1.0, never slower (a smaller
    #: model that runs slower is rarely what a size budget is for); None: speed does not matter.
    max_slowdown: float | None = 1.0
    #: Where the model ships (``analysis.devices``): on a microcontroller only trials that fit it
    #: may be chosen, and every trial takes the form it requires (int8 inputs and outputs).
    device: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.strategies, str):  # one pattern, not its letters
            object.__setattr__(self, "strategies", (self.strategies,))

    def validate(self) -> None:
        drop = self.max_accuracy_drop
        if not (isinstance(drop, (int, float)) and math.isfinite(drop) and drop >= 0):
            raise UserError(f"{option('max_accuracy_drop')} must be 0 or more percentage points, got {drop}")
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        budget = self.time_budget_min
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise UserError(f"{option('time_budget_min')} must be more than 0 minutes, got {budget}")
        slowdown = self.max_slowdown
        if slowdown is not None and not (isinstance(slowdown, (int, float)) and not isinstance(slowdown, bool)
                                         and math.isfinite(slowdown) and slowdown >= 1):
            raise UserError(f"{option('max_slowdown')} must be 1 or more (times the teacher's latency), "
                            f"got {slowdown}")
        if self.max_trials is not None and (isinstance(self.max_trials, bool) or
                                            not isinstance(self.max_trials, int) or self.max_trials < 1):
            raise UserError(f"{option('max_trials')} must be at least 1, got {self.max_trials}")
        self.deployment()  # a bad profile is one line before any teacher is trained

    def deployment(self) -> Device | None:
        """The device profile ``device`` names, or None."""
        return parse_device(self.device)

    def microcontroller(self) -> Device | None:
        """The microcontroller the model ships to, if ``device`` names one: every trial is then
        measured in TFLite Micro and must fit it, and size is the file's bytes as its flash
        stores them, not their gzip."""
        device = self.deployment()
        return device if device is not None and device.micro else None


@dataclass(frozen=True)
class Space:
    """The searchable strategies, their parameters, and which may follow which."""

    stages: dict[str, dict[str, Range | Choice]]
    followers: dict[str, tuple[str, ...]]
    costs: dict[str, float]
    defaults: dict[str, dict[str, Any]]
    families: dict[str, str]

    def family(self, spec: str) -> str:
        """The family of a spec's first stage: what a chain is counted under."""
        return self.families.get(stage_names(spec)[0], "?")


def search_space(task: Task, patterns: Sequence[str] = (), needs: Collection[str] = ()) -> Space:
    """Read the space from the registered techniques: those whose ``search_space`` is not None,
    restricted to ``patterns``, and every technique that provides what a device ``needs``
    (``Strategy.provides``), tunable or not, so a pipeline can end in the form the device takes;
    a chain stage B may follow A when A's family is in B.follows."""
    import inspect

    from compress.strategies import registry

    available = registry()
    allowed = tunable_names(patterns)
    stages: dict[str, dict[str, Range | Choice]] = {}
    for name, cls in available.items():
        required = cls.role == "technique" and bool(set(needs) & set(cls.provides))
        if name not in allowed and not required:
            continue
        space = cls.search_space(task)
        if space is None and required:
            space = {}
        if space is None:
            continue
        unknown = sorted(set(space) - set(cls.param_names()))
        if unknown:
            raise RegistryError(f"{name}.search_space names {unknown[0]!r}, not a parameter of it")
        stages[name] = space
    if not stages:
        raise UserError(f"no strategy matching {option('strategies', patterns)} has a search space "
                        f"for this teacher; tunable strategies: {', '.join(tunable_names(()))}")
    followers = {a: tuple(b for b in stages if b != a and not available[a].produces_tflite
                          and available[a].family in available[b].follows) for a in stages}
    defaults = {name: {p.name: p.default for p in inspect.signature(available[name].__init__)
                       .parameters.values() if p.default is not inspect.Parameter.empty}
                for name in stages}
    return Space(stages, followers, {n: available[n].cost for n in stages}, defaults,
                 {n: available[n].family for n in stages})


def tunable_names(patterns: Sequence[str] = ()) -> list[str]:
    """The techniques that declare a search space, among those ``patterns`` select (all if
    none); a pattern that selects nothing tunable is a one-line error."""
    from compress.strategies import registry, select

    candidates = [cls for pattern in patterns for cls in select(pattern)] if patterns else \
        list(registry().values())
    names = [cls.name for cls in candidates if cls.role == "technique" and cls.tunable is not None]
    if not names:
        everything = [n for n, c in registry().items() if c.role == "technique" and c.tunable is not None]
        raise UserError(f"no tunable strategy matches {option('strategies', patterns)}; tunable "
                        f"strategies: {', '.join(everything)}")
    return names


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return json.dumps(round(value, 6))
    return value if isinstance(value, str) else json.dumps(value)


def propose(trial: Any, space: Space) -> str:
    """Ask an Optuna trial for a pipeline (its first stage, then what follows each stage) and
    for every parameter of its stages; return the spec.  Parameter names carry the stage they
    belong to, so the conditional space stays consistent across trials."""
    stages = [trial.suggest_categorical("stage 1", list(space.stages))]
    while len(stages) < MAX_STAGES and space.followers[stages[-1]]:
        following = trial.suggest_categorical(f"after {stages[-1]}", ["end", *space.followers[stages[-1]]])
        if following == "end" or following in stages:
            break
        stages.append(following)
    specs = []
    for name in stages:
        values = {}
        for key, declared in space.stages[name].items():
            label = f"{name}.{key}"
            if isinstance(declared, Choice):
                values[key] = trial.suggest_categorical(label, list(declared.values))
            elif declared.integer:
                values[key] = trial.suggest_int(label, int(declared.low), int(declared.high),
                                                step=int(declared.step or 1), log=declared.log)
            else:
                values[key] = trial.suggest_float(label, declared.low, declared.high,
                                                  step=declared.step, log=declared.log)
        params = ",".join(f"{k}={_value_text(v)}" for k, v in values.items())
        specs.append(f"{name}:{params}" if params else name)
    return ">".join(specs)


def starting_points(space: Space) -> list[dict[str, Any]]:
    """Every strategy alone at its defaults, cheapest first: Optuna parameters to enqueue."""
    points = []
    for name in sorted(space.stages, key=lambda n: (space.costs[n], n)):
        params: dict[str, Any] = {"stage 1": name}
        if space.followers[name]:
            params[f"after {name}"] = "end"
        params.update(default_point(space, name))
        points.append(params)
    return points


def random_point(space: Space, rng: np.random.Generator, first: str | None = None) -> dict[str, Any]:
    """Optuna parameters for a chain drawn at random, stage by stage (``first`` fixes its first
    stage), every parameter on its declared grid: what widens a search that repeats itself, and
    what gives every family its share before the sampler models anything."""
    stages = [first or str(rng.choice(sorted(space.stages)))]
    params: dict[str, Any] = {"stage 1": stages[0]}
    while True:
        last = stages[-1]
        followers = [f for f in space.followers[last] if f not in stages]
        if not space.followers[last]:
            break
        following = str(rng.choice(["end", *followers])) if len(stages) < MAX_STAGES else "end"
        params[f"after {last}"] = following
        if following == "end":
            break
        stages.append(following)
    for name in stages:
        for key, declared in space.stages[name].items():
            params[f"{name}.{key}"] = _draw(declared, rng)
    return params


def _draw(declared: Range | Choice, rng: np.random.Generator) -> Any:
    if isinstance(declared, Choice):
        return declared.values[int(rng.integers(len(declared.values)))]
    if declared.step:
        steps = round((declared.high - declared.low) / declared.step)
        value = declared.low + declared.step * int(rng.integers(steps + 1))
        return value if declared.integer else round(float(value), 10)
    if declared.log:
        value = math.exp(rng.uniform(math.log(declared.low), math.log(declared.high)))
    else:
        value = rng.uniform(declared.low, declared.high)
    return round(value) if declared.integer else float(value)


def default_point(space: Space, name: str) -> dict[str, Any]:
    """A stage's Optuna parameters at its defaults.  A default outside its declared Choice (a
    student ``auto`` among the named students) takes the Choice's first value, the one the
    strategy lists first; a default outside a Range is left to the sampler."""
    params = {}
    for key, declared in space.stages[name].items():
        default = space.defaults[name].get(key)
        if _within(declared, default):
            params[f"{name}.{key}"] = default
        elif isinstance(declared, Choice):
            params[f"{name}.{key}"] = declared.values[0]
    return params


def _within(declared: Range | Choice, value: Any) -> bool:
    if isinstance(declared, Choice):
        return value in declared.values
    return isinstance(value, (int, float)) and declared.low <= value <= declared.high


def stage_names(spec: str) -> list[str]:
    return [part.split(":", 1)[0] for part in spec.split(">")]
