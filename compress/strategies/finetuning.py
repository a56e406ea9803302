"""Fine-tuning family: more training of the teacher at a low learning rate.

On the teacher it is also the "same budget, no compression" control for the
other techniques: it shows how much of a compressed row's accuracy change is
just extra training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from compress.backend import keras
from compress.strategies.base import Compressed, Context, Strategy, register
from compress.training import fit


@register
class Finetune(Strategy):
    name = "finetune"
    family = "fine-tuning"
    summary = "The teacher trained further for a small budget at a lower learning rate."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, epochs: int = 5, lr: float = 1e-4, freeze: int = 0) -> None:
        """``freeze``: how many of the lowest weighted layers stay fixed; a negative number
        counts from the top (-1 trains only the output layer)."""
        self.epochs = epochs
        self.lr = lr
        self.freeze = freeze
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        model = ctx.teacher
        weighted = [layer for layer in model.layers if layer.weights]
        frozen = weighted[: self.freeze]
        self._check(len(frozen) < len(weighted),
                    f"freeze={self.freeze} would freeze all {len(weighted)} weighted layers")
        for layer in frozen:
            layer.trainable = False
        fit(model, ctx.data, epochs=self.epochs, lr=self.lr)
        kept = f", {len(frozen)} lowest weighted layers frozen" if frozen else ""
        return Compressed(
            model=model,
            notes=f"{self.epochs} more epochs at lr={self.lr:g}{kept}; no compression.",
        )


@register
class RetrainScratch(Strategy):
    name = "retrain-scratch"
    family = "fine-tuning"
    summary = "Control for fine-tuning: the teacher's architecture trained from scratch on this data."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    role = "control"
    control_of = "finetune"

    def __init__(self, epochs: int = 100, lr: float = 1e-3) -> None:
        self.epochs = epochs
        self.lr = lr
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        model = keras.models.clone_model(ctx.teacher)  # same layers, fresh initial weights
        fit(model, ctx.data, epochs=self.epochs, lr=self.lr)
        return Compressed(
            model=model,
            notes=f"The teacher's architecture from random weights, {self.epochs} epochs on this "
            "data only: what fine-tuning must beat, in accuracy and in training time.",
        )
