"""Pruning family: zero out (or remove) the weights that matter least."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from compress.backend import keras, tfmot
from compress.strategies.base import Compressed, Context, Skip, Strategy, register
from compress.training import BATCH_SIZE, compile_for_training

PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)


def polynomial_schedule(
    sparsity: float, epochs: int, steps_per_epoch: int
) -> tfmot.sparsity.keras.PolynomialDecay:
    """Ramp to ``sparsity`` over the first two thirds of training, then hold it.

    tfmot's default ``frequency=100`` never fires on a small dataset (a few
    dozen steps per epoch), so the frequency is derived from the epoch length
    and the end step is a multiple of it: the target is really reached.
    """
    total = epochs * steps_per_epoch
    frequency = max(1, steps_per_epoch // 4)
    ramp = max(1, (2 * total) // 3)
    end_step = frequency * math.ceil(ramp / frequency)
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )


@register
class PruneMagnitude(Strategy):
    name = "prune-magnitude"
    family = "pruning"
    summary = "Unstructured low-magnitude pruning (tfmot) with recovery training, then strip."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, sparsity: float = 0.8, epochs: int = 4, lr: float = 5e-4) -> None:
        self.sparsity = sparsity
        self.epochs = epochs
        self.lr = lr
        self._check_open_unit("sparsity", sparsity)
        self._check(epochs >= 1, f"epochs must be at least 1, got {epochs}")
        self._check_positive("lr", lr)

    def compress(self, ctx: Context) -> Compressed:
        if not any(isinstance(layer, PRUNABLE) for layer in ctx.teacher.layers):
            raise Skip("the teacher has no Dense or Conv2D layer to prune")
        data = ctx.data
        steps = math.ceil(len(data.x_train) / BATCH_SIZE)
        schedule = polynomial_schedule(self.sparsity, self.epochs, steps)
        try:
            model = tfmot.sparsity.keras.prune_low_magnitude(ctx.teacher, pruning_schedule=schedule)
        except ValueError as error:  # subclassed models and unsupported layers
            raise Skip(f"tfmot cannot prune this teacher: {error}") from error
        compile_for_training(model, self.lr)
        model.fit(
            data.x_train,
            data.y_train,
            epochs=self.epochs,
            batch_size=BATCH_SIZE,
            verbose=0,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        )
        return Compressed(
            model=tfmot.sparsity.keras.strip_pruning(model),
            notes=(
                f"{self.sparsity:.0%} of Dense/Conv kernel weights set to zero. The dense "
                "TFLite kernels still store and multiply every zero: raw size and latency "
                "do not change, only the gzip size shrinks."
            ),
        )
