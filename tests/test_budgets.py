"""Training budgets planned for the data size, early stopping, and --time-budget shares."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest

import compress
from compress.models.backend import keras
from compress.models.training import REFERENCE_ROWS, TrainingLimits, fit, plan
from compress.orchestrate.plan import TEACHER_COST, TimeBudget
from compress.results.rows import read_results
from compress.strategies.base import Context
from compress.strategies.distillation import Distill
from compress.strategies.students import _BestEpoch, train_student


def test_a_plan_is_the_budget_as_given_on_the_built_in_problems():
    for rows in (700, 1_150, REFERENCE_ROWS - 1):
        planned = plan(300, rows, batch_size=64, max_steps=24_000)
        assert (planned.epochs, planned.batch_size) == (300, 64)
        assert planned.describe() == "300 epochs"
        assert plan(5, rows).describe() == "5 epochs" and plan(1, rows).describe() == "1 epoch"


def test_on_large_data_batches_grow_and_steps_stay_within_the_reference_cost():
    small = plan(10, REFERENCE_ROWS)
    for rows in (10_000, 35_000, 70_000, 1_000_000):
        planned = plan(10, rows)
        assert planned.batch_size in (64, 128, 256)
        assert planned.epochs >= 1
        # never more steps than the budget costs on the reference data, unless one epoch is more
        assert planned.steps <= max(small.steps + planned.steps_per_epoch, planned.steps_per_epoch)
    assert plan(10, 35_000).batch_size == 256
    assert plan(10, 1_000_000).epochs == 1
    assert "asked" in plan(100, 1_000_000).describe()


def test_an_explicit_step_cap_wins_over_the_reference_cost():
    planned = plan(300, 35_000, batch_size=64, max_steps=6_000)
    assert planned.batch_size == 512
    assert planned.steps == pytest.approx(6_000, abs=planned.steps_per_epoch)


def test_a_spent_allowance_stops_keras_training_after_one_batch(tiny):
    data, teacher, _ = tiny
    model = keras.models.clone_model(teacher)
    limits = TrainingLimits.until(time.time() - 1)
    fit(model, data, epochs=50, lr=1e-3, limits=limits)
    assert limits.cut_short.startswith("1 of ")
    assert "optimizer steps" in limits.cut_short
    unlimited = TrainingLimits()  # the default: nothing is limited, nothing cut
    assert not unlimited.out_of_time() and unlimited.callbacks(model, plan(1, 10)) == []
    assert unlimited.cut_short is None


def test_a_spent_allowance_stops_the_student_loop_after_one_epoch(tiny, tmp_path):
    data, teacher, architecture = tiny
    ctx = Context(data=data, teacher=teacher, teacher_architecture=architecture, seed=0,
                  workdir=tmp_path, limits=TrainingLimits.until(time.time() - 1))
    student, _ = Distill(epochs=300).make_student(ctx)
    trained = train_student(student, ctx, teacher=None, alpha=1.0, temperature=1.0,
                            epochs=300, max_steps=24_000, lr=1e-3, batch_size=64)
    assert trained.startswith("1 of 300 epochs")
    assert ctx.limits.cut_short.startswith("1 of 300 epochs")


def test_early_stopping_keeps_the_best_epochs_weights(tiny):
    data, teacher, _ = tiny
    model = keras.models.clone_model(teacher)
    model.set_weights(teacher.get_weights())
    good = model.get_weights()
    keep = _BestEpoch(model, data, epochs=10, patience=0.2)  # two epochs without a better one
    assert not keep.finished_epoch()
    model.set_weights([np.zeros_like(w) for w in good])  # predicts one class: worse
    assert not keep.finished_epoch()
    assert keep.finished_epoch()  # the second epoch without improvement: stop
    assert keep.restore(plan(10, len(data.y_train))) == "3 of 10 epochs, the best validation epoch (1) kept"
    for restored, best in zip(model.get_weights(), good, strict=True):
        np.testing.assert_array_equal(restored, best)


def test_fit_with_patience_stops_before_its_epochs_run_out(tiny):
    data, teacher, _ = tiny
    model = keras.models.clone_model(teacher)
    seen = keras.callbacks.History()
    fit(model, data, epochs=200, lr=1e-2, limits=TrainingLimits(), callbacks=[seen],
        patience=0.01)  # two epochs' wait
    assert 1 <= len(seen.epoch) < 200


def test_shares_follow_cost_after_the_fixed_cost_of_every_step_left(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    budget = TimeBudget(1100.0, [0.0, 1.0, 3.0])
    assert budget.claim(0.0) == 1100.0  # training nothing, it has nothing to cut
    budget.finished(0.0, 10.0, {"status": "ok"})  # so each step costs 10 s besides its training
    now[0] = 1010.0
    # 90 s left, 20 s of it the two steps' fixed costs: 70 s of training, a quarter of it here
    assert budget.claim(1.0) == pytest.approx(1010.0 + 10.0 + 70.0 / 4)
    now[0] = 1040.0  # the last step gets everything left
    assert budget.claim(3.0) == pytest.approx(1100.0)


def test_two_workers_share_what_is_left_and_a_step_that_cannot_pay_is_not_started(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1000.0)
    budget = TimeBudget(1100.0, [1.0, 1.0, 1.0, 1.0], workers=2)
    assert budget.claim(1.0) == 1050.0  # two workers: twice a quarter of the time left
    budget = TimeBudget(1100.0, [0.0, 1.0, 1.0, 4.0], workers=1)
    budget.finished(0.0, 40.0, {"status": "ok"})  # 40 s a step: 100 s pay for two steps' fixed costs
    budget.claim(0.0)
    # the next two share the 20 s left after their fixed costs; the last (costliest) is left out
    assert budget.claim(1.0) == pytest.approx(1000.0 + 40.0 + 20.0 / 2)
    assert TimeBudget(1100.0, [1.0]).claim(1.0) == 1100.0
    late = TimeBudget(1100.0, [0.0, 1.0])
    late.finished(0.0, 1.0, {"status": "skipped"})  # a row that never ran teaches nothing
    assert late.fixed == []
    late.finished(0.0, 120.0, {"status": "ok"})
    assert late.claim(0.0) < 1000.0  # its fixed cost alone would overrun: not started
    assert TimeBudget(900.0, [0.0]).claim(0.0) < 1000.0  # the budget is over


def test_teachers_claim_the_same_budget_first_against_the_rows_spread_over_the_workers(monkeypatch):
    """One budget for the whole run: each teacher trains alone, so its share is its cost against
    every teacher still to train and the rows' costs divided among the workers."""
    monkeypatch.setattr(time, "time", lambda: 1000.0)
    budget = TimeBudget(1100.0, [2.0, 2.0, 2.0, 2.0], workers=2, alone=[TEACHER_COST, TEACHER_COST])
    first = 1000.0 + 100.0 * TEACHER_COST / (2 * TEACHER_COST + 8.0 / 2)
    assert budget.claim_alone() == pytest.approx(first)
    assert budget.claim_alone() == pytest.approx(1000.0 + 100.0 * TEACHER_COST / (TEACHER_COST + 4.0))
    with pytest.raises(ValueError):  # every teacher has claimed its share
        budget.claim_alone()
    assert budget.claim(2.0) == 1050.0  # then the rows, as before: two workers, a quarter each


def test_a_run_budget_lists_its_teachers_and_its_rows_in_start_order():
    from compress.orchestrate.plan import plan_rows, plan_steps, row_costs, start_order

    planned = plan_rows(plan_steps(["quantize-int8", "distill"]), [0, 1])
    ordered = start_order(planned, workers=2, budgeted=True)
    budget = TimeBudget.for_run(1100.0, ordered, workers=2, teachers=2)
    costs = row_costs(planned)
    assert budget.costs == sorted(costs.values()) == [costs[item.index] for item in ordered]
    assert budget.alone == [TEACHER_COST, TEACHER_COST]


@pytest.mark.slow
def test_time_budget_stops_a_long_strategy_and_its_row_says_so(tmp_path):
    compress.compare("synthetic", ["finetune:epochs=2000", "quantize-int8"], epochs=2,
                     time_budget=0.5, out=tmp_path / "run")
    rows = {row["strategy"]: row for row in read_results(tmp_path / "run")}
    assert {row["status"] for row in rows.values()} == {"ok"}
    stopped = rows["finetune"]["budget_stopped"]
    assert stopped and " of " in stopped and "optimizer steps" in stopped
    assert rows["finetune"]["notes"].startswith("Stopped by the time budget after ")
    assert rows["quantize-int8"]["budget_stopped"] is None  # no training, nothing to stop
    report = (tmp_path / "run" / "report.md").read_text()
    assert "**Stopped by the time budget:** finetune" in report
    assert "**Time budget:** 0.5 min" in report
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["time_budget"] == 0.5


@pytest.mark.parametrize("budget", [0, -1, float("inf"), float("nan")])
def test_time_budget_must_be_positive_minutes(tmp_path, budget):
    with pytest.raises(compress.UserError, match="time_budget must be a number of minutes above 0"):
        compress.compare("synthetic", time_budget=budget, out=tmp_path / "run")


def test_a_worker_task_carries_its_deadline(tmp_path):
    """What a worker process runs, with the deadline the parent claimed for it (the clock is
    time.time(), the same in every process)."""
    import dataclasses
    import pickle

    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.plan import Step
    from compress.orchestrate.steps import step_row
    from compress.orchestrate.tasks import RowTask, run_task
    from compress.orchestrate.teachers import load_source, teacher_for
    from compress.strategies import strategies_from_spec

    config = resolve_config(dataset="synthetic", epochs=1, out=tmp_path / "run")
    source = load_source(config, 0)
    teacher = teacher_for(config, source, 0)
    teacher.model.save(tmp_path / "teacher.keras")
    (tmp_path / "data.pickle").write_bytes(pickle.dumps(source))
    (tmp_path / "run").mkdir()
    (strategy,) = strategies_from_spec("finetune:epochs=2000")
    header = step_row(Step(strategy), teacher, source, 0, scenario="standard", env={}, run_id="run")

    def task(deadline: float) -> RowTask:
        return RowTask(key=f"k{deadline}", index=0, spec=strategy.spec(), control_of=None, seed=0,
                       config=config, folder=str(tmp_path / "run"), artifact="finetune.tflite",
                       header=header, data=str(tmp_path / "data.pickle"),
                       teacher_file=str(tmp_path / "teacher.keras"),
                       teacher=dataclasses.replace(teacher, model=None), deadline=deadline)

    late = run_task(task(time.time() - 1))
    assert late.row["status"] == "skipped" and late.row["budget_stopped"] == "not started"
    cut = run_task(task(time.time() + 1))  # 54,000 steps never fit in a second
    assert cut.row["status"] == "ok" and "optimizer steps" in cut.row["budget_stopped"]
    assert not list((tmp_path / "run" / "jobs").glob("*.json"))  # what the clock cut is never reused


def test_pruning_cut_by_the_budget_says_what_sparsity_it_reached(tiny, tmp_path):
    from compress.strategies.apply import apply_strategy
    from compress.strategies.pruning import PruneMagnitude

    data, teacher, architecture = tiny
    made = apply_strategy(PruneMagnitude(sparsity=0.8, epochs=20), teacher, architecture, data,
                          seed=0, workdir=tmp_path, deadline=time.time() - 1)
    assert made.cut_short.startswith("1 of ")
    assert "the time budget stopped the ramp" in made.notes and "target 80%" in made.notes
    whole = apply_strategy(PruneMagnitude(sparsity=0.8, epochs=2), teacher, architecture, data,
                           seed=0, workdir=tmp_path)
    assert whole.cut_short is None and whole.notes.startswith("80% of the weights")


def test_a_step_the_budget_cannot_start_is_skipped_and_says_why(tmp_path):
    compress.compare("synthetic", ["finetune", "quantize-int8"], epochs=2, time_budget=1e-4,
                     allow_weak_teacher=True, out=tmp_path / "run")
    rows = {row["strategy"]: row for row in read_results(tmp_path / "run")}
    assert rows["baseline"]["status"] == "ok"  # every comparison needs it: it always runs
    for name in ("finetune", "quantize-int8"):
        assert rows[name]["status"] == "skipped" and rows[name]["budget_stopped"] == "not started"
        assert "the time budget left could not pay for this step" in rows[name]["reason"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "**Not started, the time budget was spent:** finetune:epochs=2, quantize-int8." in report


def test_side_by_side_the_costliest_start_first_under_a_budget_the_cheapest():
    from compress.orchestrate.plan import PlannedRow, plan_steps, row_costs, start_order

    planned = [PlannedRow(i, 0, step, f"{i}.tflite") for i, step in
               enumerate(plan_steps(["distill", "finetune", "quantize-int8"]))]
    assert start_order(planned, 1, budgeted=False) == planned  # one process, no budget: as planned
    side_by_side = [item.step.strategy.name for item in start_order(planned, 2, budgeted=False)]
    # workers: the longest first, distill's controls as long as distill (not as a fine-tune:
    # started after it, they once ran last and alone for minutes)
    assert side_by_side == ["distill", "student-scratch", "student-scratch-mixup", "finetune",
                            "baseline", "quantize-int8"]
    ordered = [item.step.strategy.name for item in start_order(planned, 2, budgeted=True)]
    # the cheapest first; distill's controls train what distill trains: they weigh as much
    assert ordered == ["baseline", "quantize-int8", "finetune", "distill", "student-scratch",
                       "student-scratch-mixup"]
    costs = row_costs(planned)
    assert {costs[i.index] for i in planned if i.step.role == "control"} == {Distill.cost}


def test_a_costlier_teacher_trains_fewer_steps_never_more_than_the_reference_problem():
    """The optimizer steps stay within the reference problem's, shrunk in proportion to what a
    sample costs the teacher above ``REFERENCE_COST``; up to that cost a plan is what it was."""
    from compress.models.training import REFERENCE_COST

    for rows in (700, REFERENCE_ROWS - 1, 35_000):
        alone = plan(40, rows)
        assert TrainingLimits(sample_cost=REFERENCE_COST).plan(40, rows) == alone
        for times in (2, 8, 40):
            costly = TrainingLimits(sample_cost=times * REFERENCE_COST).plan(40, rows)
            assert costly.batch_size == alone.batch_size and 1 <= costly.epochs <= alone.epochs
            reference = 40 * math.ceil(REFERENCE_ROWS / 32)
            # rounded up to whole epochs
            assert costly.steps <= reference / times + costly.steps_per_epoch or costly.epochs == 1
            if costly.epochs < 40:
                assert costly.describe().endswith(
                    f"the cap for a teacher {times:.1f}× as costly a sample as the reference; a "
                    "--time-budget lifts it, to train the 40 asked while the time lasts)")
    assert plan(40, 700, cost=10**12).epochs == 1  # never below one epoch
    # a cap the teacher's cost did not set does not name it
    assert plan(300, 700, batch_size=64, max_steps=64, cost=REFERENCE_COST + 1).describe().endswith(
        "the step cap)")
    assert TrainingLimits(sample_cost=None).plan(40, 700).epochs == 40  # an unread cost caps nothing
    # under a time budget the clock is the limit: the budget asked is planned, the allowance cuts it
    timed = TrainingLimits.until(time.time() + 60, sample_cost=40 * REFERENCE_COST)
    assert timed.plan(40, 700) == plan(40, 700)


def test_a_teachers_sample_cost_counts_what_its_flatbuffer_does():
    """forward_macs reads Keras layers and agrees with the TFLite op count on convolutions,
    depthwise, separable and dense layers, nested models and a layer called twice."""
    from compress.models.backend import to_tflite
    from compress.models.cost import ACTIVATION_COST, forward_macs, sample_cost
    from compress.models.flatbuffer import macs
    from tests.zoo import mobilenet_v2

    layers = keras.layers
    inner = keras.Sequential([layers.Conv2D(8, 3, padding="same"), layers.SeparableConv2D(16, 3, strides=2)])
    inputs = keras.Input((16, 16, 3))
    shared = layers.Dense(8)
    hidden = layers.Dense(8)(layers.Flatten()(inner(inputs)))
    nested = keras.Model(inputs, layers.Dense(4)(shared(shared(hidden))))
    for model in (mobilenet_v2((16, 16, 3), 4), nested):
        assert forward_macs(model) == macs(to_tflite(model)) > 0
    dense = keras.Sequential([keras.Input((20,)), layers.Dense(10), layers.Dense(3)])
    assert sample_cost(dense) == 20 * 10 + 10 * 3 + ACTIVATION_COST * (10 + 3)
    # a backbone of free input size inside a fixed one: its sizes are unknown, not guessed small
    backbone = keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(4, 3)])
    inputs = keras.Input((16, 16, 3))
    wrapped = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(backbone(inputs))))
    assert sample_cost(wrapped) is None and forward_macs(wrapped) is None


def test_strategies_of_a_costlier_teacher_say_their_plan_and_distill_matches_its_controls(
        tiny, tmp_path, monkeypatch):
    """Through the one path every row takes: a teacher costlier than the reference trains fewer
    epochs, the notes say why, and distill and its control train the same planned epochs."""
    import compress.models.training
    from compress.strategies.apply import apply_strategy
    from compress.strategies.distillation import StudentScratch
    from compress.strategies.finetuning import Finetune

    data, teacher, architecture = tiny

    def notes(strategy) -> str:
        return apply_strategy(strategy, teacher, architecture, data, seed=0, workdir=tmp_path).notes

    assert notes(Finetune(epochs=5)).startswith("5 epochs more")
    monkeypatch.setattr(compress.models.training, "REFERENCE_COST", 100)
    capped = re.match(r"(\d) epochs? of batch 32 \(5 asked; .*, the cap for a teacher [\d.]+× as costly",
                      notes(Finetune(epochs=5)))
    assert capped and int(capped.group(1)) < 5
    planned = re.compile(r"\d+ epochs of batch \d+ \(40 asked; [\d,]+ optimizer steps")
    assert planned.search(notes(Distill(epochs=40, transfer="none"))).group(0) == \
        planned.search(notes(StudentScratch(epochs=40))).group(0)
