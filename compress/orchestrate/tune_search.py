"""The search phase of ``compress tune``: Optuna proposes, sweep jobs train and score on the
validation split only, and a journal lets a re-run replay what finished; then the confirmation
of the best candidates plausibly within the budget on the validation splits of the other seeds,
as many as resolving the budget takes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compress.analysis.configurations import paired_test
from compress.analysis.devices import fits
from compress.common.errors import UserError
from compress.orchestrate.plan import device_form, device_needs
from compress.orchestrate.tasks import RowResult, RowTask
from compress.orchestrate.tune_space import (
    MAX_STAGES,
    Space,
    TuneSettings,
    default_point,
    propose,
    random_point,
    search_space,
    stage_names,
    starting_points,
)
from compress.orchestrate.tune_trials import (
    CONFIRM_CANDIDATES,
    SearchResult,
    Trial,
    candidates,
    certified,
    choose,
    describe_trial,
    evidence,
    evidence_seeds,
    final_specs,
    pareto_front,
    rank,
)
from compress.strategies.base import Task

#: The proposals in order (Optuna parameters), replayed from the job cache on a re-run.
JOURNAL = "trials.jsonl"
#: Proposals asked, run and told together.  The sampler learns from a whole batch at once, in
#: proposal order, never from whichever job finished first, so the sequence of proposals is the
#: same on any machine and with any number of workers; a fixed size (not the worker count) keeps
#: it the same across ``--jobs`` too.
BATCH = 8
#: Random chains after the starting points, before TPE models anything, their first stages
#: taken from each family in turn: every family gets its share before the sampler concentrates
#: (quantizers outnumber the other families' strategies several times over).
RANDOM_TRIALS = 24
#: Random draws a family gets to find a chain not proposed before, before the next family's turn.
RANDOM_DRAWS = 20
#: A chain is not trained when a prefix of it, tried earlier, lost this many points more
#: than the budget allows: later stages compress further and do not win accuracy back.
HOPELESS_MARGIN_PP = 1.0
#: Proposals in a row that repeat earlier trials even after widening: the space holds nothing
#: new, so the search ends before the budget ("every configuration was tried").
EXHAUSTED_REPEATS = 400
#: Failed trials in a row after which the search stops: something is broken, not unlucky.
FAILURES_IN_A_ROW = 8


#: Progress callback: (trials finished, trials running, best so far, seconds left).
TuneProgress = Callable[[int, int, str, float], None]


class SearchLoop:
    """The ask-and-tell loop around an Optuna study, a batch of proposals at a time."""

    def __init__(self, study: Any, space: Space, settings: TuneSettings, make_job: Callable[[str], Any],
                 journal: Path, replay: list[dict[str, Any]], teacher: dict[str, Any],
                 measure_speedup: Callable[[Path], float], seed: int) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.make_job, self.journal = make_job, journal
        self.teacher = teacher  # its row on the search split: the accuracy, the predictions
        self.worst = 0.0  # the objective's value for a trial that produced nothing: the teacher's
        self.measure_speedup = measure_speedup
        self.deadline: Callable[[], float] = lambda: math.inf  # seconds the search may still take
        self.trials: list[Trial] = []
        self.by_spec: dict[str, Trial] = {}
        self.waiting: dict[str, list[Any]] = {}  # job key -> the Optuna trials that asked for it
        self.batch: list[Any] = []  # the jobs of the batch being asked, in proposal order
        self.repeats = 0
        self.reused = 0
        self.reused_keys: set[str] = set()  # jobs an earlier tune into this folder finished
        self.widened = 0
        self.random_turns = 0
        self.extensions: list[dict[str, Any]] = []  # a best's next stages, in the order to try
        self.extended = 0
        self.stopped = ""
        self.params: dict[str, dict[str, Any]] = {}  # spec -> the Optuna parameters that made it
        #: spec -> the pipeline proposed, before the stage a device's form adds (``device_form``):
        #: what grows.
        self.proposed: dict[str, str] = {}
        self.deepened: set[str] = set()
        self.replay = len(replay)
        self.rng = np.random.default_rng(seed)
        for params in replay:
            study.enqueue_trial(params, skip_if_exists=False)

    def start(self) -> None:
        """A fresh search: every strategy alone at its defaults first."""
        for point in starting_points(self.space):
            self.study.enqueue_trial(point)

    def _proposed(self) -> set[str]:
        """Every proposal's parameters so far (a queued one's are still its fixed parameters), as
        text: what is not queued again."""
        return {json.dumps(t.params or t.system_attrs.get("fixed_params", {}), sort_keys=True)
                for t in self.study.get_trials(deepcopy=False)}

    def _queue_random(self, families: Sequence[str]) -> bool:
        """Queue a random chain not proposed before, led by the first of ``families`` that still
        has one (a few draws each); False when none has."""
        seen = self._proposed()
        for family in families:
            members = sorted(n for n, f in self.space.families.items() if f == family)
            for _ in range(RANDOM_DRAWS):
                point = random_point(self.space, self.rng, members[int(self.rng.integers(len(members)))])
                if json.dumps(point, sort_keys=True) not in seen:
                    self.study.enqueue_trial(point, skip_if_exists=False)
                    return True
        return False

    def _before_asking(self) -> None:
        """What the next proposal is, when nothing is queued in the study (the starting points,
        a replayed journal): a best's next extension and a random chain led by each family in turn
        alternate until ``RANDOM_TRIALS`` random ones have run, so every family gets its share
        before the search concentrates; then the extensions, then the sampler's own."""
        from optuna.trial import TrialState

        if len(self.trials) < self.replay or \
                self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return
        exploring = self.random_turns < RANDOM_TRIALS
        seen = self._proposed()
        while self.extensions and json.dumps(self.extensions[0], sort_keys=True) in seen:
            self.extensions.pop(0)
        if self.extensions and (not exploring or self.extended <= self.random_turns):
            self.study.enqueue_trial(self.extensions.pop(0))
            self.extended += 1
        elif exploring:
            families = sorted(set(self.space.families.values()))
            turn = self.random_turns % len(families)
            self._queue_random([*families[turn:], *families[:turn]])
            self.random_turns += 1

    # --- asking -------------------------------------------------------------------------
    def ask_batch(self) -> list[Any]:
        """The next batch's jobs, in proposal order.  A proposal that repeats an earlier trial,
        breaks a strategy's rules or extends a hopeless prefix is told at once (it trains
        nothing); a repeat also widens the search with a random chain of the family that has
        been tried least.  Empty when the search is over."""
        from compress.strategies import strategies_from_spec

        self.batch = []
        while len(self.batch) < BATCH and not self._finished(asking=True):
            self._before_asking()
            asked = self.study.ask()
            try:
                proposed = propose(asked, self.space)
                (strategy,) = strategies_from_spec(proposed)
                spec = device_form(strategy, self.settings.deployment())
            except UserError as error:  # a combination a strategy refuses, or the device does
                self._record(asked, self._trial(asked.number, proposed, proposed, "invalid",
                                                reason=str(error)))
                continue
            if asked.number >= self.replay:  # a replayed proposal is in the journal already
                self._journal(asked.params)
            self.params.setdefault(spec, dict(asked.params))
            self.proposed.setdefault(spec, strategy.spec())
            if spec in self.by_spec and self.by_spec[spec].status != "failed":
                self.repeats += 1
                first = self.by_spec[spec]
                self._record(asked, dataclasses.replace(
                    first, number=asked.number, reused=False,
                    reason=f"the configuration of trial {first.number}, not run again"))
                self._widen()
                continue
            self.repeats = 0
            reason = self._hopeless(spec)
            if reason:
                self._record(asked, self._trial(asked.number, spec, strategy.label(), "hopeless",
                                                reason=reason))
                continue
            job = self.make_job(spec)
            if job.key not in self.waiting:
                self.batch.append(job)
            self.waiting.setdefault(job.key, []).append(asked)
        return self.batch

    def _trial(self, number: int, spec: str, label: str, status: str, **fields: Any) -> Trial:
        return Trial(number, spec, label, spec.count(">") + 1, status, family=self.space.family(spec),
                     **fields)

    def _widen(self) -> None:
        """A repeat: queue a random chain led by the family with the fewest distinct trials, so
        the search goes on exploring instead of proposing what it has."""
        tried = {family: 0 for family in self.space.families.values()}
        for trial in self.by_spec.values():
            tried[trial.family or "?"] = tried.get(trial.family or "?", 0) + 1
        if self._queue_random(sorted(tried, key=lambda f: (tried[f], f))):
            self.widened += 1

    def _finished(self, asking: bool = False) -> bool:
        """Whether to stop: the trial limit (counting the batch being asked), failures in a row,
        an exhausted space; the time budget is looked at only between batches."""
        pending = sum(len(asks) for asks in self.waiting.values())
        if self.settings.max_trials is not None and len(self.trials) + pending >= self.settings.max_trials:
            self.stopped = f"{self.settings.max_trials} trials"
        elif len(self.trials) >= FAILURES_IN_A_ROW and all(
                t.status == "failed" for t in self.trials[-FAILURES_IN_A_ROW:]):
            self.stopped = (f"{FAILURES_IN_A_ROW} trials in a row failed, the last with: "
                            f"{self.trials[-1].reason}")
        elif self.repeats >= EXHAUSTED_REPEATS:
            self.stopped = (f"every configuration was tried ({EXHAUSTED_REPEATS} proposals in a row "
                            "repeated earlier trials, random chains included)")
        elif not asking and self.deadline() <= 0 and len(self.trials) >= self.replay:
            self.stopped = "time budget spent"
        return bool(self.stopped)

    def run(self, executor: Any, progress: Callable[[int, int], None]) -> None:
        """Batches until the search is over: each batch's jobs run on ``executor`` (those an
        earlier tune into this folder finished are read instead), then are told in proposal order,
        whatever order they finished in."""
        while not self._finished():
            batch = self.ask_batch()
            results = {job.key: saved for job in batch if (saved := self.reused_result(job)) is not None}
            for result in executor.run([job for job in batch if job.key not in results]):
                results[result.key] = result
                progress(len(self.trials) + len(results), len(batch) - len(results))
            self.tell_batch(results)
            progress(len(self.trials), 0)

    def _hopeless(self, spec: str) -> str | None:
        stages = spec.split(">")
        limit = self.settings.max_accuracy_drop + HOPELESS_MARGIN_PP
        for end in range(len(stages) - 1, 0, -1):
            prefix = self.by_spec.get(">".join(stages[:end]))
            if prefix is not None and prefix.drop_pp is not None and prefix.drop_pp > limit:
                return (f"its first {end} stage(s) already lose {prefix.drop_pp:.2f} pp on validation "
                        f"(trial {prefix.number}), more than the budget plus {HOPELESS_MARGIN_PP:g}")
        return None

    # --- telling ------------------------------------------------------------------------
    def tell_batch(self, results: dict[str, RowResult]) -> None:
        """Tell every proposal of the batch what its job scored, in proposal order."""
        for job in self.batch:
            self.finish(job, results[job.key], reused=job.key in self.reused_keys)
        self.batch = []

    def reused_result(self, job: RowTask) -> RowResult | None:
        """The result an earlier tune into this folder saved for this job, if any."""
        saved = RowResult.read(job.result_path) if job.result_path.exists() else None
        if saved is None:
            return None
        self.reused += 1
        self.reused_keys.add(job.key)
        return saved


    def finish(self, job: RowTask, result: RowResult, *, reused: bool = False) -> None:
        """Tell every Optuna trial that waited for this job what it scored."""
        row = result.row
        waiting = self.waiting.pop(job.key, [])
        trial = self._trial(-1, job.spec, row.get("label") or job.spec, row.get("status", "failed"),
                            reason=row.get("reason"), reused=reused, key=job.key,
                            train_seconds=row.get("train_seconds"))
        if trial.status == "ok":
            trial.val_accuracy = row["accuracy"]
            trial.drop_pp = round(100 * (self.teacher["accuracy"] - row["accuracy"]), 4)
            paired = paired_test([(self.teacher, row)])
            trial.screen = (paired.b, paired.c, paired.n) if paired else None
            trial.size_bytes, trial.size_gzip_bytes = row["size_bytes"], row["size_gzip_bytes"]
            trial.macs = row.get("macs")
            trial.speedup = self.measure_speedup(Path(job.folder) / row["artifact"])
            device = self.settings.microcontroller()
            if device is not None:
                trial.fits, trial.fit = fits(row, device)
        for asked in waiting:
            self._record(asked, dataclasses.replace(trial, number=asked.number))

    def _record(self, asked: Any, trial: Trial) -> None:
        self.trials.append(trial)
        known = self.by_spec.get(trial.spec)
        if trial.status != "invalid" and (known is None or known.status == "failed"):
            self.by_spec[trial.spec] = trial  # a failure is tried again, anything else is final
        value = trial.value(self.settings)
        if value is None:
            # Told as the worst outcome, not as failed: TPE ignores failed trials, so it would
            # keep proposing a configuration that skips (int2 on a convolution) or is hopeless.
            asked.set_constraint("accuracy_drop_pp", 100.0)
            self.study.tell(asked, [self.worst, 0.0])
            return
        asked.set_constraint("accuracy_drop_pp", (trial.drop_pp or 0.0) - self.settings.max_accuracy_drop)
        self.study.tell(asked, [value, trial.val_accuracy])
        self._deepen()

    def _deepen(self) -> None:
        """When a new best within the budget among the pipelines that can still grow appears,
        queue it followed by each stage the rules allow after its last one (at that stage's
        defaults, cheapest first), before the sampler's own proposals: the way the best
        pipelines are found by hand (distill, then prune, then cluster, then quantize), each
        step kept only while the budget holds."""
        if len(self.trials) < self.replay:  # a resumed tune: the journal holds the extensions
            return
        growable = [t for t in self.trials if t.spec in self.proposed
                    and len(stage_names(self.proposed[t.spec])) < MAX_STAGES
                    and self._followers(self.proposed[t.spec])]
        # Accuracy alone decides what grows: a measured speed differs from machine to machine,
        # and the proposals must not.
        best = choose(growable, dataclasses.replace(self.settings, max_slowdown=None))
        if best is None or best.spec in self.deepened:
            return
        self.deepened.add(best.spec)
        grown = self.proposed[best.spec]
        last = stage_names(grown)[-1]
        for follower in self._followers(grown):
            point = {**self.params[best.spec], f"after {last}": follower}
            if self.space.followers[follower]:
                point[f"after {follower}"] = "end"
            point.update(default_point(self.space, follower))
            self.extensions.append(point)

    def _followers(self, spec: str) -> list[str]:
        """The stages that may come next in this pipeline, cheapest first."""
        stages = stage_names(spec)
        followers = [f for f in self.space.followers.get(stages[-1], ()) if f not in stages]
        return sorted(followers, key=lambda name: (self.space.costs[name], name))

    def _journal(self, params: dict[str, Any]) -> None:
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(params) + "\n")


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The proposals of an earlier tune into this folder; a torn last line is dropped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            break
    return entries


def search(
    config: Any, settings: TuneSettings, executor: Any, out: Path,
    progress: TuneProgress | None = None, *, started: float | None = None,
) -> SearchResult:
    """The search phase: propose, train and score on validation only, a batch at a time, until
    the time budget (less the time the confirmation and final measurement will need) or the
    trial limit; earlier only when the space holds nothing new or trials keep failing.

    One function on purpose: the sampler, the teacher's row, the speed-up probe and the time
    reserve for the confirmation are closures over the same search state, built in the order
    the replay of an interrupted tune needs."""
    import optuna

    from compress.measure.latency import measure_latency
    from compress.results.outdir import open_output

    started = time.monotonic() if started is None else started
    seed = config.seeds[0]
    source, teacher, job_for = seed_trials(config, seed, out)
    training = source.dataset.training
    task = Task(teacher.model, teacher.architecture, training.input_shape, training.n_classes,
                training.vocabulary)
    space = search_space(task, settings.strategies, device_needs(settings.deployment()))
    open_output(out, "tune", reuse=True)
    x_val = training.x_val
    base = teacher_row(job_for)
    teacher_flatbuffer = (out / base["artifact"]).read_bytes()

    def speedup(artifact: Path) -> float:
        """Paired interleaved rounds against the teacher while trials train: the ratio, not the
        absolute time, is what survives the contention."""
        timed = measure_latency({"teacher": teacher_flatbuffer, "trial": artifact.read_bytes()}, x_val,
                                reference="teacher", rounds=15, span_seconds=0.0)
        return float(timed["trial"].speedup or 1.0)

    journal_path = out / JOURNAL
    replay = read_journal(journal_path)
    if not replay:
        journal_path.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=len(space.stages) + RANDOM_TRIALS)
        study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
        budget_seconds = settings.time_budget_min * 60

        def left() -> float:
            return budget_seconds - (time.monotonic() - started)

        state = SearchLoop(study, space, settings, job_for, journal_path, replay, base, speedup, seed)
        state.deadline = lambda: left() - reserve()
        state.worst = float(base["size_bytes" if settings.microcontroller() else "size_gzip_bytes"]) \
            if settings.objective == "size" else 1.0

        def reserve() -> float:
            """Seconds the first batch of confirmation and the final measurement will take for the
            present candidates: the confirmation seeds' teachers, their trainings, the serial
            timing."""
            confirming = candidates(state.trials, settings)[:CONFIRM_CANDIDATES]
            if not confirming:
                return 0.0
            specs = final_specs(state.trials, confirming[0], settings, confirming)
            others = len(evidence_seeds(config.seeds, len(training.y_val), settings.max_accuracy_drop)) - 1
            confirmation = sum(t.train_seconds or 0.0 for t in confirming) * others
            return (measure_seconds(state.trials, specs, len(config.seeds), executor.workers)
                    + confirmation / max(1, executor.workers) + others * (teacher.train_seconds or 10))

        if not replay:
            state.start()
        report = progress or (lambda done, running, best, seconds: None)
        search_start = time.monotonic()

        def running(done: int, waiting: int) -> None:
            best = choose(state.trials, settings)
            report(done, waiting, describe_trial(best, settings) if best else "none within the budget yet",
                   max(0.0, left()))

        state.run(executor, running)
    chosen = choose(state.trials, settings)
    front = pareto_front(state.trials, settings)
    return SearchResult(
        trials=state.trials,
        teacher={"val_accuracy": base["accuracy"], "size_bytes": base["size_bytes"],
                 "size_gzip_bytes": base["size_gzip_bytes"], "architecture": teacher.architecture},
        chosen=chosen, front=front,
        final=final_specs(state.trials, chosen, settings) if chosen else [],
        seconds=round(time.monotonic() - search_start, 1), reused=state.reused,
        stopped=state.stopped, widened=state.widened, validation_rows=len(training.y_val),
        space={name: {k: dataclasses.asdict(v) for k, v in params.items()}
               for name, params in space.stages.items()},
        job_makers={seed: job_for},
    )


def seed_trials(config: Any, seed: int, out: Path) -> tuple[Any, Any, Callable[[str], RowTask]]:
    """One seed's data and teacher (refused when weak) and the maker of its validation tasks:
    rows of the one engine's kind, scored on the validation split."""
    from compress.analysis.devices import parse_device
    from compress.common.fileio import cache_dir
    from compress.orchestrate.plan import Step
    from compress.orchestrate.steps import step_row
    from compress.orchestrate.tasks import JOBS_DIR, row_key, task_identity, task_key
    from compress.orchestrate.teachers import check_teacher, load_source, teacher_for
    from compress.results.rows import environment
    from compress.strategies import strategies_from_spec

    source = load_source(config, seed)
    teacher = teacher_for(config, source, seed)
    check_teacher(config, seed, teacher, source.dataset, {})
    selection, env = source.for_selection(), environment(threads=1)
    device = parse_device(config.device)
    identity = task_identity(source.dataset.fingerprint(), teacher, seed, "validation",
                             micro=device is not None and device.micro)

    def job_for(spec: str) -> RowTask:
        (strategy,) = strategies_from_spec(spec)
        key = row_key(identity, strategy, None)
        header = step_row(Step(strategy), teacher, selection, seed, scenario=config.scenario, env=env,
                          run_id=out.name)
        return RowTask(key=key, index=0, spec=spec, control_of=None, seed=seed, config=config,
                       folder=str(out), artifact=f"{JOBS_DIR}/{key}.tflite", header=header,
                       split="validation", stage_key=task_key(identity), cache_dir=str(cache_dir()),
                       identity=identity)

    return source, teacher, job_for


def teacher_row(job_for: Callable[[str], RowTask]) -> dict[str, Any]:
    """The teacher as TFLite on the seed's validation split, measured in this process."""
    from compress.orchestrate.tasks import run_task

    base = run_task(job_for("baseline")).row
    if base.get("status") != "ok":
        raise UserError(f"the teacher cannot be measured as TFLite: {base.get('reason')}")
    return base


def measure_seconds(trials: Sequence[Trial], specs: Sequence[str], seeds: int, workers: int) -> float:
    """Seconds measuring ``specs`` on every seed's test split will take, from the trials' own
    training times, plus the serial timing and the report."""
    seconds = {t.spec: t.train_seconds or 0.0 for t in trials}
    training = sum(seconds.get(s, 0.0) + 5 for s in specs) * seeds
    return training / max(1, workers) + 3 * len(specs) * seeds + 10


def confirm(found: SearchResult, config: Any, settings: TuneSettings, executor: Any, out: Path,
            progress: TuneProgress | None, started: float) -> None:
    """Score the candidates on the validation split of every seed of ``evidence_seeds`` (each
    seed with its own splits and teacher: the user's seeds, then as many more as resolving the
    budget needs), a batch at a time in the fixed sequence of ``candidates``, and choose the best
    of those certified (pooled loss on the confirmation seeds within the budget at
    ``CONFIRM_CONFIDENCE``) before the first that is not (``common.certify``).  Another batch runs
    while the sequence is open, a candidate better than the present choice is left in it, and the
    time left after the final measurement affords it.  ``found`` is updated; the test split is
    still unread."""
    seeds = evidence_seeds(config.seeds, found.validation_rows, settings.max_accuracy_drop)
    makers = {}
    for seed in seeds:
        try:
            makers[seed] = found.job_makers.get(seed) or seed_trials(config, seed, out)[2]
        except UserError as error:  # an added seed's weak teacher is left out, not the whole tune
            if seed in config.seeds:
                raise
            found.seeds_left_out[seed] = str(error)
    seeds = list(makers)
    found.validation_only_seeds = [seed for seed in seeds if seed not in config.seeds]
    teachers = {seed: teacher_row(job_for) for seed, job_for in makers.items()}
    order = candidates(found.trials, settings)
    report = progress or (lambda done, running, best, seconds: None)
    budget = settings.max_accuracy_drop

    def left() -> float:
        return settings.time_budget_min * 60 - (time.monotonic() - started)

    batch, passed = order[:CONFIRM_CANDIDATES], []
    while batch:
        began = time.monotonic()
        jobs = {(t.spec, seed): makers[seed](t.spec) for t in batch for seed in seeds}
        results = {j.key: saved for j in jobs.values()
                   if j.result_path.exists() and (saved := RowResult.read(j.result_path)) is not None}
        for result in executor.run([j for j in jobs.values() if j.key not in results]):
            results[result.key] = result
            report(len(found.trials), len(jobs) - len(results), f"confirming {len(batch)} candidates on "
                   f"the validation splits of seeds {', '.join(map(str, seeds))}", max(0.0, left()))
        for trial in batch:
            found.confirmation[trial.spec] = evidence(
                seeds, teachers, {seed: results[jobs[trial.spec, seed].key].row for seed in seeds})
        passed, still_open = certified(order, found.confirmation, budget)
        best = min(passed, key=lambda t: rank(t, settings)) if passed else None
        pending = [t for t in order if t.spec not in found.confirmation] if still_open else []
        if best is not None and not any(rank(t, settings) < rank(best, settings) for t in pending):
            pending = []  # nothing left to test could be a better choice
        final = final_specs(found.trials, best, settings, passed) if best else []
        affordable = left() - measure_seconds(found.trials, final, len(config.seeds), executor.workers)
        batch = pending[:CONFIRM_CANDIDATES] if affordable > time.monotonic() - began else []
    passed.sort(key=lambda t: rank(t, settings))
    found.chosen = passed[0] if passed else None
    found.final = final_specs(found.trials, found.chosen, settings, passed) if passed else []
