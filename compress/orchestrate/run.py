"""The one engine of ``compress run``, ``sweep`` and ``tune``'s final measurement:
dataset -> teacher -> strategies -> measurement -> results.

A command is planned (``plan``), its teachers prepared and checked (``teachers``) before the
output folder is touched, its rows made as ``tasks.RowTask`` by an executor (this process, a
local pool or Dask), each saved as it finishes; then every seed's rows are timed together in
interleaved rounds (``steps.finish_seed``), so training never competes with timing, and
run.json is completed.  A folder that already holds rows of the same data and teachers is
resumed (``resume``): every row whose key matches is taken, not made again.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compress.analysis.devices import fits, parse_device
from compress.common.errors import UserError, option
from compress.common.fileio import write_atomic
from compress.models.architectures import check_fits
from compress.models.teacher import Teacher
from compress.orchestrate.config import RunConfig, default_out_dir
from compress.orchestrate.executors import Executor, executor_for
from compress.orchestrate.interrupts import Interrupts
from compress.orchestrate.plan import (
    PlannedRow,
    TechniquesFirst,
    TimeBudget,
    artifact_name,
    for_device,
    plan_rows,
    plan_steps,
    start_order,
)
from compress.orchestrate.pool import WAIT
from compress.orchestrate.steps import ERROR_LOG, Evaluated, finish_seed, step_row
from compress.orchestrate.tasks import (
    JOBS_DIR,
    RowResult,
    RowTask,
    Task,
    TeacherFailed,
    TeacherTask,
    TeacherTrained,
    forget_here,
    keep_here,
    row_key,
    strategy_classes,
    task_identity,
    task_key,
)
from compress.orchestrate.teachers import (
    Source,
    check_teacher,
    load_source,
    teacher_fields,
    teacher_for,
    teacher_origin,
    teacher_record,
    teacher_to_train,
)
from compress.results.firmware import c_header
from compress.results.manifest import RunManifest, now
from compress.results.outdir import Output, check_output, open_output
from compress.results.rows import RESULTS_FILE, environment, read_results, write_results

#: Called as progress(done, total, what) when a step finishes (``what`` names it and how it
#: ended) or a phase starts (``done`` unchanged).
Progress = Callable[[int, int, str], None]
#: Which finished rows are timed: every one, or each seed's baseline and size/accuracy front.
TIMINGS = ("all", "best")


@dataclass
class RunResult:
    out: Path
    rows: list[dict[str, Any]]
    reused: int = 0  # rows taken from the folder (``resume``), not made again
    complete: bool = True
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: prepare, rows, timing

    @property
    def failures(self) -> int:
        return sum(row["status"] == "failed" for row in self.rows)

    @property
    def failed(self) -> bool:
        return self.failures > 0


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: every finished row is saved and the run is marked incomplete.  Still a
    KeyboardInterrupt, so a caller's ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished rows kept in {result.out}")
        self.result = result


@dataclass(frozen=True)
class Command:
    """What a command adds to a run's settings: its kind of folder, the timing, its own
    settings for run.json, the modules that register its strategies, and the executor."""

    kind: str = "run"
    timing: str = "all"
    settings: dict[str, Any] | None = None
    imports: tuple[str, ...] = ()
    executor: Executor | None = None  # None: made from the config, and closed at the end


def run(config: RunConfig, progress: Progress | None = None,
        meanwhile: Callable[[], None] | None = None, command: Command = Command()) -> RunResult:
    """Every step for every seed against one dataset and teacher per seed.

    Everything the user gave is validated, and every teacher prepared and checked, before
    the output folder is touched.  Side by side in workers, without a time budget, a teacher
    still to be trained is trained by a worker while the others start the steps that need no
    trained teacher; if it proves weak the output folder is left as it was found.
    ``meanwhile`` (work this process would do after the run, e.g. imports) is called as soon as
    a worker has no row left to start.  Rows are saved as each finishes; latency is measured
    once every model exists.  Ctrl-C raises RunInterrupted after saving what finished.
    """
    config.validate()
    if command.timing not in TIMINGS:
        raise UserError(f"timing must be one of {', '.join(TIMINGS)}, got {command.timing!r}")
    steps = plan_steps(for_device(config.strategies, parse_device(config.device)), config.epochs)
    executor = command.executor or executor_for(config, [s.strategy for s in steps],
                                                len(steps) * len(config.seeds))
    interrupts = Interrupts()
    with interrupts.installed(), contextlib.ExitStack() as stack:
        if command.executor is None:
            stack.callback(executor.close)  # at once if bad input stops the run early
        if executor.workers > 1:  # workers import TensorFlow while the data and teachers are prepared
            executor.start()
        engine = Engine(config, command, executor, plan_rows(steps, config.seeds), interrupts,
                        progress or (lambda done, total, what: None))
        return engine.execute(meanwhile)


class Engine:
    """One command's rows: prepared, executed, saved and timed."""

    def __init__(self, config: RunConfig, command: Command, executor: Executor,
                 planned: list[PlannedRow], interrupts: Interrupts, report: Progress) -> None:
        self.config, self.command, self.executor = config, command, executor
        self.planned, self.interrupts, self.report = planned, interrupts, report
        self.started = time.time()
        self.sources: dict[int, Source] = {}
        self.teachers: dict[int, Teacher] = {}
        self.weak: dict[int, str] = {}
        self.finished: dict[int, Evaluated] = {}
        self.extra: list[RowResult] = []  # rows of the folder this command did not plan
        self.done = 0
        self.total = len(planned) + 2 * len(config.seeds)
        self.identities: dict[int, dict[str, Any]] = {}
        self.seconds: dict[str, float] = {}

    # -- before the folder is touched ----------------------------------------------------

    def execute(self, meanwhile: Callable[[], None] | None) -> RunResult:
        config = self.config
        self.sources = {seed: load_source(config, seed) for seed in config.seeds}
        first = self.sources[config.seeds[0]]
        target = config.out or default_out_dir(first.dataset.name)
        check_output(target, self.command.kind, overwrite=config.overwrite, reuse=config.resume)
        if config.resume and (target / RESULTS_FILE).exists() and not (target / JOBS_DIR).is_dir():
            raise UserError(f"{target} was written before compress kept its rows for resuming, so "
                            f"none can be taken; choose a new {option('out')}, or pass "
                            f"{option('overwrite', True)} instead of {option('resume', True)}")
        if config.teacher_architecture is not None:
            check_fits(config.teacher_architecture, first.teacher_data.input_shape,
                       first.teacher_data.vocabulary)
        budget = self._budget()
        self._prepare_teachers(budget)
        previous = self._previous(target) if config.resume else {}
        self.seconds["prepare"] = round(time.time() - self.started, 3)
        output = open_output(target, self.command.kind, overwrite=config.overwrite, reuse=config.resume)
        try:
            return self._rows(output, previous, budget, meanwhile)
        except KeyboardInterrupt:
            rows = read_results(output.folder) if (output.folder / RESULTS_FILE).exists() else []
            raise RunInterrupted(RunResult(output.set_aside(), rows, complete=False)) from None
        except (UserError, TeacherFailed):  # a teacher a worker trained was weak, or failed:
            output.discard()  # nothing of the run is kept, as when the teacher is trained here
            raise

    def _budget(self) -> TimeBudget | None:
        if self.config.time_budget is None:
            return None
        ordered = start_order(self.planned, self.executor.workers, budgeted=True)
        return TimeBudget.for_run(self.started + 60 * self.config.time_budget, ordered,
                                  self.executor.workers, teachers=len(self.config.seeds))

    def _prepare_teachers(self, budget: TimeBudget | None) -> None:
        """Each seed's teacher: loaded or trained here and checked, or left to a worker (side by
        side, without a time budget, whose shares assume the teachers are done first)."""
        in_worker = not self.executor.in_process and budget is None and self.executor.workers > 1
        for seed, source in self.sources.items():
            pending = teacher_to_train(self.config, source, seed) if in_worker else None
            if pending is not None:
                self.teachers[seed] = pending
                continue
            self.report(self.done, self.total, f"seed {seed}: preparing the teacher (cached after the "
                        "first run)")
            self.teachers[seed] = teacher_for(self.config, source, seed, load=self.executor.in_process,
                                              deadline=None if budget is None else budget.claim_alone())
            check_teacher(self.config, seed, self.teachers[seed], source.dataset, self.weak)
            self.done += 1
            self.report(self.done, self.total, f"seed {seed}: teacher ready "
                        f"({teacher_origin(self.teachers[seed])})")

    def _identity(self, seed: int) -> dict[str, Any]:
        """What every row of the seed shares in its key (its data hashed once)."""
        if seed not in self.identities:
            self.identities[seed] = task_identity(self.sources[seed].dataset.fingerprint(),
                                                  self.teachers[seed], seed, "test")
        return self.identities[seed]

    def _previous(self, folder: Path) -> dict[str, RowResult]:
        """The finished rows a resumed folder holds, by key: refused in one line when they are of
        other data or another teacher; those of other code are left out (made again)."""
        previous: dict[str, RowResult] = {}
        for path in sorted((folder / JOBS_DIR).glob("*.json")):
            result = RowResult.read(path)
            if result is None or result.identity.get("split", "test") != "test":
                continue
            seed = result.identity.get("seed", result.row.get("seed"))
            if result.identity and seed in self.teachers:
                mine = self._identity(seed)
                for part, what in (("data", "data"), ("teacher", "teacher")):
                    if result.identity[part] != mine[part]:
                        raise UserError(
                            f"{folder} holds rows of seed {seed} made with other {what} than this "
                            f"command's; choose another {option('out')}, or pass "
                            f"{option('overwrite', True)} instead of {option('resume', True)} "
                            "to replace them")
                if result.identity.get("code") != mine["code"]:
                    continue
            previous[result.key] = result
        return previous

    # -- the rows ------------------------------------------------------------------------

    def _rows(self, output: Output, previous: dict[str, RowResult], budget: TimeBudget | None,
              meanwhile: Callable[[], None] | None) -> RunResult:
        config, folder = self.config, output.folder
        self.env = environment(threads=config.threads)
        self.folder, self.run_id = folder, output.target.name
        self.manifest = RunManifest(
            run_id=self.run_id, kind=self.command.kind,
            config=json.loads(json.dumps(asdict(config), default=str)),
            settings=self.command.settings, dataset=self.sources[config.seeds[0]].dataset.summary(),
            preprocessing=self.sources[config.seeds[0]].preprocessing,
            input_encoding={str(seed): s.encoding for seed, s in self.sources.items() if s.encoding} or None,
            data={str(seed): self._identity(seed)["data"] for seed in self.sources},
            teachers={str(seed): teacher_record(t) for seed, t in self.teachers.items()},
            weak_teacher={str(k): v for k, v in self.weak.items()} or None, env=self.env,
            workers=self.executor.workers, started=now())
        to_run = self._reuse(previous)
        self.total += len(self.extra)
        if budget is not None:
            making = {item.index for item in to_run}
            for item in self.planned:
                if item.index not in making:
                    budget.skip(budget.by_index[item.index])
        self.manifest.reused = len(self.planned) - len(to_run) + len(self.extra)
        self.manifest.write(folder)
        clock = time.time()
        try:
            for seed in (seed for seed, teacher in self.teachers.items() if teacher.pending):
                self.report(self.done, self.total, f"seed {seed}: training the teacher in a worker; rows "
                            "that need no trained teacher start beside it")
            with tempfile.TemporaryDirectory(prefix="compress-shipped-") as tmp:
                self._execute(to_run, budget, Path(tmp), meanwhile)
            self.seconds["rows"] = round(time.time() - clock, 3)
            clock = time.time()
            self._finish_seeds()
            self.seconds["timing"] = round(time.time() - clock, 3)
            self._write_firmware()
        except KeyboardInterrupt:
            self.manifest.interrupted, self.manifest.finished = True, now()
            self.manifest.write(folder)
            raise
        self.manifest.complete, self.manifest.finished = True, now()
        self.manifest.write(folder)
        self.report(self.total, self.total, "done")
        return RunResult(output.commit(), self.rows(), self.manifest.reused, True, self.seconds)

    def _reuse(self, previous: dict[str, RowResult]) -> list[PlannedRow]:
        """Take every planned row the folder already holds (and keep the folder's other rows of
        these seeds, data and teachers); return the rows still to make, their files renamed where
        a kept row holds the name."""
        self.keys = {item.index: self._key(item) for item in self.planned}
        taken = {r.row.get("artifact") for r in previous.values()}
        to_run = []
        for item in self.planned:
            result = previous.pop(self.keys[item.index], None)
            if result is not None and self._whole(result):
                self._take(item.index, result)
                continue
            if item.artifact in taken:
                stem = Path(item.artifact).stem
                artifact = artifact_name(stem, taken | {p.artifact for p in self.planned})
                item = replace(item, artifact=artifact)
            to_run.append(item)
        seeds = set(self.config.seeds)
        for result in previous.values():
            if result.identity.get("seed") in seeds and self._whole(result):
                self.extra.append(result)
                self._take(len(self.planned) + len(self.extra) - 1, result)
        return to_run

    def _whole(self, result: RowResult) -> bool:
        artifact = result.row.get("artifact")
        return result.labels is None or bool(artifact and (self.folder / artifact).is_file())

    def _take(self, index: int, result: RowResult) -> None:
        """A finished row joins this command's rows, untimed, to be timed with the others."""
        self.finished[index] = self._evaluated(result)
        self.done += 1

    def _evaluated(self, result: RowResult) -> Evaluated:
        """A saved or just-made row as this command's: its run, its teacher's fields (unknown
        while a worker trained the teacher beside it) and its model read back."""
        row = dict(result.row, run_id=self.run_id)
        if not self.teachers[row["seed"]].pending:
            row.update(teacher_fields(self.teachers[row["seed"]]))
        flatbuffer = (self.folder / row["artifact"]).read_bytes() if result.labels is not None else None
        return Evaluated(row, flatbuffer, None if result.labels is None else np.array(result.labels))

    def _key(self, item: PlannedRow) -> str:
        return row_key(self._identity(item.seed), item.step.strategy, item.step.control_of)

    def rows(self) -> list[dict[str, Any]]:
        return [self.finished[i].row for i in sorted(self.finished)]

    def _execute(self, to_run: list[PlannedRow], budget: TimeBudget | None, tmp: Path,
                 meanwhile: Callable[[], None] | None) -> None:
        """Make ``to_run``'s rows with the executor, saving each as it finishes."""
        started: dict[int, float] = {}
        tasks = Tasks(self, to_run, budget, tmp, started)
        outcomes = self.executor.run(tasks.drawn(), self.interrupts)
        by_index = {item.index: item for item in to_run}
        made = 0
        try:
            for outcome in outcomes:
                self.interrupts.check()
                if isinstance(outcome, TeacherTrained):
                    self._teacher_trained(outcome)
                    continue
                item = by_index[outcome.index]
                if budget is not None:
                    budget.finished(budget.by_index[item.index], time.time() - started[item.index],
                                    outcome.row)
                tasks.techniques.done(item)
                self._finished(item, outcome)
                made += 1
                if meanwhile is not None and self.executor.workers > 1 \
                        and len(to_run) - made < self.executor.workers:
                    meanwhile()  # a worker is idle for good: its core is free
                    meanwhile = None
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()
            forget_here(tasks.token)

    def _finished(self, item: PlannedRow, outcome: RowResult) -> None:
        if outcome.traceback:  # a worker that could not make the row: its traceback, kept
            with open(self.folder / ERROR_LOG, "a") as log:
                log.write(f"--- {outcome.row['spec']} (seed {item.seed})\n{outcome.traceback}\n")
        self.finished[item.index] = evaluated = self._evaluated(outcome)
        write_results(self.folder, self.rows())
        self.done += 1
        self.report(self.done, self.total, f"seed {item.seed}: {item.step.strategy.label()} "
                    f"{_outcome(evaluated.row)}")

    def _teacher_trained(self, outcome: TeacherTrained) -> None:
        """A teacher a worker trained: checked as one trained here is, then given to its rows."""
        if outcome.teacher is None:
            raise outcome.error or TeacherFailed("a worker returned no teacher")
        seed, teacher = outcome.seed, outcome.teacher
        check_teacher(self.config, seed, teacher, self.sources[seed].dataset, self.weak)
        self.teachers[seed] = teacher
        for index, evaluated in self.finished.items():  # rows that needed no trained teacher
            if evaluated.row["seed"] == seed and index < len(self.planned):
                evaluated.row.update(teacher_fields(teacher))
        self.manifest.teachers[str(seed)] = teacher_record(teacher)
        self.manifest.weak_teacher = {str(k): v for k, v in self.weak.items()} or None
        self.manifest.write(self.folder)
        write_results(self.folder, self.rows())
        self.done += 1
        self.report(self.done, self.total, f"seed {seed}: teacher ready ({teacher_origin(teacher)})")

    def _finish_seeds(self) -> None:
        """Compare every seed's rows with its baseline and time them together."""
        timing = self.command.timing
        for seed, source in self.sources.items():
            self.interrupts.check()
            self.report(self.done, self.total, f"seed {seed}: timing every model (interleaved rounds)")
            evaluated = [e for i, e in sorted(self.finished.items()) if e.row["seed"] == seed]
            finish_seed(evaluated, source.dataset, self.config.threads,
                        timed=None if timing == "all" else _front_of(evaluated))
            write_results(self.folder, self.rows())
            self.done += 1
            self.report(self.done, self.total, f"seed {seed}: every model timed")

    def _write_firmware(self) -> None:
        """Beside each row that fits a microcontroller ``--device``: the model as a C array with
        its arena as a constant (``results.firmware``)."""
        device = parse_device(self.config.device)
        if device is None or not device.micro:
            return
        for evaluated in self.finished.values():
            row = evaluated.row
            if evaluated.flatbuffer is None or not fits(row, device)[0]:
                continue
            stem = Path(row["artifact"]).with_suffix("")
            about = f"{row['label']} (seed {row['seed']}) for {device.describe()}; spec: {row['spec']}"
            write_atomic(self.folder / f"{stem}.h", c_header(evaluated.flatbuffer, stem.name,
                                                             row["micro_arena_bytes"], about))


class Tasks:
    """The tasks of a command's rows, drawn by the executor as workers free up: so each
    deadline is set when its step starts, a control that trains what its technique chose waits
    for it, and a row that needs a teacher still training waits for that."""

    def __init__(self, engine: Engine, to_run: list[PlannedRow], budget: TimeBudget | None, tmp: Path,
                 started: dict[int, float]) -> None:
        self.engine, self.budget, self.tmp, self.started = engine, budget, tmp, started
        self.ordered = start_order(to_run, engine.executor.workers, budgeted=budget is not None)
        self.techniques = TechniquesFirst(engine.planned)
        for index in engine.finished:  # rows taken from the folder count as done
            if index < len(engine.planned):
                self.techniques.done(engine.planned[index])
        self.token = f"{id(self)}-{time.time()}/"
        self.classes = tuple(strategy_classes(item.step.strategy for item in engine.planned))
        self.working_folder, self.cache = str(Path.cwd()), _cache_dir()
        self.data = {seed: self._ship_data(seed, source) for seed, source in engine.sources.items()}

    def _ship_data(self, seed: int, source: Source) -> str:
        executor = self.engine.executor
        if executor.in_process:
            return keep_here(f"{self.token}data-{seed}", source)
        if not executor.shares_files:
            return ""  # a remote worker loads it from the config
        path = self.tmp / f"data-seed{seed}.pickle"
        write_atomic(path, pickle.dumps(source))
        return str(path)

    def _teacher_file(self, seed: int) -> str:
        """Where a worker finds the seed's teacher; empty while a worker trains it."""
        teacher = self.engine.teachers[seed]
        if teacher.pending:
            return ""
        if self.engine.executor.in_process:
            return keep_here(f"{self.token}teacher-{seed}", teacher)
        if teacher.file is None:  # in memory only: saved for them
            path = self.tmp / f"teacher-seed{seed}.keras"
            if not path.exists():
                teacher.model.save(path)
            return str(path)
        return str(teacher.file)

    def startable(self, item: PlannedRow) -> bool:
        return self.techniques.ready(item) and (
            not self.engine.teachers[item.seed].pending or not item.step.strategy.needs_trained_teacher)

    def drawn(self) -> Iterator[Task]:
        engine = self.engine
        for seed in [seed for seed, teacher in engine.teachers.items() if teacher.pending]:
            spare = str(self.tmp / f"teacher-seed{seed}.keras")
            yield TeacherTask(seed, engine.config, self.data[seed], spare)
        waiting = list(self.ordered)
        while waiting:
            item = next((item for item in waiting if self.startable(item)), None)
            if item is None:
                yield WAIT
                continue
            waiting.remove(item)
            self.started[item.index] = time.time()
            yield self.task(item)

    def task(self, item: PlannedRow) -> RowTask:
        engine, seed = self.engine, item.seed
        teacher, source = engine.teachers[seed], engine.sources[seed]
        deadline = None
        if self.budget is not None:
            claimed = self.budget.claim(self.budget.by_index[item.index])
            deadline = None if item.step.role == "baseline" else claimed  # every row needs it
        identity = engine._identity(seed)
        header = step_row(item.step, teacher, source, seed, scenario=engine.config.scenario, env=engine.env,
                          run_id=engine.run_id)
        return RowTask(
            key=engine.keys[item.index], index=item.index, spec=item.step.strategy.spec(),
            control_of=item.step.control_of, seed=seed, config=engine.config, folder=str(engine.folder),
            artifact=item.artifact, header=header, data=self.data[seed],
            teacher_file=self._teacher_file(seed), teacher=replace(teacher, model=None),
            deadline=deadline, stage_key=task_key(identity), threads=engine.config.threads,
            imports=engine.command.imports, path=self.working_folder, cache_dir=self.cache,
            classes=self.classes, identity=identity)


def _cache_dir() -> str:
    from compress.common.fileio import cache_dir

    return str(cache_dir())


def _front_of(evaluated: list[Evaluated]) -> Callable[[dict[str, Any]], bool]:
    """Whether a row is timed under ``--time best``: the baseline and the size/accuracy front."""
    from compress.report.plots import pareto_front

    done = [e.row for e in evaluated if e.flatbuffer is not None]
    front = pareto_front([(r["size_bytes"], r["accuracy"]) for r in done])
    return lambda row: row["role"] == "baseline" or (row["size_bytes"], row["accuracy"]) in front


def _outcome(row: dict[str, Any]) -> str:
    if row["status"] == "ok":
        return f"ok ({row['train_seconds']:.1f} s)"
    return row["status"]
