"""Sweep jobs: one (step, seed) each, keyed by everything that decides its result, code
included, so a re-run reuses what finished and a job that runs twice writes the same file.

Only JSON and file paths cross process boundaries; TensorFlow is imported inside each job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.common.fileio import write_atomic

JOBS_DIR = "jobs"


STAGES_DIR = "stages"


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
    return sorted(Path(__file__).resolve().parents[1].rglob("*.py"))


def strategy_files(spec: str) -> list[Path]:
    """The files of the modules that define a spec's strategies (a plugin's code included)."""
    import inspect

    from compress.orchestrate.execute import strategy_classes
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
    """Worker entry point: a run's own per-strategy step (``steps.evaluate_step``); writes
    jobs/<key>.json atomically.

    Never raises for a failing strategy: the failure is the job's result.
    """
    os.environ["COMPRESS_CACHE_DIR"] = job.cache_dir
    if job.result_path.exists():  # another attempt (a re-run task) already finished it
        return json.loads(job.result_path.read_text())
    try:
        from importlib import import_module

        on_path(job.path)
        for module in job.imports:
            import_module(module)
        from compress.models.stage_cache import StageCache
        from compress.orchestrate.plan import Step
        from compress.orchestrate.steps import evaluate_step
        from compress.orchestrate.teachers import load_source, teacher_for
        from compress.strategies import strategies_from_spec

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
        result = failed_result(job, f"{type(error).__name__}: {error}".strip())
        result["traceback"] = traceback.format_exc()
    if result["row"].get("status") != "failed":  # failures are retried by the next run
        write_atomic(job.result_path, json.dumps(result))
    return result


def on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


def plan_jobs(run: Any, out: Path, imports: tuple[str, ...] = ()) -> list[Job]:
    """Plan every (step, seed) of a RunConfig as a run would, train each seed's teacher once,
    key every job."""
    from compress.orchestrate.plan import plan_steps
    from compress.orchestrate.teachers import load_source, teacher_for
    from compress.results.rows import environment

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
    from compress.common.fileio import cache_dir

    shared = {"data": data_key, "teacher": teacher_key, "seed": seed, "code": _package_digest()}
    key = job_key({**shared, "spec": spec, "control_of": control_of, "split": split,
                   "strategy_code": source_digest(strategy_files(spec))})
    return Job(key=key, spec=spec, control_of=control_of, seed=seed, config=run, out=str(out),
               cache_dir=str(cache_dir()), path=str(Path.cwd()), imports=imports, env=env,
               split=split, stage_key=job_key(shared))


@functools.cache
def _package_digest() -> str:
    return source_digest(package_files())


def collect(
    jobs: list[Job], results: dict[str, dict[str, Any]], out: Path, timing: str | None = "all",
) -> list[dict[str, Any]]:
    """Rows in job order, finished per seed exactly as a run finishes them.

    ``timing="best"`` times only the baseline and each seed's size/accuracy Pareto front;
    ``None`` times nothing (an interrupted sweep stops at once).
    """
    import numpy as np

    from compress.orchestrate.steps import Evaluated, finish_seed
    from compress.orchestrate.teachers import load_source
    from compress.report.plots import pareto_front
    from compress.results.rows import new_row

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


def failed_result(job: Job, reason: str) -> dict[str, Any]:
    return {"key": job.key, "labels": None,
            "row": {"strategy": job.spec.split(":")[0], "spec": job.spec, "seed": job.seed,
                    "control_of": job.control_of, "status": "failed", "reason": reason}}
