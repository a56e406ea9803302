"""Acceptance numbers from the issues, on digits with the CNN teacher and seed 0.

These train real models for a minute or more, so they are marked slow:
`make test-slow` runs them.  They check accuracy and size, never wall-clock speed.
"""

from __future__ import annotations

import numpy as np
import pytest

from compress.api import compare
from compress.measure.size import kernels
from compress.results.rows import read_results
from compress.strategies.pruning import MIN_PRUNED_WEIGHTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_quantization(tmp_path_factory):
    frame = compare("digits", ["quantize-*"], seed=0, out=tmp_path_factory.mktemp("q") / "run")
    return {row.strategy: row for row in frame.itertuples()}


def test_five_quantization_rows_plus_baseline(digits_quantization):
    assert set(digits_quantization) == {"baseline", "quantize-dynamic", "quantize-float16",
                                        "quantize-int8", "quantize-int8-io", "quantize-qat"}
    assert all(row.status == "ok" for row in digits_quantization.values())


def test_int8_is_small_and_keeps_accuracy(digits_quantization):
    base, int8 = digits_quantization["baseline"], digits_quantization["quantize-int8"]
    assert int8.size_bytes <= 0.30 * base.size_bytes
    assert int8.accuracy >= base.accuracy - 0.01
    assert int8.speedup_ci_low <= int8.speedup <= int8.speedup_ci_high


def test_qat_is_at_least_as_accurate_as_post_training_int8(digits_quantization):
    qat, int8 = digits_quantization["quantize-qat"], digits_quantization["quantize-int8"]
    assert qat.accuracy >= int8.accuracy - 0.005


@pytest.fixture(scope="module")
def digits_pruning(tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "run"
    specs = ["prune-magnitude:sparsity=0.8", "prune-2of4", "prune-structured:fraction=0.5", "cluster"]
    frame = compare("digits", specs, seed=0, out=out)
    return {row.strategy: row for row in frame.itertuples()} | {"folder": out}


def test_magnitude_pruning_reaches_the_target_sparsity(digits_pruning):
    assert abs(digits_pruning["prune-magnitude"].pruned_sparsity - 0.8) <= 0.01


def test_two_of_four_on_every_kernel_it_could_prune(digits_pruning):
    flatbuffer = (digits_pruning["folder"] / digits_pruning["prune-2of4"].artifact).read_bytes()
    grouped = 0
    for kernel in kernels(flatbuffer):  # [out, ..., in]: groups of 4 along the input channels
        if kernel.size < MIN_PRUNED_WEIGHTS:
            continue  # the first conv and the output layer are kept dense
        groups = kernel.reshape(kernel.shape[0], -1, 4)
        assert np.all(np.count_nonzero(groups, axis=-1) == 2)
        grouped += 1
    assert grouped == 2


def test_structured_pruning_is_smaller_faster_and_as_accurate(digits_pruning):
    base, pruned = digits_pruning["baseline"], digits_pruning["prune-structured"]
    assert pruned.size_bytes <= 0.40 * base.size_bytes
    assert pruned.macs <= 0.40 * base.macs  # the speed-up itself is a benchmark, not a test
    assert pruned.accuracy >= base.accuracy - 0.01


def test_clustering_keeps_sixteen_values_per_kernel(digits_pruning):
    assert digits_pruning["cluster"].kernel_unique_max <= 16


def test_default_distillation_beats_scratch_on_every_digits_seed(tmp_path):
    frame = compare("digits", ["distill", "student-scratch"], seed=[0, 1, 2], out=tmp_path / "run")
    rows = frame.to_dict("records")
    for seed in (0, 1, 2):
        by_name = {r["strategy"]: r for r in rows if r["seed"] == seed}
        assert by_name["distill"]["accuracy"] > by_name["student-scratch"]["accuracy"], seed
    report = (tmp_path / "run" / "report.md").read_text()
    row = next(line for line in report.splitlines()
               if line.startswith("| distill |") and "| student-scratch (control) |" in line)
    assert "| 3/3 |" in row, row  # the controls table counts the same three wins


def test_the_document_preset_reports_five_seeds_beside_its_078(tmp_path):
    from click.testing import CliRunner

    from compress.cli import cli

    result = CliRunner().invoke(cli, ["run", "--preset", "document", "--out", str(tmp_path / "doc")])
    assert result.exit_code == 0, result.stderr
    report = (tmp_path / "doc" / "report.md").read_text()
    assert "The source document reports 0.78 for this setting" in report
    assert "over 5 seed(s)" in report


def test_chains_on_digits(tmp_path):
    specs = ["prune-magnitude", "quantize-int8", "prune-magnitude>quantize-int8", "deep-compression"]
    rows = {r["strategy"]: r for r in compare("digits", specs, out=tmp_path / "run").to_dict("records")}
    chained, base = rows["prune-magnitude>quantize-int8"], rows["baseline"]
    assert chained["size_gzip_bytes"] < rows["prune-magnitude"]["size_gzip_bytes"]
    assert chained["size_gzip_bytes"] < rows["quantize-int8"]["size_gzip_bytes"]
    assert chained["pruned_sparsity"] >= 0.79
    deep = rows["prune-magnitude>cluster>quantize-int8"]
    assert base["size_gzip_bytes"] / deep["size_gzip_bytes"] >= 10
    assert deep["accuracy"] >= base["accuracy"] - 0.01


def test_shift_scenario_on_digits(tmp_path):
    from click.testing import CliRunner

    from compress.cli import cli

    out = tmp_path / "shift"
    result = CliRunner().invoke(cli, ["run", "--scenario", "shift", "--dataset", "digits", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    rows = {(r["strategy"], r["params"].get("freeze")): r for r in read_results(out)}
    assert rows[("finetune", 0)]["accuracy"] > rows[("baseline", None)]["accuracy"] + 0.5
    assert "Fine-tuning as adaptation" in (out / "report.md").read_text()
