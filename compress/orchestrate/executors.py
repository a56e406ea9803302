"""Where tasks run: in this process, in a local spawn pool, or on a Dask cluster; each runs
``tasks.run_task``, yields outcomes as they complete and cancels what is pending when its
iterator is closed.  Run, sweep and tune all take one of these.

An executor keeps its workers from one ``run`` to the next (a tune runs a batch at a time, and
each batch would otherwise start the workers and their TensorFlow again); ``close``, or leaving
a ``with`` block, ends them.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from compress.common.errors import UserError, option
from compress.orchestrate.config import RunConfig
from compress.orchestrate.interrupts import Interrupts
from compress.orchestrate.pool import WAIT, Pool, pool_map
from compress.orchestrate.tasks import (
    Outcome,
    RowResult,
    RowTask,
    Task,
    failed_result,
    importable_elsewhere,
    run_task,
)
from compress.strategies import Strategy


class Executor:
    """Runs tasks somewhere and yields each outcome as it completes.

    ``tasks`` may be a lazy iterator: it is drawn only when a worker is free, so a caller (the
    tuner, a time budget) can decide the next task from the outcomes so far.  Closing the
    outcome iterator (the driver's Ctrl-C) cancels every task not yet finished.
    """

    workers: int
    #: Whether the workers are processes of this machine, reading the driver's temporary files.
    shares_files: bool = True
    #: Whether tasks run in this process, so data and teachers are passed in memory.
    in_process: bool = False

    def run(self, tasks: Iterable[Task], interrupts: Interrupts | None = None) -> Iterator[Outcome]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the workers now, while the driver prepares the data and teachers."""

    def close(self) -> None:
        """End the workers this executor keeps between runs (none here)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every task in this process, one after another: no pool to start or spawn, for
    ``--jobs 1``, notebooks, debugging and tests (the tasks' TensorFlow then shares this
    process)."""

    workers = 1
    in_process = True

    def run(self, tasks: Iterable[Task], interrupts: Interrupts | None = None) -> Iterator[Outcome]:
        for task in tasks:
            if task is WAIT:  # one process runs tasks in the order drawn: nothing can end first
                raise RuntimeError("the task source waits for a result, but nothing runs")
            if interrupts is not None:
                interrupts.check()
            yield run_task(task, interrupts)


class LocalExecutor(Executor):
    """A spawn process pool: no fork after TensorFlow, and a dead worker costs no tasks.
    ``warmup`` runs in each worker as it starts (importing TensorFlow while the driver
    prepares the data)."""

    def __init__(self, workers: int | None = None, max_rebuilds: int = 3,
                 warmup: Callable[[], None] | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_rebuilds = max_rebuilds
        self.pool = Pool(self.workers, warmup)

    def start(self) -> None:
        self.pool.get()

    def run(self, tasks: Iterable[Task], interrupts: Interrupts | None = None) -> Iterator[Outcome]:
        def salvage(task: Task) -> Outcome | None:  # finished just before a crash
            return RowResult.read(task.result_path, task.index) \
                if isinstance(task, RowTask) and task.result_path.exists() else None

        return pool_map(tasks, run_task, self.workers, salvage=salvage,
                        give_up=failed_result, max_rebuilds=self.max_rebuilds, pool=self.pool)

    def close(self) -> None:
        self.pool.close()


class DaskExecutor(Executor):
    """dask.distributed: a LocalCluster by default, or any cluster by address."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
        self.shares_files = not self.address  # a remote cluster loads the data from the config
        self.client: Any = None
        self.cluster: Any = None
        self.capacity = self.workers

    def _connect(self) -> Any:
        """The client, connected (and a LocalCluster started) on first use."""
        if self.client is not None:
            return self.client
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise UserError(f"{option('executor', 'dask')} needs dask.distributed: "
                            "pip install 'compress[dask]'") from None
        if self.address:
            self.client = Client(self.address)
            _upload_package(self.client)
            self.capacity = max(self.workers, sum(self.client.nthreads().values()))
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def start(self) -> None:
        self._connect()

    def run(self, tasks: Iterable[Task], interrupts: Interrupts | None = None) -> Iterator[Outcome]:
        client = self._connect()
        from dask.distributed import as_completed

        source = iter(tasks)
        futures: list[Any] = []
        task_of: dict[str, Task] = {}
        running = as_completed()
        exhausted = False

        def fill() -> None:
            """Submit tasks while workers are free and the source has one that can start."""
            nonlocal exhausted
            while not exhausted and running.count() < self.capacity:
                task = next(source, None)
                if task is None:
                    exhausted = True
                elif task is WAIT:
                    if not running.count():
                        raise RuntimeError("the task source waits for a result, but nothing runs")
                    return
                else:
                    name = task.key if isinstance(task, RowTask) else f"teacher-{task.seed}"
                    future = client.submit(run_task, task, pure=False, key=f"task-{name}-{len(futures)}")
                    task_of[future.key] = task
                    futures.append(future)
                    running.add(future)

        try:
            fill()
            for future in running:
                try:
                    yield future.result()
                except Exception as error:  # the task's worker was lost too often
                    yield failed_result(task_of[future.key], f"{type(error).__name__}: {error}")
                fill()
        finally:
            client.cancel(futures)


def executor_for(config: RunConfig, strategies: Sequence[Strategy], rows: int) -> Executor:
    """The executor a run's settings ask for: Dask (``executor="dask"``), a local pool of
    ``jobs`` workers, or this process (one job, or strategy classes a worker cannot import)."""
    if config.executor == "dask":
        return DaskExecutor(config.jobs, config.address)
    if config.jobs > 1 and rows > 1 and importable_elsewhere(strategies):
        from compress.models.backend import import_tensorflow

        return LocalExecutor(min(config.jobs, rows), warmup=import_tensorflow)
    return SerialExecutor()


def _upload_package(client: Any) -> None:
    """Ship this package's code to a remote cluster's workers as a zip on their path."""
    import shutil
    import tempfile

    package = Path(__file__).resolve().parents[1]  # compress/, not this sub-package
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / "compress"), "zip", package.parent, package.name)
        client.upload_file(archive)


def spawn_safe_caller() -> bool:
    """Whether spawned workers may start: a spawned worker imports the main script again (as
    ``__mp_main__``), so a call made from the script's top level, outside
    ``if __name__ == "__main__":``, would run once more in every worker.  Read from the calling
    frame's place in the script's syntax tree; a notebook, ``python -c`` or a module is safe."""
    import inspect

    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    frame, top = inspect.currentframe(), None
    while frame is not None:  # the script's own top level, however deep the call came from
        if frame.f_globals.get("__name__") == "__main__" and frame.f_code.co_name == "<module>":
            top = frame
        frame = frame.f_back
    if script is None or top is None:
        return True
    line = top.f_lineno
    try:
        tree = ast.parse(Path(script).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return True
    return any(isinstance(node, ast.If) and _is_main_guard(node.test)
               and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
               for node in ast.walk(tree))


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, *test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and \
        any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
