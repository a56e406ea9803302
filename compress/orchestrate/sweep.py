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
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.orchestrate.executors import Executor
from compress.orchestrate.jobs import Job, collect, on_path, plan_jobs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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

    from compress.strategies.spec import parse_spec

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

    from compress.data.builtin import BUILTIN_DATASETS

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
    """The sweep's data and budget settings as a run's, resolved by the one resolver
    (``config.resolve_config``)."""
    from compress.orchestrate.config import resolve_config

    return resolve_config(dataset=None if config.data else config.dataset, data=config.data,
                          target=config.target, missing=config.missing,
                          image_size=config.image_size, epochs=config.epochs,
                          strategies=config.specs, seeds=list(config.seeds))


def import_modules(imports: Iterable[str]) -> None:
    """Import the modules that register a sweep's extra strategies; one line if one fails."""
    from importlib import import_module

    on_path(str(Path.cwd()))  # as `python -m` does, so imports may name the project's modules
    for module in imports:
        try:
            import_module(module)
        except Exception as error:  # anything a user's module raises while importing
            raise UserError(f"cannot import {module!r} listed in imports "
                            f"({type(error).__name__}: {error})") from None


def prepare_jobs(config: SweepConfig, out: Path) -> list[Job]:
    """A sweep file's jobs (its imports imported first)."""
    import_modules(config.imports)
    return plan_jobs(run_config(config), out, config.imports)


def sweep(
    config: SweepConfig, out: Path, executor: Executor, *, timing: str = "all",
    progress: Callable[[int, int, int, str], None] | None = None,
) -> SweepResult:
    """Run every job not already done, then time and save all rows, then the report.

    Ctrl-C cancels the pending jobs and raises SweepInterrupted after saving the
    finished ones (untimed) with a report marked incomplete.
    """
    from compress.results.outdir import check_output

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
    from compress.report.build import build_report
    from compress.results.outdir import check_output, open_output
    from compress.results.rows import RUN_MANIFEST, write_results

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


