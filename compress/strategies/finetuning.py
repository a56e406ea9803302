"""Fine-tuning family: more training of the teacher at a low learning rate.

On the teacher it is also the "same budget, no compression" control for the
other techniques: it shows how much of a compressed row's accuracy change is
just extra training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from compress.models.architectures import keep_preprocessing, preprocessing_note
from compress.models.backend import keras
from compress.models.training import fit
from compress.strategies.base import Compressed, Context, Strategy, register


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
        trained = fit(model, ctx.data, epochs=self.epochs, lr=self.lr, limits=ctx.limits)
        kept = f", {len(frozen)} lowest weighted layers frozen" if frozen else ""
        return Compressed(
            model=model,
            notes=f"{trained.describe()} more at lr={self.lr:g}{kept}; no compression.",
        )


@register
class RetrainScratch(Strategy):
    name = "retrain-scratch"
    family = "fine-tuning"
    summary = "Control for fine-tuning: the teacher's architecture trained from scratch on this data."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    role = "control"
    control_of = "finetune"
    needs_trained_teacher = False  # the teacher's layers, re-initialised (see _Control's)

    def __init__(self, epochs: int = 100, lr: float = 1e-3, patience: float = 0.2) -> None:
        """``patience``: early stopping after this fraction of the planned epochs without a
        better validation accuracy, the best epoch's weights kept (0: every epoch, the last kept)."""
        self.epochs = epochs
        self.lr = lr
        self.patience = patience
        self._check_budget(epochs, lr)
        self._check(0 <= patience <= 1, f"patience must be a fraction of the epochs from 0 (no early "
                    f"stopping) to 1, got {patience}")

    def compress(self, ctx: Context) -> Compressed:
        model = keras.models.clone_model(ctx.teacher)  # same layers, fresh initial weights
        keep_preprocessing(model, ctx.teacher)
        trained = fit(model, ctx.data, epochs=self.epochs, lr=self.lr, limits=ctx.limits,
                      patience=self.patience)
        return Compressed(
            model=model,
            notes=f"The teacher's architecture from random weights, {trained.describe()} on this "
            f"data only{' (early stopping on the validation split)' if self.patience else ''}: what "
            f"fine-tuning must beat, in accuracy and in training time.{preprocessing_note(ctx.teacher)}",
        )
