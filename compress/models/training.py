"""Training settings shared by the teacher and every strategy that trains.

Every default budget was chosen on problems of at most ``REFERENCE_ROWS`` training rows (the
built-in ones have 700 to 1,300) and teachers whose sample costs at most ``REFERENCE_COST``.
On more data, or a costlier model, the same budget would cost far more: 300 epochs of 50,000
rows are 100,000 optimizer steps, and 40 epochs of a MobileNetV2 on 3,773 images of 96x96
take many minutes on one core (measured: docs/benchmarks.md, "Figures behind design
decisions").  So a budget given in epochs is *planned* for the data and the teacher (``plan``):
batches grow with the data, up to 8 times, and the optimizer steps are capped at what the
budget takes on the reference problem, shrunk in proportion to what a sample costs the teacher
above the reference, but never below one epoch.  On the built-in
problems a plan is exactly the epochs asked for.  The cap is a count, not a clock: every
machine trains the same steps.

``--time-budget`` gives each strategy a share of the run's time: training stops at the next
batch (Keras) or epoch (a strategy's own loop) once the share is spent, and the row says how
far it got.  Both reach a training loop as ``TrainingLimits`` (a strategy's are
``Context.limits``), never through ambient state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compress.common.text import counted
from compress.models.backend import keras

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData

BATCH_SIZE = 32
#: The training rows every default budget was chosen on; above it, budgets are planned.
REFERENCE_ROWS = 4_000
#: Batches grow at most this much with the data (32 -> 256).
MAX_BATCH_GROWTH = 8
#: What a training sample (``cost.sample_cost``) of the costliest teacher the default budgets
#: were chosen and measured on costs: MobileNetV2 (alpha 0.35) at 32x32x3, 3.7 million; a
#: costlier teacher's strategies train proportionally fewer optimizer steps.
REFERENCE_COST = 4_000_000


@dataclass(frozen=True)
class Plan:
    """A budget in epochs, planned for the data: what a training loop really runs."""

    epochs: int
    batch_size: int
    steps_per_epoch: int
    asked_epochs: int  # the budget as given
    asked_batch_size: int
    cost: int | None = None  # what a sample costs the teacher, when above REFERENCE_COST

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def describe(self) -> str:
        """'5 epochs', or '3 epochs of batch 256 (5 asked; ...)' when planned for large data or a
        costly teacher."""
        epochs = counted(self.epochs, "epoch")
        if self.epochs == self.asked_epochs and self.batch_size == self.asked_batch_size:
            return epochs
        if self.epochs == self.asked_epochs:
            return f"{epochs} of batch {self.batch_size}"
        cap = "the step cap" if self.cost is None else \
            (f"the cap for a teacher {self.cost / REFERENCE_COST:.1f}× as costly a sample as the "
             f"reference; a --time-budget lifts it, to train the {self.asked_epochs} asked while "
             "the time lasts")
        return (f"{epochs} of batch {self.batch_size} ({self.asked_epochs} asked; "
                f"{self.steps:,} optimizer steps, {cap})")


def plan(epochs: int, rows: int, *, batch_size: int = BATCH_SIZE, max_steps: int | None = None,
         cost: int | None = None) -> Plan:
    """``epochs`` of ``batch_size`` as chosen on the reference problem, for ``rows``.

    The batch doubles for every doubling of the data above ``REFERENCE_ROWS`` (at most 8×),
    and the optimizer steps stay within what the budget takes on the reference data (or within
    ``max_steps``), shrunk in proportion when a sample costs the teacher (``cost``,
    ``cost.sample_cost``; None, unknown: as the reference, no cap) more than ``REFERENCE_COST``,
    at least one epoch: 300 epochs on 50,000 rows would be 100,000 steps.
    """
    growth = 1
    while growth < MAX_BATCH_GROWTH and rows >= 2 * growth * REFERENCE_ROWS:
        growth *= 2
    batch = batch_size * growth
    per_epoch = max(1, math.ceil(rows / batch))
    cap = epochs * math.ceil(REFERENCE_ROWS / batch_size) if max_steps is None else max_steps
    planned = max(1, min(epochs, math.ceil(cap / per_epoch)))
    if cost is None or cost <= REFERENCE_COST:
        return Plan(planned, batch, per_epoch, epochs, batch_size)
    capped = max(1, min(epochs, math.ceil(cap * REFERENCE_COST / cost / per_epoch)))
    # the teacher's cost is named only where it, not the data size, set the epochs
    return Plan(capped, batch, per_epoch, epochs, batch_size, cost if capped < planned else None)


@dataclass
class Allowance:
    """A share of ``--time-budget``: training stops once ``deadline`` (a ``time.time()`` value,
    so a worker process can share it) has passed."""

    deadline: float
    stopped: str | None = None  # what the budget cut short, for the row

    def spent(self) -> bool:
        return time.time() >= self.deadline


@dataclass(frozen=True)
class TrainingLimits:
    """What bounds a training loop, handed to it rather than read from the air: a strategy gets
    its own in ``Context.limits``, so a plugin's loop obeys exactly what the built-in ones do.

    Budgets are planned for what a sample costs the teacher (``sample_cost``; None, unknown: no
    cap), and with an ``allowance`` training stops once its share of ``--time-budget`` is spent.
    The default limits nothing.  Only the allowance's record of what it cut short changes.
    """

    sample_cost: int | None = None
    allowance: Allowance | None = None

    @classmethod
    def until(cls, deadline: float | None, *, sample_cost: int | None = None) -> TrainingLimits:
        """Training stops at ``deadline`` (``time.time()``; None: never)."""
        return cls(sample_cost, None if deadline is None else Allowance(deadline))

    def plan(self, epochs: int, rows: int, *, batch_size: int = BATCH_SIZE,
             max_steps: int | None = None) -> Plan:
        """``plan``, for this teacher's sample cost: capped for a costly teacher, so a run
        without a time budget ends in a time the default budgets were chosen for; under a time
        allowance the clock is the limit instead, and the budget asked is planned uncapped."""
        cost = None if self.allowance is not None else self.sample_cost
        return plan(epochs, rows, batch_size=batch_size, max_steps=max_steps, cost=cost)

    def out_of_time(self) -> bool:
        """For a training loop of one's own: stop now, the time allowed is spent."""
        return self.allowance is not None and self.allowance.spent()

    def record_cut(self, what: str) -> None:
        """Record, for the row, what a loop that obeyed ``out_of_time`` cut short (the first one
        wins: in a chain, whose stages share their limits, the earliest stage that was cut)."""
        if self.allowance is not None and self.allowance.stopped is None:
            self.allowance.stopped = what

    @property
    def cut_short(self) -> str | None:
        """What the time allowance cut short, if anything."""
        return None if self.allowance is None else self.allowance.stopped

    def callbacks(self, model: keras.Model, planned: Plan) -> list[keras.callbacks.Callback]:
        """For ``model.fit``: with an allowance, one that stops after the current batch once it is
        spent (it costs a little on every batch, so none without).  (A LambdaCallback, not a
        Callback subclass: subclassing at import would import TensorFlow for ``compress list``.)"""
        if self.allowance is None:
            return []
        epoch = [0]

        def batch_end(batch: int, logs: dict | None = None) -> None:
            if self.out_of_time():
                model.stop_training = True
                done = epoch[0] * planned.steps_per_epoch + batch + 1
                self.record_cut(f"{done:,} of {planned.steps:,} optimizer steps ({planned.describe()})")

        callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda number, logs=None: epoch.__setitem__(0, number),
            on_train_batch_end=batch_end)
        callback._supports_tf_logs = True  # it reads no logs: spare Keras a numpy copy per batch
        return [callback]


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the last layer ends in softmax (a user's teacher may), so outputs are not logits.

    Looks through tfmot's wrappers (pruning, clustering, quantization keep the layer in ``.layer``).
    """
    if not model.layers:
        return False
    last = model.layers[-1]
    last = getattr(last, "layer", last)
    activation = getattr(last, "activation", None)
    inner = getattr(activation, "activation", None)  # QAT's QuantizeAwareActivation wraps the function
    names = {getattr(activation, "__name__", ""), getattr(inner, "__name__", "")}
    return isinstance(last, keras.layers.Softmax) or "softmax" in names


def compile_for_training(model: keras.Model, learning_rate: float) -> None:
    """Adam on sparse cross-entropy, from logits unless the model already ends in softmax."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def fit(model: keras.Model, data: TrainingData, *, epochs: int, lr: float, limits: TrainingLimits,
        callbacks: Sequence[keras.callbacks.Callback] = (), patience: float | None = None) -> Plan:
    """Compile and train on the train split: the one recipe every training strategy shares.

    ``epochs`` is planned for the data size and the teacher (``limits.plan``); ``patience`` (a
    fraction of the planned epochs; 0 or None: off) stops when validation accuracy has not
    improved for that long and restores the best weights.  The time allowance of ``limits``, if
    any, is obeyed.  Returns the plan, for the row's notes.
    """
    planned = limits.plan(epochs, len(data.y_train))
    compile_for_training(model, lr)
    extra = limits.callbacks(model, planned)
    validation = None
    if patience:
        validation = (data.x_val, data.y_val)
        wait = max(1, math.ceil(patience * planned.epochs))
        extra.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=wait,
                                                   restore_best_weights=True))
    model.fit(data.x_train, data.y_train, epochs=planned.epochs, batch_size=planned.batch_size,
              verbose=0, validation_data=validation, callbacks=[*callbacks, *extra])
    return planned
