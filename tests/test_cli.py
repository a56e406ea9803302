"""End-to-end: the CLI on tiny settings, its errors, and offline report rebuilding."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.results.rows import FIELDS, read_results

SPINE = ["baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch",
         "student-scratch-mixup", "finetune"]  # each technique is followed by its own controls


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default strategy set with a 2-epoch budget: every spine row, quickly."""
    out = tmp_path_factory.mktemp("run") / "default"
    result = invoke("run", "--epochs", "2", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    return out, result


def test_default_run_writes_every_output(default_run):
    out, result = default_run
    for name in ("results.jsonl", "results.csv", "report.md", "report.html", "accuracy_vs_size.png",
                 "accuracy_vs_latency.png", "teacher_vs_student.png", "size_and_latency.png", "run.json"):
        assert (out / name).is_file(), name
    assert f"report: {out / 'report.md'}" in result.output
    rows = read_results(out)
    assert [r["strategy"] for r in rows] == SPINE
    for row in rows:
        assert row["status"] == "ok", row["reason"]
        assert (out / row["artifact"]).is_file()
        for field in ("size_bytes", "size_gzip_bytes", "params_count", "nonzero_params",
                      "latency_us_p50", "latency_us_p95", "accuracy", "train_seconds",
                      "arena_bytes", "peak_rss_bytes", "model_rss_bytes"):
            assert row[field] is not None, (row["strategy"], field)
        assert row["env"]["inference_threads"] == 1 and row["env"]["versions"]["tensorflow"]
    costs = {row["strategy"]: row["training_cost"] for row in rows}
    assert costs["quantize-int8"] == 0 and costs["distill"] > 0  # a conversion trains nothing
    assert json.loads((out / "run.json").read_text())["complete"] is True


def test_the_default_run_decides_with_evidence(default_run):
    """Issue 14: claims as data, corrected p-values behind every verdict, a 1,000-sample test
    split, no degenerate numbers, a recommendation, and roles on every row."""
    import csv
    import re
    import stat

    out = default_run[0]
    with open(out / "claims.csv") as handle:
        claims = list(csv.DictReader(handle))
    assert claims and {"technique", "claim", "verdict", "p_value", "n_test"} <= set(claims[0])
    for claim in claims:
        if claim["verdict"] in ("confirmed", "refuted") and claim["p_value"]:
            assert float(claim["p_value"]) <= 0.05, claim
    rows = read_results(out)
    assert all(len(r["test_correct"]) >= 1000 for r in rows)
    report = (out / "report.md").read_text()
    assert "## Recommendation" in report
    assert "undefined" not in report and "+400%" not in report
    for percent in re.findall(r"(\d+)%(?! \(above 100%)", report):
        assert int(percent) <= 100 or "above 100%" in report, percent
    distill = next(r for r in rows if r["strategy"] == "distill")
    for row in rows:
        assert row["role"] in ("baseline", "technique", "control")
        if row["role"] == "control":
            assert row["control_of"] == distill["spec"] and row["params"]["epochs"] == 2
    assert stat.S_IMODE((out / "results.jsonl").stat().st_mode) == 0o666 & ~_umask()
    assert "smallest within 1 pp" in default_run[1].output and "html:" in default_run[1].output


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_list_works_without_tensorflow():
    code = ("import sys\nfor name in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization'):\n"
            "    sys.modules[name] = None  # importing it now raises ImportError\n"
            "from compress.cli import cli\ncli.main(['list'], standalone_mode=False)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "prune-magnitude" in done.stdout and "student-scratch" in done.stdout


def test_distill_and_its_control_share_one_student(default_run):
    rows = {r["strategy"]: r for r in read_results(default_run[0])}
    assert rows["distill"]["params_count"] == rows["student-scratch"]["params_count"]
    assert rows["distill"]["params_count"] < rows["baseline"]["params_count"] / 5


def test_report_table_has_a_filled_row_per_strategy(default_run):
    report = (default_run[0] / "report.md").read_text()
    common = report.split("## Common table")[1].split("<details>")[0]
    table = [line for line in common.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(SPINE)
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(cells) and "not timed" not in line, line


def test_report_rebuilds_byte_identical(default_run):
    out = default_run[0]
    files = ("report.md", "report.html", "accuracy_vs_size.png", "teacher_vs_student.png")
    before = [(out / name).read_bytes() for name in files]
    result = invoke("report", str(out / "results.jsonl"))
    assert result.exit_code == 0
    assert [(out / name).read_bytes() for name in files] == before


@pytest.mark.parametrize("command", ["report", "recommend"])
def test_report_and_recommend_never_import_tensorflow(default_run, command):
    code = (
        "import sys; from compress.cli import cli\n"
        f"cli.main([{command!r}, {str(default_run[0])!r}], standalone_mode=False)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'tf_keras' not in sys.modules, 'tf_keras was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_default_report_tests_two_claims_per_technique(default_run):
    report = (default_run[0] / "report.md").read_text()
    section = report.split("## The document's comparison, tested")[1].split("## Figures")[0]
    for technique in ("Quantization", "Pruning", "Distillation", "Fine-tuning"):
        measured = [line for line in section.splitlines()
                    if line.startswith(f"| {technique} |") and "not measured" not in line
                    and "**" in line]
        assert len(measured) >= 2, technique
    assert (default_run[0] / "report.html").is_file()


def test_existing_results_are_never_overwritten(default_run):
    out = default_run[0]
    before = (out / "results.jsonl").read_bytes()
    result = invoke("run", "--epochs", "1", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "already holds a run" in result.stderr and "--overwrite" in result.stderr
    assert (out / "results.jsonl").read_bytes() == before


def test_unknown_strategy_is_one_line_exit_2():
    result = invoke("run", "--strategy", "nope")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no strategy matches 'nope'" in lines[0] and "baseline" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--dataset", "mnist"], "Invalid value for '--dataset'"),
        (["run", "--seed", "x"], "'x' is not a valid integer"),
        (["run", "--epochs", "0"], "--epochs must be a whole number of at least 1"),
        (["run", "--strategy", "distill:alpha=7"], "alpha must be between 0 and 1"),
        (["run", "--strategy", "prune-magnitude:bogus=1"], "unknown parameter 'bogus'"),
        (["report", "/nonexistent/results.jsonl"], "no results file"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_version():
    for command in ([], ["run"], ["list"], ["report"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "compress, version" in invoke("--version").output


def test_list_shows_family_and_summary():
    output = invoke("list").output
    line = next(line for line in output.splitlines() if line.startswith("prune-magnitude"))
    assert "pruning" in line and "tfmot" in line


def test_a_test_only_strategy_shows_in_list_and_runs(tmp_path):
    from compress.strategies import register, unregister
    from tests.test_conformance import HalfPrecisionWeights

    register(HalfPrecisionWeights)
    try:
        assert "test-half-precision" in invoke("list").output
        result = invoke("run", "--epochs", "1", "--strategy", "test-half-*", "--out", str(tmp_path / "r"))
        assert result.exit_code == 0, result.stderr
        rows = read_results(tmp_path / "r")
        assert [r["strategy"] for r in rows] == ["baseline", "test-half-precision"]
        assert rows[1]["status"] == "ok" and rows[1]["spec"] == "test-half-precision:keep_bias=true"
    finally:
        unregister(HalfPrecisionWeights.name)


def test_a_failing_strategy_is_recorded_and_the_run_exits_1(tmp_path):
    from compress.strategies import Compressed, Strategy, register, unregister

    class Broken(Strategy):
        name, family, summary = "test-broken", "x", "always raises"

        def __init__(self) -> None:
            pass

        def compress(self, ctx) -> Compressed:
            raise RuntimeError("deliberate failure")

    register(Broken)
    try:
        result = invoke("run", "--epochs", "1", "--strategy", "test-broken", "--out", str(tmp_path / "r"))
    finally:
        unregister("test-broken")
    assert result.exit_code == 1
    rows = {r["strategy"]: r for r in read_results(tmp_path / "r")}
    assert rows["baseline"]["status"] == "ok"
    assert rows["test-broken"]["status"] == "failed"
    assert rows["test-broken"]["reason"] == "RuntimeError: deliberate failure"
    assert "deliberate failure" in (tmp_path / "r" / "errors.log").read_text()
    assert "test-broken: failed on seed 0: RuntimeError: deliberate failure" in result.stderr


def test_compare_returns_the_same_fields_as_a_dataframe(tmp_path):
    import compress

    frame = compress.compare("synthetic", ["quantize-dynamic"], seed=1, epochs=1, out=tmp_path / "api")
    assert list(frame.columns) == list(FIELDS)
    assert list(frame["strategy"]) == ["baseline", "quantize-dynamic"]
    assert (tmp_path / "api" / "report.md").is_file()
    assert frame.attrs["run_dir"] == str(tmp_path / "api")


def test_bench_prints_both_models_and_the_ratio(default_run):
    out = default_run[0]
    a, b = str(out / "baseline.tflite"), str(out / "quantize-int8.tflite")
    result = invoke("bench", a, b, "--data", "synthetic")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.output.splitlines() if line.startswith("| /")]
    assert len(lines) == 2
    assert "Speed-up vs baseline.tflite" in result.output
    assert "×" in lines[1] and "[" in lines[1]
    assert "inputs: the test split of synthetic (seed 0)" in result.stderr


def test_bench_json_uses_result_field_names(default_run):
    out = default_run[0]
    result = invoke("bench", str(out / "baseline.tflite"), str(out / "distill.tflite"), "--json")
    rows = json.loads(result.output)
    assert [r["artifact"] for r in rows] == [str(out / "baseline.tflite"), str(out / "distill.tflite")]
    for row in rows:
        assert set(row) - {"artifact", "env", "inputs"} <= set(FIELDS)
        assert row["latency_us_p50_ci_low"] <= row["latency_us_p50"] <= row["latency_us_p50_ci_high"]
    assert "accuracy" not in rows[0]  # random inputs: no labels, no accuracy
    assert rows[0]["inputs"] == "256 seeded random rows (no accuracy)"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda out: ["/nonexistent.tflite"], "does not exist"),
        (lambda out: [str(out / "results.csv")], "takes .tflite or .keras"),
        (lambda out: [str(out / "baseline.tflite"), "--data", "digits"], "expects inputs of shape (20,)"),
        (lambda out: [str(out / "baseline.tflite"), "--data", "nope"], "neither a built-in dataset"),
    ],
)
def test_bench_bad_input_is_one_line(default_run, make_args, message):
    result = invoke("bench", *make_args(default_run[0]))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_the_cli_offers_exactly_the_built_in_datasets():
    from compress.cli import DATASETS
    from compress.data.builtin import BUILTIN_DATASETS

    assert tuple(BUILTIN_DATASETS) == DATASETS  # the CLI keeps its own copy to start fast


def test_presets_are_known_to_the_cli():
    from click import Choice

    from compress.cli import run
    from compress.orchestrate.presets import PRESETS

    option = next(p for p in run.params if p.name == "preset")
    assert isinstance(option.type, Choice) and set(option.type.choices) == set(PRESETS)
