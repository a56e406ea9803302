"""What a worker runs, for every command: a row (``RowTask``) or a seed's teacher
(``TeacherTask``), each described by settings and file paths only, and ``run_task``, the one
entry point a worker (a pool's, Dask's, or this process) calls for either.

A row task is keyed by everything that decides its result (data, teacher, seed, spec, split
and the code), so a finished row is written once, under ``jobs/<key>.json``, and a later
command into the same folder reuses it instead of training it again.  The row a task starts
from (``RowTask.header``: what was asked, on which data and teacher) is made by the driver, so
a failed row, wherever it failed, is built in one place: ``failed_result``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pickle
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compress.common.errors import UserError, option
from compress.common.fileio import write_atomic
from compress.common.text import one_line
from compress.models.teacher import Teacher
from compress.orchestrate.config import RunConfig
from compress.orchestrate.interrupts import Interrupts
from compress.results.rows import REASON_LIMIT, new_row
from compress.strategies import Strategy, strategies_from_spec

JOBS_DIR = "jobs"
#: Where chains that start alike keep their leading stages' models (``models.stage_cache``).
STAGES_DIR = "stages"
#: A reference to data or a teacher kept in this process's memory (``keep_here``).
IN_MEMORY = "memory:"


@dataclass(frozen=True)
class RowTask:
    """One row to make: a strategy for one seed, and everything a worker needs to make it."""

    key: str  # hashes everything that decides the result (``task_key``)
    index: int  # the row's place in its command's plan
    spec: str
    control_of: str | None
    seed: int
    config: RunConfig
    folder: str  # where the artifact and jobs/<key>.json are written
    artifact: str  # the flatbuffer's path inside ``folder``
    header: dict[str, Any]  # the row before it is scored (``steps.step_row``), made by the driver
    #: The seed's data: a pickled ``Source``, an ``IN_MEMORY`` reference, or "" (load it from
    #: ``config`` in the worker).
    data: str = ""
    #: The seed's teacher: its model file, an ``IN_MEMORY`` reference, or "" (the cached or
    #: freshly trained teacher of ``config``; its untrained layers while ``teacher`` is pending).
    teacher_file: str = ""
    teacher: Teacher | None = None  # its record, without the model
    deadline: float | None = None  # when training must stop (time.time()); past: do not start
    #: "test" for a result, "validation" for a tuning trial: scored on the validation split, so
    #: the test split stays unseen until a configuration is chosen.
    split: str = "test"
    stage_key: str = ""  # chains sharing it share their leading stages' models
    threads: int = 1
    imports: tuple[str, ...] = ()  # modules that register the strategies, imported first
    path: str = ""  # the driver's working folder, so ``imports`` resolve there as here
    cache_dir: str = ""
    #: Strategy classes registered by code in the driver, pickled by reference.
    classes: tuple[type[Strategy], ...] = ()
    identity: dict[str, Any] = field(default_factory=dict)  # the key's parts but the spec's

    @property
    def result_path(self) -> Path:
        return Path(self.folder) / JOBS_DIR / f"{self.key}.json"


@dataclass(frozen=True)
class RowResult:
    """A finished row (the flatbuffer is on disk at ``row["artifact"]``), or a failed one."""

    key: str
    index: int
    row: dict[str, Any]
    labels: list[int] | None = None  # predicted labels of the scored split
    identity: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None

    @property
    def failed(self) -> bool:
        return self.row.get("status") == "failed"

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "row": self.row, "labels": self.labels,
                           "identity": self.identity})

    @classmethod
    def read(cls, path: Path, index: int = -1) -> RowResult | None:
        """A saved result, or None when the file is damaged (it is made again)."""
        try:
            saved = json.loads(path.read_text())
            return cls(saved["key"], index, saved["row"], saved.get("labels"), saved.get("identity") or {})
        except (OSError, ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class TeacherTask:
    """What a worker needs to train a seed's teacher, exactly as ``teachers.teacher_for`` here."""

    seed: int
    config: RunConfig
    data: str
    spare_file: str  # where the model is saved when the cache does not keep it (--no-cache)


class TeacherFailed(RuntimeError):
    """A worker could not train a seed's teacher (not the user's input: a bug, or a worker
    killed): the command stops, and keeps nothing, as when a teacher trained here fails."""


@dataclass(frozen=True)
class TeacherTrained:
    """A worker's teacher (its model in ``file``), or the error that stopped its training."""

    seed: int
    teacher: Teacher | None
    error: Exception | None = None


Task = RowTask | TeacherTask
Outcome = RowResult | TeacherTrained


def failed_result(task: Task, reason: str, trace: str | None = None) -> Outcome:
    """The outcome of a task that produced nothing: the one place a failed row is made."""
    if isinstance(task, TeacherTask):
        return TeacherTrained(task.seed, None, TeacherFailed(
            f"training the teacher of seed {task.seed} failed: {reason}"))
    row = new_row(**{**task.header, "status": "failed", "reason": one_line(reason, REASON_LIMIT)})
    return RowResult(task.key, task.index, row, None, task.identity, trace)


def task_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def source_digest(files: Iterable[Path]) -> str:
    """A hash of source files' bytes: part of every key, so edited code never reuses a result."""
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def code_version() -> str:
    """The digest of every source file of the installed compress package."""
    return source_digest(Path(__file__).resolve().parents[1].rglob("*.py"))


def strategy_classes(strategies: Iterable[Strategy]) -> set[type[Strategy]]:
    """The classes of these strategies, a chain's stages included."""
    return {type(part) for strategy in strategies for part in getattr(strategy, "parts", [strategy])}


def strategy_code(strategies: Iterable[Strategy]) -> str:
    """A digest of the files of the modules that define these strategies (a plugin's code
    included); a class with no file (defined in ``python -c`` or a notebook) counts by name."""
    files, unfiled = set(), set()
    for cls in strategy_classes(strategies):
        try:
            found = inspect.getsourcefile(cls)
        except (OSError, TypeError):
            found = None
        if found:
            files.add(Path(found).resolve())
        else:
            unfiled.add(f"{cls.__module__}.{cls.__qualname__}")
    return source_digest(files) + "".join(sorted(unfiled))


def task_identity(data_key: str, teacher: Teacher, seed: int, split: str,
                  micro: bool = False) -> dict[str, Any]:
    """What every row of one seed shares in its key: a resumed folder must hold the same.
    ``micro``: a validation row measured in TFLite Micro too (a tune trial for a
    microcontroller, which must know whether the model fits); every test row is."""
    identity = {"data": data_key, "teacher": teacher.cache_key, "seed": seed, "split": split,
                "code": code_version()}
    return {**identity, "micro": True} if micro else identity


def row_key(identity: dict[str, Any], strategy: Strategy, control_of: str | None) -> str:
    return task_key({**identity, "spec": strategy.spec(), "control_of": control_of,
                     "strategy_code": strategy_code([strategy])})


def importable_elsewhere(strategies: Sequence[Strategy]) -> bool:
    """Whether a worker process can import every strategy class of these.  A class defined
    inside a function cannot be pickled; one defined in ``__main__`` (a notebook cell,
    ``python -c``, a script) pickles by a name that a spawned worker's own ``__main__`` lacks,
    and every row then failed with "worker process died repeatedly"."""
    classes = sorted(strategy_classes(strategies), key=lambda cls: cls.name)
    if any(cls.__module__ == "__main__" for cls in classes):
        return False
    try:
        pickle.dumps(classes)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


#: Data and teachers kept in this process (``IN_MEMORY`` references), and what a worker has
#: loaded (``_prepared_key``): each loaded once, reused by the next rows.
_HERE: dict[str, Any] = {}
_PREPARED: dict[tuple[Any, ...], tuple[Any, Teacher]] = {}


def _prepared_key(data: str, teacher_file: str, seed: int, split: str, data_key: str | None,
                  teacher_key: str | None) -> tuple[Any, ...]:
    """Where a worker keeps a seed's data and teacher: by their references and by what they are
    (data loaded from a configuration, or the cached teacher, has no reference of its own, and a
    kept worker serves one command after another)."""
    return data, teacher_file, seed, split, data_key, teacher_key


def keep_here(name: str, value: Any) -> str:
    """A reference to ``value`` for tasks run in this process: no pickling, no file."""
    _HERE[IN_MEMORY + name] = value
    return IN_MEMORY + name


def forget_here(prefix: str) -> None:
    """Drop what ``keep_here`` kept under names starting with ``prefix``, and what was prepared
    from it."""
    for ref in [ref for ref in _HERE if ref.startswith(IN_MEMORY + prefix)]:
        del _HERE[ref]
    for key in [key for key in _PREPARED if key[0].startswith(IN_MEMORY + prefix)]:
        del _PREPARED[key]


def run_task(task: Task, interrupts: Interrupts | None = None) -> Outcome:
    """The worker entry point of every command: a row or a teacher; never raises for a failing
    strategy or a broken worker (the outcome says so)."""
    if isinstance(task, TeacherTask):
        return _train_teacher(task)
    return _make_row(task, interrupts)


def _train_teacher(task: TeacherTask) -> TeacherTrained:
    """Train (or, if another command cached it meanwhile, load) a seed's teacher; keep it for
    this worker's next rows.  Errors are returned, for the driver to raise."""
    from compress.orchestrate.teachers import teacher_for

    try:
        source = _load_data(task.data, task.config, task.seed)
        teacher = teacher_for(task.config, source, task.seed)
        if teacher.file is None:
            teacher.model.save(task.spare_file)
        teacher = replace(teacher, file=teacher.file or Path(task.spare_file))
        _PREPARED[_prepared_key(task.data, str(teacher.file), task.seed, "test",
                                source.dataset.fingerprint(), teacher.cache_key)] = (source, teacher)
    except UserError as error:
        return TeacherTrained(task.seed, None, error)
    except Exception as error:  # re-raised in the driver, with the worker's traceback as text
        return TeacherTrained(task.seed, None, TeacherFailed(
            f"training the teacher of seed {task.seed} failed in a worker process: "
            f"{type(error).__name__}: {error}\n\nThe worker's traceback:\n{traceback.format_exc()}"))
    return TeacherTrained(task.seed, replace(teacher, model=None))


def _load_data(data: str, config: RunConfig, seed: int) -> Any:
    from compress.orchestrate.teachers import load_source

    if data.startswith(IN_MEMORY):
        return _HERE[data]
    if data:
        return pickle.loads(Path(data).read_bytes())
    return load_source(config, seed)


def _prepare(task: RowTask) -> tuple[Any, Teacher, Strategy]:
    """The task's data, teacher and strategy, loaded once per worker and reused."""
    from importlib import import_module

    from compress.models.backend import keras
    from compress.models.teacher import untrained_teacher
    from compress.orchestrate.teachers import teacher_for
    from compress.strategies.base import register, registry

    if task.cache_dir:
        os.environ["COMPRESS_CACHE_DIR"] = task.cache_dir
    if task.path and task.path not in sys.path:
        sys.path.insert(0, task.path)
    for module in task.imports:
        import_module(module)
    known = registry()
    for cls in task.classes:  # a plugin registered in the driver by code, not by entry point
        if cls.name not in known:
            register(cls)
    key = _prepared_key(task.data, task.teacher_file, task.seed, task.split, task.identity.get("data"),
                        task.identity.get("teacher"))
    if key not in _PREPARED:
        source = _load_data(task.data, task.config, task.seed)
        if task.teacher_file.startswith(IN_MEMORY):
            teacher = _HERE[task.teacher_file]
        elif task.teacher_file:
            model = keras.models.load_model(task.teacher_file, compile=False, safe_mode=False)
            teacher = replace(task.teacher, model=model)
        elif task.teacher is not None and task.teacher.pending:  # training elsewhere: its layers
            teacher = replace(task.teacher, model=untrained_teacher(
                source.teacher_data, task.teacher.architecture, task.teacher.recipe, task.seed))
        else:
            teacher = teacher_for(task.config, source, task.seed)
        _PREPARED[key] = (source.for_selection() if task.split == "validation" else source, teacher)
    source, teacher = _PREPARED[key]
    (strategy,) = strategies_from_spec(task.spec)
    return source, teacher, strategy


def _make_row(task: RowTask, interrupts: Interrupts | None) -> RowResult:
    if task.result_path.exists():  # another attempt (a re-run task) already finished it
        saved = RowResult.read(task.result_path, task.index)
        if saved is not None:
            return saved
    try:
        source, teacher, strategy = _prepare(task)
    except Exception as error:  # the row says why; the command goes on
        return failed_result(task, f"a worker could not prepare the step ({type(error).__name__}: "
                             f"{error}); {option('jobs', 1)} runs every step in this process",
                             traceback.format_exc())
    from compress.models.stage_cache import StageCache
    from compress.orchestrate.steps import evaluate_step

    folder = Path(task.folder)
    stages = StageCache(folder / STAGES_DIR, task.stage_key) if task.stage_key and task.deadline is None \
        else None
    evaluated = evaluate_step(strategy, task.header, teacher, source, threads=task.threads,
                              folder=folder, artifact=task.artifact, interrupts=interrupts,
                              stage_cache=stages, deadline=task.deadline,
                              micro=task.config.micro and (task.split == "test"
                                                           or bool(task.identity.get("micro"))))
    labels = None if evaluated.labels is None else evaluated.labels.tolist()
    result = RowResult(task.key, task.index, evaluated.row, labels, task.identity)
    if _reusable(result, teacher):
        write_atomic(task.result_path, result.to_json())
    return result


def _reusable(result: RowResult, teacher: Teacher) -> bool:
    """Whether a later command may take this row instead of making it again: not a failure (it
    is tried again), nothing the clock decided (a row or a teacher cut short, a step not
    started)."""
    row = result.row
    return row["status"] != "failed" and not row.get("budget_stopped") and not teacher.cut_short
