"""One step of a run: a strategy applied to a clone of the teacher, its flatbuffer scored.

``apply_strategy`` is the one path from a strategy to a flatbuffer (runs, sweeps, tune and the
conformance kit take it), ``evaluate_step`` turns it into a guarded row, and ``finish_seed``
compares a seed's rows with its baseline and times them together.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.common.errors import option
from compress.common.fileio import write_atomic
from compress.common.text import one_line
from compress.data.builtin import Dataset
from compress.measure.accuracy import accuracy_stats, reference_stats
from compress.measure.latency import measure_latency
from compress.measure.memory import arena_bytes, memory_fields
from compress.measure.micro import Unscorable, micro_fields, micro_scored
from compress.measure.size import size_fields
from compress.models.flatbuffer import TFLiteModel, micro_only
from compress.models.stage_cache import StageCache
from compress.models.teacher import (
    Teacher,
)
from compress.orchestrate.interrupts import Interrupts
from compress.orchestrate.plan import Step
from compress.orchestrate.teachers import Source, majority_rate, teacher_fields
from compress.results.rows import REASON_LIMIT, new_row
from compress.strategies import Skip, Strategy
from compress.strategies.apply import apply_strategy

ERROR_LOG = "errors.log"


@dataclass(frozen=True)
class Evaluated:
    row: dict[str, Any]
    flatbuffer: bytes | None = None
    labels: np.ndarray | None = None  # predicted test labels, for comparisons with the baseline


def evaluate_step(
    strategy: Strategy, header: dict[str, Any], teacher: Teacher, source: Source, *, threads: int,
    folder: Path, artifact: str, interrupts: Interrupts | None = None,
    stage_cache: StageCache | None = None, deadline: float | None = None, micro: bool = True,
) -> Evaluated:
    """One row, from its ``header`` (``step_row``): run the strategy, save its artifact, score
    its size and accuracy.

    Everything from the strategy's call to the scored predictions is guarded: whatever goes
    wrong, a strategy's bug or a garbage flatbuffer, becomes this row's ``failed`` status and
    the command goes on.  ``micro``: the TFLite Micro columns too (``measure.micro``).
    Comparisons with the baseline are added by ``finish_seed``.  Training
    stops at ``deadline`` (``time.time()``), and the row says what that cut short; a deadline
    already past when the step would start skips it.
    """
    dataset, row, seed = source.dataset, dict(header), header["seed"]
    if deadline is not None and deadline <= time.time():
        row.update(status="skipped", budget_stopped="not started",
                   reason="the time budget left could not pay for this step; raise "
                   f"{option('time_budget')} or run fewer strategies")
        return Evaluated(row)
    try:
        made = apply_strategy(strategy, teacher.model, teacher.architecture, dataset.training,
                              seed=seed, workdir=folder, stage_cache=stage_cache, deadline=deadline)
        labels, scored = _scored(made.flatbuffer, dataset, threads=threads, micro=micro)
        write_atomic(folder / artifact, made.flatbuffer)
    except (Skip, Unscorable) as reason:
        row.update(status="skipped", reason=str(reason))
        return Evaluated(row)
    except Exception as error:  # one broken strategy or artifact must not sink the run
        if interrupts is not None and interrupts.requested:
            raise KeyboardInterrupt from None
        row.update(status="failed", reason=one_line(f"{type(error).__name__}: {error}", REASON_LIMIT))
        with open(folder / ERROR_LOG, "a") as log:
            log.write(f"--- {row['spec']} (seed {seed})\n{traceback.format_exc()}\n")
        return Evaluated(row)
    notes = made.notes
    if made.cut_short:
        # The strategy's notes describe its plan: the cut comes first, so they cannot be read as done.
        notes = f"Stopped by the time budget after {made.cut_short}, of this plan: {notes}".strip()
    row.update(scored, status="ok", notes=notes, train_seconds=made.train_seconds,
               budget_stopped=made.cut_short, artifact=artifact,
               test_correct="".join("1" if ok else "0" for ok in labels == dataset.y_test))
    return Evaluated(row, made.flatbuffer, labels)


def _scored(flatbuffer: bytes, dataset: Dataset, *, threads: int,
            micro: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """The predicted test labels and the scored fields of a flatbuffer: in LiteRT (and in
    TFLite Micro too, ``micro``), or in TFLite Micro alone for a file only it runs."""
    if micro_only(flatbuffer):
        labels, scored = micro_scored(flatbuffer, dataset.x_test, dataset.y_test)
        scored.update(arena_bytes=arena_bytes(flatbuffer), peak_rss_bytes=None, model_rss_bytes=None)
    else:
        labels = np.argmax(TFLiteModel(flatbuffer, threads=threads).predict(dataset.x_test), axis=1)
        scored = memory_fields(flatbuffer)
        if micro:
            scored.update(micro_fields(flatbuffer, dataset.x_test, dataset.y_test, labels))
    scored.update(size_fields(flatbuffer))
    scored.update(asdict(accuracy_stats(dataset.y_test, labels, dataset.n_classes)))
    return labels, scored


def step_row(
    step: Step, teacher: Teacher, source: Source, seed: int, *, scenario: str,
    env: dict[str, Any], run_id: str,
) -> dict[str, Any]:
    """A step's row before it is scored: what was asked for, on which data and teacher."""
    dataset, strategy = source.dataset, step.strategy
    return new_row(
        run_id=run_id, strategy=strategy.name, spec=strategy.spec(), label=strategy.label(),
        family=strategy.family, role=strategy.role, control_of=step.control_of,
        training_cost=strategy.cost,  # 0: a conversion, whose "train_seconds" trained nothing
        params=strategy.get_params(), dataset=dataset.name, scenario=scenario,
        preprocessing=source.preprocessing, class_names=list(dataset.class_names), seed=seed,
        **teacher_fields(teacher), majority_rate=majority_rate(dataset.y_test), env=env,
    )


def finish_seed(
    evaluated: Sequence[Evaluated], dataset: Dataset, threads: int,
    timed: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Compare a seed's rows with its baseline (fidelity, McNemar) and time them together.

    ``timed`` picks the rows to time (default: every finished row).
    """
    base = next((e for e in evaluated if e.row["role"] == "baseline" and e.labels is not None), None)
    for item in evaluated:
        if item.labels is not None and base is not None:
            item.row.update(reference_stats(dataset.y_test, item.labels, base.labels))
    flatbuffers = {str(i): e.flatbuffer for i, e in enumerate(evaluated)  # what LiteRT can time
                   if e.flatbuffer is not None and not micro_only(e.flatbuffer)
                   and (timed is None or timed(e.row))}
    reference = next((str(i) for i, e in enumerate(evaluated) if e is base and str(i) in flatbuffers),
                     None)
    latencies = measure_latency(flatbuffers, dataset.x_test, reference=reference, threads=threads)
    for key, latency in latencies.items():
        evaluated[int(key)].row.update(latency.fields())
