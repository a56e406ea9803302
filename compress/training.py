"""Training settings shared by the teacher and every strategy that trains."""

from __future__ import annotations

from compress.backend import keras

BATCH_SIZE = 32


def compile_for_training(model: keras.Model, learning_rate: float) -> None:
    """Adam on sparse cross-entropy from logits: the loss every trainer here uses."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
