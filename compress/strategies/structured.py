"""Structured pruning: rebuild a model with fewer neurons and filters.

tfmot has no structured pruning (its issues #541 and #732); zeroing weights
leaves dense kernels as large and as slow as before.  ``shrink`` instead
removes the least important units (L1 norm of their incoming weights) and
slices every later layer to match, so the rebuilt model is smaller and faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compress.backend import keras
from compress.strategies.base import Skip


def _pass_through() -> tuple[type, ...]:
    """Layers that leave the channel axis as it is: carried over unchanged."""
    layers = keras.layers
    return (layers.MaxPooling2D, layers.AveragePooling2D, layers.Dropout, layers.GaussianNoise,
            layers.Activation, layers.ReLU, layers.Rescaling, layers.Softmax)


def _keep(kernel: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the output units to keep: the highest L1 norms, in their original order."""
    units = kernel.shape[-1]
    norms = np.abs(kernel.reshape(-1, units)).sum(axis=0)
    count = max(1, round(units * (1 - fraction)))
    return np.sort(np.argsort(-norms, kind="stable")[:count])


def shrink(model: keras.Model, fraction: float) -> keras.Sequential:
    """A smaller copy: each hidden Dense/Conv2D keeps (1 - fraction) of its units.

    The output layer keeps every unit.  BatchNormalization and Flatten are
    sliced to match; a layer of any other kind (merges included, so only
    single-chain models get through) raises Skip naming it.
    """
    if not hasattr(model, "layers"):
        raise Skip("structured pruning needs a Sequential or functional model")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    weighted = [i for i, layer in enumerate(layers)
                if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    if not weighted:
        raise Skip("the teacher has no Dense or Conv2D layer to prune")
    last = weighted[-1]
    kept: np.ndarray | None = None  # kept indices along the current tensor's last axis
    rebuilt: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    for index, layer in enumerate(layers):
        config: dict[str, Any] = layer.get_config()
        weights = layer.get_weights()
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            kernel, *bias = weights
            if kept is not None:
                kernel = kernel[..., kept, :]
            if index != last:
                kept = _keep(kernel, fraction)
                kernel, bias = kernel[..., kept], [b[kept] for b in bias]
                config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = len(kept)
            else:
                kept = None
            weights = [kernel, *bias]
        elif isinstance(layer, keras.layers.BatchNormalization):
            if layer.axis not in ([-1], [len(layer.input_shape) - 1], -1):
                raise Skip(f"layer {layer.name}: BatchNormalization over a non-channel axis")
            if kept is not None:
                weights = [w[kept] for w in weights]
        elif isinstance(layer, keras.layers.Flatten):
            if kept is not None:
                channels = layer.input_shape[-1]
                positions = int(np.prod(layer.input_shape[1:-1]))
                kept = (np.arange(positions)[:, None] * channels + kept[None, :]).reshape(-1)
        elif not isinstance(layer, _pass_through()):
            raise Skip(f"structured pruning cannot handle layer {layer.name} "
                       f"({type(layer).__name__})")
        rebuilt.append((type(layer).from_config(config), weights))
    smaller = keras.Sequential([keras.Input(model.input_shape[1:]), *(layer for layer, _ in rebuilt)],
                               name=f"{model.name}_shrunk")
    for layer, weights in rebuilt:
        layer.set_weights(weights)
    return smaller
