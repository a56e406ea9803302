"""Every bad input: exit code 2, one line naming the problem and the fix, no traceback,
and the report already in the output folder left byte-identical."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import compress
from compress.cli import cli
from compress.common.errors import UserError
from compress.models.backend import keras
from compress.report.build import build_report
from compress.results.rows import write_results
from tests.rows import spine_rows


def _csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def _table(rows=60, classes=("a", "b", "c")):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows),
                         "color": rng.choice(["red", "blue"], rows),
                         "label": [classes[i % len(classes)] for i in range(rows)]})


def _model(inputs, outputs):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(outputs)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    good = _table()
    paths = {
        "empty": root / "empty.csv",
        "good": _csv(root / "good.csv", good),
        "header": _csv(root / "header.csv", good.iloc[:0]),
        "one_class": _csv(root / "one.csv", _table(classes=("a",))),
        "rare": _csv(root / "rare.csv", pd.concat([_table(), _table(rows=2, classes=("z",))])),
        "few": _csv(root / "few.csv", _table(rows=12, classes=("a", "b"))),
        "inf": _csv(root / "inf.csv", good.assign(x1=[np.inf, *list(good.x1[1:])])),
        "nan": _csv(root / "nan.csv", good.assign(x2=[np.nan, *list(good.x2[1:])])),
        "only_target": _csv(root / "target.csv", good[["label"]]),
        "text": root / "notes.txt",
        "garbage": root / "garbage.csv",
        "npz_no_y": root / "no_y.npz",
        "npz_mismatch": root / "mismatch.npz",
        "npz_nan": root / "nan.npz",
        "npz_shape": root / "shape.npz",
        "npz_objects": root / "objects.npz",
        "wrong_shape": root / "wide.keras",
        "wrong_outputs": root / "outputs.keras",
        "h5": root / "model.h5",
        "lambda": root / "lambda.keras",
    }
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("hello")
    paths["garbage"].write_bytes(b"\xff\xfe\x00\x01" * 100)
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = np.arange(60) % 3
    np.savez(paths["npz_no_y"], x=x)
    np.savez(paths["npz_mismatch"], x=x, y=y[:50])
    np.savez(paths["npz_nan"], x=np.where(x > 2, np.nan, x), y=y)
    np.savez(paths["npz_shape"], x=x[:, 0], y=y)
    np.savez(paths["npz_objects"], x=np.array([[1], "a"] * 30, dtype=object), y=y)
    _model(9, 3).save(paths["wrong_shape"])
    _model(20, 5).save(paths["wrong_outputs"])
    _model(20, 3).save(paths["h5"])
    keras.utils.set_random_seed(0)
    lam = keras.Sequential([keras.Input((20,)), keras.layers.Lambda(lambda t: t * 2.0),
                            keras.layers.Dense(3)])
    lam.save(paths["lambda"])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("previous")
    write_results(folder, spine_rows())
    build_report(folder)
    return folder


@pytest.fixture
def previous(built, tmp_path):
    """An earlier run's folder (a copy per case: building its report takes seconds); every case
    aims --out at it with --overwrite."""
    folder = tmp_path / "previous"
    shutil.copytree(built, folder)
    return folder


CASES = {
    "missing data file": (["--data", "/nonexistent/data.csv", "--target", "label"], "does not exist"),
    "empty data file": (["--data", "{empty}", "--target", "label"], "is empty"),
    "header only": (["--data", "{header}", "--target", "label"], "header but no rows"),
    "no --target": (["--data", "{good}"], "name the label column with --target"),
    "missing target column": (["--data", "{good}", "--target", "plan"], "no column 'plan'"),
    "single class": (["--data", "{one_class}", "--target", "label"], "only one class"),
    "class too rare": (["--data", "{rare}", "--target", "label"], "class 'z' has only 2 samples"),
    "too few rows": (["--data", "{few}", "--target", "label"], "only 12 rows"),
    "infinite values": (["--data", "{inf}", "--target", "label"], "infinite values in column(s) x1"),
    "NaN without a policy": (["--data", "{nan}", "--target", "label"], "pass --missing drop"),
    "only the target column": (["--data", "{only_target}", "--target", "label"], "add feature columns"),
    "unsupported file type": (["--data", "{text}"], "takes .csv, .tsv, .parquet or .npz"),
    "unreadable csv": (["--data", "{garbage}", "--target", "label"], "cannot be read as a table"),
    "npz without y": (["--data", "{npz_no_y}"], "needs arrays named x and y"),
    "npz length mismatch": (["--data", "{npz_mismatch}"], "60 rows in x but 50 labels"),
    "npz with NaN": (["--data", "{npz_nan}"], "x contains NaN or inf"),
    "npz bad shape": (["--data", "{npz_shape}"], "must be (rows, features)"),
    "npz with objects": (["--data", "{npz_objects}"], "without pickles"),
    "missing teacher": (["--teacher", "/nonexistent/model.keras"], "does not exist"),
    "teacher input shape": (["--teacher", "{wrong_shape}"], "expects inputs of shape (9,)"),
    "teacher outputs": (["--teacher", "{wrong_outputs}"], "has 5 outputs but the data has 3"),
    "h5 teacher": (["--teacher", "{h5}"], "CVE-2025-1550"),
    "Lambda teacher": (["--teacher", "{lambda}"], "contains a Lambda layer"),
    "sparsity out of range": (["--strategy", "prune-magnitude:sparsity=1.2"], "sparsity must be between 0"),
    "fraction out of range": (["--strategy", "prune-structured:fraction=0"], "fraction must be between 0"),
    "alpha out of range": (["--strategy", "distill:alpha=-0.1"], "alpha must be between 0 and 1"),
    "temperature not positive": (["--strategy", "distill:temperature=0"], "temperature must be greater"),
    "epochs not positive": (["--strategy", "finetune:epochs=0"], "epochs must be at least 1"),
    "clusters below 2": (["--strategy", "cluster:clusters=1"], "clusters must be at least 2"),
    "malformed spec": (["--strategy", "distill:alpha"], "is not key=value"),
    "unknown strategy": (["--strategy", "nope"], "no strategy matches 'nope'"),
    "unknown parameter": (["--strategy", "distill:tempreature=2"], "unknown parameter 'tempreature'"),
    "run epochs zero": (["--epochs", "0"], "--epochs must be a whole number of at least 1"),
    "dataset and data": (["--dataset", "digits", "--data", "{good}"], "not both"),
    "target without data": (["--target", "label"], "it needs --data FILE"),
    "seed and seeds": (["--seed", "1", "--seeds", "2"], "not both"),
    "zero seeds": (["--seeds", "0"], "--seeds must be at least 1"),
    "unknown missing policy": (["--missing", "guess"], "Invalid value for '--missing'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, files, previous):
    args, message = CASES[case]
    args = [a.format(**files) for a in args]
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    result = CliRunner().invoke(cli, ["run", *args, "--out", str(previous), "--overwrite"])
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["run", "--out", str(blocker / "run")])
    assert result.exit_code == 2 and "not a writable folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_existing_results_need_overwrite(previous):
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    result = CliRunner().invoke(cli, ["run", "--out", str(previous)])
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before


@pytest.mark.parametrize("span", ["-1", "soon", "inf"])
@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_bad_latency_span_is_one_line_before_anything_runs(span, command, previous, monkeypatch):
    monkeypatch.setenv("COMPRESS_LATENCY_SPAN", span)
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    args = (["run", "--out", str(previous), "--overwrite"] if command == "run" else
            ["bench", str(previous / "baseline.tflite")])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.strip().splitlines() == [
        f"compress: error: COMPRESS_LATENCY_SPAN must be a number of seconds, 0 or more, got '{span}'; "
        "unset it for the default 3"]
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before


def test_options_are_named_as_the_caller_gave_them():
    """One message, two spellings: flags on the command line (and in reports), keywords from Python."""
    from compress.common.errors import flag_names, option

    python = [option("max_size_kib", 64.0), option("allow_weak_teacher", True), option("missing", "drop"),
              option("strategies", ["distill"]), option("teacher_architecture", "SPEC")]
    assert python == ["max_size_kib=64", "allow_weak_teacher=True", "missing='drop'",
                      "strategies=['distill']", "teacher_architecture='SPEC'"]
    with flag_names():
        flags = [option("max_size_kib", 64.0), option("allow_weak_teacher", True), option("missing", "drop"),
                 option("strategies", ["distill"]), option("teacher_architecture", "SPEC")]
    assert flags == ["--max-size-kib 64", "--allow-weak-teacher", "--missing drop", "--strategy distill",
                     "--teacher-arch SPEC"]
    with pytest.raises(UserError, match=r"^give dataset or data, not both$"):
        compress.compare(dataset="digits", data="x.csv")
    with pytest.raises(UserError, match=r"^epochs must be a whole number of at least 1, got 0$"):
        compress.compare(epochs=0)
    result = CliRunner().invoke(cli, ["run", "--epochs", "0"])
    assert result.exit_code == 2 and "--epochs must be a whole number of at least 1, got 0" in result.stderr


def test_python_arguments_of_the_wrong_type_are_one_line_before_any_training(tmp_path):
    from compress.orchestrate.config import resolve_config

    for given, message in [({"epochs": 1.5}, "epochs must be a whole number of at least 1, got 1.5"),
                           ({"jobs": True}, "jobs must be a whole number of at least 1, got True"),
                           ({"time_budget": "2"}, "time_budget must be a number of minutes, got '2'"),
                           ({"seeds": [True]}, "seeds must be integers")]:
        with pytest.raises(UserError, match=message):
            resolve_config(**given)
    with pytest.raises(UserError, match=r"max_size_kib must be a number above 0, got '64'"):
        compress.recommend(spine_rows(), max_size_kib="64")
    with pytest.raises(UserError, match="strategies is empty; give at least one"):
        compress.compare(strategies=[])
    with pytest.raises(UserError, match="unknown precision 'int3'"):  # before a teacher is trained
        compress.sensitivity(precisions="int3", dataset="digits", out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_numpy_integers_and_bare_strings_mean_what_they_say(tmp_path):
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.tune_space import TuneSettings

    config = resolve_config(seeds=list(np.arange(2)), epochs=np.int64(3), strategies="quantize-int8")
    assert config.seeds == (0, 1) and type(config.seeds[0]) is int and type(config.epochs) is int
    assert config.strategies == ("quantize-int8",)  # one strategy, not its letters
    assert TuneSettings(max_accuracy_drop=1.0, strategies="quantize-*").strategies == ("quantize-*",)
    write_results(tmp_path, spine_rows())
    build_report(tmp_path, formats="md")
    assert (tmp_path / "report.md").is_file() and not (tmp_path / "report.html").exists()
