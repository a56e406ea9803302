"""`compress run --jobs N`: strategies train in worker processes, rows identical to one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import compress
from compress.results.rows import read_results
from compress.strategies import register, unregister
from tests.test_conformance import HalfPrecisionWeights

#: Row fields that depend on the clock, the folder, the cache (the first run trains the
#: teacher, the second finds it cached) or the kernel's page accounting (peak and model RSS,
#: a page apart from one process to the next), not on the model.
TIMING = ("latency", "throughput", "speedup", "seconds", "run_id", "artifact", "teacher_cached",
          "rss_bytes")


@pytest.fixture
def plugin():
    """A strategy registered by code, in a test module: workers must be sent its class."""
    register(HalfPrecisionWeights)
    yield HalfPrecisionWeights.name
    unregister(HalfPrecisionWeights.name)


def model_fields(frame):
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: v for k, v in row.items() if not any(word in k for word in TIMING)} for row in rows]


def test_two_workers_give_the_rows_of_one_process(tmp_path, plugin):
    # distill:max_drop's controls wait for it in a worker pool and train the student it chose.
    options = {"dataset": "synthetic", "epochs": 2,
               "strategies": ["distill:epochs=2", "distill:epochs=2,max_drop=100", plugin]}
    alone = compress.compare(**options, out=tmp_path / "one", jobs=1)
    side_by_side = compress.compare(**options, out=tmp_path / "two", jobs=2)
    assert list(side_by_side["status"]) == ["ok"] * 8
    assert model_fields(side_by_side) == model_fields(alone)
    ladder = side_by_side[side_by_side["control_of"].fillna("").str.contains("max_drop=100")]
    chosen = side_by_side[side_by_side["spec"].isin(ladder["control_of"])]
    assert len(ladder) == 2 and len(chosen) == 1
    assert set(ladder["params_count"]) == set(chosen["params_count"])
    assert side_by_side["latency_us_p50"].notna().all()  # timed afterwards, in the parent
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["config"]["jobs"] == 2 and run["workers"] == 2 and run["complete"]
    for artifact in side_by_side["artifact"]:
        assert (tmp_path / "two" / artifact).is_file()


def test_a_strategy_no_worker_could_import_runs_in_this_process(tmp_path):
    @register
    class Local(HalfPrecisionWeights):  # defined in a function: a worker cannot import it
        name = "test-parallel-local"

    try:
        frame = compress.compare(dataset="synthetic", epochs=1, strategies=["test-parallel-local"],
                                 out=tmp_path / "run", jobs=2)
    finally:
        unregister(Local.name)
    assert list(frame["status"]) == ["ok", "ok"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["workers"] == 1


def test_a_strategy_defined_in_main_runs_in_this_process(tmp_path):
    """A notebook cell or `python -c`: the class pickles as __main__.X, which no spawned worker
    can import; every row, the baseline too, once failed with "worker process died repeatedly"."""
    code = f"""
import json, compress
from compress.strategies import register
from tests.test_conformance import HalfPrecisionWeights

@register
class Notebook(HalfPrecisionWeights):
    name = "test-parallel-notebook"

frame = compress.compare(dataset="synthetic", epochs=1, strategies=["test-parallel-notebook"],
                         out={str(tmp_path / "run")!r}, jobs=2)
print(list(frame["status"]), json.loads(open({str(tmp_path / "run" / "run.json")!r}).read())["workers"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "COMPRESS_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['ok', 'ok'] 1"


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(compress.UserError, match=r"^jobs must be a whole number of at least 1"):
        compress.compare(dataset="synthetic", jobs=0, out=tmp_path / "run")


def test_every_process_trains_with_the_recorded_thread_count():
    """The thread count changes a training step's float sums: fixed, the seed alone decides."""
    from compress.models.backend import TRAINING_THREADS, tf
    from compress.results.rows import environment

    assert tf.config.threading.get_intra_op_parallelism_threads() == TRAINING_THREADS == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == TRAINING_THREADS
    assert environment(threads=1)["train_threads"] == TRAINING_THREADS


def test_tensorflow_used_before_compress_keeps_its_threads_and_says_so():
    code = ("import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
            "import warnings, tensorflow as tf; tf.constant(1.0) + 1\n"
            "from compress.models.backend import import_tensorflow\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always'); import_tensorflow()\n"
            "print([str(w.message) for w in caught])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "TensorFlow ran before compress could set its thread count" in done.stdout


def test_converting_and_pruning_never_import_keras_3():
    """The converter and tfmot import Keras 3 only to learn our models are not Keras 3 models (3.8 s
    per process); blocked, they reach the same answer, and a process that imported it keeps it."""
    code = ("import sys\n"
            "from compress.models.backend import keras, tfmot, to_tflite\n"
            "model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(2)])\n"
            "pruned = tfmot.sparsity.keras.prune_low_magnitude(model)\n"
            "plain = to_tflite(model)\n"
            "print('keras' in sys.modules, len(plain) > 0)\n"
            "import keras\n"  # the user's own Keras 3, imported before the next conversion
            "print(to_tflite(model) == plain, sys.modules['keras'] is keras)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "True"]


@pytest.mark.slow
def test_a_worker_trains_the_teacher_while_the_others_start_what_needs_none(tmp_path, monkeypatch):
    """Cold cache, two workers: a control starts beside the teacher, from its untrained layers,
    and every row (its teacher fields included) equals a one-process run's."""
    import compress.orchestrate.executors
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.run import run
    from compress.orchestrate.tasks import RowTask, TeacherTask

    options = {"dataset": "synthetic", "epochs": 2,
               "strategies": ["distill:epochs=2", "finetune:epochs=1", "retrain-scratch:epochs=2"]}
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache-one"))
    alone = compress.compare(**options, out=tmp_path / "one", jobs=1)
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache-two"))
    drawn, pool_map = [], compress.orchestrate.executors.pool_map

    def recording(tasks, *args, **kwargs):
        return pool_map((drawn.append(task) or task for task in tasks), *args, **kwargs)

    monkeypatch.setattr(compress.orchestrate.executors, "pool_map", recording)
    said: list[str] = []
    result = run(resolve_config(**options, out=tmp_path / "two", jobs=2),
                 progress=lambda done, total, what: said.append(what))
    side_by_side = [{k: v for k, v in row.items() if not any(word in k for word in TIMING)}
                    for row in result.rows]
    assert side_by_side == model_fields(alone)
    assert all(row["teacher_val_accuracy"] and row["teacher_train_seconds"] for row in result.rows)
    first, second = drawn[:2]  # both workers are busy before any result comes back
    assert isinstance(first, TeacherTask) and isinstance(second, RowTask)
    assert second.spec.startswith("student-scratch:") and second.teacher_file == ""
    assert any("training the teacher in a worker" in what for what in said)
    assert any("teacher ready (trained in" in what for what in said)
    (record,) = json.loads((tmp_path / "two" / "run.json").read_text())["teachers"].values()
    assert record["val_accuracy"] and not record["from_cache"]


def test_a_weak_teacher_a_worker_trained_leaves_nothing_behind(tmp_path):
    """Labels with no signal: the teacher is refused after rows started; the folder goes."""
    import numpy as np
    from click.testing import CliRunner

    from compress.cli import cli

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noise.npz", x=rng.normal(size=(300, 5)).astype(np.float32),
             y=rng.integers(0, 3, 300))
    args = ["run", "--data", str(tmp_path / "noise.npz"), "--epochs", "1", "--jobs", "2",
            "--strategy", "finetune", "--strategy", "retrain-scratch", "--out", str(tmp_path / "run")]
    refused = CliRunner().invoke(cli, args, env={"COMPRESS_CACHE_DIR": str(tmp_path / "cache")})
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "majority class" in refused.stderr and "--allow-weak-teacher" in refused.stderr
    # trained here: what the data and the budget can do, not what a user's model gets wrong
    assert "a short training (1 epoch; --epochs sets it)" in refused.stderr
    assert "features that say little about the label" in refused.stderr
    assert "label order" not in refused.stderr
    assert not (tmp_path / "run").exists()


def test_a_python_caller_is_told_the_keywords_even_by_a_worker(tmp_path, monkeypatch):
    """The same refusal as above, from compress.compare: it names what the caller can pass."""
    import numpy as np

    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noise.npz", x=rng.normal(size=(300, 5)).astype(np.float32),
             y=rng.integers(0, 3, 300))
    with pytest.raises(compress.UserError) as refused:
        compress.compare(data=tmp_path / "noise.npz", epochs=1, jobs=2,
                         strategies=["finetune", "retrain-scratch"], out=tmp_path / "run")
    assert "pass allow_weak_teacher=True" in str(refused.value)
    assert "a short training (1 epoch; epochs sets it)" in str(refused.value)
    assert "--" not in str(refused.value)


def teacher_crashes(task):
    """A worker entry point whose teacher training fails as a bug would (its data file is gone)."""
    from dataclasses import replace

    from compress.orchestrate.tasks import TeacherTask, run_task

    return run_task(replace(task, data="/nonexistent/data.pickle") if isinstance(task, TeacherTask) else task)


def test_a_teacher_that_fails_in_a_worker_stops_the_run_and_leaves_nothing(tmp_path, monkeypatch):
    """Not bad input but a crash: the worker's traceback comes back, and no half-run stays."""
    from compress.orchestrate import executors, tasks

    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(executors, "run_task", teacher_crashes)
    with pytest.raises(tasks.TeacherFailed) as failed:
        compress.compare(dataset="synthetic", epochs=1, strategies=["finetune", "retrain-scratch"],
                         out=tmp_path / "run", jobs=2)
    message = str(failed.value)
    assert message.startswith("training the teacher of seed 0 failed in a worker process: "
                              "FileNotFoundError")
    assert "The worker's traceback:" in message and "_train_teacher" in message
    assert not (tmp_path / "run").exists()


def test_ctrl_c_while_a_worker_trains_the_teacher(tmp_path):
    """A first digits run stopped as the teacher's task goes to a worker: exit 130, no traceback."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COMPRESS_JOBS": "2",
           "COMPRESS_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen([str(Path(sys.executable).parent / "compress"), "run", "--dataset",
                                "digits", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (out / "run.json").exists():  # written as the teacher's task goes to the pool
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never started its rows"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 130 and "Traceback" not in text, text
    rows = read_results(out) if (out / "results.jsonl").exists() else []
    if rows:  # a row finished first on a fast machine: its report says the run is incomplete
        assert "is incomplete" in (out / "report.md").read_text()
    else:
        assert "0 finished rows kept" in text and "no report" in text
        assert not (out / "report.md").exists()
    assert json.loads((out / "run.json").read_text())["interrupted"] is True
