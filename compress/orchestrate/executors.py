"""Where sweep jobs run: in this process, in a local spawn pool, or on a Dask cluster; each
yields results as they complete and cancels what is pending when its iterator is closed.

An executor keeps its workers from one ``run`` to the next (a tune runs a batch at a time, and
each batch would otherwise start the workers and their TensorFlow again); ``close``, or leaving
a ``with`` block, ends them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from compress.common.errors import UserError, option
from compress.orchestrate.jobs import Job, failed_result, run_job
from compress.orchestrate.pool import Pool, pool_map


class Executor:
    """Runs jobs somewhere and yields each result as it completes.

    ``jobs`` may be a lazy iterator: it is drawn only when a worker is free, so a
    caller (the tuner) can decide the next job from the results so far.  Closing
    the result iterator (the driver's Ctrl-C) cancels every job not yet finished.
    """

    workers: int

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """End the workers this executor keeps between runs (none here)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every job in this process, one after another: no pool to start or spawn, for notebooks,
    debugging and tests (the jobs' TensorFlow then shares this process)."""

    workers = 1

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)


class LocalExecutor(Executor):
    """A spawn process pool: no fork after TensorFlow, and a dead worker costs no jobs."""

    def __init__(self, workers: int | None = None, max_rebuilds: int = 3) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_rebuilds = max_rebuilds
        self.pool = Pool(self.workers)

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        def salvage(job: Job) -> dict[str, Any] | None:  # finished just before a crash
            return json.loads(job.result_path.read_text()) if job.result_path.exists() else None

        return pool_map(jobs, run_job, self.workers, salvage=salvage, give_up=failed_result,
                        max_rebuilds=self.max_rebuilds, pool=self.pool)

    def close(self) -> None:
        self.pool.close()


class DaskExecutor(Executor):
    """dask.distributed: a LocalCluster by default, or any cluster by address."""

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
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

    def run(self, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        client, capacity = self._connect(), self.capacity
        from dask.distributed import as_completed

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
                    yield failed_result(job_of[future.key], f"{type(error).__name__}: {error}")
                following = submit()
                if following is not None:
                    running.add(following)
        finally:
            client.cancel(futures)


def _upload_package(client: Any) -> None:
    """Ship this package's code to a remote cluster's workers as a zip on their path."""
    import shutil
    import tempfile

    package = Path(__file__).resolve().parents[1]  # compress/, not this sub-package
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / "compress"), "zip", package.parent, package.name)
        client.upload_file(archive)
