"""How a strategy that answers an accuracy budget itself (``max_drop``) judges a candidate: its
loss against the teacher on the validation rows, paired row by row, with the standard error of
that loss.  The test split is never seen; measuring the finished row stays measurement's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.common.stats import paired_se
from compress.models.backend import keras
from compress.strategies.base import Context


@dataclass(frozen=True)
class Loss:
    """A candidate against the teacher on validation, in percentage points."""

    pp: float  # accuracy lost (negative: gained)
    error_pp: float  # its paired standard error, with at least 3 discordant rows

    def plausible(self, budget: float) -> bool:
        """Within the budget once its standard error is forgiven: worth training on."""
        return self.pp - self.error_pp <= budget

    def within(self, budget: float) -> bool:
        """Within the budget as observed: what a finished candidate must be."""
        return self.pp <= budget + 1e-9

    def __str__(self) -> str:
        return f"{-self.pp + 0.0:+.1f}±{self.error_pp:.1f}"  # never -0.0


class ValidationLoss:
    """The teacher's right and wrong validation rows, kept to pair every candidate with."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.teacher = correct(ctx.teacher, ctx)

    def __call__(self, model: keras.Model) -> Loss:
        mine = correct(model, self.ctx)
        b, c, n = int(np.sum(self.teacher & ~mine)), int(np.sum(~self.teacher & mine)), len(mine)
        return Loss(100 * (b - c) / n, 100 * paired_se(b, c, n, min_discordant=3))


def correct(model: keras.Model, ctx: Context) -> np.ndarray:
    """Which validation rows the model gets right."""
    outputs = model.predict(ctx.data.x_val, batch_size=1024, verbose=0)
    return np.argmax(outputs, axis=1) == ctx.data.y_val
