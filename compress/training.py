"""Training settings shared by the teacher and every strategy that trains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from compress.backend import keras

if TYPE_CHECKING:
    from compress.data import TrainingData

BATCH_SIZE = 32


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
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> None:
    """Compile and train on the train split: the one recipe every training strategy shares."""
    compile_for_training(model, lr)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=BATCH_SIZE, verbose=0,
              callbacks=list(callbacks))
