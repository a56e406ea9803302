"""How a strategy that answers an accuracy budget itself (``max_drop``) judges its candidates:
paired row by row with the teacher, on validation to screen (what to train next, where a climb
may go) and on the evidence rows to certify (``common.certify``: what may be handed over).  The
evidence rows are set aside by the run and seen by no training decision; the test split is
never seen; measuring the finished row stays measurement's job.
"""

from __future__ import annotations

import numpy as np

from compress.common.certify import FixedSequence, PairedLoss
from compress.common.errors import option
from compress.models.backend import keras
from compress.strategies.base import Context


class Judge:
    """The teacher's right and wrong rows of one split, kept to pair every candidate with."""

    def __init__(self, ctx: Context, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.teacher = correct(ctx.teacher, x, y)

    def __call__(self, model: keras.Model) -> PairedLoss:
        return PairedLoss.of(self.teacher, correct(model, self.x, self.y))

    def flatbuffer(self, flatbuffer: bytes) -> PairedLoss:
        """A TFLite candidate (a quantizer's) against the same teacher rows."""
        from compress.models.flatbuffer import TFLiteModel

        return PairedLoss.of(self.teacher, TFLiteModel(flatbuffer).predict(self.x).argmax(axis=1) == self.y)


def correct(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which rows the model gets right."""
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1) == y


def validation_judge(ctx: Context) -> Judge:
    """What screens: the validation rows, which early stopping and every screen also see."""
    return Judge(ctx, ctx.data.x_val, ctx.data.y_val)


def certifier(ctx: Context, budget: float) -> tuple[FixedSequence, Judge]:
    """The fixed sequence a budget answer is made by, and the rows it is judged on: the run's
    evidence rows, or (none set aside) the validation rows, said in the note."""
    data = ctx.data
    if data.x_evidence is None or data.y_evidence is None or not len(data.y_evidence):
        where = (f"the validation rows, which also chose: no evidence rows were set aside "
                 f"({option('evidence_rows', 'N')} or a run's max_drop sets them aside)")
        return FixedSequence(budget, where, certifies=False), validation_judge(ctx)
    return (FixedSequence(budget, "evidence set aside from the training rows, seen by no training decision"),
            Judge(ctx, data.x_evidence, data.y_evidence))
