"""compress tune: the space comes from the strategies, selection never reads the test split,
a killed tune resumes from its journal, Dask runs it, and bad input is one line."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import optuna
import pytest

from compress.common.errors import UserError
from compress.data.builtin import Dataset
from compress.models.architectures import student_ladder
from compress.models.backend import keras
from compress.orchestrate.config import resolve_config
from compress.orchestrate.executors import DaskExecutor, SerialExecutor
from compress.orchestrate.tasks import RowResult
from compress.orchestrate.tune import NothingMeetsBudget, TuneInterrupted, confirm, tune
from compress.orchestrate.tune_search import BATCH, JOURNAL, RANDOM_TRIALS, SearchLoop, search
from compress.orchestrate.tune_space import TuneSettings, propose, search_space, starting_points
from compress.orchestrate.tune_trials import (
    MAX_EVIDENCE_SEEDS,
    SearchResult,
    Trial,
    candidates,
    choose,
    evidence,
    evidence_seeds,
    nothing_within_budget,
    pareto_front,
    rows_to_resolve,
)
from compress.report.document import Document
from compress.results.rows import TUNE_FILE
from compress.results.tune_record import TuneRecord
from compress.strategies import Choice, Compressed, Range, RegistryError, Strategy, Task, register, unregister
from compress.strategies.distillation import TUNE_LADDER
from compress.strategies.resolve import strategies_from_spec

ROOT = Path(__file__).resolve().parents[1]
COMPRESS = str(Path(sys.executable).with_name("compress"))
#: Strategies that need no training: a search over them takes seconds.
CHEAP = ("quantize-dynamic", "quantize-int8", "quantize-float16")


@pytest.fixture(scope="module")
def task() -> Task:
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)])
    return Task(model, "mlp:128,64", (20,), 3)


class Halve(Strategy):
    """A plugin as a third party would write it: declares its space, follows pruning."""

    name = "test-halve"
    family = "test-family"
    summary = "Test plugin."
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"share": Range(0.1, 0.9, step=0.1)}
    follows = ("pruning", "distillation")

    def __init__(self, share: float = 0.5) -> None:
        self.share = share

    def compress(self, ctx: Any) -> Compressed:
        return Compressed(model=ctx.teacher)


def test_a_plugins_declared_space_is_searched_with_no_change_to_the_tuner(task):
    register(Halve)
    try:
        space = search_space(task)
        assert space.stages["test-halve"] == {"share": Range(0.1, 0.9, step=0.1)}
        assert "test-halve" in space.followers["prune-magnitude"]
        assert "test-halve" in space.followers["distill"]
        assert "test-halve" not in space.followers["quantize-int8"]  # a TFLite file ends a chain
    finally:
        unregister("test-halve")


def test_the_space_follows_the_declarations(task):
    space = search_space(task)
    assert "baseline" not in space.stages and "student-scratch" not in space.stages  # roles
    assert "finetune" not in space.stages  # declares nothing to tune: it does not compress
    students = space.stages["distill"]["student"].values
    assert set(students) >= {"mlp:32", "mlp:16"}
    # tune's own ladder first, widest first: where the search starts distilling
    ladder = [spec for spec, _ in student_ladder(task.teacher, "mlp:128,64", (20,), 3, **TUNE_LADDER)]
    assert list(students[:len(ladder)]) == ladder
    assert space.followers["distill"] and not space.followers["quantize-int8"]
    assert "distill" not in {f for fs in space.followers.values() for f in fs}  # distill only starts
    points = {point["stage 1"]: point for point in starting_points(space)}
    order = list(points)
    assert order.index("quantize-int8") < order.index("prune-magnitude") < order.index("distill")
    # distill's default student ("auto") is not a named choice: the first, widest one stands in
    assert points["distill"]["distill.student"] == space.stages["distill"]["student"].values[0]
    assert points["prune-magnitude"]["prune-magnitude.sparsity"] == 0.8
    assert search_space(task, ("prune-*",)).stages.keys() == {"prune-magnitude", "prune-2of4",
                                                              "prune-structured"}


def test_a_declared_parameter_the_strategy_does_not_take_is_refused_at_registration():
    class Broken(Halve):
        name = "test-broken"
        tunable: ClassVar[dict[str, Range | Choice] | None] = {"sharre": Range(0.1, 0.9)}

    with pytest.raises(RegistryError, match="sharre"):
        register(Broken)
    with pytest.raises(RegistryError, match="low < high"):
        Range(1, 1)


def test_every_proposal_is_a_valid_spec(task):
    """Random proposals over the whole space: each builds a strategy, chains included."""
    space = search_space(task)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    chains = 0
    for _ in range(300):
        trial = study.ask()
        spec = propose(trial, space)
        (strategy,) = strategies_from_spec(spec)
        assert strategy.spec().count(">") == spec.count(">")
        chains += ">" in spec
        study.tell(trial, 0.0)
    assert chains > 50


def _trial(number: int, spec: str, drop: float, gzip: int, stages: int = 1, speedup: float = 1.0) -> Trial:
    return Trial(number, spec, spec, stages, "ok", val_accuracy=0.9 - drop / 100, drop_pp=drop,
                 size_bytes=gzip * 2, size_gzip_bytes=gzip, speedup=speedup)


def test_choice_is_the_smallest_within_the_budget_and_the_front_is_pareto():
    trials = [_trial(0, "a", 0.0, 1000), _trial(1, "b", 0.8, 400, 2), _trial(2, "c", 1.5, 100, 3),
              _trial(3, "d", 0.9, 900)]
    settings = TuneSettings(max_accuracy_drop=1.0)
    assert choose(trials, settings).spec == "b"
    assert [t.spec for t in pareto_front(trials, settings)] == ["c", "b", "a"]  # d is dominated by b
    assert choose(trials, TuneSettings(max_accuracy_drop=0.1)).spec == "a"
    assert choose(trials[2:3], settings) is None


def test_candidates_are_distinct_models_in_the_fixed_sequence_likeliest_first():
    """The order the confirmation certifies in: lowest loss on the search split first, ties to
    the least compressed; c8 is over the budget; c7's very file by a longer route is c7."""
    trials = [_trial(n, f"c{n}", drop, 1000 - 100 * n) for n, drop in enumerate(
        [0.0, 0.5, 0.9, 0.2, 0.7, 0.6, 0.8, 0.1, 3.0])]
    trials.append(_trial(9, "c7>same", 0.1, 300, stages=2))
    trials.append(_trial(10, "c9", 0.0, 500))
    picked = [t.spec for t in candidates(trials, TuneSettings(max_accuracy_drop=1.0))]
    assert picked == ["c0", "c9", "c7", "c3", "c1", "c5", "c4", "c6", "c2"]


def _scored(correct: str, status: str = "ok") -> dict[str, Any]:
    return {"status": status, "accuracy": correct.count("1") / len(correct), "test_correct": correct}


def test_confirmation_pools_the_other_seeds_and_needs_confidence():
    teachers = {seed: _scored("1" * 100) for seed in (0, 1, 2)}
    rows = {0: _scored("1" * 100), 1: _scored("00" + "1" * 98), 2: _scored("1" * 98 + "00")}
    proof = evidence([0, 1, 2], teachers, rows)
    # the first seed chose the candidate and flatters it: only seeds 1 and 2 are pooled
    assert proof.pooled_seeds == (1, 2) and (proof.b, proof.c, proof.n) == (4, 0, 200)
    assert proof.drops == pytest.approx((0.0, 2.0, 2.0)) and proof.drop_pp == 2.0
    assert 2.5 < proof.upper_pp < 3.0  # 2 pp lost, and 0.8-confident only that it is under ~2.8
    assert not proof.within(2.0) and proof.within(3.0)
    assert proof.record(3.0)["within_budget"] and proof.record(3.0)["discordant"] == [4, 0]
    evened = evidence([0, 1], {**teachers, 1: _scored("10" + "1" * 98)},
                      {0: rows[0], 1: _scored("01" + "1" * 98)})
    assert evened.drop_pp == 0.0 and evened.upper_pp > 0.5  # one each way is no proof of no loss
    failed = evidence([0, 1, 2], teachers, {**rows, 2: {"status": "skipped"}})
    assert failed.drops[2] is None and not failed.within(100.0)
    same = evidence([0, 1], teachers, {0: rows[0], 1: _scored("1" * 100)})
    assert same.drop_pp == 0.0 and 1.0 < same.upper_pp < 2.0  # 100 agreeing rows prove little
    alone = evidence([0], teachers, {0: _scored("0" + "1" * 99)})
    assert alone.pooled_seeds == () and not alone.within(100.0)  # the chooser never confirms itself


def _confirm_offline(monkeypatch, tmp_path, trials: list[Trial], held: set[str],
                     started: float, rows: int = 1000, weak: tuple[int, ...] = ()) -> SearchResult:
    """``confirm`` over finished fake jobs of 1,000 rows (``rows`` is what the search seed's
    split is said to hold): every candidate keeps the budget on the search seed; on the other
    seeds only those in ``held`` do (the others lose 50 of 1,000)."""
    tune_module = importlib.import_module("compress.orchestrate.tune_search")

    def maker(seed: int):
        def job_for(spec: str) -> SimpleNamespace:
            path = tmp_path / f"{spec}-{seed}.json"
            lost = 0 if seed == 0 or spec in held or spec == "baseline" else 50
            row = {**_scored("0" * lost + "1" * (1000 - lost)), "spec": spec}
            path.write_text(json.dumps({"key": path.stem, "row": row}))
            return SimpleNamespace(key=path.stem, spec=spec, seed=seed, result_path=path, index=0)
        return job_for

    def seed_trials(config: Any, seed: int, out: Path) -> tuple[None, None, Any]:
        if seed in weak:
            raise UserError(f"the teacher of seed {seed} is barely better than guessing")
        return None, None, maker(seed)

    monkeypatch.setattr(tune_module, "seed_trials", seed_trials)
    monkeypatch.setattr(tune_module, "teacher_row",
                        lambda job_for: json.loads(job_for("baseline").result_path.read_text())["row"])
    found = SearchResult(trials, {}, None, [], [], 0.0, 0, "", validation_rows=rows)
    settings = TuneSettings(max_accuracy_drop=1.0)
    confirm(found, SimpleNamespace(seeds=[0, 1]), settings, SerialExecutor(), tmp_path, None, started)
    return found


def test_confirmation_certifies_in_a_fixed_sequence_and_stops_at_the_first_failure(monkeypatch, tmp_path):
    """Fourteen candidates whose search-split loss grows as they shrink (c0 the smallest): the
    sequence runs from c13 down; with c13 to c3 holding on the other seeds the second batch
    reaches c2, which fails, so c3 is chosen and c1 and c0 are never tested; a late start leaves
    time for the first batch only, whose best, c8, is chosen."""
    import time

    trials = [_trial(n, f"c{n}", (13 - n) * 0.05, 100 + n) for n in range(14)]
    held = {f"c{n}" for n in range(3, 14)}
    found = _confirm_offline(monkeypatch, tmp_path, trials, held, time.monotonic())
    assert found.chosen.spec == "c3" and found.final[0] == "c3"
    assert list(found.confirmation) == [f"c{n}" for n in range(13, 1, -1)]
    late = _confirm_offline(monkeypatch, tmp_path, trials, held, time.monotonic() - 15 * 60)
    assert late.chosen.spec == "c8" and len(late.confirmation) == 6


def test_a_failure_early_in_the_sequence_ends_it_though_later_ones_would_hold(monkeypatch, tmp_path):
    """Testing on past a failure would spend the error rate again: c10 fails, so c9 to c0, which
    hold, are never certified (c9 and c8, in the same batch, held on their own), no second batch
    runs, and the choice is c11."""
    import time

    trials = [_trial(n, f"c{n}", (13 - n) * 0.05, 100 + n) for n in range(14)]
    held = {f"c{n}" for n in range(14)} - {"c10"}
    found = _confirm_offline(monkeypatch, tmp_path, trials, held, time.monotonic())
    assert found.chosen.spec == "c11" and found.confirmation["c9"].within(1.0)
    assert "c7" not in found.confirmation


def test_the_confirmation_pools_enough_seeds_to_resolve_the_budget(monkeypatch, tmp_path):
    import time

    # 1 pp on digits' 180-row splits: about 700 pooled rows, four seeds besides the search seed
    assert 600 < rows_to_resolve(1.0) < 800 and rows_to_resolve(2.0) < rows_to_resolve(1.0) / 3
    assert evidence_seeds([0, 1, 2], 180, 1.0) == [0, 1, 2, 3, 4]
    assert evidence_seeds([0, 1, 2], 5000, 1.0) == [0, 1, 2]  # the user's own seeds suffice
    assert evidence_seeds([7], 5000, 1.0) == [7, 8]  # one seed still gets a split it did not choose on
    assert len(evidence_seeds([0], 10, 0.0)) - 1 == MAX_EVIDENCE_SEEDS  # a 0 pp budget: the cap
    trials = [_trial(n, f"c{n}", 0.3 if n != 1 else 0.0, 100 + n) for n in range(3)]  # c1 first
    found = _confirm_offline(monkeypatch, tmp_path, trials, {"c1"}, time.monotonic(), rows=400)
    assert found.validation_only_seeds == [2]  # 400-row splits: two besides the search seed
    proof = found.confirmation["c1"]
    assert proof.seeds == (0, 1, 2) and proof.pooled_seeds == (1, 2) and proof.n == 2000
    assert found.chosen.spec == "c1" and not found.confirmation["c0"].within(1.0)
    # an added seed whose teacher is weak is left out, with the reason, not the whole tune
    found = _confirm_offline(monkeypatch, tmp_path, trials, {"c1"}, time.monotonic(), rows=400, weak=(2,))
    assert found.validation_only_seeds == [] and "barely better" in found.seeds_left_out[2]
    assert found.confirmation["c1"].pooled_seeds == (1,) and found.chosen.spec == "c1"


def test_a_finished_trial_is_paired_with_the_teacher_on_the_search_split(task, tmp_path):
    settings = TuneSettings(max_accuracy_drop=1.0, strategies=CHEAP)
    study = optuna.create_study(directions=["minimize", "maximize"])
    teacher = {"accuracy": 1.0, "test_correct": "1" * 180}
    state = SearchLoop(study, search_space(task, CHEAP), settings, lambda spec: None,
                       tmp_path / "journal", [], teacher, lambda path: 1.0, seed=0)
    job = SimpleNamespace(key="k", spec="quantize-int8", folder=str(tmp_path))
    state.waiting[job.key] = [study.ask()]
    row = {"status": "ok", "label": job.spec, "size_bytes": 10, "size_gzip_bytes": 5, "artifact": "x",
           **_scored("000" + "1" * 177)}
    state.finish(job, RowResult(job.key, 0, row))
    (trial,) = state.trials
    assert trial.screen == (3, 0, 180) and trial.drop_pp == pytest.approx(1.6667, abs=1e-3)
    assert trial.candidate(settings) and not trial.admissible(settings)


def test_the_search_split_rules_out_only_what_it_can_tell_is_over_the_budget():
    settings = TuneSettings(max_accuracy_drop=1.0)

    def screened(b: int, c: int, n: int = 180) -> Trial:
        return dataclasses.replace(_trial(0, "s", 100 * (b - c) / n, 100), screen=(b, c, n))

    # 3 of 180 rows lost (1.67 pp): the split cannot tell that from 1 pp, so it goes on to be confirmed
    assert screened(4, 1).candidate(settings) and not screened(4, 1).admissible(settings)
    # ... but not 6 of 180 (3.3 pp), nor 1.67 pp measured on 5,000 rows
    assert not screened(6, 0).candidate(settings)
    assert not screened(100, 17, 5000).candidate(settings)
    assert screened(1, 0).candidate(settings) and screened(1, 0).admissible(settings)
    slow = dataclasses.replace(screened(4, 1), speedup=0.5)
    assert not slow.candidate(settings)  # plausibly accurate, surely too slow
    unpaired = _trial(0, "u", 1.67, 100)  # no predictions to pair: its loss must be within
    assert not unpaired.candidate(settings)


class _Sealed(Dataset):
    """A dataset whose test split raises when read while ``sealed`` holds."""

    sealed: ClassVar[list[bool]] = [True]

    def __getattribute__(self, name: str) -> Any:
        if name in ("x_test", "y_test") and _Sealed.sealed[0]:
            raise AssertionError("the test split was read")
        return super().__getattribute__(name)

    def fingerprint(self) -> str:  # hashing it into the cache key is not a read for selection
        with _unsealed():
            return super().fingerprint()


@contextmanager
def _unsealed():
    _Sealed.sealed[0] = False
    try:
        yield
    finally:
        _Sealed.sealed[0] = True


def test_the_search_never_reads_the_test_split(monkeypatch, tmp_path):
    import compress.orchestrate.teachers

    real = compress.orchestrate.teachers.load_dataset

    def sealed(name: str, seed: int = 0) -> Dataset:
        dataset = real(name, seed)
        return _Sealed(dataset.training, dataset.x_test, dataset.y_test)

    monkeypatch.setattr(compress.orchestrate.teachers, "load_dataset", sealed)
    config = resolve_config(dataset="synthetic", seeds=1)
    settings = TuneSettings(max_accuracy_drop=1.0, max_trials=3, strategies=CHEAP)
    found = search(config, settings, SerialExecutor(), tmp_path / "tune")
    assert [t.status for t in found.trials] == ["ok"] * 3, [t.reason for t in found.trials]
    assert found.chosen is not None
    with pytest.raises(AssertionError, match="test split was read"):  # the wire was live
        _ = sealed("synthetic").y_test


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tune") / "out"
    tune(TuneSettings(max_accuracy_drop=2.0, max_trials=4, strategies=CHEAP), SerialExecutor(),
         out=out, seeds=2, dataset="synthetic")
    return out


def test_tune_writes_the_usual_folder_and_tune_json(tuned):
    summary = json.loads((tuned / TUNE_FILE).read_text())
    assert {"chosen_spec", "objective_value", "max_accuracy_drop", "trials", "front", "test"} <= set(summary)
    assert summary["chosen_spec"] in summary["final"]
    assert summary["test"]["seeds"] == 2
    assert all(t["status"] in ("ok", "skipped") for t in summary["trials"])
    confirmation = summary["confirmation"]  # every candidate scored on both seeds' validation
    assert all(len(proof["drops_pp"]) == 2 for proof in confirmation.values())
    chosen = confirmation[summary["chosen_spec"]]
    assert chosen["pooled_seeds"] == [1] and chosen["within_budget"] and chosen["upper_pp"] <= 2.0
    assert (tuned / "results.jsonl").exists() and (tuned / "report.html").exists()
    report = (tuned / "report.md").read_text()
    assert "Before the choice, candidates were scored again" in report
    assert "## Search (compress tune)" in report and summary["chosen_label"] in report
    rows = [json.loads(line) for line in (tuned / "results.jsonl").read_text().splitlines()]
    assert {r["seed"] for r in rows} == {0, 1}
    assert {r["spec"] for r in rows} == {"baseline", *summary["final"]}
    manifest = json.loads((tuned / "run.json").read_text())  # the one engine's record of its folder
    assert manifest["kind"] == "tune" and set(manifest["teachers"]) == {"0", "1"} and manifest["complete"]
    assert manifest["settings"]["tune"]["max_accuracy_drop"] == 2.0


@pytest.mark.slow
def test_a_killed_tune_resumes_from_its_journal(tmp_path):
    out = tmp_path / "tune"
    settings = TuneSettings(max_accuracy_drop=2.0, max_trials=4, strategies=CHEAP)

    def stop_after_two(done: int, running: int, best: str, left: float) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(TuneInterrupted, match=f"trials are kept in {out}: the same command resumes"):
        tune(settings, SerialExecutor(), out=out, seeds=1, progress=stop_after_two, dataset="synthetic")
    journal = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()]
    assert len(journal) >= 2
    result = tune(settings, SerialExecutor(), out=out, seeds=1, dataset="synthetic")
    assert result.search.reused >= 2  # every finished trial came from the job cache
    replayed = [t for t in result.search.trials if t.number < 2]
    assert all(t.reused for t in replayed)
    assert len((out / JOURNAL).read_text().splitlines()) == len(result.search.trials)


def test_ctrl_c_while_the_teacher_trains_says_how_to_resume(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from compress.cli import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("compress.orchestrate.tune_search"), "seed_trials",
                        interrupted)
    result = CliRunner().invoke(cli, ["tune", "--max-accuracy-drop", "1", "--out", str(tmp_path / "t")])
    assert result.exit_code == 130
    assert result.stderr.strip() == (f"compress: tune interrupted; its finished trials are kept in "
                                     f"{tmp_path / 't'}: the same command resumes from them")


def test_a_budget_no_configuration_meets_names_the_closest(tmp_path):
    settings = TuneSettings(max_accuracy_drop=0.0, max_trials=1, strategies=("quantize-int2",))
    with pytest.raises(NothingMeetsBudget, match="closest, quantize-int2"):
        tune(settings, SerialExecutor(), out=tmp_path / "t", seeds=1, dataset="synthetic")
    assert json.loads((tmp_path / "t" / TUNE_FILE).read_text())["chosen_spec"] is None


@pytest.mark.slow  # a LocalCluster: ~25 s; test_sweep's Dask test stays in the default suite
def test_dask_runs_the_same_search(tuned, tmp_path):
    settings = TuneSettings(max_accuracy_drop=2.0, max_trials=4, strategies=CHEAP)
    config = resolve_config(dataset="synthetic", seeds=1)
    found = search(config, settings, DaskExecutor(1), tmp_path / "dask")
    serial = json.loads((tuned / TUNE_FILE).read_text())["trials"]
    assert [(t.spec, t.val_accuracy) for t in found.trials] == \
        [(t["spec"], t["val_accuracy"]) for t in serial]


@pytest.mark.parametrize(("args", "message"), [
    (["--max-accuracy-drop", "1", "--time-budget", "0"], "--time-budget must be more than 0"),
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop must be 0 or more"),
    (["--max-accuracy-drop", "1", "--objective", "energy"], "'energy' is not one of"),
    (["--max-accuracy-drop", "1", "--seeds", "0"], "--seeds must be at least 1"),
    (["--max-accuracy-drop", "1", "--trials", "0"], "--trials must be at least 1"),
    (["--max-accuracy-drop", "1", "--max-slowdown", "fast"], "--max-slowdown must be a number"),
    (["--max-accuracy-drop", "1", "--max-slowdown", "0.5"], "--max-slowdown must be 1 or more"),
    (["--objective", "size"], "Missing option '--max-accuracy-drop'"),
    (["--max-accuracy-drop", "1", "--device", "mcu:ram=-1k,flash=1m"], "--device 'mcu:ram=-1k,flash=1m': "
     "ram='-1k' is not a size above 0"),
])
def test_bad_tune_input_is_one_line_exit_2(args, message, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([COMPRESS, "tune", "--dataset", "synthetic", *args, "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists() or not any(p.name != ".compress.json" for p in out.iterdir())


@pytest.mark.parametrize(("pattern", "message"), [
    ("nothing-like-this", "no strategy matches 'nothing-like-this'"),
    ("finetune", "no tunable strategy matches strategies=\\[.finetune.\\]"),
])
def test_a_strategy_pattern_that_selects_nothing_tunable_is_one_line(pattern, message, tmp_path):
    settings = TuneSettings(max_accuracy_drop=1.0, strategies=(pattern,))
    with pytest.raises(UserError, match=message):
        tune(settings, SerialExecutor(), out=tmp_path / "out", seeds=1, dataset="synthetic")
    assert not (tmp_path / "out").exists()


def test_settings_are_checked_in_python_too():
    with pytest.raises(UserError, match="objective"):
        TuneSettings(max_accuracy_drop=1, objective="energy").validate()
    assert dataclasses.replace(TuneSettings(1.0), max_trials=None).max_trials is None


class ZeroHalf(Strategy):
    """A start stage that shrinks the gzip size (half of every kernel set to zero) and that
    Halve may follow."""

    name = "test-zero-half"
    family = "pruning"
    summary = "Test plugin."
    tunable: ClassVar[dict[str, Range | Choice] | None] = {}

    def __init__(self) -> None:
        pass

    def compress(self, ctx: Any) -> Compressed:
        for layer in ctx.teacher.layers:
            weights = layer.get_weights()
            if weights:
                weights[0][: len(weights[0]) // 2] = 0
                layer.set_weights(weights)
        return Compressed(model=ctx.teacher)


def test_a_new_best_is_tried_next_with_each_stage_that_may_follow_it(tmp_path):
    for cls in (ZeroHalf, Halve):
        register(cls)
    try:
        settings = TuneSettings(max_accuracy_drop=100.0, max_trials=BATCH + 1,
                                strategies=(ZeroHalf.name, Halve.name), max_slowdown=None)
        found = search(resolve_config(dataset="synthetic", seeds=1), settings, SerialExecutor(),
                       tmp_path / "tune")
    finally:
        for cls in (ZeroHalf, Halve):
            unregister(cls.name)
    # the two starting points (each alone, at its defaults) open the first batch; the best of
    # them, extended, opens the next one, unless a random chain of the first batch was just that
    extension = "test-zero-half>test-halve:share=0.5"
    assert [t.spec for t in found.trials[:2]] == ["test-halve:share=0.5", "test-zero-half"]
    assert found.trials[BATCH].spec == extension or extension in [t.spec for t in found.trials[:BATCH]]
    assert found.trials[1].size_gzip_bytes < found.trials[0].size_gzip_bytes


def test_the_report_says_when_one_seed_both_chose_and_confirmed(tuned):
    from compress.report.sections import tune_section

    summary = json.loads((tuned / TUNE_FILE).read_text())
    text = Document("t", tune_section(TuneRecord.from_dict(summary))).markdown()
    assert "the first seed's split chose the candidates, so it is not trusted" in text
    for proof in summary["confirmation"].values():
        proof.update(drops_pp=proof["drops_pp"][:1], pooled_seeds=[0])
    text = Document("t", tune_section(TuneRecord.from_dict(summary))).markdown()
    assert "not trusted" not in text and "with one seed, the split that chose the candidates also " \
        "confirms them, which flatters them: give --seeds 3" in text


class _ShuffledExecutor:
    """Runs fake jobs and hands their results back in an order of its own, as workers of
    different speeds would: each job's score depends only on its spec."""

    def __init__(self, workers: int, seed: int) -> None:
        self.workers, self.rng = workers, np.random.default_rng(seed)

    def run(self, jobs):
        jobs = list(jobs)
        for index in self.rng.permutation(len(jobs)):
            job = jobs[index]
            digest = int(hashlib.sha256(job.spec.encode()).hexdigest()[:8], 16)
            accuracy = 0.9 - (digest % 60) / 1000  # 0 to 6 pp below the teacher's 0.9
            yield RowResult(job.key, 0, {"status": "ok", "label": job.spec, "accuracy": accuracy,
                                         "size_bytes": 1000 + digest % 5000,
                                         "size_gzip_bytes": 500 + digest % 2500, "artifact": "x",
                                         "train_seconds": 1.0})


def _offline_search(task, tmp_path: Path, settings: TuneSettings, executor: Any) -> SearchLoop:
    space = search_space(task, settings.strategies)
    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True,
                                         n_startup_trials=len(space.stages) + RANDOM_TRIALS)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)

    def make_job(spec: str) -> SimpleNamespace:
        key = hashlib.sha256(spec.encode()).hexdigest()[:12]
        return SimpleNamespace(key=key, spec=spec, folder=str(tmp_path), result_path=tmp_path / "none" / key)

    journal = tmp_path / f"journal-{executor.workers}-{id(executor)}.jsonl"
    state = SearchLoop(study, space, settings, make_job, journal, [], {"accuracy": 0.9}, lambda path: 1.0,
                       seed=0)
    state.start()
    state.run(executor, lambda done, waiting: None)
    return state


def test_the_proposals_are_the_same_whatever_order_jobs_finish_in_and_however_many_workers(task, tmp_path):
    """The sampler learns from a whole batch, in proposal order: the finishing order (the
    machine's speed, the worker count) changes nothing, and --trials N replays a prefix."""
    settings = TuneSettings(max_accuracy_drop=2.0, max_trials=60)
    runs = [_offline_search(task, tmp_path, settings, _ShuffledExecutor(workers, seed))
            for workers, seed in ((1, 0), (2, 1), (4, 2))]
    sequences = [[(t.spec, t.status) for t in run.trials] for run in runs]
    assert sequences[0] == sequences[1] == sequences[2]
    assert len({spec for spec, _ in sequences[0]}) > 30
    shorter = _offline_search(task, tmp_path, dataclasses.replace(settings, max_trials=25),
                              _ShuffledExecutor(2, 7))
    assert [(t.spec, t.status) for t in shorter.trials] == sequences[0][:25]


def test_every_family_leads_some_early_proposals(task, tmp_path):
    """Random chains led by each family in turn alternate with the best's extensions, so no
    family (four of them against eight quantizers) is left unexplored while another's best grows."""
    starting = len(search_space(task).stages)
    settings = TuneSettings(max_accuracy_drop=2.0, max_trials=starting + 2 * RANDOM_TRIALS)
    state = _offline_search(task, tmp_path, settings, _ShuffledExecutor(2, 0))
    random_part = state.trials[starting:]
    families = set(state.space.families.values())
    counts = {family: sum(t.family == family for t in random_part) for family in families}
    assert min(counts.values()) >= RANDOM_TRIALS // len(counts) - 1, counts


@pytest.mark.slow
def test_a_search_that_repeats_itself_widens_instead_of_stopping(tmp_path):
    """One strategy with nine settings: once the sampler has them, its proposals repeat; each
    repeat queues a random configuration instead, and the search stops only when the space holds
    nothing new, never as 'converged' while time is left."""
    register(Halve)
    try:
        space_task = Task(None, "mlp:4", (4,), 2)
        settings = TuneSettings(max_accuracy_drop=5.0, strategies=(Halve.name,), max_slowdown=None)
        state = _offline_search(space_task, tmp_path, settings, _ShuffledExecutor(1, 0))
    finally:
        unregister(Halve.name)
    assert len({t.spec for t in state.trials}) == 9  # every share from 0.1 to 0.9, all tried
    assert state.stopped.startswith("every configuration was tried")
    assert "converged" not in state.stopped


def test_the_speed_guard_keeps_a_slower_model_out_unless_allowed():
    small_slow = _trial(0, "small-slow", 0.2, 100, speedup=0.6)
    big_fast = _trial(1, "big-fast", 0.2, 900, speedup=1.4)
    same_speed = _trial(2, "same-speed", 0.2, 500, speedup=0.98)  # within the timer's margin
    trials = [small_slow, big_fast, same_speed]
    assert choose(trials, TuneSettings(max_accuracy_drop=1.0)) is same_speed
    assert choose(trials, TuneSettings(max_accuracy_drop=1.0, max_slowdown=2.0)) is small_slow
    assert choose(trials, TuneSettings(max_accuracy_drop=1.0, max_slowdown=None)) is small_slow
    untimed = dataclasses.replace(small_slow, speedup=None)
    assert choose([untimed], TuneSettings(max_accuracy_drop=1.0)) is None  # unknown speed: not chosen
    with pytest.raises(UserError, match="max_slowdown must be 1 or more"):
        TuneSettings(max_accuracy_drop=1.0, max_slowdown=0.5).validate()


def test_nothing_fast_enough_says_so_and_names_the_fastest():
    found = SearchResult([_trial(0, "slow", 0.2, 100, speedup=0.5)], {}, None, [], [], 0.0, 0,
                         "time budget spent")
    message = nothing_within_budget(found, TuneSettings(max_accuracy_drop=1.0), 1)
    assert "none runs within 1× the teacher's latency" in message and "0.50× as fast" in message


def test_the_report_says_how_many_samples_a_point_is_and_what_each_family_did(tuned):
    report = (tuned / "report.md").read_text()
    summary = json.loads((tuned / TUNE_FILE).read_text())
    rows = summary["search"]["validation_rows"]
    assert f"On that split of {rows:,} rows one sample is {100 / rows:.2f} pp" in report
    pooled = next(iter(summary["confirmation"].values()))["n"]
    assert f"the confirmation pools {pooled:,} paired rows" in report
    assert "is confirmed when its pooled loss is at least" in report
    assert "Trials per family" in report and "| quantization |" in report
    assert "Plausibly admissible" in report
    assert summary["search"]["stopped"] == "4 trials"


def test_a_repeat_queues_a_new_random_chain_led_by_the_least_tried_family(task, tmp_path):
    from optuna.trial import TrialState

    state = _offline_search(task, tmp_path, TuneSettings(max_accuracy_drop=2.0, max_trials=20),
                            _ShuffledExecutor(1, 0))
    before = state._proposed()
    tried = {family: sum(t.family == family for t in state.by_spec.values())
             for family in set(state.space.families.values())}
    state._widen()
    (queued,) = state.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    params = queued.system_attrs["fixed_params"]
    assert json.dumps(params, sort_keys=True) not in before
    assert state.space.families[params["stage 1"]] == min(sorted(tried), key=lambda f: tried[f])
    assert state.widened == 1
