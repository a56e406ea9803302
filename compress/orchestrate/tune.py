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
  the validation splits of every other seed (and of more seeds, when those are too few to resolve
  the budget), and a candidate is chosen only when its loss, pooled
  over those seeds' paired predictions, is within the budget with ``CONFIRM_CONFIDENCE``.
- **Every trial is a keyed, cached sweep job**, so a killed ``tune`` re-run with the same
  command replays its journal from the cache, and ``--executor dask`` spreads the trials.
- **Optuna's multi-objective TPE** proposes the trials (cost and validation accuracy, the
  budget as a constraint); docs/tune.md says why it was chosen over the alternatives.
  Cheap candidates go first (every strategy alone at its defaults, cheapest first), then random
  chains led by each family in turn, and a chain whose prefix, tried earlier, already broke the
  budget is never trained.
- **The same answer on every machine.** Proposals are told in batches, in proposal order, so no
  finishing order changes the sequence; the time budget decides only how many trials run.

This module imports no TensorFlow at import time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.analysis.configurations import against_teacher
from compress.common.errors import UserError, option
from compress.orchestrate.tune_search import (
    BATCH,
    TuneProgress,
    confirm,
    search,
)
from compress.orchestrate.tune_space import TuneSettings, tunable_names
from compress.orchestrate.tune_trials import (
    CONFIRM_CONFIDENCE,
    RESOLVE_DISCORDANCE,
    SearchResult,
    candidates,
    nothing_within_budget,
    trials_per_family,
)
from compress.results.tune_record import (
    ConfirmationRecord,
    FamilyRecord,
    FinalMeasurement,
    Resolution,
    SearchRecord,
    TeacherRecord,
    TrialRecord,
    TuneRecord,
)


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
    from compress.measure.micro import micro_unavailable
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.run import Command, RunInterrupted, run
    from compress.report.build import build_report
    from compress.results.outdir import check_output

    tunable_names(settings.strategies)  # a typo is one line before any teacher is trained
    # tune certifies its choice on other seeds' validation splits: no rows set aside for it
    config = dataclasses.replace(resolve_config(seeds=seeds, device=settings.device, **options),
                                 evidence_rows=0)
    if settings.microcontroller() is not None and (missing := micro_unavailable()) is not None:
        raise UserError(f"{option('device', settings.device)} chooses by what fits in TFLite Micro: "
                        f"{missing}")
    folder = Path(out) if out is not None else Path("reports") / f"tune-{_data_name(config)}"
    check_output(folder, "tune", reuse=True)
    try:
        found = search(config, settings, executor, folder, progress, started=started)
        if candidates(found.trials, settings):  # plausibly within the budget is enough to confirm
            confirm(found, config, settings, executor, folder, progress, started)
    except KeyboardInterrupt:
        raise TuneInterrupted(folder) from None
    if found.chosen is None:
        _write(folder, settings, found, None)
        raise NothingMeetsBudget(nothing_within_budget(found, settings, len(config.seeds)))
    final = dataclasses.replace(config, strategies=("baseline", *found.final), out=folder, resume=True)
    report = progress or (lambda done, running, best, seconds: None)

    def measuring(done: int, total: int, what: str) -> None:
        left = settings.time_budget_min * 60 - (time.monotonic() - started)
        report(len(found.trials), total - done, f"measuring on the test split: {done}/{total}, {what}",
               max(0.0, left))

    command = Command(kind="tune", executor=executor, settings={
        "tune": dataclasses.asdict(settings), "seeds": seeds,
        "run": json.loads(json.dumps(dataclasses.asdict(config), default=str))})
    try:
        measured = run(final, measuring, command=command)
    except RunInterrupted as stop:  # a report of the measured rows is written, marked incomplete
        if stop.result.rows:
            build_report(stop.result.out)
        raise TuneInterrupted(folder) from stop
    from compress.results.rows import read_results

    summary = _write(folder, settings, found, read_results(folder))
    build_report(folder)
    return TuneResult(folder, found, measured.rows, summary)


def _data_name(config: Any) -> str:
    return Path(config.data).stem if config.data is not None else str(config.dataset)


def _write(folder: Path, settings: TuneSettings, found: SearchResult,
           rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """tune.json: the settings, every trial, the front, the choice and its test measurement."""
    import optuna

    chosen = found.chosen
    measured = against_teacher(rows, chosen.spec) if rows is not None and chosen is not None else None
    test = None if measured is None else FinalMeasurement.from_dict(measured)
    budget = settings.max_accuracy_drop
    record = TuneRecord(
        objective=settings.objective,
        max_accuracy_drop=budget,
        max_slowdown=settings.max_slowdown,
        device=settings.device,
        time_budget_min=settings.time_budget_min,
        chosen_spec=chosen.spec if chosen else None,
        chosen_label=chosen.label if chosen else None,
        objective_value=chosen.value(settings) if chosen else None,
        validation=TrialRecord.from_dict(dataclasses.asdict(chosen)) if chosen else None,
        test=test,
        test_meets_budget=None if test is None else test.drop_pp <= budget,
        teacher=TeacherRecord.from_dict(found.teacher),
        front=tuple(t.spec for t in found.front),
        confirmation={spec: ConfirmationRecord.from_dict(proof.record(budget))
                      for spec, proof in found.confirmation.items()},
        final=tuple(found.final),
        trials=tuple(TrialRecord.from_dict(dataclasses.asdict(t)) for t in found.trials),
        search=SearchRecord(
            sampler=f"optuna {optuna.__version__} TPESampler (multivariate, grouped, constrained), "
            "two objectives", seconds=found.seconds, reused=found.reused, stopped=found.stopped,
            widened=found.widened, batch=BATCH, validation_rows=found.validation_rows,
            validation_only_seeds=tuple(found.validation_only_seeds),
            seeds_left_out={str(seed): why for seed, why in found.seeds_left_out.items()},
            resolve=Resolution(discordance=RESOLVE_DISCORDANCE, confidence=CONFIRM_CONFIDENCE),
            families={family: FamilyRecord.from_dict(counts)
                      for family, counts in trials_per_family(found.trials, settings).items()},
            space=found.space),
    )
    record.write(folder)
    return record.to_dict()
