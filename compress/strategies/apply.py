"""Applying a strategy: the one path from a strategy to a flatbuffer.

Runs, sweeps, tune and the conformance kit (``compress.testing``) all take it, so it lives with
the strategies rather than above them: a plugin's tests check it the way a run applies it,
without importing the orchestration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compress.models.architectures import clone
from compress.models.backend import Unconvertible, keras, seed_everything, to_tflite
from compress.models.cost import sample_cost
from compress.models.training import TrainingLimits
from compress.strategies.base import Compressed, Context, Skip, Strategy

if TYPE_CHECKING:
    from pathlib import Path

    from compress.data.builtin import TrainingData
    from compress.models.stage_cache import StageCache


@dataclass(frozen=True)
class Artifact:
    """What applying a strategy made, for its row."""

    flatbuffer: bytes
    notes: str
    train_seconds: float
    cut_short: str | None = None  # what the time budget stopped, if anything


def apply_strategy(
    strategy: Strategy, teacher: keras.Model, teacher_architecture: str, data: TrainingData,
    *, seed: int, workdir: Path, stage_cache: StageCache | None = None,
    deadline: float | None = None,
) -> Artifact:
    """Seed, hand the strategy a fresh clone of the teacher, time it, export TFLite.

    Its budgets are planned for what a sample costs the teacher, and its training stops at
    ``deadline`` (``time.time()``, None: never): both reach it as ``Context.limits``.
    Raises ``Skip`` or whatever the strategy raised.
    """
    seed_everything(seed)
    fresh = clone(teacher)
    limits = TrainingLimits.until(deadline, sample_cost=sample_cost(teacher))
    ctx = Context(
        data=data.read_only(), teacher=fresh, teacher_architecture=teacher_architecture,
        seed=seed, workdir=workdir, stage_cache=stage_cache, limits=limits,
    )
    start = time.perf_counter()
    try:
        compressed = strategy.compress(ctx)
        seconds = time.perf_counter() - start
        if not isinstance(compressed, Compressed):
            raise TypeError(f"{type(strategy).__name__}.compress returned a {type(compressed).__name__}; "
                            "it must return compress.Compressed(model=... or tflite=..., notes=...)")
        flatbuffer = compressed.tflite if compressed.tflite is not None else to_tflite(compressed.model)
    except Unconvertible as error:  # a layer the converter cannot take so: this row skips, saying why
        raise Skip(str(error)) from error
    return Artifact(flatbuffer, compressed.notes, round(seconds, 3), limits.cut_short)
