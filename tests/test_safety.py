"""Issue 15: every command as safe as `run`: one output-folder policy, exact statistics at any
size, one execution path, and compare() taking everything the CLI takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import compress
from compress.cli import cli
from compress.models.backend import keras
from compress.results.outdir import open_output
from compress.results.rows import read_results, write_results
from tests.rows import spine_rows

SWEEP = """
dataset = "digits"
[[grid]]
strategy = "quantize-dynamic"
"""


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def fake_run(tmp_path):
    folder = tmp_path / "run-b"
    write_results(open_output(folder, "run").folder, spine_rows())
    return folder


def _one_line_exit_2(result):
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_sweep_into_an_existing_run_is_refused_and_changes_nothing(tmp_path, fake_run):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    before = _snapshot(fake_run)
    result = CliRunner().invoke(cli, ["sweep", str(config), "--out", str(fake_run)])
    _one_line_exit_2(result)
    assert "holds a compress run, not a sweep" in result.stderr
    assert _snapshot(fake_run) == before


def test_run_into_a_users_folder_is_refused_and_changes_nothing(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("my notes")
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(cli, ["run", "--epochs", "1", "--out", str(folder), *extra])
        _one_line_exit_2(result)
        assert "not made by compress" in result.stderr
    assert _snapshot(folder) == {folder.joinpath("report.md").relative_to(folder): b"my notes"}


def test_report_into_another_run_is_refused_and_changes_nothing(tmp_path, fake_run):
    other = tmp_path / "run-a"
    write_results(open_output(other, "run").folder, spine_rows(run_id="a"))
    before = _snapshot(fake_run)
    result = CliRunner().invoke(cli, ["report", str(other), "--out", str(fake_run)])
    _one_line_exit_2(result)
    assert _snapshot(fake_run) == before


def test_a_report_can_be_rebuilt_in_its_own_run_and_into_a_new_folder(tmp_path, fake_run):
    assert CliRunner().invoke(cli, ["report", str(fake_run)]).exit_code == 0
    assert (fake_run / "report.md").is_file() and (fake_run / "claims.csv").is_file()
    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["report", str(fake_run), "--out", str(fresh)]).exit_code == 0
    assert CliRunner().invoke(cli, ["report", str(fake_run), "--out", str(fresh)]).exit_code == 0


def test_overwrite_leaves_only_the_new_runs_files(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--epochs", "1", "--dataset", "document", "--out", str(out)]
    assert CliRunner().invoke(cli, [*args, "--strategy", "quantize-dynamic"]).exit_code == 0
    (out / "stale.tflite").write_bytes(b"left over")
    result = CliRunner().invoke(cli, [*args, "--strategy", "quantize-float16", "--overwrite"])
    assert result.exit_code == 0, result.stderr
    assert not (out / "stale.tflite").exists() and not (out / "quantize-dynamic.tflite").exists()
    assert [r["strategy"] for r in read_results(out)] == ["baseline", "quantize-float16"]
    assert not [p for p in tmp_path.iterdir() if p.name != "run"]  # no staging folder left behind


def test_a_garbage_artifact_is_a_failed_row_not_a_crash(tmp_path):
    from compress.strategies import Compressed, Strategy, register, unregister

    class Garbage(Strategy):
        name, family, summary = "test-garbage", "quantization", "returns bytes that are no model"

        def __init__(self) -> None:
            pass

        def compress(self, ctx):
            return Compressed(tflite=b"definitely not a flatbuffer")

    register(Garbage)
    try:
        result = CliRunner().invoke(cli, ["run", "--epochs", "1", "--dataset", "document",
                                          "--strategy", "test-garbage", "--out", str(tmp_path / "r")])
        with pytest.warns(RuntimeWarning, match=r"1 of 2 rows failed \(test-garbage\); each says why"):
            frame = compress.compare("document", ["test-garbage"], epochs=1, out=tmp_path / "python")
        assert list(frame["status"]) == ["ok", "failed"]
    finally:
        unregister("test-garbage")
    assert result.exit_code == 1, result.stderr
    rows = {r["strategy"]: r for r in read_results(tmp_path / "r")}
    assert rows["baseline"]["status"] == "ok" and rows["baseline"]["latency_us_p50"]
    assert rows["test-garbage"]["status"] == "failed" and rows["test-garbage"]["reason"]
    assert not (tmp_path / "r" / "test-garbage.tflite").exists()


def test_a_20000_row_test_split_gets_exact_p_values(tmp_path):
    """Thousands of disagreements between a strong and a weak model: exact tests, exit 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24_000, 6)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "big.npz", x=x[:4000], y=y[:4000], x_test=x[4000:], y_test=y[4000:])
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(2)])
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x[:4000], y[:4000], epochs=3, verbose=0)
    teacher.save(tmp_path / "teacher.keras")
    result = CliRunner().invoke(cli, [
        "run", "--data", str(tmp_path / "big.npz"), "--teacher", str(tmp_path / "teacher.keras"),
        "--strategy", "distill:epochs=1,student=mlp:1,max_steps=1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    rows = {r["strategy"]: r for r in read_results(tmp_path / "r")}
    weak, strong = rows["distill"], rows["baseline"]
    assert len(weak["test_correct"]) == 20_000
    disagreements = sum(a != b for a, b in zip(weak["test_correct"], strong["test_correct"], strict=True))
    assert disagreements > 1000
    assert 0 <= weak["mcnemar_p"] < 1e-10
    claims = (tmp_path / "r" / "claims.csv").read_text()
    assert "nan" not in claims.lower()


def test_compare_takes_a_csv_with_target_and_missing(tmp_path):
    import compress

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=300), rng.normal(size=300)
    frame = pd.DataFrame({"a": a, "b": b, "plan": np.where(a + b > 0, "pro", "basic")})
    frame.loc[3, "a"] = np.nan
    frame.to_csv(tmp_path / "users.csv", index=False)
    result = compress.compare(data=tmp_path / "users.csv", target="plan", missing="impute",
                              strategies=["quantize-dynamic"], out=tmp_path / "api")
    assert list(result["strategy"]) == ["baseline", "quantize-dynamic"]
    assert "impute" in (result["preprocessing"].iloc[0] or "")
    assert result["dataset"].iloc[0] != "synthetic"
    import json

    manifest = json.loads((tmp_path / "api" / "run.json").read_text())
    assert manifest["config"]["dataset"] is None and manifest["config"]["data"].endswith("users.csv")
    assert manifest["dataset"]["name"] == result["dataset"].iloc[0]
    assert result.attrs["claims"] and {"technique", "verdict"} <= set(result.attrs["claims"][0])


@pytest.mark.slow  # five seeds
def test_compare_takes_a_preset(tmp_path):
    import compress

    result = compress.compare(preset="document", strategies=["quantize-dynamic"], epochs=1,
                              out=tmp_path / "doc")
    assert set(result["dataset"]) == {"document"} and sorted(set(result["seed"])) == [0, 1, 2, 3, 4]
