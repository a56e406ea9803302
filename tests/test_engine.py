"""One engine for run, sweep and tune: resuming a folder, the encoding every kind of folder
keeps, the checks and the time budget a sweep shares with a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compress
from compress.common.errors import UserError


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """The counting plugin, registered, and how many times it was applied so far."""
    import tests.sweep_helpers  # noqa: F401  (registers test-count)

    count = tmp_path / "count.txt"
    count.write_text("")
    monkeypatch.setenv("COMPRESS_TEST_COUNT", str(count))
    return lambda: len(count.read_text().splitlines())


def _specs(rows: list[dict]) -> list[str]:
    return sorted(row["strategy"] for row in rows)


def test_resume_reuses_finished_rows_and_makes_only_the_new_ones(tmp_path, counted):
    out = tmp_path / "run"
    first = compress.compare("synthetic", ["test-count", "quantize-dynamic"], epochs=1, out=out)
    assert counted() == 1 and set(first["status"]) == {"ok"}
    again = compress.compare("synthetic", ["test-count", "quantize-float16"], epochs=1, out=out,
                             resume=True)
    assert counted() == 1  # the counted row was taken from the folder, not made again
    assert _specs(again.to_dict("records")) == \
        ["baseline", "quantize-dynamic", "quantize-float16", "test-count"]  # the union of both
    assert again["latency_us_p50"].notna().all()  # every row timed again, together
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["reused"] == 3 and manifest["complete"] is True
    test_correct = dict(zip(first["strategy"], first["test_correct"], strict=True))
    for row in again.to_dict("records"):  # the very same models
        if row["strategy"] in test_correct:
            assert row["test_correct"] == test_correct[row["strategy"]]


def _recorded_claims(monkeypatch) -> list[float]:
    """The costs of the steps that claimed a share of the time budget, in order."""
    from compress.orchestrate import plan

    claimed: list[float] = []
    claim = plan.TimeBudget.claim

    def recording(self, cost: float) -> float:
        claimed.append(cost)
        return claim(self, cost)

    monkeypatch.setattr(plan.TimeBudget, "claim", recording)
    return claimed


def test_a_resumed_run_shares_its_time_budget_among_the_rows_it_makes(tmp_path, monkeypatch):
    claimed = _recorded_claims(monkeypatch)
    out = tmp_path / "run"
    compress.compare("synthetic", ["quantize-dynamic"], epochs=1, out=out)
    again = compress.compare("synthetic", ["quantize-dynamic", "finetune:epochs=1"], epochs=1, out=out,
                             resume=True, time_budget=5)
    assert set(again["status"]) == {"ok"} and json.loads((out / "run.json").read_text())["reused"] == 2
    assert len(claimed) == 1  # only the fine-tuning started, so only it claimed a share


def test_resume_after_an_interruption_makes_what_is_missing(tmp_path, counted):
    """A row whose saved result is gone (the command stopped before it finished) is made again;
    the others are not."""
    out = tmp_path / "run"
    compress.compare("synthetic", ["test-count", "quantize-dynamic"], epochs=1, out=out)
    counted_key = next(p for p in (out / "jobs").glob("*.json")
                       if json.loads(p.read_text())["row"]["strategy"] == "test-count")
    counted_key.unlink()
    again = compress.compare("synthetic", ["test-count", "quantize-dynamic"], epochs=1, out=out,
                             resume=True)
    assert counted() == 2 and len(again) == 3
    assert json.loads((out / "run.json").read_text())["reused"] == 2


def test_resume_refuses_a_folder_of_other_data_in_one_line(tmp_path):
    out = tmp_path / "run"
    compress.compare("synthetic", ["quantize-dynamic"], epochs=1, out=out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError, match=r"made with other data than this command's; choose another out"):
        compress.compare("document", ["quantize-dynamic"], epochs=1, out=out, resume=True)
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_refuses_a_folder_written_before_rows_were_kept(tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(Path(__file__).resolve().parents[1] / "reports" / "example-digits", out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError, match="written before compress kept its rows for resuming"):
        compress.compare("digits", ["quantize-dynamic"], epochs=1, out=out, resume=True)
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_needs_a_folder_and_excludes_overwrite(tmp_path):
    with pytest.raises(UserError, match="resume=True resumes the folder out names"):
        compress.compare("synthetic", ["quantize-dynamic"], resume=True)
    with pytest.raises(UserError, match="not both"):
        compress.compare("synthetic", ["quantize-dynamic"], resume=True, overwrite=True, out=tmp_path / "r")


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"size": rng.normal(10, 3, n), "colour": rng.choice(["red", "green", "blue"], n)})
    frame["label"] = np.where(frame["size"] > 10, "big", "small")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_sweep_of_a_table_keeps_its_encoding_as_a_run_does(tmp_path):
    """encode_rows serves a sweep's folder, with the very encoding a run of the same data fitted."""
    from compress.orchestrate.sweep import load_sweep, sweep

    table = _table(tmp_path)
    (tmp_path / "sweep.toml").write_text(f'data = "{table}"\ntarget = "label"\nepochs = 1\n'
                                         '[[grid]]\nstrategy = "quantize-dynamic"\n')
    swept = sweep(load_sweep(tmp_path / "sweep.toml"), tmp_path / "sweep", jobs=1)
    assert {row["status"] for row in swept.rows} == {"ok"}
    compress.compare(data=table, target="label", epochs=1, strategies=["quantize-dynamic"],
                     out=tmp_path / "run")
    raw = pd.read_csv(table).drop(columns="label").head(5)
    np.testing.assert_array_equal(compress.encode_rows(tmp_path / "sweep", raw),
                                  compress.encode_rows(tmp_path / "run", raw))
    manifest = json.loads((tmp_path / "sweep" / "run.json").read_text())
    assert manifest["kind"] == "sweep" and manifest["settings"]["specs"] == ["baseline", "quantize-dynamic"]


def test_a_sweep_refuses_a_weak_teacher_as_a_run_does(tmp_path):
    from compress.orchestrate.sweep import load_sweep, sweep

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noise.npz", x=rng.normal(size=(300, 5)).astype(np.float32),
             y=rng.integers(0, 3, 300))
    (tmp_path / "sweep.toml").write_text('data = "noise.npz"\nepochs = 1\n[[grid]]\n'
                                         'strategy = "quantize-dynamic"\n')
    with pytest.raises(UserError, match=r"not clearly above the .* majority class"):
        sweep(load_sweep(tmp_path / "sweep.toml"), tmp_path / "out", jobs=1)
    assert not (tmp_path / "out").exists()


def test_a_sweep_file_takes_every_run_setting(tmp_path):
    from compress.orchestrate.sweep import load_sweep, run_config

    (tmp_path / "sweep.toml").write_text(
        'dataset = "digits"\nteacher_architecture = "mlp:16"\nthreads = 2\nscenario = "standard"\n'
        'time_budget = 3\nallow_weak_teacher = true\n[[grid]]\nstrategy = "quantize-dynamic"\n')
    config = run_config(load_sweep(tmp_path / "sweep.toml"), out=tmp_path / "out", jobs=1)
    assert (config.teacher_architecture, config.threads, config.time_budget, config.allow_weak_teacher) == \
        ("mlp:16", 2, 3, True)
    (tmp_path / "bad.toml").write_text('threads = 0\n[[grid]]\nstrategy = "quantize-dynamic"\n')
    with pytest.raises(UserError, match=r"bad.toml: threads must be a whole number of at least 1, got 0"):
        load_sweep(tmp_path / "bad.toml")


def test_a_sweep_time_budget_is_the_runs(tmp_path, monkeypatch):
    """--time-budget on a sweep: the run's shares, claimed as each row starts (one implementation)."""
    from compress.orchestrate.sweep import load_sweep, sweep

    claims = _recorded_claims(monkeypatch)
    (tmp_path / "sweep.toml").write_text('dataset = "synthetic"\nepochs = 1\n[[grid]]\n'
                                         'strategy = "finetune"\nepochs = 2000\n')
    swept = sweep(load_sweep(tmp_path / "sweep.toml"), tmp_path / "out", jobs=1, time_budget=0.2)
    finetune = next(row for row in swept.rows if row["strategy"] == "finetune")
    assert len(claims) == 2  # the baseline's and the fine-tuning's
    assert finetune["budget_stopped"] and "time budget" in (finetune["notes"] or finetune["reason"])


def test_an_unguarded_script_trains_in_one_process(tmp_path):
    """compare() at a script's top level would be run again by every spawned worker: one job, and
    a warning that says why; under `if __name__ == "__main__":` the default holds."""
    import subprocess
    import sys

    def script(body: str) -> str:
        path = tmp_path / "script.py"
        path.write_text("from compress.orchestrate.executors import spawn_safe_caller\n" + body)
        done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert script("print(spawn_safe_caller())\n") == "False"
    assert script("def main():\n    print(spawn_safe_caller())\nmain()\n") == "False"
    assert script("if __name__ == '__main__':\n    print(spawn_safe_caller())\n") == "True"
    assert script("def main():\n    print(spawn_safe_caller())\nif __name__ == '__main__':\n    main()\n") \
        == "True"


@pytest.mark.slow  # starts a Dask LocalCluster and a pool: a minute
def test_a_run_on_a_local_dask_cluster_gives_the_pools_rows(tmp_path):
    from tests.test_parallel import model_fields

    options = {"dataset": "synthetic", "epochs": 2, "jobs": 2,
               "strategies": ["quantize-int8", "prune-magnitude:epochs=2", "distill:epochs=2"]}
    pool = compress.compare(**options, out=tmp_path / "pool")
    dask = compress.compare(**options, out=tmp_path / "dask", executor="dask")
    assert model_fields(dask) == model_fields(pool)
    assert json.loads((tmp_path / "dask" / "run.json").read_text())["config"]["executor"] == "dask"


@pytest.mark.slow  # a small tune of a table: about a minute
def test_a_tune_of_a_table_keeps_its_encoding(tmp_path):
    from compress.orchestrate.executors import SerialExecutor
    from compress.orchestrate.tune import tune
    from compress.orchestrate.tune_space import TuneSettings

    table = _table(tmp_path)
    settings = TuneSettings(max_accuracy_drop=5.0, max_trials=2,
                            strategies=("quantize-dynamic", "quantize-float16"))
    tune(settings, SerialExecutor(), out=tmp_path / "tune", seeds=1, data=table, target="label", epochs=1)
    raw = pd.read_csv(table).drop(columns="label").head(5)
    assert compress.encode_rows(tmp_path / "tune", raw).shape[0] == 5


def test_a_kept_worker_serves_each_command_its_own_data_and_teacher(tmp_path):
    """Trials load their data and teacher from the settings; one process (a kept worker, or
    this one) serving two tunes of different data must not hand the second the first's."""
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.tasks import run_task
    from compress.orchestrate.tune_search import seed_trials

    scored = {}
    for dataset in ("synthetic", "digits"):
        config = resolve_config(dataset=dataset, epochs=1)
        source, _, job_for = seed_trials(config, 0, tmp_path / dataset)
        (tmp_path / dataset).mkdir()
        row = run_task(job_for("quantize-dynamic")).row
        scored[dataset] = (len(row["test_correct"]), len(source.dataset.training.y_val))
    assert all(rows == validation for rows, validation in scored.values())
    assert scored["synthetic"][0] != scored["digits"][0]


def test_time_best_times_only_the_baseline_and_the_front(tmp_path):
    from compress.orchestrate.sweep import load_sweep, sweep
    from compress.report.plots import pareto_front

    grids = "".join(f'[[grid]]\nstrategy = "{name}"\n'
                    for name in ("quantize-dynamic", "quantize-float16", "quantize-int8"))
    (tmp_path / "sweep.toml").write_text(f'dataset = "synthetic"\nepochs = 1\n{grids}')
    rows = sweep(load_sweep(tmp_path / "sweep.toml"), tmp_path / "out", jobs=1, timing="best").rows
    front = pareto_front([(row["size_bytes"], row["accuracy"]) for row in rows])
    timed = {row["strategy"] for row in rows if row["latency_us_p50"] is not None}
    assert timed == {row["strategy"] for row in rows
                     if row["role"] == "baseline" or (row["size_bytes"], row["accuracy"]) in front}


def test_a_row_a_worker_could_not_prepare_keeps_its_traceback(tmp_path, monkeypatch):
    from compress.orchestrate import tasks

    def broken(task):
        raise RuntimeError("prepared badly")

    monkeypatch.setattr(tasks, "_prepare", broken)
    with pytest.warns(RuntimeWarning, match="rows failed"):
        frame = compress.compare("synthetic", ["quantize-dynamic"], epochs=1, out=tmp_path / "run")
    assert set(frame["status"]) == {"failed"}
    assert all("could not prepare the step (RuntimeError: prepared badly)" in r for r in frame["reason"])
    assert "prepared badly" in (tmp_path / "run" / "errors.log").read_text()
