"""Fine-tuning family: more training of the teacher at a low learning rate.

On the teacher it is also the "same budget, no compression" control for the
other techniques: it shows how much of a compressed row's accuracy change is
just extra training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from compress.strategies.base import Compressed, Context, Strategy, register
from compress.training import BATCH_SIZE, compile_for_training


@register
class Finetune(Strategy):
    name = "finetune"
    family = "fine-tuning"
    summary = "The teacher trained further for a small budget at a lower learning rate."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, epochs: int = 5, lr: float = 1e-4, freeze: int = 0) -> None:
        self.epochs = epochs
        self.lr = lr
        self.freeze = freeze
        self._check(epochs >= 1, f"epochs must be at least 1, got {epochs}")
        self._check_positive("lr", lr)
        self._check(freeze >= 0, f"freeze must be 0 or more layers, got {freeze}")

    def compress(self, ctx: Context) -> Compressed:
        model = ctx.teacher
        trainable = [layer for layer in model.layers if layer.weights]
        self._check(self.freeze < len(trainable),
                    f"freeze={self.freeze} would freeze all {len(trainable)} weighted layers")
        for layer in trainable[: self.freeze]:
            layer.trainable = False
        compile_for_training(model, self.lr)
        data = ctx.data
        model.fit(data.x_train, data.y_train, epochs=self.epochs, batch_size=BATCH_SIZE, verbose=0)
        frozen = f", lowest {self.freeze} layers frozen" if self.freeze else ""
        return Compressed(
            model=model,
            notes=f"{self.epochs} more epochs at lr={self.lr:g}{frozen}; no compression.",
        )
