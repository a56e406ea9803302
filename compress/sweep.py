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

import hashlib
import itertools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress import __version__
from compress.errors import UserError
from compress.fileio import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

JOBS_DIR = "jobs"


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep file: the data, the seeds and the grid of strategy specs."""

    specs: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    dataset: str = "synthetic"
    data: str | None = None
    target: str | None = None
    missing: str = "error"
    epochs: int | None = None
    imports: tuple[str, ...] = ()  # modules that register extra strategies, imported by every job


def _grid_specs(grid: dict[str, Any], where: str) -> list[str]:
    """One spec per point of the grid's cartesian product (lists are axes, scalars fixed)."""
    if "strategy" not in grid or not isinstance(grid["strategy"], str):
        raise UserError(f"{where} needs strategy = \"NAME\"")
    axes = {k: v if isinstance(v, list) else [v] for k, v in grid.items() if k != "strategy"}
    if any(not values for values in axes.values()):
        raise UserError(f"{where} has an empty list; give at least one value")
    specs = []
    for point in itertools.product(*axes.values()):
        params = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                          for k, v in zip(axes, point, strict=True))
        specs.append(f"{grid['strategy']}:{params}" if params else grid["strategy"])
    return specs


def load_sweep(path: Path | str) -> SweepConfig:
    """Parse a sweep TOML file; every mistake is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML ({error})") from None
    known = {"dataset", "data", "target", "missing", "seeds", "epochs", "grid", "imports"}
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
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise UserError(f"{path}: seeds must be a list of non-negative integers")
    return SweepConfig(
        specs=tuple(specs), seeds=tuple(seeds), dataset=raw.get("dataset", "synthetic"),
        data=raw.get("data"), target=raw.get("target"), missing=raw.get("missing", "error"),
        epochs=raw.get("epochs"), imports=tuple(raw.get("imports", [])),
    )


def job_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: one (strategy, params, seed); writes jobs/<key>.json atomically.

    Never raises for a failing strategy: the failure is the job's result.
    """
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(job["threads"]))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ["COMPRESS_CACHE_DIR"] = job["cache_dir"]
    result_path = Path(job["out"]) / JOBS_DIR / f"{job['key']}.json"
    if result_path.exists():  # another attempt (a re-run task) already finished it
        return json.loads(result_path.read_text())
    try:
        _limit_threads(job["threads"])
        from importlib import import_module

        _on_path(job["path"])
        for module in job["imports"]:
            import_module(module)
        from compress.runner import RunConfig, evaluate_strategy, load_source
        from compress.strategies import strategies_from_spec
        from compress.teacher import get_teacher

        config = RunConfig(dataset=job["dataset"], data=job["data"] and Path(job["data"]),
                           target=job["target"], missing=job["missing"], epochs=job["epochs"])
        source = load_source(config, job["seed"])
        teacher = get_teacher(source.teacher_data, seed=job["seed"],
                              recipe=config.teacher_recipe.with_epochs(config.epochs))
        (strategy,) = strategies_from_spec(job["spec"])
        folder = Path(job["out"])
        evaluated = evaluate_strategy(strategy, teacher, source, job["seed"], scenario="standard",
                                      threads=1, env=job["env"], out=folder / JOBS_DIR,
                                      artifact=f"{job['key']}.tflite")
        row = evaluated.row
        row["run_id"] = folder.name
        if evaluated.labels is not None:
            row["artifact"] = f"{JOBS_DIR}/{job['key']}.tflite"
        result = {"key": job["key"], "row": row,
                  "labels": None if evaluated.labels is None else evaluated.labels.tolist()}
    except Exception as error:  # a broken job is recorded, the sweep goes on
        result = _failed(job, f"{type(error).__name__}: {error}".strip())
        result["traceback"] = traceback.format_exc()
    if result["row"].get("status") != "failed":  # failures are retried by the next run
        write_atomic(result_path, json.dumps(result))
    return result


def _on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _limit_threads(threads: int) -> None:
    """Per-worker TensorFlow threads, set before any op runs; ignored if it is too late."""
    from compress.backend import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # this worker already ran a job: the threads are set


@dataclass
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    reused: int
    failed: int
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: prepare, jobs, timing


def prepare_jobs(config: SweepConfig, out: Path, *, threads: int) -> list[dict[str, Any]]:
    """Resolve every (spec, seed), train each seed's teacher once, and key every job."""
    from importlib import import_module

    _on_path(str(Path.cwd()))  # as `python -m` does, so imports may name the project's modules
    for module in config.imports:
        try:
            import_module(module)
        except ImportError as error:
            raise UserError(f"cannot import {module!r} listed in imports ({error})") from None
    from compress.results import environment
    from compress.runner import RunConfig, load_source, resolve_strategies
    from compress.teacher import cache_dir, get_teacher

    # As in a run: the baseline first, and every companion control beside its strategy.
    resolved = [s.spec() for s in resolve_strategies(config.specs, config.epochs)]
    run = RunConfig(dataset=config.dataset, data=config.data and Path(config.data),
                    target=config.target, missing=config.missing, epochs=config.epochs)
    env = environment(threads=1)
    jobs = []
    for seed in config.seeds:
        source = load_source(run, seed)
        teacher = get_teacher(source.teacher_data, seed=seed,
                              recipe=run.teacher_recipe.with_epochs(run.epochs))
        for spec in dict.fromkeys(resolved):
            key = job_key({"data": source.dataset.fingerprint(), "teacher": teacher.cache_key,
                           "spec": spec, "seed": seed, "version": __version__})
            jobs.append({"key": key, "spec": spec, "seed": seed, "dataset": config.dataset,
                         "data": config.data, "target": config.target, "missing": config.missing,
                         "epochs": config.epochs, "imports": list(config.imports),
                         "out": str(out), "cache_dir": str(cache_dir()), "threads": threads,
                         "path": str(Path.cwd()),
                         "env": env})
    return jobs


def collect(
    jobs: list[dict[str, Any]], results: dict[str, dict[str, Any]], out: Path, timing: str = "all",
) -> list[dict[str, Any]]:
    """Rows in job order, compared with their seed's baseline, with latency measured serially.

    ``timing="best"`` times only the baseline and each seed's size/accuracy Pareto front.
    """
    import numpy as np

    from compress.measure import reference_stats
    from compress.plots import pareto_front
    from compress.results import new_row
    from compress.runner import RunConfig, add_latency, load_source

    first = jobs[0]
    run = RunConfig(dataset=first["dataset"], data=first["data"] and Path(first["data"]),
                    target=first["target"], missing=first["missing"])
    rows: list[dict[str, Any]] = []
    by_seed: dict[int, list[tuple[dict[str, Any], list[int] | None]]] = {}
    for job in jobs:
        result = results[job["key"]]
        row = new_row(**result["row"])
        row["run_id"], row["dataset"] = out.name, row["dataset"] or job["dataset"]
        by_seed.setdefault(job["seed"], []).append((row, result.get("labels")))
        rows.append(row)
    for seed, pairs in by_seed.items():
        dataset = load_source(run, seed).dataset
        base = next((labels for row, labels in pairs if row["strategy"] == "baseline" and labels), None)
        for row, labels in pairs:
            if labels is not None and base is not None:
                row.update(reference_stats(dataset.y_test, np.array(labels), np.array(base)))
        timed = [row for row, _ in pairs if row.get("artifact")]
        if timing == "best":
            front = pareto_front([(r["size_bytes"], r["accuracy"]) for r in timed])
            timed = [r for r in timed if r["strategy"] == "baseline"
                     or (r["size_bytes"], r["accuracy"]) in front]
        flatbuffers = {i: (out / row["artifact"]).read_bytes()
                       for i, (row, _) in enumerate(pairs) if any(row is t for t in timed)}
        add_latency([row for row, _ in pairs], flatbuffers, dataset.x_test, threads=1)
    return rows


def sweep(
    config: SweepConfig, out: Path, executor: Executor, *, timing: str = "all",
    progress: Callable[[int, int, int, str], None] | None = None,
) -> SweepResult:
    """Run every job not already done, then time and save all rows, then the report."""
    from compress.report import build_report
    from compress.results import write_results

    out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    jobs = prepare_jobs(config, out, threads=1)
    seconds = {"prepare": time.perf_counter() - clock}
    results: dict[str, dict[str, Any]] = {}
    for job in jobs:
        path = out / JOBS_DIR / f"{job['key']}.json"
        if path.exists():
            results[job["key"]] = json.loads(path.read_text())
    reused = len(results)
    pending = [job for job in jobs if job["key"] not in results]
    report = progress or (lambda done, total, failed, what: None)
    failed = 0
    report(reused, len(jobs), 0, f"{reused} reused")
    clock = time.perf_counter()
    for result in executor.run(pending):
        results[result["key"]] = result
        failed += result["row"].get("status") == "failed"
        report(len(results), len(jobs), failed, result["row"]["spec"])
    seconds["jobs"] = time.perf_counter() - clock
    clock = time.perf_counter()
    rows = collect(jobs, results, out, timing)
    seconds["timing"] = time.perf_counter() - clock
    write_results(out, rows)
    build_report(out)
    return SweepResult(out, rows, reused, failed, seconds)


class Executor:
    """Runs jobs somewhere and yields each result as it completes."""

    def run(self, jobs: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        raise NotImplementedError


def _failed(job: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"key": job["key"], "labels": None,
            "row": {"strategy": job["spec"].split(":")[0], "spec": job["spec"], "seed": job["seed"],
                    "status": "failed", "reason": reason}}


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the driver dies, so no worker is orphaned."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class LocalExecutor(Executor):
    """A spawn process pool: no fork after TensorFlow, and a dead worker costs no jobs."""

    def __init__(self, workers: int | None = None, max_rebuilds: int = 3) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_rebuilds = max_rebuilds

    def run(self, jobs: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        pending = {job["key"]: job for job in jobs}
        rebuilds = 0
        while pending:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_watch_parent,
                                     initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(run_job, job): key for key, job in pending.items()}
                try:
                    for future in as_completed(futures):
                        key = futures[future]
                        result = future.result()
                        pending.pop(key, None)
                        yield result
                except BrokenProcessPool:
                    rebuilds += 1
                    for key, job in list(pending.items()):  # jobs finished before the crash
                        path = Path(job["out"]) / JOBS_DIR / f"{key}.json"
                        if path.exists():
                            pending.pop(key)
                            yield json.loads(path.read_text())
                    if rebuilds > self.max_rebuilds:
                        for job in pending.values():
                            yield _failed(job, "worker process died repeatedly")
                        return


class DaskExecutor(Executor):
    """dask.distributed: a LocalCluster by default, or any cluster by address."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")

    def run(self, jobs: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise UserError("--executor dask needs dask.distributed: pip install 'compress[dask]'") from None
        cluster = None
        if self.address:
            client = Client(self.address)
            _upload_package(client)
        else:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            futures = client.map(run_job, jobs, pure=False, key=[f"job-{j['key']}" for j in jobs])
            job_of = {future.key: job for future, job in zip(futures, jobs, strict=True)}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as error:  # the job's worker was lost too often
                    yield _failed(job_of[future.key], f"{type(error).__name__}: {error}")
        finally:
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
