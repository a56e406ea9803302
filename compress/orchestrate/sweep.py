"""Sweeps: a grid of configurations × seeds from a TOML file, run by the one engine
(``run.run``) into a folder it resumes: every finished row is keyed by everything that decides
it, so a re-run takes what is done and makes only the rest.

A sweep file's keys are the run's settings, named as ``compress.compare`` names them (``dataset``,
``data``, ``teacher``, ``scenario``, ``threads``, ``time_budget``, ...), plus ``seeds`` (a list),
``imports`` (modules that register extra strategies) and ``[[grid]]`` tables.  They are checked
by the same resolver as the command line's and Python's (``config.resolve_config``).

This module imports no TensorFlow at import time: workers import it first.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.common.errors import UserError, flag_names
from compress.orchestrate.config import MAX_SEED, RunConfig, resolve_config
from compress.orchestrate.executors import Executor
from compress.orchestrate.run import Command, Progress, RunInterrupted, RunResult, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The run settings a sweep file may set (``resolve_config``'s keywords).
RUN_KEYS = ("dataset", "data", "target", "missing", "image_size", "tokens", "text_column",
            "vocabulary", "sequence_length", "teacher", "teacher_architecture",
            "trust_model", "allow_weak_teacher", "epochs", "scenario", "target_train", "preset",
            "threads", "time_budget", "micro", "device", "evidence_rows")


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep file: the grid of strategy specs, the seeds, the modules to import and the
    run settings (``RUN_KEYS``) as given."""

    specs: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    imports: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def data(self) -> str | None:
        return self.settings.get("data")


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

    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist; check the path")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML ({error}); see examples/sweep.toml") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check its permissions") from None
    known = {*RUN_KEYS, "seeds", "grid", "imports"}
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
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise UserError(f"{path}: seeds must be a list of integers from 0 to {MAX_SEED}, "
                        f"e.g. seeds = [0, 1, 2]; got {seeds!r}")
    imports = raw.get("imports", [])
    module = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    if not isinstance(imports, list) or \
            not all(isinstance(m, str) and re.fullmatch(module, m) for m in imports):
        raise UserError(f"{path}: imports must be a list of module names, e.g. "
                        f"imports = [\"my_package.strategies\"]; got {imports!r}")
    settings = {key: raw[key] for key in RUN_KEYS if key in raw}
    if isinstance(settings.get("image_size"), list):
        settings["image_size"] = ",".join(map(str, settings["image_size"]))
    for key in ("data", "teacher"):  # relative to the sweep file, as written there
        given = settings.get(key)
        if isinstance(given, str) and not Path(given).is_absolute() and (path.parent / given).exists():
            settings[key] = str(path.parent / given)
    config = SweepConfig(specs=tuple(specs), seeds=tuple(seeds), imports=tuple(imports),
                         settings=settings, path=str(path))
    run_config(config)  # every setting checked now, before any job
    return config


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C: pending rows were cancelled; the finished ones are saved and reported.  Still a
    KeyboardInterrupt, so a caller's ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished rows kept in {result.out}")
        self.result = result


def run_config(config: SweepConfig, **given: Any) -> RunConfig:
    """The sweep's run settings, resolved and checked by the one resolver; ``given`` (the
    command's options: ``out``, ``jobs``, ``executor``, ...) win over the file's.  A mistake in
    the file is one line that names the file and the key as written there."""
    try:
        with flag_names(False):  # keys of the file are named as written there
            from_file = resolve_config(strategies=config.specs, seeds=list(config.seeds), **config.settings)
    except UserError as error:
        raise UserError(f"{config.path}: {error}" if config.path else str(error)) from None
    chosen = dataclasses.replace(from_file, **{k: v for k, v in given.items() if v is not None})
    chosen.validate()  # the command's options, named as its caller names them
    return chosen


def import_modules(imports: Iterable[str]) -> None:
    """Import the modules that register a sweep's extra strategies; one line if one fails."""
    from importlib import import_module

    folder = str(Path.cwd())  # as `python -m` does, so imports may name the project's modules
    if folder not in sys.path:
        sys.path.insert(0, folder)
    for module in imports:
        try:
            import_module(module)
        except Exception as error:  # anything a user's module raises while importing
            raise UserError(f"cannot import {module!r} listed in imports "
                            f"({type(error).__name__}: {error})") from None


def sweep(
    config: SweepConfig, out: Path, pool: Executor | None = None, *, timing: str = "all",
    progress: Progress | None = None, **options: Any,
) -> RunResult:
    """Make every row the folder does not hold yet, time and save them all, then the report.

    ``options`` are run settings given beside the file (``jobs``, ``executor``, ``address``,
    ``time_budget``, ...); ``pool``, an executor the caller keeps, is used instead of one made
    from them.
    Ctrl-C cancels the pending rows and raises SweepInterrupted after saving the finished ones
    (untimed) with a report marked incomplete.
    """
    from compress.report.build import build_report

    import_modules(config.imports)
    run_settings = run_config(config, out=out, resume=True, **options)
    command = Command(kind="sweep", timing=timing, imports=config.imports, executor=pool,
                      settings={"file": config.path, "specs": list(config.specs),
                                "seeds": list(config.seeds), "imports": list(config.imports),
                                **json.loads(json.dumps(config.settings, default=str))})
    try:
        result = run(run_settings, progress, command=command)
    except RunInterrupted as stop:
        if stop.result.rows:
            build_report(stop.result.out)
        raise SweepInterrupted(stop.result) from None
    build_report(result.out)
    return result
