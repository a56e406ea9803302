"""What one sample costs a Keras model, read from its layers' weights and output shapes with no
conversion and no clock: training budgets need it before any file exists, and the same number
on every machine (``flatbuffer.macs`` counts a TFLite file's ops instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from compress.models.backend import keras

#: What one activation value costs a training step, in multiply-accumulates.  Fitted on the
#: seconds per training sample of four models on a 2-core x86 machine (docs/benchmarks.md): a
#: ResNet of 26.7M MACs and MobileNetV2 (alpha 0.35) at 96x96 of 10.7M both take 10 ms, since
#: MobileNetV2's depthwise, normalization and activation layers move 3.6 times the values.
ACTIVATION_COST = 13


def forward_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one sample's forward pass through ``model``'s Dense, convolution,
    depthwise and separable layers (nested models included; a shared layer counts once per call).
    Pooling, normalization and activations are not counted, as in ``flatbuffer.macs``."""
    return sum(_layer_macs(layer, shape) for layer, shape in _calls(model))


def sample_cost(model: keras.Model) -> int:
    """A machine-independent stand-in for what one training sample costs ``model``: its MACs
    plus ``ACTIVATION_COST`` for every value its layers write."""
    return forward_macs(model) + ACTIVATION_COST * sum(_size(shape) for _, shape in _calls(model))


def _calls(model: keras.Model) -> Iterator[tuple[Any, tuple[int | None, ...]]]:
    """Every layer call in ``model``'s graph, with its output shape, nested models opened."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shapes = list(_output_shapes(layer))
        if isinstance(layer, keras.Model):
            for _ in shapes or [None]:
                yield from _calls(layer)
            continue
        for shape in shapes:
            yield layer, shape


def _output_shapes(layer: Any) -> Iterator[tuple[int | None, ...]]:
    """The output shape of each of ``layer``'s calls (a layer with several outputs: none)."""
    for index in range(len(getattr(layer, "inbound_nodes", None) or [])):
        try:
            shape = layer.get_output_shape_at(index)
        except (AttributeError, RuntimeError, ValueError):  # a call outside any model's graph
            continue
        if isinstance(shape, tuple) and all(isinstance(d, int) or d is None for d in shape):
            yield shape


def _size(shape: tuple[int | None, ...]) -> int:
    return int(np.prod([d for d in shape[1:] if d is not None]))


def _layer_macs(layer: Any, output: tuple[int | None, ...]) -> int:
    """One call's multiply-accumulates: every output value of a kernel costs the kernel's size
    over its output channels; a depthwise kernel's outputs, its spatial size."""
    values, channels = _size(output), output[-1] or 1
    total = 0
    depthwise = getattr(layer, "depthwise_kernel", None)
    if depthwise is not None:
        total += values // channels * int(np.prod(depthwise.shape))
    for name in ("kernel", "pointwise_kernel"):
        kernel = getattr(layer, name, None)
        if kernel is not None and hasattr(kernel, "shape"):
            total += values * int(np.prod(kernel.shape)) // channels
    return total
