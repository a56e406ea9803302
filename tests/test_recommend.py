from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from compress.analysis.recommend import NothingQualifies, recommend
from compress.cli import cli
from compress.common.errors import UserError
from compress.results.rows import write_results
from tests.rows import fake_row, spine_rows

ROWS = spine_rows(0) + spine_rows(1)


def test_a_control_is_never_recommended():
    # student-scratch is as small as distill and more accurate, yet it is a control.
    choice = recommend(ROWS, max_accuracy_drop=10, objective="size")
    assert choice.best.label == "distill"
    assert all(c.role != "control" for c in (choice.best, choice.runner_up, *choice.ties) if c)


def test_latency_ties_within_noise_break_toward_the_smaller_model():
    rows = [fake_row("baseline", "baseline", role="baseline", latency=3.0),
            fake_row("big-fast", size=30_000, latency=2.00),
            fake_row("small-fast", size=10_000, latency=2.02)]
    choice = recommend(rows, objective="latency")
    assert choice.best.label == "small-fast"  # 1% slower is noise; it is 3x smaller
    assert [t.label for t in choice.ties] == ["big-fast"]
    assert "2.00 µs" in choice.explain() and "2.02 µs" in choice.explain()


def test_accuracy_ties_are_decided_by_a_test_not_by_the_third_decimal():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.900),
            fake_row("a", size=20_000, accuracy=0.902), fake_row("b", size=10_000, accuracy=0.901)]
    assert recommend(rows, objective="accuracy").best.label == "b"


@pytest.mark.parametrize(
    ("limits", "objective", "best", "binding"),
    [
        ({"max_accuracy_drop": 3}, "size", "quantize-int8", "max_accuracy_drop=3"),
        ({"max_size_kib": 10, "max_accuracy_drop": None}, "accuracy", "distill", "max_size_kib=10"),
        # finetune is as large as the teacher: keeping the teacher is cheaper (no training).
        ({"max_latency_us": 2.2, "max_accuracy_drop": 3}, "size", "baseline", "max_latency_us=2.2"),
    ],
)
def test_each_constraint_can_bind(limits, objective, best, binding):
    choice = recommend(ROWS, objective=objective, **limits)
    assert choice.best.label == best
    assert binding in choice.binding


def test_nothing_feasible_names_the_closest_configuration():
    with pytest.raises(NothingQualifies, match=r"closest is .* misses max_size_kib=1 "):
        recommend(ROWS, max_size_kib=1)


@pytest.mark.parametrize("bad", [{"max_size_kib": -1}, {"max_latency_us": math.nan},
                                 {"max_accuracy_drop": -0.5}, {"objective": "speed"}])
def test_bad_budgets_are_user_errors(bad):
    with pytest.raises(UserError):
        recommend(ROWS, **bad)


def test_cli_recommend_shows_the_objective_for_the_choice_and_the_runner_up(tmp_path):
    write_results(tmp_path, ROWS)
    ok = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-accuracy-drop", "3",
                                  "--objective", "latency"])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.splitlines()
    assert lines[0].startswith("Recommended (latency): ") and " µs [" in lines[0]
    runner = next(line for line in lines if "Runner-up" in line)
    assert " µs [" in runner and "student-scratch" not in ok.output
    none = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-size-kib", "0.5"])
    assert none.exit_code == 1
    assert len(none.stderr.strip().splitlines()) == 1 and "closest is" in none.stderr
    negative = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-size-kib", "-3"])
    assert negative.exit_code == 2 and "above 0" in negative.stderr


def test_untimed_rows_still_rank_for_latency():
    """An interrupted run has rows without latency: none is called fastest, the timed ones rank."""
    rows = [fake_row("baseline", "baseline", role="baseline", latency=None),
            fake_row("quantize-dynamic", latency=None, size=10_000)]
    for row in rows:
        row.update(speedup=None, speedup_ci_low=None, speedup_ci_high=None)
    for limits in ({}, {"max_latency_us": 5}):
        with pytest.raises(NothingQualifies, match=r"^no row was timed \(the run stopped before timing"):
            recommend(rows, objective="latency", **limits)
    assert recommend(rows, objective="size").best.label == "quantize-dynamic"
    rows.append(fake_row("prune", "pruning", latency=3.0, size=20_000))
    assert recommend(rows, objective="latency", max_accuracy_drop=100).best.label == "prune"


def test_the_accuracy_objective_says_accuracy_once_and_names_a_tie_as_such():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.90, size=40_000, n_test=100),
            fake_row("quantize-int8", accuracy=0.89, size=10_000, n_test=100),
            fake_row("prune", "pruning", accuracy=0.91, size=40_000, n_test=100)]  # 2 samples apart
    text = recommend(rows, objective="accuracy", max_accuracy_drop=5).explain()
    assert text.count("accuracy 0.890") == 1 and "Tied within measurement noise" in text
    assert "No constraint binds." in text and "best on accuracy overall" not in text


def test_cli_recommend_without_an_accuracy_budget_uses_the_reports(tmp_path):
    """A tiny model that lost 60 points is no answer: with no flag, the report's 1 pp applies."""
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.9, size=40_000),
            fake_row("quantize-int8", accuracy=0.9, size=10_000),
            fake_row("distill", "distillation", accuracy=0.3, size=1_000)]
    write_results(tmp_path, rows)
    default = CliRunner().invoke(cli, ["recommend", str(tmp_path)])
    assert default.exit_code == 0, default.output
    assert default.output.startswith("Recommended (size): quantize-int8")
    anything = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-accuracy-drop", "100"])
    assert anything.output.startswith("Recommended (size): distill")


def test_one_seed_counts_once_and_two_datasets_are_refused(tmp_path):
    """A copied run is not a second seed; a model of another dataset is not an alternative."""
    for name in ("a", "copy"):
        write_results(tmp_path / name, ROWS)
    same = CliRunner().invoke(cli, ["report", str(tmp_path / "a"), str(tmp_path / "copy"),
                                    "--out", str(tmp_path / "merged"), "--format", "csv"])
    alone = CliRunner().invoke(cli, ["report", str(tmp_path / "a"), "--out", str(tmp_path / "alone"),
                                     "--format", "csv,md"])
    assert same.exit_code == 0 and alone.exit_code == 0, same.stderr + alone.stderr
    assert (tmp_path / "merged" / "report.csv").read_text() == (tmp_path / "alone" / "report.csv").read_text()
    other_model = [{**row, "test_correct": row["test_correct"][::-1]} if row["strategy"] == "distill"
                   else row for row in ROWS]
    write_results(tmp_path / "rerun", other_model)
    twice = CliRunner().invoke(cli, ["recommend", str(tmp_path / "a"), str(tmp_path / "rerun")])
    assert twice.exit_code == 2 and "seed 0 of distill is a different model in" in twice.stderr
    write_results(tmp_path / "other", [{**row, "dataset": "digits", "seed": row["seed"] + 5}
                                       for row in ROWS])
    mixed = CliRunner().invoke(cli, ["recommend", str(tmp_path / "a"), str(tmp_path / "other")])
    assert mixed.exit_code == 2 and "differ in dataset or teacher" in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1


def test_the_library_refuses_rows_of_two_datasets_as_the_cli_does():
    other = [{**row, "dataset": "digits", "seed": row["seed"] + 5} for row in ROWS]
    with pytest.raises(UserError, match=r"differ in dataset or teacher .*a recommendation compares"):
        recommend(ROWS + other, max_accuracy_drop=10)


def test_python_gets_the_reports_accuracy_budget_unless_it_drops_it(tmp_path):
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.90, size=40_000),
            fake_row("tiny-wrong", size=1_000, accuracy=0.60),
            fake_row("small-right", size=10_000, accuracy=0.90)]
    assert recommend(rows).best.label == "small-right"  # as `compress recommend` and the report choose
    assert recommend(rows, max_accuracy_drop=None).best.label == "tiny-wrong"
    write_results(tmp_path, rows)
    import pandas as pd

    for given in (tmp_path, str(tmp_path), pd.DataFrame(rows)):  # a run folder, compare()'s frame
        assert recommend(given).best.label == "small-right"
    with pytest.raises(UserError, match="recommend takes result rows"):
        recommend(["baseline", "small-right"])


def test_a_run_that_stopped_early_is_pointed_out(tmp_path):
    import json

    write_results(tmp_path, spine_rows(0))
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r", "complete": False}))
    result = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-accuracy-drop", "10"])
    assert result.exit_code == 0
    assert f"warning: {tmp_path} stopped early: the strategies it did not finish" in result.stderr
    with pytest.warns(RuntimeWarning, match="stopped early"):
        recommend(tmp_path, max_accuracy_drop=10)
