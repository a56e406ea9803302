"""Executing a run's rows: one after another in this process, or side by side in a pool of
worker processes that load the data and teacher once and run the very same ``evaluate_step``.
"""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compress.common.errors import UserError, option
from compress.common.fileio import write_atomic
from compress.models.backend import keras
from compress.models.teacher import (
    Teacher,
    untrained_teacher,
)
from compress.orchestrate.config import RunConfig
from compress.orchestrate.interrupts import Interrupts
from compress.orchestrate.plan import PlannedRow, Step, TechniquesFirst, TimeBudget, start_order
from compress.orchestrate.steps import Evaluated, evaluate_step, one_line, step_row
from compress.orchestrate.teachers import Source, teacher_for
from compress.strategies import Strategy, strategies_from_spec
from compress.strategies.base import register, registry


@dataclass(frozen=True)
class RowContext:
    """What every row of a run shares, in the process that owns the run."""

    config: RunConfig
    sources: dict[int, Source]
    teachers: dict[int, Teacher]
    env: dict[str, Any]
    folder: Path
    run_id: str
    budget: TimeBudget | None = None  # the run's --time-budget, its teachers already claimed

    def deadline(self, item: PlannedRow) -> float | None:
        """The step's training deadline; the baseline is never limited (every row needs it)."""
        if self.budget is None:
            return None
        claimed = self.budget.claim(self.budget.by_index[item.index])
        return None if item.step.role == "baseline" else claimed

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
        row.update(status="failed", reason=one_line(reason))
        return Evaluated(row)


def evaluate_here(
    planned: list[PlannedRow], context: RowContext, interrupts: Interrupts,
) -> Iterator[tuple[PlannedRow, Evaluated]]:
    """Every row in this process, one after another."""
    budget = context.budget
    for item in start_order(planned, 1, budgeted=budget is not None):
        interrupts.check()
        started = time.time()
        result = context.evaluate(item, interrupts, context.deadline(item))
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


def evaluate_in_workers(
    planned: list[PlannedRow], context: RowContext, interrupts: Interrupts, pool: Any,
    workers: int, teacher_trained: Callable[[int, Teacher], None],
) -> Iterator[tuple[PlannedRow, Evaluated]]:
    """Every row in the pool's worker processes, yielded as each finishes.

    Each worker loads the data (pickled here) and the teacher (its cache file, or a copy
    saved here) and runs the very ``evaluate_step`` a one-process run runs, with the same
    TensorFlow settings, so the rows are identical.  A pending teacher is trained first, by a
    worker, while the others start the rows that need no trained teacher (its untrained
    layers give them the same models); ``teacher_trained`` receives it before the rows that
    need it start.  Rows start in ``plan.start_order``.
    """
    import tempfile

    from compress.orchestrate.pool import WAIT, pool_map

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
        budget, started = context.budget, {}
        ordered = start_order(planned, workers, budgeted=budget is not None)

        techniques = TechniquesFirst(planned)

        def startable(item: PlannedRow) -> bool:
            return techniques.ready(item) and (
                not teachers[item.seed].pending or not item.step.strategy.needs_trained_teacher)

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
                    data[item.seed], context.deadline(item), classes)

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
                techniques.done(item)
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
