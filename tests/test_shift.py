"""Fine-tuning as adaptation: --scenario shift."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.common.errors import UserError
from compress.data.builtin import load_shift
from compress.results.rows import read_results


@pytest.mark.parametrize("name", ["synthetic", "digits"])
def test_the_target_is_shifted_and_has_few_labels(name):
    source, target = load_shift(name, seed=0)
    assert len(target.training.y_train) == 100
    assert len(target.x_test) > 300
    assert source.input_shape == target.input_shape
    # the same class structure, different features
    assert source.class_names == target.class_names
    assert not np.allclose(source.x_test.mean(axis=0), target.x_test.mean(axis=0), atol=0.05)


def test_too_many_target_labels_is_a_user_error():
    with pytest.raises(UserError, match="does not fit"):
        load_shift("synthetic", 0, target_train=1200)


@pytest.mark.slow  # ~30 s; test_acceptance covers the scenario on digits too
def test_shift_scenario_compares_zero_shot_finetuning_and_scratch(tmp_path):
    out = tmp_path / "shift"
    result = CliRunner().invoke(cli, ["run", "--scenario", "shift", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    rows = read_results(out)
    # each fine-tuning configuration gets its own retrain-scratch control
    assert [r["strategy"] for r in rows] == ["baseline", "finetune", "retrain-scratch", "finetune",
                                             "retrain-scratch"]
    finetunes = [r["spec"] for r in rows if r["strategy"] == "finetune"]
    assert [r["control_of"] for r in rows if r["role"] == "control"] == finetunes
    assert {r["scenario"] for r in rows} == {"shift"}
    assert all(r["train_seconds"] is not None for r in rows)
    report = (out / "report.md").read_text()
    assert "the baseline row is the teacher zero-shot" in report
    section = report.split("## Techniques against their controls")[1].split("## ")[0]
    assert section.count("retrain-scratch") >= 2 and "freeze=-1" in section


def test_shift_needs_a_built_in_dataset(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--scenario", "shift", "--data", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "builds its own source and target" in result.stderr
