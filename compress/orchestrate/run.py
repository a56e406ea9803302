"""``compress run``: dataset -> teacher -> strategies -> measurement -> results.

The run is planned (``plan``), its teachers prepared and checked (``teachers``) before the
output folder is touched, its rows executed here or in workers (``execute``), each saved as it
finishes; then every seed's rows are timed together in interleaved rounds (``steps.finish_seed``),
so training never competes with timing, and run.json is completed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.models.architectures import check_fits
from compress.models.teacher import (
    Teacher,
)
from compress.models.training import time_allowance
from compress.orchestrate.config import RunConfig, default_out_dir
from compress.orchestrate.execute import (
    RowContext,
    TeacherFailed,
    evaluate_here,
    evaluate_in_workers,
    importable_elsewhere,
)
from compress.orchestrate.interrupts import Interrupts
from compress.orchestrate.plan import PlannedRow, TimeBudget, plan_rows, plan_steps, start_order
from compress.orchestrate.steps import Evaluated, finish_seed
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
from compress.results.outdir import Output, check_output, open_output
from compress.results.rows import RUN_MANIFEST, environment, write_results

#: Called as progress(done, total, what) when a step finishes (``what`` names it and how it
#: ended) or a phase starts (``done`` unchanged).
Progress = Callable[[int, int, str], None]


@dataclass
class RunResult:
    out: Path
    rows: list[dict[str, Any]]

    @property
    def failed(self) -> bool:
        return any(row["status"] == "failed" for row in self.rows)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: every finished row is saved and the run is marked incomplete.  Still a
    KeyboardInterrupt, so a caller's ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished rows kept in {result.out}")
        self.result = result


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
    steps = plan_steps(config.strategies, config.epochs)
    planned = plan_rows(steps, config.seeds)
    report = progress or (lambda done, total, what: None)
    total, done = (len(steps) + 2) * len(config.seeds), 0
    workers = min(config.jobs, len(planned)) if importable_elsewhere(steps) else 1
    budget = None if config.time_budget is None else TimeBudget.for_run(
        started + 60 * config.time_budget, start_order(planned, workers, budgeted=True), workers,
        teachers=len(config.seeds))
    interrupts = Interrupts()
    with interrupts.installed(), contextlib.ExitStack() as stack:
        pool = None
        if workers > 1:  # workers import TensorFlow while the data and teachers are prepared
            from compress.models.backend import import_tensorflow
            from compress.orchestrate.pool import Pool

            pool = Pool(workers, import_tensorflow)
            pool.get()
            stack.callback(pool.close)  # at once if bad input stops the run early
        sources = {seed: load_source(config, seed) for seed in config.seeds}
        first = sources[config.seeds[0]]
        target = config.out or default_out_dir(first.dataset.name)
        check_output(target, "run", overwrite=config.overwrite)  # before any training
        if config.teacher_architecture is not None:
            check_fits(config.teacher_architecture, first.teacher_data.input_shape)
        teachers: dict[int, Teacher] = {}
        weak: dict[int, str] = {}
        for seed, source in sources.items():
            pending = None if pool is None or budget is not None else \
                teacher_to_train(config, source, seed)
            if pending is not None:  # trained by a worker while the others start what needs no teacher
                teachers[seed] = pending
                continue
            report(done, total, f"seed {seed}: preparing the teacher (cached after the first run)")
            with time_allowance(None if budget is None else budget.claim_alone()):
                teachers[seed] = teacher_for(config, source, seed, load=pool is None)
            check_teacher(config, seed, teachers[seed], source.dataset, weak)
            done += 1
            report(done, total, f"seed {seed}: teacher ready ({teacher_origin(teachers[seed])})")
        output = open_output(target, "run", overwrite=config.overwrite)
        try:
            return _run_steps(config, planned, sources, teachers, weak, output, interrupts, report,
                              done, pool, workers, budget, meanwhile)
        except KeyboardInterrupt:
            raise RunInterrupted(RunResult(output.set_aside(), _saved_rows(output.folder))) from None
        except (UserError, TeacherFailed):  # a teacher a worker trained was weak, or failed:
            output.discard()  # nothing of the run is kept, as when the teacher is trained here
            raise


def _saved_rows(folder: Path) -> list[dict[str, Any]]:
    from compress.results.rows import RESULTS_FILE, read_results

    return read_results(folder) if (folder / RESULTS_FILE).exists() else []


def _run_steps(
    config: RunConfig, planned: list[PlannedRow], sources: dict[int, Source],
    teachers: dict[int, Teacher], weak: dict[int, str], output: Output, interrupts: Interrupts,
    report: Progress, done: int, pool: Any = None, workers: int = 1, budget: TimeBudget | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> RunResult:
    folder, run_id = output.folder, output.target.name
    total = len(planned) + 2 * len(config.seeds)
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
        report(done, total, f"seed {seed}: teacher ready ({teacher_origin(teacher)})")

    context = RowContext(config, sources, teachers, env, folder, run_id, budget)
    try:
        for seed in (seed for seed, teacher in teachers.items() if teacher.pending):
            report(done, total, f"seed {seed}: training the teacher in a worker; rows that need no "
                   "trained teacher start beside it")
        evaluated = evaluate_here(planned, context, interrupts) if pool is None else \
            evaluate_in_workers(planned, context, interrupts, pool, workers, teacher_trained)
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


