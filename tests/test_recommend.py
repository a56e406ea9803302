from __future__ import annotations

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.recommend import NothingQualifies, recommend
from compress.results import write_results
from tests.rows import spine_rows

ROWS = spine_rows(0) + spine_rows(1)


def test_feasible_pick_with_runner_up():
    choice = recommend(ROWS, max_accuracy_drop=10, objective="size")
    # distill and student-scratch are equally small; the tie breaks on accuracy (0.85 > 0.84).
    assert choice.best.strategy == "student-scratch"
    assert choice.runner_up.strategy == "distill"
    assert choice.binding is None


def test_objective_ties_break_deterministically():
    # baseline, prune-magnitude and finetune share one size and latency; accuracy, then the spec
    # name decide, whatever the row order.
    limits = {"max_size_kb": 100, "max_latency_us": 2.2, "max_accuracy_drop": 3}
    picks = {recommend(order, objective="size", **limits).best.strategy
             for order in (ROWS, list(reversed(ROWS)), ROWS[3:] + ROWS[:3])}
    assert picks == {"finetune"}


@pytest.mark.parametrize(
    ("limits", "objective", "best", "binding"),
    [
        ({"max_accuracy_drop": 3}, "size", "quantize-int8", "--max-accuracy-drop 3"),
        ({"max_size_kb": 10}, "accuracy", "student-scratch", "--max-size-kb 10"),
        ({"max_latency_us": 2.2}, "size", "student-scratch", None),
        ({"max_latency_us": 2.2, "max_accuracy_drop": 3}, "size", "finetune", "--max-latency-us 2.2"),
    ],
)
def test_each_constraint_can_bind(limits, objective, best, binding):
    choice = recommend(ROWS, objective=objective, **limits)
    assert choice.best.strategy == best
    if binding is None:
        assert choice.binding is None or "rules out" in choice.binding
    else:
        assert binding in choice.binding


def test_nothing_feasible_names_the_closest_row():
    with pytest.raises(NothingQualifies, match=r"closest is .* misses --max-size-kb 1"):
        recommend(ROWS, max_size_kb=1)


def test_cli_recommend(tmp_path):
    write_results(tmp_path, ROWS)
    ok = CliRunner().invoke(cli, ["recommend", str(tmp_path / "results.jsonl"), "--max-accuracy-drop", "3"])
    assert ok.exit_code == 0 and "Recommended: quantize-int8" in ok.output
    assert "Binding constraint" in ok.output and "Runner-up" in ok.output
    none = CliRunner().invoke(cli, ["recommend", str(tmp_path), "--max-size-kb", "0.5"])
    assert none.exit_code == 1
    assert len(none.stderr.strip().splitlines()) == 1 and "closest is" in none.stderr
