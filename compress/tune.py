"""``compress tune``: the smallest or fastest configuration within an accuracy budget, searched
across every strategy and every chain the registered strategies allow.

- **The space comes from the strategies.**  Each declares what may vary
  (``Strategy.search_space``), which families it may follow in a chain (``follows``) and
  roughly what it costs (``cost``); a plugin is searched with no change here.
- **Selection never sees the test split.**  Trials are scored on the validation split of
  the first seed (``Source.for_selection``).  The test split is read once, at the end,
  when the chosen configuration and the front are measured over every seed by the same
  jobs, timing and report as ``compress sweep``.
- **The choice must hold on splits that did not choose it.**  Candidates are scored again on
  every other seed's validation split, and a candidate is chosen only when its loss, pooled
  over those seeds' paired predictions, is within the budget with ``CONFIRM_CONFIDENCE``.
- **Every trial is a keyed, cached sweep job**, so a killed ``tune`` re-run with the same
  command replays its journal from the cache, and ``--executor dask`` spreads the trials.
- **Optuna's multi-objective TPE** proposes the trials (cost and validation accuracy, the
  budget as a constraint); docs/tune.md says why it was chosen over the alternatives.
  Cheap candidates go first (every strategy alone at its defaults, cheapest first), and a
  chain whose prefix, tried earlier, already broke the budget is never trained.

This module imports no TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from compress.errors import UserError, option
from compress.fileio import write_atomic
from compress.strategies.base import Choice, Range, RegistryError, Task

OBJECTIVES = ("size", "latency")
TUNE_FILE = "tune.json"
#: The proposals in order (Optuna parameters), replayed from the job cache on a re-run.
JOURNAL = "trials.jsonl"
MAX_STAGES = 4
#: Configurations measured on the test split at the end: the choice, the rest of the
#: validation front within the budget, and the best plain strategy.
FINAL_CONFIGURATIONS = 5
#: Candidates confirmed at a time (the best within the budget on the first seed's validation
#: split, and in the first batch also the most accurate of the rest), scored again on every
#: other seed's validation split before the choice: one split of a few hundred rows cannot tell
#: 0.5 pp from 2 pp, and a choice made on it alone lands outside the budget on the test split.
CONFIRM_CANDIDATES = 6
#: One-sided confidence with which a candidate's loss, pooled over the confirmation seeds'
#: validation pairs, must stay within the budget (docs/tune.md: 0.8 keeps the choice inside the
#: budget on the test split without rejecting every candidate near it).
CONFIRM_CONFIDENCE = 0.8
#: Candidates of the first batch that may share a first stage (one distilled student, say).
SAME_FIRST_STAGE = 2
#: Random proposals after the starting points and before TPE models anything: each draws its
#: chain stage by stage, so long chains are explored before the model narrows the search.
RANDOM_TRIALS = 24
#: A chain is not trained when a prefix of it, tried earlier, lost this many points more
#: than the budget allows: later stages compress further and do not win accuracy back.
HOPELESS_MARGIN_PP = 1.0
#: Proposals in a row that repeat finished trials, after which the search has converged.
CONVERGED_REPEATS = 30
#: Failed trials in a row after which the search stops: something is broken, not unlucky.
FAILURES_IN_A_ROW = 8
DEFAULT_TIME_BUDGET_MIN = 15.0
#: Progress callback: (trials finished, trials running, best so far, seconds left).
TuneProgress = Callable[[int, int, str, float], None]


class NothingMeetsBudget(Exception):
    """No trial met the accuracy budget on validation; the message names the closest one."""


class TuneInterrupted(KeyboardInterrupt):
    """Ctrl-C: the finished trials stay in the tune folder, and the same call into it replays
    them instead of training them again.  Still a KeyboardInterrupt, so a caller's
    ``except Exception`` does not swallow the Ctrl-C."""

    def __init__(self, folder: Path) -> None:
        super().__init__(f"tune interrupted; its finished trials are kept in {folder}: the same "
                         "command resumes from them")
        self.folder = folder


@dataclass(frozen=True)
class TuneSettings:
    """What to search for and for how long."""

    max_accuracy_drop: float
    objective: str = "size"
    time_budget_min: float = DEFAULT_TIME_BUDGET_MIN
    max_trials: int | None = None
    #: Strategy name patterns the search may use (wildcards allowed); empty: every tunable one.
    strategies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.strategies, str):  # one pattern, not its letters
            object.__setattr__(self, "strategies", (self.strategies,))

    def validate(self) -> None:
        drop = self.max_accuracy_drop
        if not (isinstance(drop, (int, float)) and math.isfinite(drop) and drop >= 0):
            raise UserError(f"{option('max_accuracy_drop')} must be 0 or more percentage points, got {drop}")
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        budget = self.time_budget_min
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise UserError(f"{option('time_budget_min')} must be more than 0 minutes, got {budget}")
        if self.max_trials is not None and (isinstance(self.max_trials, bool) or
                                            not isinstance(self.max_trials, int) or self.max_trials < 1):
            raise UserError(f"{option('max_trials')} must be at least 1, got {self.max_trials}")


@dataclass(frozen=True)
class Space:
    """The searchable strategies, their parameters, and which may follow which."""

    stages: dict[str, dict[str, Range | Choice]]
    followers: dict[str, tuple[str, ...]]
    costs: dict[str, float]
    defaults: dict[str, dict[str, Any]]


def search_space(task: Task, patterns: Sequence[str] = ()) -> Space:
    """Read the space from the registered techniques: those whose ``search_space`` is not None,
    restricted to ``patterns``; a chain stage B may follow A when A's family is in B.follows."""
    import inspect

    from compress.strategies import registry

    available = registry()
    allowed = tunable_names(patterns)
    stages: dict[str, dict[str, Range | Choice]] = {}
    for name, cls in available.items():
        if name not in allowed:
            continue
        space = cls.search_space(task)
        if space is None:
            continue
        unknown = sorted(set(space) - set(cls.param_names()))
        if unknown:
            raise RegistryError(f"{name}.search_space names {unknown[0]!r}, not a parameter of it")
        stages[name] = space
    if not stages:
        raise UserError(f"no strategy matching {option('strategies', patterns)} has a search space "
                        f"for this teacher; tunable strategies: {', '.join(tunable_names(()))}")
    followers = {a: tuple(b for b in stages if b != a and not available[a].produces_tflite
                          and available[a].family in available[b].follows) for a in stages}
    defaults = {name: {p.name: p.default for p in inspect.signature(available[name].__init__)
                       .parameters.values() if p.default is not inspect.Parameter.empty}
                for name in stages}
    return Space(stages, followers, {n: available[n].cost for n in stages}, defaults)


def tunable_names(patterns: Sequence[str] = ()) -> list[str]:
    """The techniques that declare a search space, among those ``patterns`` select (all if
    none); a pattern that selects nothing tunable is a one-line error."""
    from compress.strategies import registry, select

    candidates = [cls for pattern in patterns for cls in select(pattern)] if patterns else \
        list(registry().values())
    names = [cls.name for cls in candidates if cls.role == "technique" and cls.tunable is not None]
    if not names:
        everything = [n for n, c in registry().items() if c.role == "technique" and c.tunable is not None]
        raise UserError(f"no tunable strategy matches {option('strategies', patterns)}; tunable "
                        f"strategies: {', '.join(everything)}")
    return names


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return json.dumps(round(value, 6))
    return value if isinstance(value, str) else json.dumps(value)


def propose(trial: Any, space: Space) -> str:
    """Ask an Optuna trial for a pipeline (its first stage, then what follows each stage) and
    for every parameter of its stages; return the spec.  Parameter names carry the stage they
    belong to, so the conditional space stays consistent across trials."""
    stages = [trial.suggest_categorical("stage 1", list(space.stages))]
    while len(stages) < MAX_STAGES and space.followers[stages[-1]]:
        following = trial.suggest_categorical(f"after {stages[-1]}", ["end", *space.followers[stages[-1]]])
        if following == "end" or following in stages:
            break
        stages.append(following)
    specs = []
    for name in stages:
        values = {}
        for key, declared in space.stages[name].items():
            label = f"{name}.{key}"
            if isinstance(declared, Choice):
                values[key] = trial.suggest_categorical(label, list(declared.values))
            elif declared.integer:
                values[key] = trial.suggest_int(label, int(declared.low), int(declared.high),
                                                step=int(declared.step or 1), log=declared.log)
            else:
                values[key] = trial.suggest_float(label, declared.low, declared.high,
                                                  step=declared.step, log=declared.log)
        params = ",".join(f"{k}={_value_text(v)}" for k, v in values.items())
        specs.append(f"{name}:{params}" if params else name)
    return ">".join(specs)


def starting_points(space: Space) -> list[dict[str, Any]]:
    """Every strategy alone at its defaults, cheapest first: Optuna parameters to enqueue."""
    points = []
    for name in sorted(space.stages, key=lambda n: (space.costs[n], n)):
        params: dict[str, Any] = {"stage 1": name}
        if space.followers[name]:
            params[f"after {name}"] = "end"
        params.update(_defaults(space, name))
        points.append(params)
    return points


def _defaults(space: Space, name: str) -> dict[str, Any]:
    """A stage's Optuna parameters at its defaults.  A default outside its declared Choice (a
    student ``auto`` among the named students) takes the Choice's first value, the one the
    strategy lists first; a default outside a Range is left to the sampler."""
    params = {}
    for key, declared in space.stages[name].items():
        default = space.defaults[name].get(key)
        if _within(declared, default):
            params[f"{name}.{key}"] = default
        elif isinstance(declared, Choice):
            params[f"{name}.{key}"] = declared.values[0]
    return params


def _within(declared: Range | Choice, value: Any) -> bool:
    if isinstance(declared, Choice):
        return value in declared.values
    return isinstance(value, (int, float)) and declared.low <= value <= declared.high


@dataclass
class Trial:
    """One proposal and what became of it, as tune.json records it."""

    number: int
    spec: str
    label: str
    stages: int
    status: str  # ok, skipped, failed, hopeless, invalid
    reason: str | None = None
    val_accuracy: float | None = None
    drop_pp: float | None = None
    size_bytes: int | None = None
    size_gzip_bytes: int | None = None
    macs: int | None = None
    speedup: float | None = None
    train_seconds: float | None = None
    reused: bool = False
    key: str | None = None

    def value(self, objective: str) -> float | None:
        """What the objective minimizes: gzip bytes, or latency relative to the teacher."""
        if self.status != "ok":
            return None
        if objective == "size":
            return float(self.size_gzip_bytes or 0)
        return None if not self.speedup else 1 / self.speedup

    def meets(self, budget: float) -> bool:
        return self.status == "ok" and self.drop_pp is not None and self.drop_pp <= budget + 1e-9


@dataclass
class SearchResult:
    """The search phase's outcome, on the validation split of the first seed."""

    trials: list[Trial]
    teacher: dict[str, Any]
    chosen: Trial | None
    front: list[Trial]
    final: list[str]  # specs measured on the test split at the end
    seconds: float
    reused: int
    stopped: str  # why the search ended
    space: dict[str, Any] = field(default_factory=dict)
    #: Candidate spec -> its evidence on every seed's validation split.
    confirmation: dict[str, Evidence] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """A candidate against each seed's teacher on that seed's validation split.

    The decision pools the discordant pairs of the confirmation seeds, every seed but the
    first: the first seed's split chose the candidates, so its pairs flatter them.  With a
    single seed there is nothing else to pool, and the first seed's pairs are used.
    """

    seeds: tuple[int, ...]
    drops: tuple[float | None, ...]  # pp per seed, None where the job failed or skipped
    pooled_seeds: tuple[int, ...]
    b: int  # pooled pairs the teacher got right and the candidate wrong
    c: int  # ... and the other way round
    n: int

    @property
    def drop_pp(self) -> float:
        """Pooled loss on the confirmation seeds (infinite when a seed produced nothing)."""
        return math.inf if not self.n else 100 * (self.b - self.c) / self.n

    @property
    def upper_pp(self) -> float:
        """The loss this evidence cannot rule out at ``CONFIRM_CONFIDENCE`` (one-sided): the Wald
        bound for paired proportions, with at least 3 discordant pairs (the rule of three, as
        the report's paired tests use) so that identical predictions on a few hundred rows do
        not prove a loss of exactly zero."""
        from compress.stats import paired_se

        if not self.n:
            return math.inf
        se = paired_se(self.b, self.c, self.n, min_discordant=3)
        return 100 * ((self.b - self.c) / self.n + NormalDist().inv_cdf(CONFIRM_CONFIDENCE) * se)

    def within(self, budget: float) -> bool:
        return self.upper_pp <= budget + 1e-9

    def record(self, budget: float) -> dict[str, Any]:
        """What tune.json keeps, enough to redo the decision offline."""
        return {"seeds": list(self.seeds),
                "drops_pp": [None if d is None else round(d, 4) for d in self.drops],
                "pooled_seeds": list(self.pooled_seeds), "discordant": [self.b, self.c], "n": self.n,
                "drop_pp": _finite(self.drop_pp), "upper_pp": _finite(self.upper_pp),
                "confidence": CONFIRM_CONFIDENCE, "within_budget": self.within(budget)}


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def pareto_front(trials: Sequence[Trial], objective: str) -> list[Trial]:
    """Finished trials no other beats on both the objective and validation accuracy, by objective."""
    done = [t for t in trials if t.value(objective) is not None and t.val_accuracy is not None]
    unique = list({t.spec: t for t in done}.values())
    front = [t for t in unique if not any(
        o.value(objective) <= t.value(objective) and o.val_accuracy >= t.val_accuracy  # type: ignore[operator]
        and (o.value(objective), o.val_accuracy) != (t.value(objective), t.val_accuracy)
        for o in unique)]
    return sorted(front, key=lambda t: (t.value(objective), -(t.val_accuracy or 0)))


def _rank(trial: Trial, settings: TuneSettings) -> tuple[float, float, int]:
    """Best objective first; ties go to higher accuracy, then to the simpler pipeline."""
    return (trial.value(settings.objective) or 0.0, -(trial.val_accuracy or 0), trial.stages)


def choose(trials: Sequence[Trial], settings: TuneSettings) -> Trial | None:
    """The best objective among the trials within the budget."""
    feasible = [t for t in trials if t.meets(settings.max_accuracy_drop)
                and t.value(settings.objective) is not None]
    return min(feasible, key=lambda t: _rank(t, settings)) if feasible else None


def candidates(trials: Sequence[Trial], settings: TuneSettings) -> list[Trial]:
    """Every distinct model within the budget on the search seed, in the order they are
    confirmed: best objective first, but at most ``SAME_FIRST_STAGE`` of the first batch share a
    first stage (chains of one distilled student share its loss on the other seeds, so five of
    them are confirmed or rejected together), and the most accurate of the rest is moved into
    the first batch as a safe fallback.  Specs that produced the same file (a mixed-precision
    search that settles on the same precisions at several ``max_drop``) are one candidate, the
    simplest spec first."""
    feasible = sorted({t.spec: t for t in trials if t.meets(settings.max_accuracy_drop)
                       and t.value(settings.objective) is not None}.values(),
                      key=lambda t: _rank(t, settings))
    seen: set[tuple[Any, ...]] = set()
    first: list[Trial] = []
    rest: list[Trial] = []
    for trial in feasible:
        outcome = (trial.size_bytes, trial.size_gzip_bytes, trial.val_accuracy)
        if outcome in seen:
            continue
        seen.add(outcome)
        stage = trial.spec.split(">")[0]
        sharing = sum(t.spec.split(">")[0] == stage for t in first)
        room = len(first) < CONFIRM_CANDIDATES - 1 and sharing < SAME_FIRST_STAGE
        (first if room else rest).append(trial)
    safest = min(rest, key=lambda t: (t.drop_pp or 0.0, _rank(t, settings)), default=None)
    if safest is not None:
        rest.remove(safest)
    return [*first, *([safest] if safest else []), *rest]


def final_specs(trials: Sequence[Trial], chosen: Trial, settings: TuneSettings,
                confirmed: Sequence[Trial] = ()) -> list[str]:
    """What the test split measures: the choice, the best plain strategy (one stage) within the
    budget, so the report can say what the search added, then the other confirmed candidates or
    the validation front."""
    budget = settings.max_accuracy_drop
    front = [t for t in pareto_front(trials, settings.objective) if t.meets(budget)]
    plain = choose([t for t in trials if t.stages == 1], settings)
    specs = [chosen.spec]
    for trial in [*([plain] if plain else []), *(confirmed or front)]:
        if trial.spec not in specs and len(specs) < FINAL_CONFIGURATIONS:
            specs.append(trial.spec)
    return specs


class _Search:
    """The ask-and-tell loop around an Optuna study, fed to an executor as a lazy job stream."""

    def __init__(self, study: Any, space: Space, settings: TuneSettings, make_job: Callable[[str], Any],
                 journal: Path, replay: list[dict[str, Any]], teacher_accuracy: float,
                 measure_speedup: Callable[[Path], float] | None) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.make_job, self.journal = make_job, journal
        self.teacher_accuracy = teacher_accuracy
        self.worst = 0.0  # the objective's value for a trial that produced nothing: the teacher's
        self.measure_speedup = measure_speedup
        self.deadline: Callable[[], float] = lambda: math.inf  # seconds the search may still take
        self.trials: list[Trial] = []
        self.by_spec: dict[str, Trial] = {}
        self.running: dict[str, list[Any]] = {}  # job key -> Optuna trials waiting for it
        self.submitted: dict[str, Any] = {}  # job key -> job
        self.repeats = 0
        self.reused = 0
        self.stopped = ""
        self.params: dict[str, dict[str, Any]] = {}  # spec -> the Optuna parameters that made it
        self.deepened: set[str] = set()
        self.replay = len(replay)
        for params in replay:
            study.enqueue_trial(params, skip_if_exists=False)

    # --- the stream of jobs ------------------------------------------------------------
    def jobs(self) -> Iterator[Any]:
        from compress.strategies import strategies_from_spec

        while not self._finished():
            asked = self.study.ask()
            try:
                proposed = propose(asked, self.space)
                (strategy,) = strategies_from_spec(proposed)
                spec = strategy.spec()
            except UserError as error:  # a combination a strategy refuses to build
                self._record(asked, Trial(asked.number, proposed, proposed, proposed.count(">") + 1,
                                          "invalid", reason=str(error)))
                continue
            if asked.number >= self.replay:  # a replayed proposal is in the journal already
                self._journal(asked.params)
            self.params.setdefault(spec, dict(asked.params))
            stages = spec.count(">") + 1
            if spec in self.by_spec and self.by_spec[spec].status != "failed":
                self.repeats += 1
                first = self.by_spec[spec]
                self._record(asked, dataclasses.replace(
                    first, number=asked.number, reused=False,
                    reason=f"the configuration of trial {first.number}, not run again"))
                continue
            self.repeats = 0
            reason = self._hopeless(spec)
            if reason:
                self._record(asked, Trial(asked.number, spec, strategy.label(), stages, "hopeless",
                                          reason=reason))
                continue
            job = self.make_job(spec)
            if job.key in self.running:
                self.running[job.key].append(asked)
                continue
            self.running[job.key] = [asked]
            self.submitted[job.key] = job
            if job.result_path.exists():  # finished by an earlier tune into this folder
                self.reused += 1
                self.finish(json.loads(job.result_path.read_text()), reused=True)
                continue
            yield job

    def _finished(self) -> bool:
        if self.settings.max_trials is not None and len(self.trials) >= self.settings.max_trials:
            self.stopped = f"{self.settings.max_trials} trials"
        elif len(self.trials) >= FAILURES_IN_A_ROW and all(
                t.status == "failed" for t in self.trials[-FAILURES_IN_A_ROW:]):
            self.stopped = (f"{FAILURES_IN_A_ROW} trials in a row failed, the last with: "
                            f"{self.trials[-1].reason}")
        elif self.repeats >= CONVERGED_REPEATS:
            self.stopped = f"converged ({CONVERGED_REPEATS} proposals in a row repeated earlier trials)"
        elif self.deadline() <= 0 and len(self.trials) >= self.replay:
            self.stopped = "time budget"
        return bool(self.stopped)

    def _hopeless(self, spec: str) -> str | None:
        stages = spec.split(">")
        limit = self.settings.max_accuracy_drop + HOPELESS_MARGIN_PP
        for end in range(len(stages) - 1, 0, -1):
            prefix = self.by_spec.get(">".join(stages[:end]))
            if prefix is not None and prefix.drop_pp is not None and prefix.drop_pp > limit:
                return (f"its first {end} stage(s) already lose {prefix.drop_pp:.2f} pp on validation "
                        f"(trial {prefix.number}), more than the budget plus {HOPELESS_MARGIN_PP:g}")
        return None

    # --- results ------------------------------------------------------------------------
    def finish(self, result: dict[str, Any], *, reused: bool = False) -> None:
        """Tell every Optuna trial that waited for this job what it scored."""
        row = result["row"]
        job = self.submitted.pop(result["key"])
        waiting = self.running.pop(job.key, [])
        stages = job.spec.count(">") + 1
        trial = Trial(-1, job.spec, row.get("label") or job.spec, stages, row.get("status", "failed"),
                      reason=row.get("reason"), reused=reused, key=job.key,
                      train_seconds=row.get("train_seconds"))
        if trial.status == "ok":
            trial.val_accuracy = row["accuracy"]
            trial.drop_pp = round(100 * (self.teacher_accuracy - row["accuracy"]), 4)
            trial.size_bytes, trial.size_gzip_bytes = row["size_bytes"], row["size_gzip_bytes"]
            trial.macs = row.get("macs")
            if self.measure_speedup is not None:
                trial.speedup = self.measure_speedup(Path(job.out) / row["artifact"])
        for asked in waiting:
            self._record(asked, dataclasses.replace(trial, number=asked.number))

    def _record(self, asked: Any, trial: Trial) -> None:

        self.trials.append(trial)
        known = self.by_spec.get(trial.spec)
        if trial.status != "invalid" and (known is None or known.status == "failed"):
            self.by_spec[trial.spec] = trial  # a failure is tried again, anything else is final
        value = trial.value(self.settings.objective)
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
        try it next followed by each stage the rules allow after its last one (at that stage's
        defaults, cheapest first), before the sampler's own proposals: the way the best
        pipelines are found by hand (distill, then prune, then cluster, then quantize), each
        step kept only while the budget holds."""
        if len(self.trials) < self.replay:  # a resumed tune: the journal holds the extensions
            return
        growable = [t for t in self.trials if t.stages < MAX_STAGES and self._followers(t.spec)]
        best = choose(growable, self.settings)
        if best is None or best.spec in self.deepened or best.spec not in self.params:
            return
        self.deepened.add(best.spec)
        last = _stage_names(best.spec)[-1]
        for follower in self._followers(best.spec):
            point = {**self.params[best.spec], f"after {last}": follower}
            if self.space.followers[follower]:
                point[f"after {follower}"] = "end"
            point.update(_defaults(self.space, follower))
            self.study.enqueue_trial(point, skip_if_exists=True)

    def _followers(self, spec: str) -> list[str]:
        """The stages that may come next in this pipeline, cheapest first."""
        stages = _stage_names(spec)
        followers = [f for f in self.space.followers.get(stages[-1], ()) if f not in stages]
        return sorted(followers, key=lambda name: (self.space.costs[name], name))

    def _journal(self, params: dict[str, Any]) -> None:
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(params) + "\n")


def _stage_names(spec: str) -> list[str]:
    return [part.split(":", 1)[0] for part in spec.split(">")]


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
    """The search phase: propose, train and score on validation only, until the time budget
    (less the time the final measurement will need), the trial limit or convergence."""
    import optuna

    from compress.measure import measure_latency
    from compress.outdir import open_output

    started = time.monotonic() if started is None else started
    seed = config.seeds[0]
    source, teacher, job_for = _seed_trials(config, seed, out)
    training = source.dataset.training
    task = Task(teacher.model, teacher.architecture, training.input_shape, training.n_classes)
    space = search_space(task, settings.strategies)
    open_output(out, "tune", reuse=True)
    x_val = training.x_val
    base = _teacher_row(job_for)
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

        state = _Search(study, space, settings, job_for, journal_path, replay, base["accuracy"],
                        speedup if settings.objective == "latency" else None)
        state.deadline = lambda: left() - reserve()
        state.worst = float(base["size_gzip_bytes"]) if settings.objective == "size" else 1.0

        def reserve() -> float:
            """Seconds the first batch of confirmation and the final measurement will take for the
            present candidates: every other seed's teacher, their trainings, the serial timing."""
            chosen = choose(state.trials, settings)
            if chosen is None:
                return 0.0
            confirming = candidates(state.trials, settings)[:CONFIRM_CANDIDATES]
            specs = final_specs(state.trials, chosen, settings, confirming)
            others = len(config.seeds) - 1
            confirmation = sum(t.train_seconds or 0.0 for t in confirming) * others
            return (_measure_seconds(state.trials, specs, len(config.seeds), executor.workers)
                    + confirmation / max(1, executor.workers) + others * (teacher.train_seconds or 10))

        if not replay:
            for point in starting_points(space):
                study.enqueue_trial(point)
        report = progress or (lambda done, running, best, seconds: None)
        search_start = time.monotonic()
        for result in executor.run(state.jobs()):
            state.finish(result)
            best = choose(state.trials, settings)
            report(len(state.trials), len(state.running), _describe(best, settings) if best else
                   "none within the budget yet", max(0.0, left()))
    chosen = choose(state.trials, settings)
    front = pareto_front(state.trials, settings.objective)
    return SearchResult(
        trials=state.trials,
        teacher={"val_accuracy": base["accuracy"], "size_bytes": base["size_bytes"],
                 "size_gzip_bytes": base["size_gzip_bytes"], "architecture": teacher.architecture},
        chosen=chosen, front=front,
        final=final_specs(state.trials, chosen, settings) if chosen else [],
        seconds=round(time.monotonic() - search_start, 1), reused=state.reused,
        stopped=state.stopped or "every proposal ran",
        space={name: {k: dataclasses.asdict(v) for k, v in params.items()}
               for name, params in space.stages.items()},
    )


def _seed_trials(config: Any, seed: int, out: Path) -> tuple[Any, Any, Callable[[str], Any]]:
    """One seed's data and teacher (refused when weak) and the maker of its validation jobs."""
    from compress.results import environment
    from compress.runner import check_teacher, load_source, teacher_for
    from compress.sweep import make_job

    source = load_source(config, seed)
    teacher = teacher_for(config, source, seed)
    check_teacher(config, seed, teacher, source.dataset, {})
    data_key, env = source.dataset.fingerprint(), environment(threads=1)

    def job_for(spec: str) -> Any:
        return make_job(spec, seed, config, data_key, teacher.cache_key, out, (), env,
                        split="validation")

    return source, teacher, job_for


def _teacher_row(job_for: Callable[[str], Any]) -> dict[str, Any]:
    """The teacher as TFLite on the seed's validation split, measured in this process."""
    from compress.sweep import run_job

    base = run_job(job_for("baseline"))["row"]
    if base.get("status") != "ok":
        raise UserError(f"the teacher cannot be measured as TFLite: {base.get('reason')}")
    return base


def _describe(trial: Trial, settings: TuneSettings) -> str:
    if settings.objective == "size":
        cost = f"{(trial.size_gzip_bytes or 0) / 1024:.1f} KiB gzip"
    else:
        cost = f"{trial.speedup or 0:.2f}x faster"
    return f"{trial.label}: {cost}, {trial.drop_pp + 0.0:+.2f} pp lost on validation"  # never -0.00


@dataclass
class TuneResult:
    out: Path
    search: SearchResult
    rows: list[dict[str, Any]]
    summary: dict[str, Any]


def tune(
    settings: TuneSettings, executor: Any, *, out: Path | None = None, seeds: int = 3,
    progress: TuneProgress | None = None, **options: Any,
) -> TuneResult:
    """Search on validation, then measure the choice and the front on the test split over
    ``seeds`` seeds; write tune.json beside the usual results and report.

    ``options`` choose data and teacher as for ``compress.compare`` (``dataset``, ``data``,
    ``target``, ``teacher``, ...).  Raises NothingMeetsBudget (after writing tune.json) when
    no trial met the budget, TuneInterrupted on Ctrl-C (during the final measurement, after
    writing a report of what was measured, marked incomplete).
    """
    started = time.monotonic()
    settings.validate()
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UserError(f"{option('seeds')} must be at least 1, got {seeds}")
    from compress.outdir import check_output
    from compress.runner import resolve_config
    from compress.sweep import SweepInterrupted, run_jobs

    tunable_names(settings.strategies)  # a typo is one line before any teacher is trained
    config = resolve_config(seeds=seeds, **options)
    folder = Path(out) if out is not None else Path("reports") / f"tune-{_data_name(config)}"
    check_output(folder, "tune", reuse=True)
    try:
        found = search(config, settings, executor, folder, progress, started=started)
        if found.chosen is not None:
            confirm(found, config, settings, executor, folder, progress, started)
    except KeyboardInterrupt:
        raise TuneInterrupted(folder) from None
    if found.chosen is None:
        _write(folder, settings, found, None)
        raise NothingMeetsBudget(_nothing(found, settings, len(config.seeds)))
    run = dataclasses.replace(config, strategies=("baseline", *found.final))
    holder: dict[str, Any] = {}

    def write_tune(folder: Path) -> None:
        from compress.results import read_results

        holder["summary"] = _write(folder, settings, found, read_results(folder))

    report = progress or (lambda done, running, best, seconds: None)

    def measuring(done: int, total: int, failed: int, what: str) -> None:
        left = settings.time_budget_min * 60 - (time.monotonic() - started)
        report(len(found.trials), total - done, f"measuring on the test split: {done}/{total} jobs "
               f"({failed} failed), {what}", max(0.0, left))

    try:
        measured = run_jobs(run, folder, executor, kind="tune", progress=measuring, settings={
            "tune": dataclasses.asdict(settings), "seeds": seeds,
            "run": json.loads(json.dumps(dataclasses.asdict(config), default=str))}, extra=write_tune)
    except SweepInterrupted as stop:  # its report of the measured jobs is written, marked incomplete
        raise TuneInterrupted(folder) from stop
    return TuneResult(folder, found, measured.rows, holder.get("summary", {}))


def confirm(found: SearchResult, config: Any, settings: TuneSettings, executor: Any, out: Path,
            progress: TuneProgress | None, started: float) -> None:
    """Score the candidates on every seed's validation split (each seed with its own splits and
    teacher), a batch at a time, best objective first, and choose the best whose pooled loss on
    the confirmation seeds is within the budget at ``CONFIRM_CONFIDENCE``.  Another batch runs
    while a candidate better than the present choice is unconfirmed and the time left after the
    final measurement affords it.  ``found`` is updated; the test split is still unread."""
    seeds = list(config.seeds)
    makers = {seed: _seed_trials(config, seed, out)[2] for seed in seeds}
    teachers = {seed: _teacher_row(job_for) for seed, job_for in makers.items()}
    ranked = candidates(found.trials, settings)
    report = progress or (lambda done, running, best, seconds: None)
    budget = settings.max_accuracy_drop

    def left() -> float:
        return settings.time_budget_min * 60 - (time.monotonic() - started)

    batch, passed = ranked[:CONFIRM_CANDIDATES], []
    while batch:
        began = time.monotonic()
        jobs = {(t.spec, seed): makers[seed](t.spec) for t in batch for seed in seeds}
        results = {j.key: json.loads(j.result_path.read_text()) for j in jobs.values()
                   if j.result_path.exists()}
        for result in executor.run([j for j in jobs.values() if j.key not in results]):
            results[result["key"]] = result
            report(len(found.trials), len(jobs) - len(results), f"confirming {len(batch)} candidates on "
                   f"the validation splits of seeds {', '.join(map(str, seeds))}", max(0.0, left()))
        for trial in batch:
            found.confirmation[trial.spec] = evidence(
                seeds, teachers, {seed: results[jobs[trial.spec, seed].key]["row"] for seed in seeds})
        passed = [t for t in ranked
                  if t.spec in found.confirmation and found.confirmation[t.spec].within(budget)]
        best = min(passed, key=lambda t: _rank(t, settings)) if passed else None
        pending = [t for t in ranked if t.spec not in found.confirmation
                   and (best is None or _rank(t, settings) < _rank(best, settings))]
        final = final_specs(found.trials, best, settings, passed) if best else []
        affordable = left() - _measure_seconds(found.trials, final, len(seeds), executor.workers)
        batch = pending[:CONFIRM_CANDIDATES] if affordable > time.monotonic() - began else []
    passed.sort(key=lambda t: _rank(t, settings))
    found.chosen = passed[0] if passed else None
    found.final = final_specs(found.trials, found.chosen, settings, passed) if passed else []


def evidence(seeds: Sequence[int], teachers: dict[int, dict[str, Any]],
             rows: dict[int, dict[str, Any]]) -> Evidence:
    """One candidate's rows against each seed's teacher row, all on validation splits; a seed
    where it failed or skipped leaves nothing to pool (an infinite loss)."""
    from compress.analysis import paired_test

    pooled = tuple(seeds[1:] or seeds[:1])
    drops = tuple(100 * (teachers[s]["accuracy"] - rows[s]["accuracy"]) if rows[s].get("status") == "ok"
                  else None for s in seeds)
    complete = all(rows[s].get("status") == "ok" for s in pooled)
    test = paired_test([(teachers[s], rows[s]) for s in pooled]) if complete else None
    if test is None:
        return Evidence(tuple(seeds), drops, pooled, 0, 0, 0)
    return Evidence(tuple(seeds), drops, pooled, test.b, test.c, test.n)


def _measure_seconds(trials: Sequence[Trial], specs: Sequence[str], seeds: int, workers: int) -> float:
    """Seconds measuring ``specs`` on every seed's test split will take, from the trials' own
    training times, plus the serial timing and the report."""
    seconds = {t.spec: t.train_seconds or 0.0 for t in trials}
    training = sum(seconds.get(s, 0.0) + 5 for s in specs) * seeds
    return training / max(1, workers) + 3 * len(specs) * seeds + 10


def _nothing(found: SearchResult, settings: TuneSettings, seeds: int) -> str:
    """Why nothing was chosen, naming the closest configuration, as ``recommend`` does."""
    budget = settings.max_accuracy_drop
    if found.confirmation:
        spec, closest = min(found.confirmation.items(), key=lambda item: item[1].upper_pp)
        label = next(t.label for t in found.trials if t.spec == spec)
        plural = "s" if len(closest.pooled_seeds) > 1 else ""
        where = f"seed{plural} {', '.join(map(str, closest.pooled_seeds))}"
        loss = (f"loses {closest.drop_pp:.2f} pp there (up to {closest.upper_pp:.2f} pp)"
                if math.isfinite(closest.drop_pp) else "produced nothing on one of them")
        return (f"{len(found.confirmation)} configurations met the {budget:g} pp budget on the first "
                f"seed's validation split, but none with {CONFIRM_CONFIDENCE:.0%} confidence on the "
                f"validation split of {where}; the closest, {label}, {loss}; raise "
                f"{option('max_accuracy_drop')} or {option('time_budget_min')}")
    closest_trial = min((t for t in found.trials if t.drop_pp is not None), default=None,
                        key=lambda t: t.drop_pp or 0.0)
    hint = (f"; the closest, {closest_trial.label}, loses {closest_trial.drop_pp:.2f} pp at "
            f"{(closest_trial.size_gzip_bytes or 0) / 1024:.1f} KiB gzip" if closest_trial else "")
    return (f"no configuration of {len(found.trials)} trials stays within {budget:g} pp of the "
            f"teacher on validation{hint}; raise {option('max_accuracy_drop')} or "
            f"{option('time_budget_min')}")


def _data_name(config: Any) -> str:
    return Path(config.data).stem if config.data is not None else str(config.dataset)


def test_summary(rows: list[dict[str, Any]], spec: str) -> dict[str, Any] | None:
    """The chosen configuration on the test split, over seeds, against the teacher's rows."""
    import statistics

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 6) if values else None

    ok = [r for r in rows if r.get("status") == "ok"]
    mine = [r for r in ok if r["spec"] == spec and r.get("control_of") is None]
    base = {r["seed"]: r for r in ok if r.get("role") == "baseline"}
    paired = [r for r in mine if r["seed"] in base]
    if not paired:
        return None
    return {
        "seeds": len(paired),
        "accuracy": mean([r["accuracy"] for r in paired]),
        "teacher_accuracy": mean([base[r["seed"]]["accuracy"] for r in paired]),
        "drop_pp": mean([100 * (base[r["seed"]]["accuracy"] - r["accuracy"]) for r in paired]),
        "times_smaller_gzip": mean([base[r["seed"]]["size_gzip_bytes"] / r["size_gzip_bytes"]
                                    for r in paired]),
        "times_smaller_raw": mean([base[r["seed"]]["size_bytes"] / r["size_bytes"] for r in paired]),
        "speedup": mean([r["speedup"] for r in paired if r.get("speedup")]),
    }


def _write(folder: Path, settings: TuneSettings, found: SearchResult,
           rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """tune.json: the settings, every trial, the front, the choice and its test measurement."""
    import optuna

    chosen = found.chosen
    test = test_summary(rows, chosen.spec) if rows is not None and chosen is not None else None
    summary = {
        "objective": settings.objective,
        "max_accuracy_drop": settings.max_accuracy_drop,
        "time_budget_min": settings.time_budget_min,
        "chosen_spec": chosen.spec if chosen else None,
        "chosen_label": chosen.label if chosen else None,
        "objective_value": chosen.value(settings.objective) if chosen else None,
        "validation": dataclasses.asdict(chosen) if chosen else None,
        "test": test,
        "test_meets_budget": None if test is None else test["drop_pp"] <= settings.max_accuracy_drop,
        "teacher": found.teacher,
        "front": [t.spec for t in found.front],
        "confirmation": {spec: proof.record(settings.max_accuracy_drop)
                         for spec, proof in found.confirmation.items()},
        "final": found.final,
        "trials": [dataclasses.asdict(t) for t in found.trials],
        "search": {"sampler": f"optuna {optuna.__version__} TPESampler (multivariate, grouped, "
                   "constrained), two objectives", "seconds": found.seconds, "reused": found.reused,
                   "stopped": found.stopped, "space": found.space},
    }
    write_atomic(folder / TUNE_FILE, json.dumps(summary, indent=2))
    return summary
