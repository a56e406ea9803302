"""Pruning family: zero out (or remove) the weights that matter least."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from compress.backend import keras, tfmot
from compress.strategies.base import Compressed, Context, Skip, Strategy, register
from compress.strategies.structured import shrink
from compress.training import BATCH_SIZE, fit


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


#: Kernels smaller than this stay dense: the first convolution and a small output layer hold
#: few bytes but much of the accuracy (digits: -1.9 pp with them pruned at 0.8, see benchmarks).
MIN_PRUNED_WEIGHTS = 2048


def _prunable(layer: keras.layers.Layer) -> bool:
    prunable = isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
    return prunable and int(layer.kernel.shape.num_elements()) >= MIN_PRUNED_WEIGHTS


def _prune_and_recover(
    ctx: Context, epochs: int, lr: float, **pruning: Any
) -> tuple[keras.Model, list[str]]:
    """Wrap the large Dense/Conv layers, train with pruning steps, strip the wrappers.

    Returns the model and the names of the layers that were pruned.
    """
    chosen = [layer.name for layer in ctx.teacher.layers if _prunable(layer)]
    if not chosen:
        raise Skip(f"the teacher has no Dense or Conv2D kernel of {MIN_PRUNED_WEIGHTS}+ weights to prune")
    prune = tfmot.sparsity.keras.prune_low_magnitude
    try:
        model = keras.models.clone_model(
            ctx.teacher,
            clone_function=lambda layer: prune(layer, **pruning) if layer.name in chosen else layer,
        )
    except ValueError as error:  # subclassed models and unsupported layers
        raise Skip(f"tfmot cannot prune this teacher: {error}") from error
    fit(model, ctx.data, epochs=epochs, lr=lr, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model), chosen


_UNSTRUCTURED_NOTE = (
    "The dense TFLite kernels still store and multiply every zero: raw size and latency do not "
    "change, only the gzip size shrinks."
)


@register
class PruneMagnitude(Strategy):
    name = "prune-magnitude"
    family = "pruning"
    summary = "Unstructured low-magnitude pruning (tfmot) with recovery training, then strip."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, sparsity: float = 0.8, epochs: int = 10, lr: float = 1e-3) -> None:
        self.sparsity = sparsity
        self.epochs = epochs
        self.lr = lr
        self._check_open_unit("sparsity", sparsity)
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        steps = math.ceil(len(ctx.data.x_train) / BATCH_SIZE)
        schedule = polynomial_schedule(self.sparsity, self.epochs, steps)
        model, pruned = _prune_and_recover(ctx, self.epochs, self.lr, pruning_schedule=schedule)
        return Compressed(
            model=model,
            notes=f"{self.sparsity:.0%} of the weights of {', '.join(pruned)} set to zero (smaller "
            f"kernels kept dense). {_UNSTRUCTURED_NOTE}",
        )


@register
class Prune2of4(Strategy):
    name = "prune-2of4"
    family = "pruning"
    summary = "2:4 structured sparsity (tfmot sparsity_m_by_n): 2 zeros in every 4 input weights."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, epochs: int = 4, lr: float = 5e-4) -> None:
        self.epochs = epochs
        self.lr = lr
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        model, _ = _prune_and_recover(ctx, self.epochs, self.lr, sparsity_m_by_n=(2, 4))
        return Compressed(
            model=model,
            notes="At most 2 non-zeros in every group of 4 along each kernel's input axis: the "
            "pattern sparse tensor cores accelerate. " + _UNSTRUCTURED_NOTE.replace("The", "On CPU the"),
        )


@register
class PruneStructured(Strategy):
    name = "prune-structured"
    family = "pruning"
    summary = "Removes the least important neurons and filters: a genuinely smaller, faster model."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, fraction: float = 0.5, epochs: int = 40, lr: float = 1e-3) -> None:
        self.fraction = fraction
        self.epochs = epochs
        self.lr = lr
        self._check_open_unit("fraction", fraction)
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        model = shrink(ctx.teacher, self.fraction)
        fit(model, ctx.data, epochs=self.epochs, lr=self.lr)
        return Compressed(
            model=model,
            notes=f"{self.fraction:.0%} of hidden neurons and filters removed by L1 norm, the next "
            f"layers sliced to match, then {self.epochs} recovery epochs: smaller and faster for real.",
        )
