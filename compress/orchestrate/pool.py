"""A spawn process pool that starts its workers early, draws tasks lazily and survives a dead
worker: what a run's workers, sweeps and tune share.

Spawn, never fork: TensorFlow has threads from its import on, and a forked copy of them deadlocks.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from compress.common.errors import flag_names_in_use, set_flag_names

Task = TypeVar("Task")
Result = TypeVar("Result")
#: What a ``pool_map`` source yields when none of its tasks can start before a running one ends.
WAIT: Any = object()
_NOTHING_RUNS = "the task source waits for a result, but nothing runs"


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
    # worker made), skip the interpreter's teardown: with TensorFlow loaded it is slow (measured:
    # docs/benchmarks.md, "Default run wall time"), and ``stop_pool`` waits for it before the
    # parent times anything.
    from multiprocessing import util

    util.Finalize(None, os._exit, args=(0,), exitpriority=-100)
    if warmup is not None:
        warmup()


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


class Pool:
    """Spawn workers kept from one ``pool_map`` to the next: started once (their TensorFlow
    import, seconds each, paid once per run, sweep or tune, not per batch), replaced after a
    crash, ended by ``close``."""

    def __init__(self, workers: int, warmup: Callable[[], None] | None = None) -> None:
        self.workers, self.warmup = workers, warmup
        self.processes: Any = None  # the ProcessPoolExecutor, once started
        self.starts = 0

    def get(self) -> Any:
        """The running workers, started now if they are not."""
        if self.processes is None:
            self.processes = start_pool(self.workers, self.warmup)
            self.starts += 1
        return self.processes

    def close(self) -> None:
        """End the workers now (busy ones are terminated); ``get`` starts new ones."""
        if self.processes is not None:
            stop_pool(self.processes)
            self.processes = None


def pool_map(
    tasks: Iterable[Task], work: Callable[[Task], Result], workers: int, *,
    salvage: Callable[[Task], Result | None], give_up: Callable[[Task, str], Result],
    max_rebuilds: int = 3, pool: Pool | None = None,
) -> Iterator[Result]:
    """``work(task)`` in a spawn pool of ``workers`` processes, yielding results as they finish.

    Tasks are drawn lazily, at most one per free worker; a source that yields ``WAIT`` has
    nothing that can start before a running task finishes, and is drawn again after the next
    result (it must not say so while nothing runs).  A dead worker breaks the pool: the
    pool is rebuilt and its unfinished tasks resubmitted (``salvage`` returns the result of one
    that finished anyway); after ``max_rebuilds`` crashes every remaining task gets
    ``give_up``.  Closing the iterator (Ctrl-C) cancels everything not finished.  A ``pool``
    of the caller's is used and, when every task has finished, left running for its next map;
    without one, the map starts its own and ends it.
    """
    from concurrent.futures.process import BrokenProcessPool

    own = pool is None
    workers_of = pool if pool is not None else Pool(workers)
    source = iter(tasks)
    pending: dict[int, Task] = {}  # submitted and not finished, resubmitted after a crash
    exhausted, rebuilds, counter, done = False, 0, itertools.count(), False
    try:
        while pending or not exhausted:
            try:
                yield from _map_once(source, work, workers, workers_of.get(), pending, counter)
                exhausted = True
            except BrokenProcessPool:
                workers_of.close()
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
        done = True
    finally:
        if own or not done:  # a closed iterator (Ctrl-C) or an error: nothing may keep running
            workers_of.close()


def _map_once(source: Iterator[Task], work: Callable[[Task], Result], workers: int, pool: Any,
              pending: dict[int, Task], counter: Iterator[int]) -> Iterator[Result]:
    """Resubmit ``pending``, then draw and submit tasks as workers free up, until the source is
    exhausted and every task has finished; raises BrokenProcessPool when a worker dies."""
    from concurrent.futures import FIRST_COMPLETED, wait

    futures = {pool.submit(work, task): number for number, task in pending.items()}
    exhausted = False
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
            return
        finished, _ = wait(futures, return_when=FIRST_COMPLETED)
        for future in finished:
            number = futures.pop(future)
            result = future.result()
            pending.pop(number, None)
            yield result


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
