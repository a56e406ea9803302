"""Sweeps: many configurations × seeds as independent, cached, resumable jobs.

The driver resolves every job, trains each seed's teacher once (the teacher
cache then serves every worker by path), and hands the jobs to an executor.
Only JSON and file paths cross process boundaries; TensorFlow is imported
inside each job, never before a fork.  Each job writes its row atomically
under a key that hashes everything that decides it, so a re-run skips what
is done and a job that runs twice (Dask may re-run one) gives the same file.
Latency is measured afterwards, serially, because parallel timing would lie.

This module imports no TensorFlow at import time: workers import it first.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from compress.errors import UserError, flag_names_in_use, option, set_flag_names
from compress.fileio import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

JOBS_DIR = "jobs"
Task = TypeVar("Task")
Result = TypeVar("Result")
#: What a ``pool_map`` source yields when none of its tasks can start before a running one ends.
WAIT: Any = object()
_NOTHING_RUNS = "the task source waits for a result, but nothing runs"
STAGES_DIR = "stages"


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep file: the data, the seeds and the grid of strategy specs."""

    specs: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    dataset: str = "synthetic"
    data: str | None = None
    target: str | None = None
    missing: str = "error"
    image_size: str | None = None  # "HEIGHT,WIDTH" for an image folder's data
    epochs: int | None = None
    imports: tuple[str, ...] = ()  # modules that register extra strategies, imported by every job


def _grid_specs(grid: Any, where: str) -> list[str]:
    """One spec per point of the grid's cartesian product (lists are axes, scalars fixed)."""
    import re

    from compress.spec import parse_spec

    if not isinstance(grid, dict):
        raise UserError(f"{where} is not a table (got {type(grid).__name__} {grid!r}); write [[grid]] "
                        "and strategy = \"NAME\" below it")
    if "strategy" not in grid or not isinstance(grid["strategy"], str) or not grid["strategy"].strip():
        raise UserError(f"{where} needs strategy = \"NAME\"")
    strategy = grid["strategy"].strip()
    axes = {k: v if isinstance(v, list) else [v] for k, v in grid.items() if k != "strategy"}
    if axes and (":" in strategy or ">" in strategy):
        raise UserError(f"{where}: strategy {strategy!r} carries its own parameters or stages; give "
                        "the parameters as keys of the table instead, or drop the other keys")
    for key, values in axes.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"{where}: {key!r} is not a parameter name; use the names "
                            f"'compress list' strategies take, e.g. sparsity")
        if not values:
            raise UserError(f"{where} has an empty list for {key}; give at least one value")
        for value in values:
            if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and not value):
                raise UserError(f"{where}: {key} = {value!r} is not a number, boolean or text; "
                                "give plain values or a list of them")
    specs = []
    for point in itertools.product(*axes.values()):
        params = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                          for k, v in zip(axes, point, strict=True))
        spec = f"{strategy}:{params}" if params else strategy
        if params and sorted(parse_spec(spec)[1]) != sorted(axes):  # a value holding ",key=" splits
            raise UserError(f"{where}: the values {dict(zip(axes, point, strict=True))} do not make "
                            f"one parameter each in {spec!r}; remove ',' and '=' from text values")
        specs.append(spec)
    return specs


def load_sweep(path: Path | str) -> SweepConfig:
    """Parse a sweep TOML file; every mistake is a one-line UserError."""
    import re

    from compress.data import BUILTIN_DATASETS

    max_seed = 2**32 - 1  # seeds reach scikit-learn's random_state, which takes 0 .. 2**32 - 1
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist; check the path")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML ({error}); see examples/sweep.toml") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check its permissions") from None
    known = {"dataset", "data", "target", "missing", "image_size", "seeds", "epochs", "grid", "imports"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r}; keys are {', '.join(sorted(known))}")
    grids = raw.get("grid", [])
    if not isinstance(grids, list) or not grids:
        raise UserError(f"{path} needs at least one [[grid]] table with strategy = \"NAME\"")
    specs = ["baseline"]
    for number, grid in enumerate(grids, start=1):
        specs += [s for s in _grid_specs(grid, f"{path} [[grid]] #{number}") if s not in specs]
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or \
            not all(type(s) is int and 0 <= s <= max_seed for s in seeds):
        raise UserError(f"{path}: seeds must be a list of integers from 0 to {max_seed}, "
                        f"e.g. seeds = [0, 1, 2]; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{path}: seeds must be distinct, got {seeds}; list each seed once")
    for key in ("dataset", "data", "target", "missing"):
        if key in raw and not (isinstance(raw[key], str) and raw[key].strip()):
            raise UserError(f"{path}: {key} must be a non-empty string, got {raw[key]!r}")
    if "dataset" in raw and "data" in raw:
        raise UserError(f"{path}: give dataset or data, not both")
    if raw.get("dataset", "synthetic") not in BUILTIN_DATASETS:
        raise UserError(f"{path}: unknown dataset {raw['dataset']!r}; choose one of "
                        f"{', '.join(BUILTIN_DATASETS)}, or give data = \"FILE\"")
    if "target" in raw and "data" not in raw:
        raise UserError(f"{path}: target names a column of a data file; add data = \"FILE\" or drop target")
    if raw.get("missing", "error") not in ("error", "drop", "impute"):
        raise UserError(f"{path}: missing must be one of error, drop, impute, got {raw['missing']!r}")
    image_size = raw.get("image_size")
    if isinstance(image_size, list) and len(image_size) == 2 and all(type(v) is int for v in image_size):
        image_size = f"{image_size[0]},{image_size[1]}"
    if image_size is not None and not isinstance(image_size, str):
        raise UserError(f"{path}: image_size must be [HEIGHT, WIDTH] or \"HEIGHT,WIDTH\", got {image_size!r}")
    if image_size is not None and "data" not in raw:
        raise UserError(f"{path}: image_size is for an image folder; add data = \"FOLDER\" or drop it")
    epochs = raw.get("epochs")
    if epochs is not None and (type(epochs) is not int or epochs < 1):
        raise UserError(f"{path}: epochs must be a whole number of at least 1, got {epochs!r}")
    imports = raw.get("imports", [])
    module = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    if not isinstance(imports, list) or \
            not all(isinstance(m, str) and re.fullmatch(module, m) for m in imports):
        raise UserError(f"{path}: imports must be a list of module names, e.g. "
                        f"imports = [\"my_package.strategies\"]; got {imports!r}")
    data = raw.get("data")
    if data is not None and not Path(data).is_absolute() and (path.parent / data).exists():
        data = str(path.parent / data)  # relative to the sweep file, as written there
    return SweepConfig(
        specs=tuple(specs), seeds=tuple(seeds), dataset=raw.get("dataset", "synthetic"),
        data=data, target=raw.get("target"), missing=raw.get("missing", "error"),
        image_size=image_size, epochs=epochs, imports=tuple(imports),
    )


def job_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def source_digest(files: Iterable[Path]) -> str:
    """A hash of source files' bytes: part of every job key, so edited code never reuses a result."""
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def package_files() -> list[Path]:
    """Every source file of the installed compress package."""
    return sorted(Path(__file__).resolve().parent.rglob("*.py"))


def strategy_files(spec: str) -> list[Path]:
    """The files of the modules that define a spec's strategies (a plugin's code included)."""
    import inspect

    from compress.runner import strategy_classes
    from compress.strategies import strategies_from_spec

    files = {inspect.getsourcefile(cls) for cls in strategy_classes(strategies_from_spec(spec))}
    return [Path(f).resolve() for f in files if f]


@dataclass(frozen=True)
class Job:
    """One (step, seed) of a sweep: everything a worker needs, and nothing else."""

    key: str
    spec: str
    control_of: str | None
    seed: int
    config: Any  # the sweep's resolved RunConfig (typed loosely: this module imports no TensorFlow)
    out: str
    cache_dir: str
    path: str  # the driver's working folder, so `imports` resolve as they did there
    imports: tuple[str, ...]
    env: dict[str, Any] = field(hash=False, compare=False)
    #: "test" for a result, "validation" for a tuning trial: scored on the validation split,
    #: so the test split stays unseen until the configuration is chosen.
    split: str = "test"
    #: What decides a chain's leading stages besides their specs (data, teacher, seed, code):
    #: jobs that share it share those stages' models through ``STAGES_DIR``.
    stage_key: str = ""

    @property
    def result_path(self) -> Path:
        return Path(self.out) / JOBS_DIR / f"{self.key}.json"


def run_job(job: Job) -> dict[str, Any]:
    """Worker entry point: the runner's own per-strategy step; writes jobs/<key>.json atomically.

    Never raises for a failing strategy: the failure is the job's result.
    """
    os.environ["COMPRESS_CACHE_DIR"] = job.cache_dir
    if job.result_path.exists():  # another attempt (a re-run task) already finished it
        return json.loads(job.result_path.read_text())
    try:
        from importlib import import_module

        _on_path(job.path)
        for module in job.imports:
            import_module(module)
        from compress.runner import Step, evaluate_step, load_source, teacher_for
        from compress.strategies import strategies_from_spec
        from compress.strategies.chain import StageCache

        source = load_source(job.config, job.seed)
        teacher = teacher_for(job.config, source, job.seed)
        if job.split == "validation":
            source = source.for_selection()
        (strategy,) = strategies_from_spec(job.spec)
        folder = Path(job.out)
        evaluated = evaluate_step(
            Step(strategy, job.control_of), teacher, source, job.seed, scenario=job.config.scenario,
            threads=1, env=job.env, folder=folder, run_id=folder.name,
            artifact=f"{JOBS_DIR}/{job.key}.tflite",
            stage_cache=StageCache(folder / STAGES_DIR, job.stage_key) if job.stage_key else None,
        )
        result = {"key": job.key, "row": evaluated.row,
                  "labels": None if evaluated.labels is None else evaluated.labels.tolist()}
    except Exception as error:  # a broken job is recorded, the sweep goes on
        result = _failed(job, f"{type(error).__name__}: {error}".strip())
        result["traceback"] = traceback.format_exc()
    if result["row"].get("status") != "failed":  # failures are retried by the next run
        write_atomic(job.result_path, json.dumps(result))
    return result


def _on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


@dataclass
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    reused: int
    failed: int
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: prepare, jobs, timing
    complete: bool = True


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C: pending jobs were cancelled; the finished ones are saved and reported.  Still a
    KeyboardInterrupt, so a caller's ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, result: SweepResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished jobs kept in {result.out}")
        self.result = result


def run_config(config: SweepConfig) -> Any:
    """The sweep's data and budget settings as a run's, resolved by the runner's one resolver."""
    from compress.runner import resolve_config

    return resolve_config(dataset=None if config.data else config.dataset, data=config.data,
                          target=config.target, missing=config.missing,
                          image_size=config.image_size, epochs=config.epochs,
                          strategies=config.specs, seeds=list(config.seeds))


def import_modules(imports: Iterable[str]) -> None:
    """Import the modules that register a sweep's extra strategies; one line if one fails."""
    from importlib import import_module

    _on_path(str(Path.cwd()))  # as `python -m` does, so imports may name the project's modules
    for module in imports:
        try:
            import_module(module)
        except Exception as error:  # anything a user's module raises while importing
            raise UserError(f"cannot import {module!r} listed in imports "
                            f"({type(error).__name__}: {error})") from None


def plan_jobs(run: Any, out: Path, imports: tuple[str, ...] = ()) -> list[Job]:
    """Plan every (step, seed) of a RunConfig as a run would, train each seed's teacher once,
    key every job."""
    from compress.results import environment
    from compress.runner import load_source, plan_steps, teacher_for

    steps = plan_steps(run.strategies, run.epochs)
    env = environment(threads=1)
    jobs = []
    for seed in run.seeds:
        source = load_source(run, seed)
        teacher = teacher_for(run, source, seed)
        for step in steps:
            jobs.append(make_job(step.strategy.spec(), seed, run, source.dataset.fingerprint(),
                                 teacher.cache_key, out, imports, env, control_of=step.control_of))
    return list({job.key: job for job in jobs}.values())


def make_job(
    spec: str, seed: int, run: Any, data_key: str, teacher_key: str, out: Path,
    imports: tuple[str, ...], env: dict[str, Any], *, control_of: str | None = None,
    split: str = "test",
) -> Job:
    """One job, keyed by everything that decides its result (code included)."""
    from compress.teacher import cache_dir

    shared = {"data": data_key, "teacher": teacher_key, "seed": seed, "code": _package_digest()}
    key = job_key({**shared, "spec": spec, "control_of": control_of, "split": split,
                   "strategy_code": source_digest(strategy_files(spec))})
    return Job(key=key, spec=spec, control_of=control_of, seed=seed, config=run, out=str(out),
               cache_dir=str(cache_dir()), path=str(Path.cwd()), imports=imports, env=env,
               split=split, stage_key=job_key(shared))


@functools.cache
def _package_digest() -> str:
    return source_digest(package_files())


def prepare_jobs(config: SweepConfig, out: Path) -> list[Job]:
    """A sweep file's jobs (its imports imported first)."""
    import_modules(config.imports)
    return plan_jobs(run_config(config), out, config.imports)


def collect(
    jobs: list[Job], results: dict[str, dict[str, Any]], out: Path, timing: str | None = "all",
) -> list[dict[str, Any]]:
    """Rows in job order, finished per seed exactly as a run finishes them.

    ``timing="best"`` times only the baseline and each seed's size/accuracy Pareto front;
    ``None`` times nothing (an interrupted sweep stops at once).
    """
    import numpy as np

    from compress.plots import pareto_front
    from compress.results import new_row
    from compress.runner import Evaluated, finish_seed, load_source

    by_seed: dict[int, list[Evaluated]] = {}
    for job in jobs:
        if job.key not in results:
            continue
        result = results[job.key]
        row = new_row(**result["row"])
        row["run_id"] = out.name
        labels = result.get("labels")
        flatbuffer = (out / row["artifact"]).read_bytes() if labels is not None else None
        by_seed.setdefault(job.seed, []).append(
            Evaluated(row, flatbuffer, None if labels is None else np.array(labels)))
    config = jobs[0].config
    for seed, evaluated in by_seed.items():
        done = [e.row for e in evaluated if e.flatbuffer is not None]
        front = pareto_front([(r["size_bytes"], r["accuracy"]) for r in done])

        def timed(row: dict[str, Any], front: list[tuple[float, float]] = front) -> bool:
            if timing is None:
                return False
            return timing == "all" or row["role"] == "baseline" or \
                (row["size_bytes"], row["accuracy"]) in front

        finish_seed(evaluated, load_source(config, seed).dataset, threads=1, timed=timed)
    return [e.row for evaluated in by_seed.values() for e in evaluated]


def sweep(
    config: SweepConfig, out: Path, executor: Executor, *, timing: str = "all",
    progress: Callable[[int, int, int, str], None] | None = None,
) -> SweepResult:
    """Run every job not already done, then time and save all rows, then the report.

    Ctrl-C cancels the pending jobs and raises SweepInterrupted after saving the
    finished ones (untimed) with a report marked incomplete.
    """
    from compress.outdir import check_output

    check_output(out, "sweep", reuse=True)
    import_modules(config.imports)
    return run_jobs(run_config(config), out, executor, kind="sweep", imports=config.imports,
                    settings=dataclasses.asdict(config), timing=timing, progress=progress)


def run_jobs(
    run: Any, out: Path, executor: Executor, *, kind: str, imports: tuple[str, ...] = (),
    settings: dict[str, Any] | None = None, timing: str = "all",
    progress: Callable[[int, int, int, str], None] | None = None,
    extra: Callable[[Path], None] | None = None,
) -> SweepResult:
    """The sweep machinery for any command that writes a ``kind`` folder of results: plan,
    reuse finished jobs, run the rest, time serially, save rows and manifest, build the report.

    ``extra`` writes the command's own files into the folder before the report is built.
    """
    from compress.outdir import check_output, open_output
    from compress.report import build_report
    from compress.results import write_results
    from compress.runner import RUN_MANIFEST

    check_output(out, kind, reuse=True)
    clock = time.perf_counter()
    jobs = plan_jobs(run, out, imports)
    open_output(out, kind, reuse=True)
    seconds = {"prepare": time.perf_counter() - clock}
    results = {job.key: json.loads(job.result_path.read_text()) for job in jobs
               if job.result_path.exists()}
    reused = len(results)
    pending = [job for job in jobs if job.key not in results]
    report = progress or (lambda done, total, failed, what: None)
    failed, complete = 0, True
    report(reused, len(jobs), 0, f"{reused} reused")
    clock = time.perf_counter()
    try:
        for result in executor.run(pending):
            results[result["key"]] = result
            failed += result["row"].get("status") == "failed"
            report(len(results), len(jobs), failed, result["row"]["spec"])
    except KeyboardInterrupt:
        complete = False
    seconds["jobs"] = time.perf_counter() - clock
    clock = time.perf_counter()
    rows = collect(jobs, results, out, timing if complete else None)
    seconds["timing"] = time.perf_counter() - clock
    write_results(out, rows)
    manifest = {"run_id": out.name, "kind": kind, "complete": complete,
                "config": json.loads(json.dumps(settings or {}, default=str))}
    write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
    if extra is not None:
        extra(out)
    build_report(out)
    result = SweepResult(out, rows, reused, failed, seconds, complete)
    if not complete:
        raise SweepInterrupted(result)
    return result


class Executor:
    """Runs jobs somewhere and yields each result as it completes.

    ``jobs`` may be a lazy iterator: it is drawn only when a worker is free, so a
    caller (the tuner) can decide the next job from the results so far.  Closing
    the result iterator (the driver's Ctrl-C) cancels every job not yet finished.
    """

    workers: int

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError


class SerialExecutor(Executor):
    """Every job in this process, one after another: no pool to start or spawn, for notebooks,
    debugging and tests (the jobs' TensorFlow then shares this process)."""

    workers = 1

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)


def _failed(job: Job, reason: str) -> dict[str, Any]:
    return {"key": job.key, "labels": None,
            "row": {"strategy": job.spec.split(":")[0], "spec": job.spec, "seed": job.seed,
                    "control_of": job.control_of, "status": "failed", "reason": reason}}


def _worker_setup(parent: int, warmup: Callable[[], None] | None = None, flags: bool = False) -> None:
    """Worker initializer: leave Ctrl-C to the driver, exit when the driver dies, name options
    as the driver's caller does, warm up."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_flag_names(flags)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    # At exit, once multiprocessing's own finalizers have run (they release the semaphores this
    # worker made), skip the interpreter's teardown: with TensorFlow loaded it took 1.5 s, which
    # ``stop_pool`` waits for before the parent times anything.
    from multiprocessing import util

    util.Finalize(None, os._exit, args=(0,), exitpriority=-100)
    if warmup is not None:
        warmup()


class LocalExecutor(Executor):
    """A spawn process pool: no fork after TensorFlow, and a dead worker costs no jobs."""

    def __init__(self, workers: int | None = None, max_rebuilds: int = 3) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_rebuilds = max_rebuilds

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        def salvage(job: Job) -> dict[str, Any] | None:  # finished just before a crash
            return json.loads(job.result_path.read_text()) if job.result_path.exists() else None

        return pool_map(jobs, run_job, self.workers, salvage=salvage, give_up=_failed,
                        max_rebuilds=self.max_rebuilds)


def start_pool(workers: int, warmup: Callable[[], None] | None = None) -> Any:
    """A spawn pool whose workers start now and run ``warmup`` (e.g. import TensorFlow) while
    the caller prepares their tasks, instead of at the first task."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_setup, initargs=(os.getpid(), warmup, flag_names_in_use()))
    for _ in range(workers):  # a pool spawns a process per submitted task, up to ``workers``
        pool.submit(int)
    return pool


def pool_map(
    tasks: Iterable[Task], work: Callable[[Task], Result], workers: int, *,
    salvage: Callable[[Task], Result | None], give_up: Callable[[Task, str], Result],
    max_rebuilds: int = 3, pool: Any = None,
) -> Iterator[Result]:
    """``work(task)`` in a spawn pool of ``workers`` processes, yielding results as they finish.

    Tasks are drawn lazily, at most one per free worker; a source that yields ``WAIT`` has
    nothing that can start before a running task finishes, and is drawn again after the next
    result (it must not say so while nothing runs).  A dead worker breaks the pool: the
    pool is rebuilt and its unfinished tasks resubmitted (``salvage`` returns the result of one
    that finished anyway); after ``max_rebuilds`` crashes every remaining task gets
    ``give_up``.  Closing the iterator (Ctrl-C) cancels everything not finished.  ``pool``, from
    ``start_pool``, is used first (and shut down here like the others).
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    source = iter(tasks)
    pending: dict[int, Task] = {}  # submitted and not finished, resubmitted after a crash
    exhausted, rebuilds, counter = False, 0, itertools.count()
    while pending or not exhausted:
        pool = pool if pool is not None else start_pool(workers)
        try:
            futures = {pool.submit(work, task): number for number, task in pending.items()}
            while True:
                while not exhausted and len(futures) < workers:
                    task = next(source, None)
                    if task is None:
                        exhausted = True
                    elif task is WAIT:
                        if not futures:
                            raise RuntimeError(_NOTHING_RUNS)
                        break
                    else:
                        number = next(counter)
                        pending[number] = task
                        futures[pool.submit(work, task)] = number
                if not futures:
                    break
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    number = futures.pop(future)
                    result = future.result()
                    pending.pop(number, None)
                    yield result
        except BrokenProcessPool:
            rebuilds += 1
            for number, task in list(pending.items()):
                saved = salvage(task)
                if saved is not None:
                    pending.pop(number)
                    yield saved
            if rebuilds > max_rebuilds:
                for task in pending.values():
                    yield give_up(task, "worker process died repeatedly")
                for task in source:  # drawn one at a time: a lazy source sees each failure
                    if task is WAIT:
                        raise RuntimeError(_NOTHING_RUNS) from None
                    yield give_up(task, "worker process died repeatedly")
                return
        finally:
            stop_pool(pool)
            pool = None


#: Seconds an idle worker gets to exit by itself (it takes a moment, see ``_worker_setup``).
IDLE_EXIT = 5.0


def stop_pool(pool: Any) -> None:
    """Cancel queued jobs and end the workers now: waiting for running jobs could take minutes,
    so busy workers are terminated.  Idle ones exit by themselves, running their finalizers:
    killed, the idle workers of a digits run left a semaphore the resource tracker reported as
    leaked when the run ended."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # None once shut down
    busy = bool(getattr(pool, "_pending_work_items", None))
    pool.shutdown(wait=False, cancel_futures=True)
    if not busy:
        deadline = time.monotonic() + IDLE_EXIT
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


class DaskExecutor(Executor):
    """dask.distributed: a LocalCluster by default, or any cluster by address."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise UserError(f"{option('executor', 'dask')} needs dask.distributed: "
                            "pip install 'compress[dask]'") from None
        cluster = None
        if self.address:
            client = Client(self.address)
            _upload_package(client)
            capacity = max(self.workers, sum(client.nthreads().values()))
        else:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
            capacity = self.workers
        source = iter(jobs)
        futures: list[Any] = []
        job_of: dict[str, Job] = {}

        def submit() -> Any:
            job = next(source, None)
            if job is None:
                return None
            future = client.submit(run_job, job, pure=False, key=f"job-{job.key}")
            job_of[future.key] = job
            futures.append(future)
            return future

        try:
            running = as_completed([f for f in (submit() for _ in range(capacity)) if f is not None])
            for future in running:
                try:
                    yield future.result()
                except Exception as error:  # the job's worker was lost too often
                    yield _failed(job_of[future.key], f"{type(error).__name__}: {error}")
                following = submit()
                if following is not None:
                    running.add(following)
        finally:
            client.cancel(futures)
            client.close()
            if cluster is not None:
                cluster.close()


def _upload_package(client: Any) -> None:
    """Ship this package's code to a remote cluster's workers as a zip on their path."""
    import shutil
    import tempfile

    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / "compress"), "zip", package.parent, package.name)
        client.upload_file(archive)
