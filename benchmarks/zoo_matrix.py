"""The teacher zoo matrix (issue 13): every strategy on every zoo member.

Run: .venv/bin/python benchmarks/zoo_matrix.py   (about 10 minutes on 2 cores; prints Markdown)

Members (tests/zoo.py) are small models of real architecture kinds (an MLP, a CNN with
BatchNorm, a Conv1D, a ResNet-style residual CNN, a MobileNetV2-style network), trained
briefly on generated data; every strategy runs at its fast settings, as in the slow test
matrix. So this is a map of what works where, not of how good each technique can be. Each
cell: status, then × smaller (raw TFLite bytes), speed-up at batch 1 (interleaved rounds,
timed after all training, one process) and Δ accuracy on the member's 128-row validation
split (which resolves about ±9 pp).
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package holds the zoo

from compress.measure.latency import measure_latency
from compress.models.flatbuffer import TFLiteModel
from compress.results.rows import environment
from tests.test_zoo import BY_COST, NAMES, SPECS
from tests.zoo import ZOO, MemberRun, make_data, run_member


def accuracy(flatbuffer: bytes, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(TFLiteModel(flatbuffer).predict(x).argmax(axis=1) == y))


def cells(name: str, run: MemberRun) -> dict[str, str]:
    """One column of the matrix: each strategy's outcome on this member."""
    y_val = make_data(ZOO[name][1]).y_val
    base = accuracy(run.teacher_flatbuffer, run.x_val, y_val)
    made = {s: o.flatbuffer for s, o in run.outcomes.items() if o.status == "ok" and o.flatbuffer}
    timed = measure_latency({"teacher": run.teacher_flatbuffer, **made}, run.x_val, reference="teacher")
    column = {}
    for strategy, outcome in run.outcomes.items():
        if outcome.status != "ok":
            column[strategy] = outcome.status
            continue
        flatbuffer = made[strategy]
        delta = 100 * (accuracy(flatbuffer, run.x_val, y_val) - base)
        column[strategy] = (f"ok {len(run.teacher_flatbuffer) / len(flatbuffer):.2f}× / "
                            f"{timed[strategy].speedup:.2f}× / {delta:+.1f}")
    return column


def main() -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = dict(zip(BY_COST, pool.map(run_member, BY_COST, repeat(SPECS)), strict=True))
    members = list(ZOO)
    columns = {name: cells(name, runs[name]) for name in members}  # timed one member at a time
    print(f"\n| strategy | {' | '.join(members)} |\n|---|{'---|' * len(members)}")
    for strategy in dict.fromkeys(s for run in runs.values() for s in run.outcomes):
        print(f"| {strategy} | {' | '.join(columns[m].get(strategy, '—') for m in members)} |")
    print("\nteachers: " + ", ".join(f"{m} {runs[m].params:,} parameters, validation accuracy "
                                     f"{runs[m].val_accuracy:.2f}" for m in members))
    print("\nskipped, with the reason the row gives:")
    for name in members:
        for strategy, outcome in runs[name].outcomes.items():
            if outcome.status != "ok":
                print(f"- {strategy} on {name}: {outcome.status}: {outcome.reason.splitlines()[-1][:200]}")
    assert set(NAMES) <= {s for run in runs.values() for s in run.outcomes}


if __name__ == "__main__":
    main()
