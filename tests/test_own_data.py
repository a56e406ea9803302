"""Your own data and teacher, end to end; and an interrupted run keeps its finished rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.common.errors import UserError
from compress.data.userdata import load_file
from compress.models.backend import keras
from compress.results.rows import read_results
from examples.csv_workflow import make_csv


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "customers.csv"
    make_csv(path)  # string labels, two categorical columns, 25 missing cells
    return path


def test_the_missing_value_policy_is_applied_and_counted(customers):
    with pytest.raises(Exception, match="25 missing cells in 25 rows"):
        load_file(customers, seed=0, target="plan")
    dropped, record = load_file(customers, seed=0, target="plan", missing="drop")
    assert record.rows_dropped == 25
    assert len(dropped.y_test) + len(dropped.training.y_train) + len(dropped.training.y_val) == 575
    imputed, record = load_file(customers, seed=0, target="plan", missing="impute")
    assert record.cells_imputed == 25 and record.rows_dropped == 0
    assert imputed.class_names == ("basic", "plus", "premium")
    assert record.one_hot == ["region", "device"] and record.numeric == ["usage", "tenure"]
    assert np.isfinite(imputed.training.x_train).all()
    # usage, tenure + 4 regions + 3 devices (missing regions are imputed, not a category)
    assert imputed.input_shape == (9,)


def test_preprocessing_is_fitted_on_the_train_split_only(customers):
    dataset, _ = load_file(customers, seed=0, target="plan", missing="impute")
    usage = dataset.training.x_train[:, 0]
    assert abs(usage.mean()) < 1e-5 and abs(usage.std() - 1) < 1e-3  # scaled on train rows
    assert abs(dataset.x_test[:, 0].mean()) > 1e-4  # test rows only transformed


def test_a_value_that_leaves_float32_once_standardized_is_a_user_error(tmp_path):
    """Found by the property test: 3.3e38 is finite in the file, but in the test split it is
    scaled by the train split's spread (below 1) past float32's 3.4e38, and became inf."""
    from compress.common.errors import UserError

    rng = np.random.default_rng(0)
    rows = ["label,x1,x2", *(f"{'ab'[i % 2]},{rng.normal():.3f},{rng.normal():.3f}" for i in range(60))]
    rows[2] = "a,0,3.316536682260761e+38"
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(UserError, match=r"too large for 32-bit floats once standardized .*'x2'"):
        load_file(tmp_path / "data.csv", seed=4, target="label")
    dataset, _ = load_file(tmp_path / "data.csv", seed=0, target="label")  # in the train split
    assert np.isfinite(dataset.x_test).all() and np.isfinite(dataset.training.x_val).all()


def test_a_csv_with_strings_categories_and_holes_runs_end_to_end(customers, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--data", str(customers), "--target", "plan",
                                      "--missing", "impute", "--epochs", "2", "--strategy",
                                      "quantize-int8", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    report = (out / "report.md").read_text()
    assert "25 missing cells imputed" in report
    assert "**Classes:** basic, plus, premium" in report
    assert "one-hot: region, device" in report
    assert {r["status"] for r in read_results(out)} == {"ok"}


def _functional_teacher(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    keras.utils.set_random_seed(0)
    inputs, classes = x.shape[1], int(y.max()) + 1
    x_in = keras.Input((inputs,))
    hidden = keras.layers.Dense(16, activation="relu")(x_in)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.Dropout(0.2)(hidden)
    model = keras.Model(x_in, keras.layers.Dense(classes, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, verbose=0)  # an untrained teacher is refused as weak
    model.save(path)


@pytest.mark.slow  # every registered strategy, ~1 min; the zoo matrix covers the same in the default suite
def test_a_users_functional_teacher_runs_through_every_strategy(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    _functional_teacher(tmp_path / "teacher.keras", x, y)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--data", str(tmp_path / "data.npz"), "--teacher",
                                      str(tmp_path / "teacher.keras"), "--epochs", "1",
                                      "--strategy", "*", "--out", str(out)])
    rows = {r["strategy"]: r for r in read_results(out)}
    assert result.exit_code == 0, [(r["strategy"], r["reason"]) for r in rows.values()]
    assert rows["baseline"]["teacher_architecture"] == "user:teacher.keras"
    for row in rows.values():
        assert row["status"] in ("ok", "skipped"), (row["strategy"], row["reason"])
        if row["status"] == "skipped":
            assert row["reason"]
    assert rows["prune-structured"]["status"] == "ok"  # BatchNormalization sliced to match
    assert rows["distill"]["status"] == "ok"  # softmax outputs read as probabilities


def test_a_lambda_teacher_needs_trust(tmp_path):
    x = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(int))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0),
                              keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    args = ["run", "--data", str(tmp_path / "data.npz"), "--teacher", str(tmp_path / "lambda.keras"),
            "--strategy", "quantize-dynamic", "--out", str(tmp_path / "run")]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "--trust-model" in refused.stderr
    untrained = CliRunner().invoke(cli, [*args, "--trust-model"])
    assert untrained.exit_code == 2 and "majority class" in untrained.stderr
    assert not (tmp_path / "run").exists()
    accepted = CliRunner().invoke(cli, [*args, "--trust-model", "--allow-weak-teacher"])
    assert accepted.exit_code == 0, accepted.stderr
    assert [r["status"] for r in read_results(tmp_path / "run")] == ["ok", "ok"]


@pytest.mark.slow  # ~30 s; the run's Ctrl-C safety is also in test_safety
def test_an_interrupted_run_keeps_its_finished_rows(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "compress"), "run", "--dataset", "digits", "--strategy",
         "quantize-dynamic", "--strategy", "distill:epochs=300", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while not (results.exists() and len(results.read_text().splitlines()) >= 2):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no rows were written"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    assert "finished rows kept" in stderr.decode() and "Traceback" not in stderr.decode()
    rows = read_results(results)  # every line parses, schema checked
    assert [r["strategy"] for r in rows] == ["baseline", "quantize-dynamic"]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["complete"] is False and manifest["interrupted"] is True
    assert "is incomplete" in (out / "report.md").read_text()


@pytest.mark.slow
def test_ctrl_c_at_any_moment_stops_with_130_and_keeps_finished_rows(tmp_path):
    """SIGINT at 20 random moments of a run: always exit 130, never a traceback, and whatever
    rows were saved parse (the Ctrl-C that a finalizer swallows still stops the run)."""
    rng = np.random.default_rng(0)
    compress = str(Path(sys.executable).parent / "compress")
    for attempt, delay in enumerate(rng.uniform(0.5, 14.0, size=20)):
        out = tmp_path / f"run{attempt}"
        process = subprocess.Popen(
            [compress, "run", "--dataset", "document", "--strategy", "quantize-dynamic",
             "--strategy", "distill:epochs=100", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=180)
        text = stderr.decode()
        assert "Traceback" not in text and "Exception ignored" not in text, (delay, text)
        assert process.returncode == (0 if finished else 130), (delay, process.returncode, text)
        if (out / "results.jsonl").exists():
            read_results(out)  # every saved line parses and passes the schema check


def test_a_binary_sigmoid_teacher_runs_as_two_classes(tmp_path):
    """The usual binary head, Dense(1, "sigmoid"): widened to two logits, every row scored."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=30, verbose=0)
    model.save(tmp_path / "binary.keras")
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["run", "--data", str(tmp_path / "data.npz"), "--teacher",
                                    str(tmp_path / "binary.keras"), "--strategy", "quantize-dynamic",
                                    "--out", str(out)])
    assert done.exit_code == 0, done.stderr
    base, quantized = read_results(out)
    assert base["teacher_architecture"] == "user:binary.keras (its one binary output as two class logits)"
    expected = float(np.mean((model.predict(x, verbose=0)[:, 0] > 0.5) == y))
    assert base["accuracy"] > 0.9 and expected > 0.9  # class 1 where p > 0.5, as the user's model
    assert quantized["status"] == "ok" and abs(quantized["accuracy"] - base["accuracy"]) < 0.02


@pytest.mark.parametrize("activation", ["sigmoid", "linear"])
def test_a_binary_head_with_its_own_activation_layer_becomes_two_logits(activation):
    from compress.models.teacher import _binary_as_two_classes

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1), keras.layers.Activation(activation)])
    x = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
    widened = _binary_as_two_classes(model)
    assert widened is not None and widened.output_shape == (None, 2)
    logits = widened.predict(x, verbose=0)
    p = 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0])))
    expected = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(p if activation == "sigmoid" else logits[:, 1] - logits[:, 0], expected,
                               atol=1e-5)


def _refusal(tmp_path, model, x, y) -> str:
    np.savez(tmp_path / "data.npz", x=x, y=y)
    model.save(tmp_path / "teacher.keras")
    refused = CliRunner().invoke(cli, ["run", "--data", str(tmp_path / "data.npz"), "--teacher",
                                       str(tmp_path / "teacher.keras"), "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (tmp_path / "run").exists()
    return refused.stderr


def test_teachers_compress_cannot_compare_are_refused_in_one_line(tmp_path):
    x = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    inputs = keras.Input((4,))
    two_heads = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    assert "has 1 inputs and 2 outputs; compress compares classifiers with one input and one output" in \
        _refusal(tmp_path, two_heads, x, y)
    tokens = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(2, 3),
                               keras.layers.Flatten(), keras.layers.Dense(2)])  # ids 0 and 1 only
    assert "the data hold token ids up to 3, beyond teacher teacher.keras's vocabulary of 2" in \
        _refusal(tmp_path, tokens, np.abs(x).astype(int), y)


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_a_regression_target_is_named_as_one(tmp_path, suffix):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    target = x.sum(axis=1) * 1.5
    path = tmp_path / f"data{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x, y=target)
    else:
        import pandas as pd

        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "price": target}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"holds fractional numbers \(e\.g\. .*\), a regression target; "
                                        r"compress compares classifiers"):
        load_file(path, seed=0, target="price")
    integers = tmp_path / "counts.npz"  # whole numbers, but hundreds of them: a measured value
    np.savez(integers, x=x, y=np.arange(200) * 3)
    with pytest.raises(UserError, match=r"200 distinct labels in 200 rows, 1 for class '0': that looks "
                                        r"like a regression target"):
        load_file(integers, seed=0)


def test_a_rare_class_is_named_by_its_label(tmp_path):
    x = np.random.default_rng(0).normal(size=(103, 3)).astype(np.float32)
    np.savez(tmp_path / "rare.npz", x=x, y=np.array([5] * 50 + [7] * 50 + [10] * 3))
    with pytest.raises(UserError, match=r"class '10' has only 3 samples"):
        load_file(tmp_path / "rare.npz", seed=0)


def test_spreadsheet_exports_with_other_separators_read_as_the_comma_file(tmp_path):
    """A European locale's ";" with decimal commas, tabs in a .csv, and a .tsv: the same table."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).round(3)
    rows = [(a, b, "yes" if a > 0 else "no") for a, b in x]
    (tmp_path / "comma.csv").write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    (tmp_path / "semicolon.csv").write_text(
        "a;b;label\n" + "".join(f"{str(a).replace('.', ',')};{str(b).replace('.', ',')};{c}\n"
                                for a, b, c in rows))
    (tmp_path / "tabs.csv").write_text("a\tb\tlabel\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
    (tmp_path / "data.TSV").write_text((tmp_path / "tabs.csv").read_text())
    reference, record = load_file(tmp_path / "comma.csv", seed=0, target="label")
    assert record.summary() and reference.training.x_train.shape[1] == 2  # two numeric features
    for name in ("semicolon.csv", "tabs.csv", "data.TSV"):
        dataset, _ = load_file(tmp_path / name, seed=0, target="label")
        np.testing.assert_allclose(dataset.training.x_train, reference.training.x_train, rtol=1e-6)
        np.testing.assert_array_equal(dataset.y_test, reference.y_test)


def test_an_empty_column_is_named_whatever_the_missing_policy(tmp_path):
    rows = "".join(f"{i % 7},,{'a' if i % 2 else 'b'}\n" for i in range(60))
    (tmp_path / "holes.csv").write_text("x,blank,label\n" + rows)
    for policy in ("error", "drop", "impute"):
        with pytest.raises(UserError, match=r"column\(s\) blank have no values at all; drop them"):
            load_file(tmp_path / "holes.csv", seed=0, target="label", missing=policy)


def test_a_row_number_is_left_out_even_when_it_would_predict_a_sorted_label(tmp_path):
    """``DataFrame.to_csv`` writes its index as a first, unnamed column; in a file sorted by class
    it alone would give a perfect teacher and no finding at all."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=90), "count": rng.integers(0, 500, 90),
                          "label": np.repeat(["a", "b", "c"], 30)})
    frame.index += 1  # 1..90: a range needs no zero
    frame.to_csv(tmp_path / "sorted.csv")  # index=True, pandas' default
    _, record = load_file(tmp_path / "sorted.csv", seed=0, target="label")
    assert record.dropped == ["Unnamed: 0 (consecutive integers: a row number)"]
    assert record.numeric == ["x", "count"]
    shuffled = frame.assign(x=rng.permutation(90).astype(float)).sample(frac=1, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)  # a feature 0..89 in another order
    _, record = load_file(tmp_path / "shuffled.csv", seed=0, target="label")
    assert record.dropped == ["x (consecutive integers: a row number)"]


def test_question_marks_stray_text_identifiers_and_constants(tmp_path):
    """What a UCI-style table holds: "?" for a missing value, a typo among numbers, a row id and
    a constant column; none may silently become a feature."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": [f"user_{i:05d}" for i in range(80)],
                          "weight": rng.normal(70, 9, 80).round(1), "site": "north",
                          "colour": rng.choice(["red", "blue"], 80), "label": rng.choice(["a", "b"], 80)})
    frame.to_csv(tmp_path / "clean.csv", index=False)
    _, record = load_file(tmp_path / "clean.csv", seed=0, target="label")
    assert record.dropped == ["user (every value different: an identifier)", "site (one value)"]
    assert "columns left out: user (every value different: an identifier), site (one value)" in \
        record.summary()
    assert record.numeric == ["weight"] and record.one_hot == ["colour"] and not record.ordinal
    holes = frame.astype({"weight": object})
    holes.loc[:4, "weight"] = "?"
    holes.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(UserError, match=r"5 missing cells in 5 rows \(columns: weight\)"):
        load_file(tmp_path / "holes.csv", seed=0, target="label")
    _, imputed = load_file(tmp_path / "holes.csv", seed=0, target="label", missing="impute")
    assert imputed.numeric == ["weight"] and imputed.cells_imputed == 5
    holes.loc[:4, "weight"] = "71kg"
    holes.to_csv(tmp_path / "typo.csv", index=False)
    with pytest.raises(UserError, match=r"column 'weight' holds numbers except 5 cells \('71kg'\)"):
        load_file(tmp_path / "typo.csv", seed=0, target="label")


def test_rows_read_counts_a_given_test_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    y = np.arange(200) % 2
    np.savez(tmp_path / "split.npz", x=x[:150], y=y[:150], x_test=x[150:], y_test=y[150:])
    dataset, record = load_file(tmp_path / "split.npz", seed=0)
    assert len(dataset.y_test) == 50 and record.summary().startswith("200 rows read from split.npz")


def test_labels_that_differ_only_in_case_or_spaces_are_pointed_out(tmp_path):
    labels = ["cat", "Cat", "dog ", "dog", "bird"] * 12
    rows = "".join(f"{i % 5},{i % 3},{label}\n" for i, label in enumerate(labels))
    (tmp_path / "pets.csv").write_text("a,b,label\n" + rows)
    _, record = load_file(tmp_path / "pets.csv", seed=0, target="label")
    assert len(record.classes) == 5  # kept apart, as given
    assert "different classes: 'Cat' / 'cat', 'dog' / 'dog '**" in record.summary()


def test_a_small_table_with_a_rare_class_is_not_called_a_regression(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "small.npz", x=x, y=np.array([0] * 12 + [1] * 12 + [2] * 12 + [3] * 4))
    with pytest.raises(UserError) as refused:
        load_file(tmp_path / "small.npz", seed=0)
    assert "class '3' has only 4 samples" in str(refused.value) and "regression" not in str(refused.value)


@pytest.mark.parametrize("written", ["{:,}", "{}%", "{} kg", "${:,}"])
def test_numbers_written_with_separators_or_units_are_refused_not_sorted_as_text(tmp_path, written):
    rng = np.random.default_rng(0)
    cells = [written.format(v) for v in rng.integers(10, 30_000, 90)]
    rows = "".join(f'{rng.normal():.3f},"{cell}",{"ab"[i % 2]}\n' for i, cell in enumerate(cells))
    (tmp_path / "money.csv").write_text("x,income,label\n" + rows)
    with pytest.raises(UserError, match=r"column 'income' holds numbers written with separators, units "
                                        r"or signs \('.*'\), which would be read as text categories"):
        load_file(tmp_path / "money.csv", seed=0, target="label")


def test_text_categories_that_contain_digits_are_still_categories(tmp_path):
    rng = np.random.default_rng(0)
    rows = "".join(f"{rng.normal():.3f},{rng.choice(['A1', 'B2', 'C3'])},{rng.choice(['S', 'XL'])},"
                   f"{'ab'[i % 2]}\n" for i in range(90))
    (tmp_path / "grades.csv").write_text("x,grade,size,label\n" + rows)
    _, record = load_file(tmp_path / "grades.csv", seed=0, target="label")
    assert record.one_hot == ["grade", "size"]


@pytest.mark.parametrize("dates", [
    [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(90)],  # repeats: would be categories
    [f"{1 + i % 28:02d}/{1 + i % 12:02d}/2024 " for i in range(90)],
    [f"2024-01-01T{i % 24:02d}:{i % 60:02d}:00" for i in range(90)],  # all different: an "identifier"
])
def test_dates_written_as_text_are_refused_like_a_date_column(tmp_path, dates):
    rows = "".join(f"{i % 7},{day},{'ab'[i % 2]}\n" for i, day in enumerate(dates))
    (tmp_path / "days.csv").write_text("x,when,label\n" + rows)
    with pytest.raises(UserError, match=r"column 'when' holds dates \(e.g. '.*'\), which no encoding"):
        load_file(tmp_path / "days.csv", seed=0, target="label")


def test_a_label_only_y_test_has_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "split.npz", x=rng.normal(size=(90, 3)), y=np.arange(90) % 2,
             x_test=rng.normal(size=(12, 3)), y_test=np.arange(12) % 3)
    with pytest.raises(UserError, match=r"y_test holds label\(s\) 2 that y never does"):
        load_file(tmp_path / "split.npz", seed=0)


def test_the_header_says_how_an_npz_was_read(tmp_path):
    """No axis is ever added: 8-bit (N, H, W) pixels are sequences, and the header says so."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pixels.npz", x=rng.integers(0, 256, size=(60, 8, 8), dtype=np.uint8),
             y=np.arange(60) % 2)
    _, record = load_file(tmp_path / "pixels.npz", seed=0)
    assert ("x as sequences of 8 steps × 8 channels (if these are grayscale images, save x with a "
            "channel axis: shape (N, 8, 8, 1)); its uint8 values (0 to 255) used as they are, not "
            "scaled") in record.summary()


def test_ordinal_codes_are_standardized_like_the_numbers_beside_them(tmp_path):
    rng = np.random.default_rng(0)
    cities = [f"city{i:02d}" for i in range(30)]
    rows = "".join(f"{rng.normal():.3f},{rng.choice(cities)},{'ab'[i % 2]}\n" for i in range(300))
    (tmp_path / "cities.csv").write_text("x,city,label\n" + rows)
    dataset, record = load_file(tmp_path / "cities.csv", seed=0, target="label")
    assert record.ordinal == ["city"] and "ordinal codes, standardized" in record.summary()
    codes = dataset.training.x_train[:, 1]
    assert abs(codes.mean()) < 1e-5 and abs(codes.std() - 1) < 1e-3


def test_the_fitted_encoding_turns_raw_rows_into_the_models_inputs(tmp_path):
    """A deployment gets raw rows: the saved encoding must reproduce the inputs the models saw."""
    import pandas as pd

    from compress.data.userdata import encode_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(50_000, 9_000, 200).round(),
                          "colour": rng.choice(["red", "blue", "green"], 200),
                          "city": rng.choice([f"c{i:02d}" for i in range(20)], 200),
                          "member": rng.choice([True, False], 200), "label": rng.choice(["a", "b"], 200)})
    frame.loc[3, "income"] = np.nan
    frame.to_csv(tmp_path / "people.csv", index=False)
    dataset, record = load_file(tmp_path / "people.csv", seed=0, target="label", missing="impute")
    encoded = encode_rows(record.encoding, pd.read_csv(tmp_path / "people.csv"))
    assert encoded.shape == (200, dataset.training.x_train.shape[1])
    for row in dataset.x_test:  # every test row is one raw row, encoded alike
        assert np.abs(encoded - row).max(axis=1).min() < 1e-5
    assert [entry["column"] for entry in record.encoding["inputs"]] == ["income", "colour", "member", "city"]


def test_encoding_rows_with_holes_the_run_never_filled_is_refused(tmp_path):
    import pandas as pd

    from compress.data.userdata import encode_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=90), "label": rng.choice(["a", "b"], 90)})
    frame.to_csv(tmp_path / "plain.csv", index=False)
    _, record = load_file(tmp_path / "plain.csv", seed=0, target="label")
    with pytest.raises(UserError, match="column 'x' has missing cells, which this run never filled"):
        encode_rows(record.encoding, frame.assign(x=np.nan))
    with pytest.raises(UserError, match="the rows lack column"):
        encode_rows(record.encoding, frame.drop(columns=["x"]))
