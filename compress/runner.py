"""The only orchestration: dataset -> teacher -> strategies -> measurement -> results.

Strategies run first, each on its own clone of the teacher; each finished row
(size and accuracy) is saved at once.  Latency is then measured for all rows
of a seed together with interleaved rounds, so training never competes with
timing.  Runs and sweep jobs share every step here: ``plan_steps`` (which rows,
paired with which controls), ``evaluate_step`` (one row) and ``finish_seed``
(comparisons with the baseline and latency).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import pickle
import re
import signal
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compress.backend import keras, seed_everything, to_tflite
from compress.data import SHIFT_TARGET_TRAIN, Dataset, TrainingData, load_dataset, load_shift
from compress.document import counted
from compress.errors import UserError, option
from compress.fileio import write_atomic
from compress.images import parse_image_size
from compress.measure import (
    TFLiteModel,
    accuracy_stats,
    latency_span,
    measure_latency,
    reference_stats,
    size_fields,
)
from compress.memory import memory_fields
from compress.models import check_fits, clone, parse_architecture
from compress.outdir import Output, check_output, open_output
from compress.results import environment, new_row, write_results
from compress.stats import above_rate
from compress.strategies import Compressed, Context, Skip, Strategy, strategies_from_spec
from compress.strategies.base import register, registry, strategy_from_name
from compress.strategies.baseline import Baseline
from compress.strategies.chain import StageCache
from compress.teacher import (
    DEFAULT_RECIPE,
    Teacher,
    TeacherRecipe,
    get_teacher,
    load_teacher,
    pending_teacher,
    untrained_teacher,
)
from compress.training import time_allowance

DEFAULT_STRATEGIES = (
    "baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune",
)
SCENARIOS = ("standard", "shift")
MISSING_POLICIES = ("error", "drop", "impute")
#: What --scenario shift compares when no --strategy is given: adaptation to the target.
SHIFT_STRATEGIES = (
    "finetune:epochs=30,lr=0.001", "finetune:epochs=30,lr=0.001,freeze=-1",
    "retrain-scratch:epochs=100",
)
RUN_MANIFEST = "run.json"
#: scikit-learn and NumPy take seeds below 2**32.
MAX_SEED = 2**32 - 1
ERROR_LOG = "errors.log"
#: Below this many epochs or validation rows, or above this majority share, a weak teacher's
#: message names it as a likely cause.
SHORT_TRAINING, SMALL_VALIDATION, DOMINANT_CLASS = 10, 100, 0.9
#: A teacher must beat always predicting the majority class by more than this (in points).
WEAK_TEACHER_MARGIN_PP = 2.0

#: A teacher's training weighs this much against strategies' ``cost`` in --time-budget shares
#: (it trains for about as long as a distilled student).
TEACHER_COST = 4.0

#: Called as progress(done, total, what) when a step finishes (``what`` names it and how it
#: ended) or a phase starts (``done`` unchanged).
Progress = Callable[[int, int, str], None]


@dataclass
class RunConfig:
    """Everything that decides a run's results; saved in run.json."""

    dataset: str | None = "synthetic"  # None when ``data`` names a user's file
    strategies: Sequence[str] = DEFAULT_STRATEGIES
    seeds: Sequence[int] = (0,)
    epochs: int | None = None  # overrides the teacher's and every strategy's default epochs
    teacher_recipe: TeacherRecipe = DEFAULT_RECIPE
    out: Path | None = None
    threads: int = 1
    jobs: int = 1  # worker processes that train strategies side by side (1: in this process)
    time_budget: float | None = None  # minutes for the teacher and every strategy to train in
    teacher_architecture: str | None = None
    data: Path | None = None  # a user's .csv/.parquet/.npz instead of a built-in dataset
    target: str | None = None
    missing: str = "error"
    image_size: tuple[int, int] | None = None  # an image folder's images resized to (height, width)
    teacher: Path | None = None  # a user's trained tf_keras model instead of training one
    trust_model: bool = False
    allow_weak_teacher: bool = False
    scenario: str = "standard"  # "shift": teacher on a source domain, strategies on a target
    target_train: int = SHIFT_TARGET_TRAIN
    overwrite: bool = False
    use_cache: bool = True
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Any iterable in, JSON-friendly values out; one name is one strategy, not its letters.
        self.strategies = (self.strategies,) if isinstance(self.strategies, str) else tuple(self.strategies)
        self.seeds = tuple(_whole(seed) for seed in self.seeds)
        self.epochs, self.threads, self.jobs, self.target_train = (
            _whole(self.epochs), _whole(self.threads), _whole(self.jobs), _whole(self.target_train))
        self.data = Path(self.data) if self.data is not None else None
        self.teacher = Path(self.teacher) if self.teacher is not None else None
        self.out = Path(self.out) if self.out is not None else None

    def validate(self) -> None:
        """Every run setting checked, one line per mistake, before anything is loaded."""
        for name in ("epochs", "threads", "jobs", "target_train"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(f"{option(name)} must be a whole number, got {value!r}")
        budget = self.time_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, numbers.Real)):
            raise UserError(f"{option('time_budget')} must be a number of minutes, got {budget!r}")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"{option('epochs')} must be at least 1, got {self.epochs}")
        if self.threads < 1:
            raise UserError(f"{option('threads')} must be at least 1, got {self.threads}")
        if self.jobs < 1:
            raise UserError(f"{option('jobs')} must be at least 1, got {self.jobs}")
        latency_span()  # read now: a mistake there must not wait for the training to end
        if self.time_budget is not None and not (0 < self.time_budget < math.inf):
            raise UserError(f"{option('time_budget')} must be a number of minutes above 0, "
                            f"got {self.time_budget}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED
                                 for s in self.seeds):
            raise UserError(f"{option('seed')}/{option('seeds')}: seeds must be integers from 0 to "
                            f"{MAX_SEED}, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.missing not in MISSING_POLICIES:
            raise UserError(f"{option('missing')} must be one of {', '.join(MISSING_POLICIES)}, "
                            f"got {self.missing!r}")
        if self.target_train < 1:
            raise UserError(f"{option('target_train')} must be at least 1, got {self.target_train}")
        if self.scenario not in SCENARIOS:
            raise UserError(f"{option('scenario')} must be one of {', '.join(SCENARIOS)}, "
                            f"got {self.scenario!r}")
        self.image_size = parse_image_size(self.image_size)
        if self.image_size is not None and (self.data is None or not self.data.is_dir()):
            raise UserError(f"{option('image_size')} is for an image folder {option('data', 'DIR')} (one "
                            "sub-folder per class); drop it")
        if self.target is not None and self.data is not None and self.data.is_dir():
            raise UserError(f"{option('target')} names a column of a .csv or .parquet file; an image "
                            f"folder's labels are its sub-folder names, so drop {option('target')}")
        if self.target is not None and self.data is None:
            raise UserError(f"{option('target')} needs {option('data', 'FILE')} (the built-in datasets have "
                            "their labels)")
        if self.target is not None and self.data is not None and self.data.suffix.lower() == ".npz":
            raise UserError(f"{option('target')} names a column of a .csv or .parquet file; an .npz holds "
                            f"its labels in the array y, so drop {option('target')}")
        if self.teacher is not None and self.teacher_architecture is not None:
            raise UserError(f"give {option('teacher', 'FILE')} (your trained model) or "
                            f"{option('teacher_architecture', 'SPEC')} (a built-in teacher to train), "
                            "not both")
        if self.teacher_architecture is not None:
            parse_architecture(self.teacher_architecture)
        if self.scenario == "shift" and (self.data is not None or self.teacher is not None):
            raise UserError(f"{option('scenario', 'shift')} builds its own source and target from a "
                            f"built-in {option('dataset')}; drop {option('data')} and {option('teacher')}")


def _whole(value: Any) -> Any:
    """A NumPy or other integer as a plain int (as JSON and range() want); anything else as given,
    for ``validate`` to judge."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


def resolve_config(
    *,
    dataset: str | None = None,
    data: Path | str | None = None,
    target: str | None = None,
    missing: str | None = None,
    image_size: str | tuple[int, int] | None = None,
    teacher: Path | str | None = None,
    teacher_architecture: str | None = None,
    trust_model: bool = False,
    allow_weak_teacher: bool = False,
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    epochs: int | None = None,
    scenario: str | None = None,
    target_train: int | None = None,
    preset: str | None = None,
    threads: int | None = None,
    jobs: int | None = None,
    time_budget: float | None = None,
    out: Path | str | None = None,
    overwrite: bool = False,
    use_cache: bool = True,
    command: str | None = None,
) -> RunConfig:
    """The one place run settings are combined: defaults, then the preset, then the scenario,
    then whatever was given explicitly (None means not given).  ``seeds`` is a list of seeds or a
    count (``3`` runs seeds 0, 1, 2)."""
    from compress.presets import PRESETS

    if dataset is not None and data is not None:
        raise UserError(f"give {option('dataset')} or {option('data')}, not both")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings: dict[str, Any] = {}
    settings.update(PRESETS.get(preset or "", {}))
    if scenario == "shift":
        settings["strategies"] = SHIFT_STRATEGIES
    seeds = _whole(seeds)
    if isinstance(seeds, bool) or (isinstance(seeds, int) and seeds < 1):
        raise UserError(f"{option('seeds')} must be at least 1, got {seeds}")
    explicit = {
        "dataset": dataset, "data": data, "target": target, "missing": missing,
        "image_size": image_size, "teacher": teacher,
        "teacher_architecture": teacher_architecture,
        "strategies": strategies or None, "epochs": epochs,
        "seeds": tuple(range(seeds)) if isinstance(seeds, int) else seeds,
        "scenario": scenario, "target_train": target_train, "threads": threads, "jobs": jobs,
        "time_budget": time_budget, "out": out,
    }
    settings.update({key: value for key, value in explicit.items() if value is not None})
    if data is not None:
        settings["dataset"] = None
    config = RunConfig(**settings, trust_model=trust_model, allow_weak_teacher=allow_weak_teacher,
                       overwrite=overwrite, use_cache=use_cache, command=command)
    config.validate()
    return config


@dataclass
class RunResult:
    out: Path
    rows: list[dict[str, Any]]

    @property
    def failed(self) -> bool:
        return any(row["status"] == "failed" for row in self.rows)


def default_out_dir(dataset: str) -> Path:
    """reports/<dataset>-<timestamp>, with a suffix if two runs start in the same second."""
    stem = Path("reports") / f"{dataset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out, n = stem, 2
    while out.exists():
        out, n = stem.with_name(f"{stem.name}-{n}"), n + 1
    return out


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
    """

    def __init__(self, deadline: float, costs: Sequence[float], workers: int = 1,
                 by_index: dict[int, float] | None = None) -> None:
        self.deadline = deadline  # time.time(), so worker processes share the clock
        self.costs = list(costs)  # of the steps not started yet, in the order they start
        self.workers = workers
        self.by_index = by_index or {}  # a row's cost, by its index in the run
        self.fixed: list[float] = []

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

    def finished(self, cost: float, seconds: float, row: dict[str, Any]) -> None:
        """A step took ``seconds`` from its start to its row: all fixed cost if it trains nothing
        and really ran (a skipped or failed row says nothing about what a step costs)."""
        if cost <= 0 and row["status"] == "ok":
            self.fixed.append(seconds)


def teacher_deadline(run_deadline: float | None, seeds_left: int, step_costs: float,
                     workers: int) -> float | None:
    """A teacher's training deadline: its ``TEACHER_COST`` against every teacher still to train
    and the strategies' work after them (spread over the workers)."""
    if run_deadline is None:
        return None
    now = time.time()
    mine = TEACHER_COST / (TEACHER_COST * seeds_left + step_costs / workers)
    return now + max(0.0, run_deadline - now) * mine


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: every finished row is saved and the run is marked incomplete.  Still a
    KeyboardInterrupt, so a caller's ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished rows kept in {result.out}")
        self.result = result


class Interrupts:
    """SIGINT raises KeyboardInterrupt and also sets a flag that ``check`` turns into one.

    A KeyboardInterrupt raised inside a finalizer or a weakref callback is
    swallowed by Python ("Exception ignored in ..."); the flag makes sure the
    run still stops at its next step instead of finishing with exit 0.
    """

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        unraisable = sys.unraisablehook

        def quiet(event: Any) -> None:  # the flag already carries a swallowed Ctrl-C
            if not isinstance(event.exc_value, KeyboardInterrupt):
                unraisable(event)

        sys.unraisablehook = quiet
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = unraisable


@dataclass(frozen=True)
class Source:
    """One seed's data: what strategies are scored on, and what the teacher learns from."""

    dataset: Dataset
    teacher_data: Dataset  # the same dataset, or the source domain in a shift scenario
    preprocessing: str | None = None
    encoding: dict[str, Any] | None = None  # a table's fitted encoding (userdata.fitted_encoding)

    def for_selection(self) -> Source:
        """This seed's data with the validation split in the test split's place, to choose
        between configurations: the test split is out of reach until the choice is made."""
        training = self.dataset.training
        selection = Dataset(training, training.x_val, training.y_val)
        return Source(selection, selection, self.preprocessing, self.encoding)


def load_source(config: RunConfig, seed: int) -> Source:
    """The run's data for one seed (a built-in, a user's file, or a shift scenario)."""
    if config.scenario == "shift":
        source, target = load_shift(str(config.dataset), seed, config.target_train)
        return Source(target, source)
    if config.data is None:
        dataset = load_dataset(str(config.dataset), seed)
        return Source(dataset, dataset)
    from compress.userdata import load_file  # pandas and scikit-learn: 1 s, only for a user's file

    dataset, record = load_file(config.data, seed=seed, target=config.target, missing=config.missing,
                                image_size=config.image_size)
    return Source(dataset, dataset, record.summary(), getattr(record, "encoding", None))


def teacher_for(config: RunConfig, source: Source, seed: int, *, load: bool = True) -> Teacher:
    """The seed's teacher: the user's file, or the cached (else freshly trained) default.

    ``load=False``: a cached teacher's model stays on disk (see ``get_teacher``).
    """
    if config.teacher is not None:
        return load_teacher(config.teacher, source.dataset, trust=config.trust_model,
                            use_cache=config.use_cache)
    return get_teacher(source.teacher_data, seed=seed, recipe=_recipe(config),
                       architecture=config.teacher_architecture, use_cache=config.use_cache,
                       load=load)


def _recipe(config: RunConfig) -> TeacherRecipe:
    return config.teacher_recipe.with_epochs(config.epochs)


def teacher_to_train(config: RunConfig, source: Source, seed: int) -> Teacher | None:
    """The pending record of the seed's teacher if ``teacher_for`` would train it (not the
    user's, not cached), else None."""
    if config.teacher is not None:
        return None
    return pending_teacher(source.teacher_data, seed=seed, recipe=_recipe(config),
                           architecture=config.teacher_architecture, use_cache=config.use_cache)


def majority_rate(y: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent class: the floor any teacher must clear."""
    return float(np.bincount(np.asarray(y, dtype=np.int64)).max() / len(y))


def weak_teacher(teacher: Teacher, dataset: Dataset) -> str | None:
    """Why the teacher is not clearly better than the majority class on validation, or None.

    Clearly better: more than 2 points above the majority-class rate, and above it by a
    one-sided exact binomial test at 0.05 (the validation split, never the test split).
    """
    if teacher.val_accuracy is None:
        return None
    y_val = dataset.training.y_val
    floor = majority_rate(y_val)
    n = len(y_val)
    clearly_above = above_rate(round(teacher.val_accuracy * n), n, floor) <= 0.05
    if teacher.val_accuracy - floor > WEAK_TEACHER_MARGIN_PP / 100 and clearly_above:
        return None
    return (f"the teacher scores {teacher.val_accuracy:.3f} on the validation split, not clearly above "
            f"the {floor:.3f} of always predicting the majority class; likely causes: "
            f"{', '.join(_weak_causes(teacher, n, floor))}")


def _weak_causes(teacher: Teacher, n: int, floor: float) -> list[str]:
    """What most often makes such a teacher weak: for the user's model, a mismatch with this data;
    for one trained here, the data and the training budget."""
    if teacher.architecture.startswith("user:"):
        return ["inputs scaled differently from training (e.g. 0-255 against 0-1)",
                "a different label order", "or a wrong output layer"]
    causes: list[str] = []
    if teacher.recipe.epochs < SHORT_TRAINING:
        causes.append(f"a short training ({counted(teacher.recipe.epochs, 'epoch')}; "
                      f"{option('epochs')} sets it)")
    if n < SMALL_VALIDATION:
        causes.append(f"a validation split of {n} rows, too few to show a difference")
    if floor > DOMINANT_CLASS:
        causes.append(f"one class holding {floor:.0%} of the rows, which leaves accuracy little room")
    causes.append(f"{'or ' if causes else ''}features that say little about the label")
    return causes


def check_teacher(config: RunConfig, seed: int, teacher: Teacher, dataset: Dataset,
                  weak: dict[int, str]) -> None:
    """Refuse a weak teacher (``weak_teacher``), or with --allow-weak-teacher record why in
    ``weak``."""
    reason = weak_teacher(teacher, dataset)
    if reason and not config.allow_weak_teacher:
        raise UserError(f"{reason}; fix the data or the teacher, or pass "
                        f"{option('allow_weak_teacher', True)}")
    if reason:
        weak[seed] = reason


def run(config: RunConfig, progress: Progress | None = None,
        meanwhile: Callable[[], None] | None = None) -> RunResult:
    """Run every step for every seed against one dataset and teacher per seed.

    Everything the user gave is validated, and every teacher prepared and checked,
    before the output folder is touched.  With ``config.jobs`` above 1 the steps train side
    by side in worker processes; there, without a time budget, a teacher still to be trained
    is trained by a worker while the others start the steps that need no trained teacher,
    and if it proves weak the output folder is removed again.  ``meanwhile`` (work this
    process would do after the run, e.g. imports) is called as soon as a worker has no row
    left to start: on its core, instead of competing with the workers or adding to the time
    after them.  Rows are saved as each finishes; latency is measured once every model
    exists, so training never competes with timing.  Ctrl-C raises RunInterrupted after
    saving what finished.
    """
    config.validate()
    started = time.time()
    run_deadline = None if config.time_budget is None else started + 60 * config.time_budget
    steps = plan_steps(config.strategies, config.epochs)
    report = progress or (lambda done, total, what: None)
    total, done = (len(steps) + 2) * len(config.seeds), 0
    workers = min(config.jobs, len(steps) * len(config.seeds)) if importable_elsewhere(steps) else 1
    interrupts = Interrupts()
    with interrupts.installed(), contextlib.ExitStack() as stack:
        pool = None
        if workers > 1:  # workers import TensorFlow while the data and teachers are prepared
            from compress.backend import import_tensorflow
            from compress.sweep import start_pool, stop_pool

            pool = start_pool(workers, import_tensorflow)
            stack.callback(stop_pool, pool)  # at once if bad input stops the run early
        sources = {seed: load_source(config, seed) for seed in config.seeds}
        first = sources[config.seeds[0]]
        target = config.out or default_out_dir(first.dataset.name)
        check_output(target, "run", overwrite=config.overwrite)  # before any training
        if config.teacher_architecture is not None:
            check_fits(config.teacher_architecture, first.teacher_data.input_shape)
        teachers: dict[int, Teacher] = {}
        weak: dict[int, str] = {}
        step_costs = sum(step.strategy.cost for step in steps) * len(sources)
        for index, (seed, source) in enumerate(sources.items()):
            pending = None if pool is None or run_deadline is not None else \
                teacher_to_train(config, source, seed)
            if pending is not None:  # trained by a worker while the others start what needs no teacher
                teachers[seed] = pending
                continue
            report(done, total, f"seed {seed}: preparing the teacher (cached after the first run)")
            left = len(sources) - index
            with time_allowance(teacher_deadline(run_deadline, left, step_costs, workers)):
                teachers[seed] = teacher_for(config, source, seed, load=pool is None)
            check_teacher(config, seed, teachers[seed], source.dataset, weak)
            done += 1
            report(done, total, f"seed {seed}: teacher ready ({_teacher_origin(teachers[seed])})")
        output = open_output(target, "run", overwrite=config.overwrite)
        try:
            return _run_steps(config, steps, sources, teachers, weak, output, interrupts, report,
                              done, pool, workers, run_deadline, meanwhile)
        except KeyboardInterrupt:
            raise RunInterrupted(RunResult(output.set_aside(), _saved_rows(output.folder))) from None
        except (UserError, TeacherFailed):  # a teacher a worker trained was weak, or failed:
            output.discard()  # nothing of the run is kept, as when the teacher is trained here
            raise


def _teacher_origin(teacher: Teacher) -> str:
    if teacher.from_cache:
        return "from the cache"
    if teacher.cut_short:
        return (f"trained in {teacher.train_seconds:.1f} s, stopped by the time budget after "
                f"{teacher.cut_short}")
    return f"trained in {teacher.train_seconds:.1f} s" if teacher.train_seconds else "loaded"


def _saved_rows(folder: Path) -> list[dict[str, Any]]:
    from compress.results import RESULTS_FILE, read_results

    return read_results(folder) if (folder / RESULTS_FILE).exists() else []


def _run_steps(
    config: RunConfig, steps: list[Step], sources: dict[int, Source], teachers: dict[int, Teacher],
    weak: dict[int, str], output: Output, interrupts: Interrupts, report: Progress, done: int,
    pool: Any = None, workers: int = 1, run_deadline: float | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> RunResult:
    folder, run_id = output.folder, output.target.name
    total = (len(steps) + 2) * len(config.seeds)
    env = environment(threads=config.threads)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "dataset": sources[config.seeds[0]].dataset.summary(),
        "preprocessing": sources[config.seeds[0]].preprocessing,
        # What turns a raw row of the user's table into the models' inputs, per seed (each seed
        # fits it on its own train split): compress.encode_rows applies it.
        "input_encoding": {str(seed): s.encoding for seed, s in sources.items() if s.encoding} or None,
        "teachers": {str(seed): teacher_record(t) for seed, t in teachers.items()},
        "weak_teacher": weak or None,
        "env": env,
        "workers": workers,
        "started": _now(),
        "complete": False,
    }
    write_atomic(folder / RUN_MANIFEST, json.dumps(manifest, indent=2))
    planned = plan_rows(steps, list(sources))
    finished: dict[int, Evaluated] = {}

    def rows() -> list[dict[str, Any]]:
        return [finished[p.index].row for p in planned if p.index in finished]

    def teacher_trained(seed: int, teacher: Teacher) -> None:
        """A teacher a worker trained: checked as one trained here is, then given to its rows."""
        nonlocal done
        check_teacher(config, seed, teacher, sources[seed].dataset, weak)
        teachers[seed] = teacher
        for p in planned:  # rows that needed no trained teacher may have finished before it
            if p.seed == seed and p.index in finished:
                finished[p.index].row.update(teacher_fields(teacher))
        manifest["teachers"][str(seed)] = teacher_record(teacher)
        manifest["weak_teacher"] = weak or None
        write_atomic(folder / RUN_MANIFEST, json.dumps(manifest, indent=2))
        write_results(folder, rows())
        done += 1
        report(done, total, f"seed {seed}: teacher ready ({_teacher_origin(teacher)})")

    context = RowContext(config, sources, teachers, env, folder, run_id, run_deadline)
    try:
        for seed in (seed for seed, teacher in teachers.items() if teacher.pending):
            report(done, total, f"seed {seed}: training the teacher in a worker; rows that need no "
                   "trained teacher start beside it")
        evaluated = _evaluate_here(planned, context, interrupts) if pool is None else \
            _evaluate_in_workers(planned, context, interrupts, pool, workers, teacher_trained)
        for item, result in evaluated:
            if not teachers[item.seed].pending:
                result.row.update(teacher_fields(teachers[item.seed]))
            finished[item.index] = result
            write_results(folder, rows())
            done += 1
            report(done, total, f"seed {item.seed}: {item.step.strategy.label()} {_outcome(result.row)}")
            if pool is not None and meanwhile is not None and len(planned) - len(finished) < workers:
                meanwhile()  # a worker is idle for good: its core is free
                meanwhile = None
        for seed, source in sources.items():
            interrupts.check()
            report(done, total, f"seed {seed}: timing every model (interleaved rounds)")
            finish_seed([finished[p.index] for p in planned if p.seed == seed], source.dataset,
                        config.threads)
            write_results(folder, rows())
            done += 1
            report(done, total, f"seed {seed}: every model timed")
    except KeyboardInterrupt:
        manifest.update(interrupted=True, finished=_now())
        write_atomic(folder / RUN_MANIFEST, json.dumps(manifest, indent=2))
        raise
    manifest.update(complete=True, finished=_now())
    write_atomic(folder / RUN_MANIFEST, json.dumps(manifest, indent=2))
    report(total, total, "done")
    return RunResult(output.commit(), rows())


def _outcome(row: dict[str, Any]) -> str:
    if row["status"] == "ok":
        return f"ok ({row['train_seconds']:.1f} s)"
    return row["status"]


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


@dataclass(frozen=True)
class RowContext:
    """What every row of a run shares, in the process that owns the run."""

    config: RunConfig
    sources: dict[int, Source]
    teachers: dict[int, Teacher]
    env: dict[str, Any]
    folder: Path
    run_id: str
    run_deadline: float | None = None  # when --time-budget ends (time.time())

    def budget(self, planned: Sequence[PlannedRow], workers: int = 1) -> TimeBudget | None:
        if self.run_deadline is None:
            return None
        costs = self.costs(planned)
        return TimeBudget(self.run_deadline, [costs[item.index] for item in planned], workers, costs)

    def deadline(self, item: PlannedRow, budget: TimeBudget | None) -> float | None:
        """The step's training deadline; the baseline is never limited (every row needs it)."""
        if budget is None:
            return None
        claimed = budget.claim(budget.by_index[item.index])
        return None if item.step.role == "baseline" else claimed

    def costs(self, planned: Sequence[PlannedRow]) -> dict[int, float]:
        """What each row weighs in a time budget: its strategy's ``cost``, or for a control its
        technique's, since it trains the same student for the same budget."""
        techniques = {(i.seed, i.step.strategy.spec()): i.step.strategy.cost for i in planned}
        return {i.index: techniques.get((i.seed, i.step.control_of), i.step.strategy.cost)
                for i in planned}

    def order(self, planned: Sequence[PlannedRow], workers: int) -> list[PlannedRow]:
        """The order rows start in.  Side by side, the costliest first, so that no worker is left
        with a long step at the end (a control weighs what its technique does: on 3,773 images
        both distill controls once started after pruning and ran last, alone, for four minutes);
        under a time budget, the cheapest first (a control right after its technique): a
        quantizer's row is complete in seconds, a training cut short is worth less, and what a
        budget cannot start is skipped."""
        costs = self.costs(planned)
        if self.run_deadline is not None:
            return sorted(planned, key=lambda item: costs[item.index])
        return sorted(planned, key=lambda item: -costs[item.index]) if workers > 1 else list(planned)

    def evaluate(self, item: PlannedRow, interrupts: Interrupts | None = None,
                 deadline: float | None = None) -> Evaluated:
        if deadline is not None and deadline <= time.time():
            row = step_row(item.step, self.teachers[item.seed], self.sources[item.seed], item.seed,
                           scenario=self.config.scenario, env=self.env, run_id=self.run_id)
            row.update(status="skipped", budget_stopped="not started",
                       reason="the time budget left could not pay for this step; raise "
                       f"{option('time_budget')} or run fewer strategies")
            return Evaluated(row)
        return evaluate_step(
            item.step, self.teachers[item.seed], self.sources[item.seed], item.seed,
            scenario=self.config.scenario, threads=self.config.threads, env=self.env,
            folder=self.folder, run_id=self.run_id, artifact=item.artifact, interrupts=interrupts,
            deadline=deadline,
        )

    def failed(self, item: PlannedRow, reason: str) -> Evaluated:
        """The row of a step whose worker could not produce one."""
        row = step_row(item.step, self.teachers[item.seed], self.sources[item.seed], item.seed,
                       scenario=self.config.scenario, env=self.env, run_id=self.run_id)
        row.update(status="failed", reason=_one_line(reason))
        return Evaluated(row)


def _evaluate_here(
    planned: list[PlannedRow], context: RowContext, interrupts: Interrupts,
) -> Iterator[tuple[PlannedRow, Evaluated]]:
    """Every row in this process, one after another."""
    ordered = context.order(planned, workers=1)
    budget = context.budget(ordered)
    for item in ordered:
        interrupts.check()
        started = time.time()
        result = context.evaluate(item, interrupts, context.deadline(item, budget))
        if budget is not None:
            budget.finished(budget.by_index[item.index], time.time() - started, result.row)
        interrupts.check()  # a Ctrl-C that a finalizer swallowed during the step
        yield item, result


@dataclass(frozen=True)
class WorkerRow:
    """What a worker process needs for one row: settings and paths, nothing it cannot pickle."""

    index: int
    config: RunConfig
    seed: int
    spec: str
    control_of: str | None
    artifact: str
    folder: str
    run_id: str
    env: dict[str, Any]
    teacher: Teacher  # without its model, which the worker loads from ``teacher_file``
    teacher_file: str  # empty while the teacher trains: the worker builds it untrained
    data_file: str  # the seed's Source, pickled by the parent
    deadline: float | None  # when training must stop (time.time()); past: do not start
    #: The run's strategy classes, pickled by reference: a spawned worker starts with this
    #: process's sys.path, so their modules import there as here.
    classes: tuple[type[Strategy], ...]

    def give_up(self, reason: str) -> tuple[int, str]:
        return self.index, reason


@dataclass(frozen=True)
class TeacherTask:
    """What a worker process needs to train a seed's teacher, exactly as ``teacher_for`` here."""

    seed: int
    config: RunConfig
    data_file: str
    spare_file: str  # where the model is saved when the cache does not keep it (--no-cache)

    def give_up(self, reason: str) -> TeacherTrained:
        return TeacherTrained(self.seed, None, TeacherFailed(
            f"training the teacher of seed {self.seed} failed: {reason}"))


class TeacherFailed(RuntimeError):
    """A worker could not train a seed's teacher (not the user's input: a bug, or a worker
    killed): the run stops, and keeps nothing, as when a teacher trained here fails."""


@dataclass(frozen=True)
class TeacherTrained:
    """A worker's teacher (its model in ``file``), or the error that stopped its training."""

    seed: int
    teacher: Teacher | None
    error: Exception | None = None


def _evaluate_in_workers(
    planned: list[PlannedRow], context: RowContext, interrupts: Interrupts, pool: Any,
    workers: int, teacher_trained: Callable[[int, Teacher], None],
) -> Iterator[tuple[PlannedRow, Evaluated]]:
    """Every row in the pool's worker processes, yielded as each finishes.

    Each worker loads the data (pickled here) and the teacher (its cache file, or a copy
    saved here) and runs the very ``evaluate_step`` a one-process run runs, with the same
    TensorFlow settings, so the rows are identical.  A pending teacher is trained first, by a
    worker, while the others start the rows that need no trained teacher (its untrained
    layers give them the same models); ``teacher_trained`` receives it before the rows that
    need it start.  Rows start in ``RowContext.order``.
    """
    import tempfile

    from compress.sweep import WAIT, pool_map

    classes = tuple(strategy_classes(item.step.strategy for item in planned))
    teachers = context.teachers
    with tempfile.TemporaryDirectory(prefix="compress-teachers-") as tmp:
        data = {}
        for seed, teacher in teachers.items():
            data[seed] = str(Path(tmp) / f"data-seed{seed}.pickle")  # not generated again there
            write_atomic(Path(data[seed]), pickle.dumps(context.sources[seed]))
            if teacher.file is None and not teacher.pending:  # in memory only: saved for them
                teacher.model.save(Path(tmp) / f"teacher-seed{seed}.keras")

        def teacher_file(seed: int) -> str:
            """Where the workers load the seed's teacher; empty while a worker trains it."""
            teacher = teachers[seed]
            return "" if teacher.pending else str(teacher.file or Path(tmp) / f"teacher-seed{seed}.keras")
        ordered = context.order(planned, workers)
        budget, started = context.budget(ordered, workers), {}

        def startable(item: PlannedRow) -> bool:
            return not teachers[item.seed].pending or not item.step.strategy.needs_trained_teacher

        def tasks() -> Iterator[WorkerRow | TeacherTask]:
            """Drawn by the pool as workers free up, so each deadline is set when the step starts,
            and a row that needs a teacher still training waits for it."""
            for seed in [seed for seed, teacher in teachers.items() if teacher.pending]:
                yield TeacherTask(seed, context.config, data[seed],
                                  str(Path(tmp) / f"teacher-seed{seed}.keras"))
            waiting = list(ordered)
            while waiting:
                item = next((item for item in waiting if startable(item)), None)
                if item is None:
                    yield WAIT
                    continue
                waiting.remove(item)
                started[item.index] = time.time()
                yield WorkerRow(
                    item.index, context.config, item.seed, item.step.strategy.spec(),
                    item.step.control_of, item.artifact, str(context.folder), context.run_id,
                    context.env, replace(teachers[item.seed], model=None), teacher_file(item.seed),
                    data[item.seed], context.deadline(item, budget), classes)

        by_index = {item.index: item for item in planned}
        results = pool_map(tasks(), run_in_worker, workers, salvage=lambda task: None,
                           give_up=lambda task, reason: task.give_up(reason), pool=pool)
        try:
            for outcome in results:
                interrupts.check()
                if isinstance(outcome, TeacherTrained):
                    if outcome.teacher is None:
                        raise outcome.error or TeacherFailed("a worker returned no teacher")
                    teacher_trained(outcome.seed, outcome.teacher)
                    continue
                index, row_outcome = outcome
                item = by_index[index]
                evaluated = row_outcome if isinstance(row_outcome, Evaluated) else \
                    context.failed(item, row_outcome)
                if budget is not None:
                    budget.finished(budget.by_index[index], time.time() - started[index], evaluated.row)
                yield item, evaluated
        finally:
            results.close()


def strategy_classes(strategies: Iterable[Strategy]) -> set[type[Strategy]]:
    """The classes of these strategies, a chain's stages included."""
    return {type(part) for strategy in strategies for part in getattr(strategy, "parts", [strategy])}


def importable_elsewhere(steps: Sequence[Step]) -> bool:
    """Whether a worker process can import every strategy class of these steps.  A class
    defined inside a function cannot be pickled; one defined in ``__main__`` (a notebook cell,
    ``python -c``, a script) pickles by a name that a spawned worker's own ``__main__`` lacks,
    and every row then failed with "worker process died repeatedly"."""
    classes = sorted(strategy_classes(s.strategy for s in steps), key=lambda cls: cls.name)
    if any(cls.__module__ == "__main__" for cls in classes):
        return False
    try:
        pickle.dumps(classes)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


#: A worker's data and teacher per (teacher file, seed): loaded once, reused by its next rows.
_PREPARED: dict[tuple[str, int], tuple[Source, Teacher]] = {}


def run_in_worker(task: WorkerRow | TeacherTask) -> tuple[int, Evaluated | str] | TeacherTrained:
    """Worker entry point: a row, or a teacher."""
    return train_teacher_in_worker(task) if isinstance(task, TeacherTask) else evaluate_in_worker(task)


def train_teacher_in_worker(task: TeacherTask) -> TeacherTrained:
    """Train (or, if another run cached it meanwhile, load) a seed's teacher; keep it here for
    this worker's next rows.  Errors are returned, for the parent to raise."""
    try:
        source = pickle.loads(Path(task.data_file).read_bytes())
        teacher = teacher_for(task.config, source, task.seed)
        if teacher.file is None:
            teacher.model.save(task.spare_file)
        teacher = replace(teacher, file=teacher.file or Path(task.spare_file))
        _PREPARED[(str(teacher.file), task.seed)] = (source, teacher)
    except UserError as error:
        return TeacherTrained(task.seed, None, error)
    except Exception as error:  # re-raised in the parent, with the worker's traceback as text
        return TeacherTrained(task.seed, None, TeacherFailed(
            f"training the teacher of seed {task.seed} failed in a worker process: "
            f"{type(error).__name__}: {error}\n\nThe worker's traceback:\n{traceback.format_exc()}"))
    return TeacherTrained(task.seed, replace(teacher, model=None))


def evaluate_in_worker(task: WorkerRow) -> tuple[int, Evaluated | str]:
    """Worker entry point: one row, or why the worker could not make it (never raises)."""
    try:
        key = (task.teacher_file, task.seed)
        if key not in _PREPARED:
            known = registry()
            for cls in task.classes:  # a plugin registered in the parent by code, not entry point
                if cls.name not in known:
                    register(cls)
            source = pickle.loads(Path(task.data_file).read_bytes())
            if task.teacher_file:
                model = keras.models.load_model(task.teacher_file, compile=False, safe_mode=False)
            else:  # still training elsewhere; this step needs only its layers
                model = untrained_teacher(source.teacher_data, task.teacher.architecture,
                                          task.teacher.recipe, task.seed)
            _PREPARED[key] = (source, replace(task.teacher, model=model))
        source, teacher = _PREPARED[key]
        (strategy,) = strategies_from_spec(task.spec)
    except Exception as error:  # the row says why; the run goes on
        return task.index, (f"a worker process could not prepare the step ({type(error).__name__}: "
                            f"{error}); {option('jobs', 1)} runs every step in this process")
    context = RowContext(task.config, {task.seed: source}, {task.seed: teacher}, task.env,
                         Path(task.folder), task.run_id)
    item = PlannedRow(task.index, task.seed, Step(strategy, task.control_of), task.artifact)
    return task.index, context.evaluate(item, deadline=task.deadline)


def teacher_record(teacher: Teacher) -> dict[str, Any]:
    """What run.json keeps about a seed's teacher."""
    return {
        "architecture": teacher.architecture, "recipe": asdict(teacher.recipe),
        "epochs_trained": teacher.epochs_trained, "from_cache": teacher.from_cache,
        "train_accuracy": teacher.train_accuracy, "val_accuracy": teacher.val_accuracy,
        "cache_key": teacher.cache_key, "budget_stopped": teacher.cut_short,
    }


@dataclass(frozen=True)
class Evaluated:
    row: dict[str, Any]
    flatbuffer: bytes | None = None
    labels: np.ndarray | None = None  # predicted test labels, for comparisons with the baseline


def evaluate_step(
    step: Step, teacher: Teacher, source: Source, seed: int, *, scenario: str, threads: int,
    env: dict[str, Any], folder: Path, run_id: str, artifact: str,
    interrupts: Interrupts | None = None, stage_cache: StageCache | None = None,
    deadline: float | None = None,
) -> Evaluated:
    """One row: run the strategy, save its artifact, score its size and accuracy.

    The same step for runs and sweep jobs.  Everything from the strategy's call to
    the scored predictions is guarded: whatever goes wrong, a strategy's bug or a
    garbage flatbuffer, becomes this row's ``failed`` status and the run goes on.
    Comparisons with the baseline are added by ``finish_seed``.  Training stops at
    ``deadline`` (``time.time()``), and the row says what that cut short.
    """
    dataset, strategy = source.dataset, step.strategy
    row = step_row(step, teacher, source, seed, scenario=scenario, env=env, run_id=run_id)
    try:
        made = apply_strategy(strategy, teacher.model, teacher.architecture, dataset.training,
                              seed=seed, workdir=folder, stage_cache=stage_cache, deadline=deadline)
        model = TFLiteModel(made.flatbuffer, threads=threads)
        labels = np.argmax(model.predict(dataset.x_test), axis=1)
        scored = {**size_fields(made.flatbuffer), **memory_fields(made.flatbuffer), **asdict(
            accuracy_stats(dataset.y_test, labels, dataset.n_classes))}
        write_atomic(folder / artifact, made.flatbuffer)
    except Skip as reason:
        row.update(status="skipped", reason=str(reason))
        return Evaluated(row)
    except Exception as error:  # one broken strategy or artifact must not sink the run
        if interrupts is not None and interrupts.requested:
            raise KeyboardInterrupt from None
        row.update(status="failed", reason=_one_line(f"{type(error).__name__}: {error}"))
        with open(folder / ERROR_LOG, "a") as log:
            log.write(f"--- {row['spec']} (seed {seed})\n{traceback.format_exc()}\n")
        return Evaluated(row)
    notes = made.notes
    if made.cut_short:
        # The strategy's notes describe its plan: the cut comes first, so they cannot be read as done.
        notes = f"Stopped by the time budget after {made.cut_short}, of this plan: {notes}".strip()
    row.update(scored, status="ok", notes=notes, train_seconds=made.train_seconds,
               budget_stopped=made.cut_short, artifact=artifact,
               test_correct="".join("1" if ok else "0" for ok in labels == dataset.y_test))
    return Evaluated(row, made.flatbuffer, labels)


def step_row(
    step: Step, teacher: Teacher, source: Source, seed: int, *, scenario: str,
    env: dict[str, Any], run_id: str,
) -> dict[str, Any]:
    """A step's row before it is scored: what was asked for, on which data and teacher."""
    dataset, strategy = source.dataset, step.strategy
    return new_row(
        run_id=run_id, strategy=strategy.name, spec=strategy.spec(), label=strategy.label(),
        family=strategy.family, role=strategy.role, control_of=step.control_of,
        training_cost=strategy.cost,  # 0: a conversion, whose "train_seconds" trained nothing
        params=strategy.get_params(), dataset=dataset.name, scenario=scenario,
        preprocessing=source.preprocessing, class_names=list(dataset.class_names), seed=seed,
        **teacher_fields(teacher), majority_rate=majority_rate(dataset.y_test), env=env,
    )


def teacher_fields(teacher: Teacher) -> dict[str, Any]:
    """What a row says about its seed's teacher (unknown while a worker trains it)."""
    return {"teacher_architecture": teacher.architecture, "teacher_cached": teacher.from_cache,
            "teacher_train_accuracy": teacher.train_accuracy,
            "teacher_val_accuracy": teacher.val_accuracy,
            "teacher_train_seconds": teacher.train_seconds or None}


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def finish_seed(
    evaluated: Sequence[Evaluated], dataset: Dataset, threads: int,
    timed: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Compare a seed's rows with its baseline (fidelity, McNemar) and time them together.

    ``timed`` picks the rows to time (default: every finished row).
    """
    base = next((e for e in evaluated if e.row["role"] == "baseline" and e.labels is not None), None)
    for item in evaluated:
        if item.labels is not None and base is not None:
            item.row.update(reference_stats(dataset.y_test, item.labels, base.labels))
    flatbuffers = {str(i): e.flatbuffer for i, e in enumerate(evaluated)
                   if e.flatbuffer is not None and (timed is None or timed(e.row))}
    reference = next((str(i) for i, e in enumerate(evaluated) if e is base and str(i) in flatbuffers),
                     None)
    latencies = measure_latency(flatbuffers, dataset.x_test, reference=reference, threads=threads)
    for key, latency in latencies.items():
        evaluated[int(key)].row.update(latency.fields())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    flatbuffer: bytes
    notes: str
    train_seconds: float
    cut_short: str | None = None  # what the time budget stopped, if anything


def apply_strategy(
    strategy: Strategy, teacher: keras.Model, teacher_architecture: str, data: TrainingData,
    *, seed: int, workdir: Path, stage_cache: StageCache | None = None,
    deadline: float | None = None,
) -> Artifact:
    """Seed, hand the strategy a fresh clone of the teacher, time it, export TFLite.

    The one path from a strategy to a flatbuffer, shared by runs and the
    conformance suite.  Its training stops at ``deadline`` (``time.time()``, None: never).
    Raises ``Skip`` or whatever the strategy raised.
    """
    seed_everything(seed)
    ctx = Context(
        data=data.read_only(), teacher=clone(teacher), teacher_architecture=teacher_architecture,
        seed=seed, workdir=workdir, stage_cache=stage_cache,
    )
    with time_allowance(deadline) as allowance:
        start = time.perf_counter()
        compressed = strategy.compress(ctx)
        seconds = time.perf_counter() - start
    if not isinstance(compressed, Compressed):
        raise TypeError(f"{type(strategy).__name__}.compress returned a {type(compressed).__name__}; "
                        "it must return compress.Compressed(model=... or tflite=..., notes=...)")
    flatbuffer = compressed.tflite if compressed.tflite is not None else to_tflite(compressed.model)
    return Artifact(flatbuffer, compressed.notes, round(seconds, 3),
                    allowance.stopped if allowance else None)
