"""compress sweep: grids, caching, executors, crashes and interruptions."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.common.errors import UserError
from compress.orchestrate.sweep import load_sweep
from compress.results.rows import read_results

COMPRESS = str(Path(sys.executable).parent / "compress")
ROOT = Path(__file__).resolve().parent.parent

SMALL = """
dataset = "digits"
seeds = [0, 1]
epochs = 1
imports = ["tests.sweep_helpers"]
[[grid]]
strategy = "prune-magnitude"
sparsity = [0.5, 0.8]
[[grid]]
strategy = "quantize-dynamic"
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grids_expand_to_cartesian_products_with_the_baseline(tmp_path):
    config = load_sweep(_write(tmp_path, """
seeds = [0, 1, 2]
[[grid]]
strategy = "distill"
temperature = [2, 4]
alpha = [0.1, 0.5]
epochs = 50
"""))
    assert config.seeds == (0, 1, 2)
    assert config.specs[0] == "baseline"
    assert len(config.specs) == 5
    assert "distill:temperature=4,alpha=0.1,epochs=50" in config.specs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds = [0]", "needs at least one [[grid]]"),
        ("colour = 1\n[[grid]]\nstrategy = 'baseline'", "unknown key 'colour'"),
        ("seeds = [-1]\n[[grid]]\nstrategy = 'baseline'", "seeds must be integers from 0 to"),
        ("[[grid]]\nsparsity = [0.5]", "needs strategy"),
        ("[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = []", "empty list"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_sweep_files_are_user_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        load_sweep(_write(tmp_path, text))
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "sweep.toml")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([COMPRESS, *args], cwd=ROOT, capture_output=True, text=True, **kwargs)


def _accuracies(folder: Path) -> dict[tuple[str, int], float]:
    return {(r["spec"], r["seed"]): r["accuracy"] for r in read_results(folder)}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    config = _write(root, SMALL)
    done = _run(["sweep", str(config), "--jobs", "2", "--out", str(root / "local")])
    assert done.returncode == 0, done.stderr
    return config, root


def test_local_sweep_runs_every_job_and_reuses_them(local_sweep):
    config, root = local_sweep
    rows = read_results(root / "local")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    assert all(r["latency_us_p50"] for r in rows)  # timed serially after the parallel phase
    before = _accuracies(root / "local")
    again = _run(["sweep", str(config), "--jobs", "2", "--out", str(root / "local")])
    assert "8 rows, 8 reused, 0 failed" in again.stdout
    assert _accuracies(root / "local") == before


@pytest.mark.slow  # 55 s; the local pool it is compared with runs in the default suite
def test_dask_gives_the_same_accuracies_as_the_local_pool(local_sweep):
    config, root = local_sweep
    done = _run(["sweep", str(config), "--executor", "dask", "--jobs", "2", "--out", str(root / "dask")])
    assert done.returncode == 0, done.stderr
    assert _accuracies(root / "dask") == _accuracies(root / "local")


@pytest.mark.slow  # kills a 2-worker sweep mid-run: a minute
def test_a_killed_driver_loses_no_finished_job(local_sweep, tmp_path):
    config, root = local_sweep
    out = tmp_path / "killed"
    process = subprocess.Popen([COMPRESS, "sweep", str(config), "--jobs", "2", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list((out / "jobs").glob("*.json"))) < 2 if (out / "jobs").exists() else True:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    workers = _children(process.pid)
    assert workers, "the pool had no worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list((out / "jobs").glob("*.json")))
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)  # workers watch their parent and leave within a second
    assert not [pid for pid in workers if _alive(pid)], "workers outlived their driver"
    again = _run(["sweep", str(config), "--jobs", "2", "--out", str(out)])
    assert again.returncode == 0, again.stderr
    reused = int(again.stdout.split(" reused")[0].split(", ")[-1])
    assert reused >= finished
    rows = read_results(out)
    assert len(rows) == len({(r["spec"], r["seed"]) for r in rows}) == 8  # no duplicates
    assert _accuracies(out) == _accuracies(root / "local")


@pytest.mark.slow  # kills a worker: ~40 s
def test_a_dead_worker_costs_no_job_and_a_failing_job_is_recorded(tmp_path):
    marker = tmp_path / "crashed"
    config = _write(tmp_path, f"""
dataset = "synthetic"
seeds = [0]
epochs = 1
imports = ["tests.sweep_helpers"]
[[grid]]
strategy = "test-crash-once"
marker = "{marker}"
[[grid]]
strategy = "test-raise"
[[grid]]
strategy = "quantize-dynamic"
""")
    done = _run(["sweep", str(config), "--jobs", "2", "--out", str(tmp_path / "out")])
    assert marker.exists()  # a worker really died
    assert done.returncode == 1, done.stderr
    rows = {r["strategy"]: r for r in read_results(tmp_path / "out")}
    assert rows["test-crash-once"]["status"] == "ok"
    assert rows["quantize-dynamic"]["status"] == "ok"
    assert rows["test-raise"]["status"] == "failed"
    assert rows["test-raise"]["reason"] == "RuntimeError: deliberate job failure"
    assert "1 failed" in done.stdout


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the pool's workers and its resource tracker)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # a SIGINT'd sweep: ~25 s
def test_ctrl_c_cancels_pending_jobs_and_reports_the_finished_ones(tmp_path):
    """SIGINT to the driver: pending jobs cancelled, workers gone, an incomplete report, exit 130."""
    config = _write(tmp_path, """
dataset = "digits"
seeds = [0]
[[grid]]
strategy = "distill"
temperature = [1, 2, 3, 4, 5, 6]
epochs = 200
[[grid]]
strategy = "quantize-dynamic"
""")
    out = tmp_path / "out"
    process = subprocess.Popen([COMPRESS, "sweep", str(config), "--jobs", "2", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "jobs").exists() or not list((out / "jobs").glob("*.json")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    workers = _children(process.pid)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "marked incomplete" in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)  # the resource tracker leaves once its driver has gone
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the interrupt"
    rows = read_results(out)
    assert 1 <= len(rows) < 20  # 6 distill configs x 3 rows + quantize + baseline were planned
    assert "is incomplete" in (out / "report.md").read_text()


def test_a_source_can_wait_for_a_running_task_before_drawing_more():
    """A run's rows that need a teacher wait for the task that trains it (``WAIT``)."""
    from compress.orchestrate.pool import WAIT, pool_map

    seen: list[int] = []

    def source():
        yield "1"
        while not seen:
            yield WAIT
        yield str(seen[0] + 1)

    for result in pool_map(source(), int, 2, salvage=lambda task: None, give_up=lambda t, r: r):
        seen.append(result)
    assert seen == [1, 2]
    with pytest.raises(RuntimeError, match="nothing runs"):
        list(pool_map(iter([WAIT]), int, 1, salvage=lambda task: None, give_up=lambda t, r: r))


def test_stopping_a_pool_lets_idle_workers_exit_by_themselves(monkeypatch):
    """Killed at once, idle workers left a semaphore the resource tracker reported as leaked
    when a run ended; they exit cleanly (code 0, not -SIGTERM), and before stop_pool returns,
    so nothing of theirs runs while the parent times models."""
    from multiprocessing.connection import wait

    from compress.orchestrate import pool as pools
    from compress.orchestrate.pool import start_pool, stop_pool

    # Idle workers exit in well under a second; on a loaded machine, not always within the 5 s
    # a run grants them, so the test grants a minute: it checks how they end, not how fast.
    monkeypatch.setattr(pools, "IDLE_EXIT", 60.0)
    pool = start_pool(2)
    assert pool.submit(int, "7").result() == 7  # the workers are up and idle
    processes = list(pool._processes.values())
    stop_pool(pool)
    assert len(wait([process.sentinel for process in processes], timeout=0)) == 2  # gone
    assert [_exit_code(process) for process in processes] == [0, 0]


def test_stopping_a_pool_ends_a_busy_worker_at_once():
    from compress.orchestrate.pool import start_pool, stop_pool

    pool = start_pool(1)
    pool.submit(int, "7").result()
    pool.submit(time.sleep, 600)
    time.sleep(0.5)  # the sleep has started
    (process,) = pool._processes.values()
    stop_pool(pool)
    assert _exit_code(process) == -signal.SIGTERM


def _exit_code(process) -> int | None:
    """The exit code once known: the pool's own thread may be reaping the process just now."""
    deadline = time.monotonic() + 30
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.exitcode


def test_a_data_path_in_a_sweep_file_is_read_relative_to_the_file(tmp_path, monkeypatch):
    from compress.orchestrate.sweep import load_sweep

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "data.npz").write_bytes(b"")
    grid = '[[grid]]\nstrategy = "quantize-int8"\n'
    (tmp_path / "project" / "sweep.toml").write_text(f'data = "data.npz"\n{grid}')
    monkeypatch.chdir(tmp_path)  # run from elsewhere
    assert load_sweep("project/sweep.toml").data == str(Path("project") / "data.npz")
    (tmp_path / "there.npz").write_bytes(b"")  # found only from the working folder: kept as given
    (tmp_path / "project" / "sweep.toml").write_text(f'data = "there.npz"\n{grid}')
    assert load_sweep("project/sweep.toml").data == "there.npz"


def test_an_executor_keeps_its_workers_between_runs_and_ends_them_on_close():
    """A tune runs a batch at a time: starting the workers (and their TensorFlow) for each batch
    would cost seconds per batch.  A crash still replaces them, and close ends them."""
    from compress.orchestrate.pool import Pool, pool_map

    pool = Pool(2)
    for _ in range(3):
        assert sorted(pool_map(range(4), abs, 2, salvage=lambda t: None, give_up=lambda t, r: r,
                               pool=pool)) == [0, 1, 2, 3]
    assert pool.starts == 1 and pool.processes is not None
    pool.close()
    assert pool.processes is None
    assert sorted(pool_map(range(2), abs, 2, salvage=lambda t: None, give_up=lambda t, r: r)) == [0, 1]


def test_a_closed_map_ends_the_workers_of_a_kept_pool():
    """Ctrl-C closes the result iterator: nothing of the map may keep running."""
    import time

    from compress.orchestrate.pool import Pool, pool_map

    pool = Pool(1)
    results = pool_map(iter([0.2, 0.2, 0.2]), time.sleep, 1, salvage=lambda t: None,
                       give_up=lambda t, r: r, pool=pool)
    next(results)
    results.close()
    assert pool.processes is None
