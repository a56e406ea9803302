"""Training settings shared by the teacher and every strategy that trains.

Every default budget was chosen on problems of at most ``REFERENCE_ROWS`` training rows (the
built-in ones have 700 to 1,300) and teachers whose sample costs at most ``REFERENCE_COST``.
On more data, or a costlier model, the same budget would cost far more: 300 epochs of 50,000
rows are 100,000 optimizer steps, and 40 epochs of a MobileNetV2 on 3,773 images of 96x96
take 25 minutes on one core.  So a budget given in epochs is *planned* for the data and the
teacher (``plan``): batches grow with the data, up to 8 times, and the optimizer steps are
capped at what the budget takes on the reference problem, shrunk in proportion to what a
sample costs the teacher above the reference (``planned_for``), but never below one epoch.
On the built-in problems a plan is exactly the epochs asked for.  The cap is a count, not a
clock: every machine trains the same steps.

``--time-budget`` gives each strategy a share of the run's time (``time_allowance``): training
stops at the next batch (Keras) or epoch (a strategy's own loop) once the share is spent, and
the row says how far it got.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
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
            f"the cap for a teacher {self.cost / REFERENCE_COST:.1f}× as costly a sample as the reference"
        return (f"{epochs} of batch {self.batch_size} ({self.asked_epochs} asked; "
                f"{self.steps:,} optimizer steps, {cap})")


_COST: ContextVar[int | None] = ContextVar("compress_sample_cost", default=None)


@contextlib.contextmanager
def planned_for(cost: int | None) -> Iterator[None]:
    """Budgets planned inside the block are planned for a teacher whose training sample costs
    ``cost`` (``cost.sample_cost``; None, unknown: as the reference, no cap)."""
    token = _COST.set(cost)
    try:
        yield
    finally:
        _COST.reset(token)


def plan(epochs: int, rows: int, *, batch_size: int = BATCH_SIZE, max_steps: int | None = None) -> Plan:
    """``epochs`` of ``batch_size`` as chosen on the reference problem, for ``rows``.

    The batch doubles for every doubling of the data above ``REFERENCE_ROWS`` (at most 8×),
    and the optimizer steps stay within what the budget takes on the reference data (or within
    ``max_steps``), shrunk in proportion when a sample costs the teacher more than
    ``REFERENCE_COST`` (``planned_for``), at least one epoch: 300 epochs on 50,000 rows would be
    100,000 steps.
    """
    growth = 1
    while growth < MAX_BATCH_GROWTH and rows >= 2 * growth * REFERENCE_ROWS:
        growth *= 2
    batch = batch_size * growth
    per_epoch = max(1, math.ceil(rows / batch))
    cap = epochs * math.ceil(REFERENCE_ROWS / batch_size) if max_steps is None else max_steps
    planned = max(1, min(epochs, math.ceil(cap / per_epoch)))
    cost = _COST.get()
    if cost is None or cost <= REFERENCE_COST:
        return Plan(planned, batch, per_epoch, epochs, batch_size)
    capped = max(1, min(epochs, math.ceil(cap * REFERENCE_COST / cost / per_epoch)))
    # the teacher's cost is named only where it, not the data size, set the epochs
    return Plan(capped, batch, per_epoch, epochs, batch_size, cost if capped < planned else None)


@dataclass
class Allowance:
    """A strategy's share of ``--time-budget``: training stops once ``deadline`` (a
    ``time.time()`` value, so a worker process can share it) has passed."""

    deadline: float
    stopped: str | None = None  # what the budget cut short, for the row

    def spent(self) -> bool:
        return time.time() >= self.deadline


_ALLOWANCE: ContextVar[Allowance | None] = ContextVar("compress_allowance", default=None)


@contextlib.contextmanager
def time_allowance(deadline: float | None) -> Iterator[Allowance | None]:
    """Training inside the block stops at ``deadline`` (None: no limit)."""
    allowance = None if deadline is None else Allowance(deadline)
    token = _ALLOWANCE.set(allowance)
    try:
        yield allowance
    finally:
        _ALLOWANCE.reset(token)


def out_of_time() -> bool:
    """For a strategy's own training loop: stop now, the run's time budget for it is spent."""
    allowance = _ALLOWANCE.get()
    return allowance is not None and allowance.spent()


def stopped_by_budget(what: str) -> None:
    """Record, for the row, what a loop that obeyed ``out_of_time`` cut short (first one wins:
    in a chain, the earliest stage that was cut)."""
    allowance = _ALLOWANCE.get()
    if allowance is not None and allowance.stopped is None:
        allowance.stopped = what


def limited() -> bool:
    """Whether a time allowance is in force (its callback costs a little on every batch)."""
    return _ALLOWANCE.get() is not None


def cut_short() -> str | None:
    """What the current time allowance cut short, if anything."""
    allowance = _ALLOWANCE.get()
    return None if allowance is None else allowance.stopped


def deadline_callback(model: keras.Model, planned: Plan) -> keras.callbacks.Callback:
    """Stops ``model.fit`` after the current batch once the time allowance is spent.  (A
    function, not a Callback subclass: subclassing at import would import TensorFlow for
    ``compress list``.)"""
    epoch = [0]

    def batch_end(batch: int, logs: dict | None = None) -> None:
        if out_of_time():
            model.stop_training = True
            done = epoch[0] * planned.steps_per_epoch + batch + 1
            stopped_by_budget(f"{done:,} of {planned.steps:,} optimizer steps ({planned.describe()})")

    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda number, logs=None: epoch.__setitem__(0, number),
        on_train_batch_end=batch_end)
    callback._supports_tf_logs = True  # it reads no logs: spare Keras a numpy copy per batch
    return callback


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


def fit(model: keras.Model, data: TrainingData, *, epochs: int, lr: float,
        callbacks: Sequence[keras.callbacks.Callback] = (), patience: float | None = None) -> Plan:
    """Compile and train on the train split: the one recipe every training strategy shares.

    ``epochs`` is planned for the data size (``plan``); ``patience`` (a fraction of the
    planned epochs; 0 or None: off) stops when validation accuracy has not improved for that
    long and restores the best weights.  The time
    allowance, if any, is obeyed.  Returns the plan, for the row's notes.
    """
    planned = plan(epochs, len(data.y_train))
    compile_for_training(model, lr)
    extra: list[keras.callbacks.Callback] = [deadline_callback(model, planned)] if limited() else []
    validation = None
    if patience:
        validation = (data.x_val, data.y_val)
        wait = max(1, math.ceil(patience * planned.epochs))
        extra.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=wait,
                                                   restore_best_weights=True))
    model.fit(data.x_train, data.y_train, epochs=planned.epochs, batch_size=planned.batch_size,
              verbose=0, validation_data=validation, callbacks=[*callbacks, *extra])
    return planned
