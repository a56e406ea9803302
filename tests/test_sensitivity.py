"""Per-layer sensitivity: one row per layer and setting, validation split only, stable files."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from compress.common.errors import UserError
from compress.data.builtin import Dataset, TrainingData, load_dataset
from compress.orchestrate.sensitivity import COLUMNS, layer_sensitivity, write_sensitivity
from compress.strategies.quantizing import runtime_defect
from compress.testing import tiny_problem

SETTINGS = [("quantize", "int8"), ("quantize", "int4"), ("quantize", "int2"), ("prune", "0.8")]


@pytest.fixture(scope="module")
def digits():
    return tiny_problem("digits", epochs=2)


@pytest.fixture(scope="module")
def rows(digits):
    data, teacher, _ = digits
    return layer_sensitivity(teacher, data)


def kernel_layers(model):
    return [layer.name for layer in model.layers if hasattr(layer, "kernel")]


def test_one_row_per_layer_and_setting_in_model_order(rows, digits):
    expected = [(layer, *setting) for layer in kernel_layers(digits[1]) for setting in SETTINGS]
    assert [(r["layer"], r["method"], r["setting"]) for r in rows] == expected
    assert all(tuple(row) == COLUMNS for row in rows)
    assert COLUMNS == ("layer", "method", "setting", "bytes_share", "macs_share", "accuracy_drop_pp",
                       "output_cosine", "not_measured")


def test_shares_sum_to_one_per_method(rows, digits):
    for method, setting in SETTINGS:
        mine = [r for r in rows if (r["method"], r["setting"]) == (method, setting)]
        assert sum(r["bytes_share"] for r in mine) == pytest.approx(1)
        assert sum(r["macs_share"] for r in mine) == pytest.approx(1)
    conv, conv_1, dense, _ = ({r["layer"]: r for r in rows}[name] for name in kernel_layers(digits[1]))
    assert dense["bytes_share"] > conv["bytes_share"]  # 32,768 weights against 288
    assert conv_1["macs_share"] > dense["macs_share"]


def test_values_mean_what_they_say(rows):
    for row in rows:
        if row["method"] == "prune":
            assert row["output_cosine"] is None and np.isfinite(row["accuracy_drop_pp"])
        elif row["setting"] == "int8":
            assert abs(row["accuracy_drop_pp"]) <= 2 and row["output_cosine"] > 0.999
        elif row["output_cosine"] is not None:
            assert -1 <= row["output_cosine"] <= 1
    int2_conv = [r for r in rows if r["setting"] == "int2" and r["layer"].startswith("conv")]
    if runtime_defect("CONV_2D", 2):  # LiteRT's NaN would be measured, not int2: no numbers
        assert all(r["accuracy_drop_pp"] is None and r["output_cosine"] is None for r in int2_conv)
        assert all("computes CONV_2D with int2 weights wrongly" in r["not_measured"] for r in int2_conv)
    assert all(r["not_measured"] is None for r in rows if r["accuracy_drop_pp"] is not None)


def test_unknown_precision_is_a_one_line_user_error(digits):
    data, teacher, _ = digits
    with pytest.raises(UserError, match=re.escape("unknown precision 'int3'; valid precisions: int8, int4, "
                                                  "int2")) as error:
        layer_sensitivity(teacher, data, precisions=("int4", "int3"))
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("kind", ["missing", "flatten"])
def test_unknown_or_unquantizable_layer_is_a_one_line_user_error(digits, kind):
    data, teacher, _ = digits
    name = "nope" if kind == "missing" else next(layer.name for layer in teacher.layers
                                                   if layer.name.startswith("flatten"))
    message = f"unknown layer '{name}'; quantizable layers: {', '.join(kernel_layers(teacher))}"
    with pytest.raises(UserError, match=re.escape(message)) as error:
        layer_sensitivity(teacher, data, layers=[name])
    assert len(str(error.value).splitlines()) == 1


def test_bad_sparsity_is_a_user_error(digits):
    data, teacher, _ = digits
    with pytest.raises(UserError, match=re.escape("sparsity must be at least 0 and below 1, got 1.5")):
        layer_sensitivity(teacher, data, sparsities=(1.5,))


def test_the_test_split_is_never_read(digits, monkeypatch):
    _, teacher, _ = digits
    dataset = load_dataset("digits", 0)
    assert "x_test" not in {f.name for f in dataclasses.fields(TrainingData)}
    assert not hasattr(dataset.training, "x_test") and not hasattr(dataset.training, "y_test")

    def forbidden(self):
        raise AssertionError("the test split was read")

    for split in ("x_test", "y_test"):
        monkeypatch.setattr(Dataset, split, property(forbidden), raising=False)
    with pytest.raises(AssertionError, match="test split was read"):
        _ = dataset.x_test
    dense = kernel_layers(teacher)[2]
    rows = layer_sensitivity(teacher, dataset.training, precisions=("int4",), sparsities=(0.5,),
                             layers=[dense])
    assert [(r["layer"], r["setting"]) for r in rows] == [(dense, "int4"), (dense, "0.5")]


def test_files_are_written_with_the_same_bytes_every_time(rows, tmp_path):
    write_sensitivity(rows, tmp_path / "a")
    write_sensitivity(rows, tmp_path / "b")
    for name in ("sensitivity.csv", "sensitivity.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = (tmp_path / "a" / "sensitivity.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 1 + len(rows)
    assert (tmp_path / "a" / "sensitivity.png").read_bytes().startswith(b"\x89PNG")


def test_the_sensitivity_command_writes_its_csv_and_never_reads_the_test_split(tmp_path, monkeypatch):
    import dataclasses

    from click.testing import CliRunner

    import compress.orchestrate.teachers
    from compress.cli import cli
    from compress.data.builtin import Dataset

    real = compress.orchestrate.teachers.load_source

    def without_test_split(config, seed):
        source = real(config, seed)
        blind = Dataset(source.dataset.training, None, None)  # any read of the test split fails
        return dataclasses.replace(source, dataset=blind)

    monkeypatch.setattr(compress.orchestrate.teachers, "load_source", without_test_split)
    out = tmp_path / "sens"
    result = CliRunner().invoke(cli, ["sensitivity", "--dataset", "document", "--precision", "int8",
                                      "--precision", "int4", "--out", str(out)])
    assert result.exit_code == 0, (result.stderr, result.exception)
    lines = (out / "sensitivity.csv").read_text().splitlines()
    assert lines[0] == ("layer,method,setting,bytes_share,macs_share,accuracy_drop_pp,output_cosine,"
                        "not_measured")
    assert len(lines) - 1 == 3 * 3  # three Dense layers x (int8, int4, prune 0.8)
    assert (out / "sensitivity.png").is_file()


def test_sensitivity_bad_input_is_one_line(tmp_path):
    from click.testing import CliRunner

    from compress.cli import cli

    for args, message in ((["--precision", "int3"], "unknown precision 'int3'"),
                          (["--layer", "nope"], "nope"), (["--sparsity", "1.5"], "sparsity")):
        result = CliRunner().invoke(cli, ["sensitivity", "--dataset", "document", *args,
                                          "--out", str(tmp_path / "s")])
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
