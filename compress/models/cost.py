"""What one sample costs a Keras model, read from its layers' weights and output shapes with no
conversion and no clock: training budgets need it before any file exists, and the same number
on every machine (``flatbuffer.macs`` counts a TFLite file's ops instead).

Counted: Dense, convolution, depthwise and separable kernels, in models nested at any depth.
Not counted: kernels a layer keeps in sublayers (recurrent cells, attention, wrappers) and
subclassed models, whose graph Keras does not record; they cost 0, so nothing is capped for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from compress.models.backend import keras

#: What one activation value costs a training step, in multiply-accumulates.  Solved from the
#: seconds per training sample of the models measured: a ResNet and MobileNetV2 (alpha 0.35) at
#: 96x96 take the same time for very different MACs, since MobileNetV2's depthwise, normalization
#: and activation layers move several times the values (measured: docs/benchmarks.md, "Budgets
#: planned for the teacher's cost (issue 30, 2026-12-05)").
ACTIVATION_COST = 13


def forward_macs(model: keras.Model) -> int | None:
    """Multiply-accumulates of one sample's forward pass through ``model``'s kernels (a shared
    layer counts once per call); None when a layer's output size is unknown (an input of free
    size).  Pooling, normalization and activations are not counted, as in ``flatbuffer.macs``."""
    counted = _count(model)
    return None if counted is None else counted[0]


def sample_cost(model: keras.Model) -> int | None:
    """A machine-independent stand-in for what one training sample costs ``model``: its MACs
    plus ``ACTIVATION_COST`` for every value its layers write; None when a size is unknown."""
    counted = _count(model)
    return None if counted is None else counted[0] + ACTIVATION_COST * counted[1]


def _count(model: keras.Model) -> tuple[int, int] | None:
    """(MACs, activation values) of every layer call, or None if any output size is unknown."""
    macs = values = 0
    for layer, shape in layer_calls(model):
        if any(d is None for d in shape[1:]):
            return None
        size = int(np.prod(shape[1:]))
        macs += _layer_macs(layer, size)
        values += size
    return macs, values


def layer_calls(model: keras.Model) -> Iterator[tuple[Any, tuple[int | None, ...]]]:
    """Every layer call in ``model``'s graph, with its output shape, nested models opened."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shapes = list(_output_shapes(layer))
        if isinstance(layer, keras.Model):
            for _ in shapes or [None]:
                yield from layer_calls(layer)
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


def _layer_macs(layer: Any, values: int) -> int:
    """One call's multiply-accumulates, ``values`` being its output size: each output value of
    a kernel costs the kernel's size less its output axis (a depthwise kernel: its window).
    Independent of the data format, since the output channels are read from the kernel."""
    if type(layer).__name__ in SEQUENCE_LAYERS:
        return _sequence_macs(layer)
    depthwise = getattr(layer, "depthwise_kernel", None)
    pointwise = getattr(layer, "pointwise_kernel", None)
    if depthwise is not None and pointwise is not None:  # separable: depthwise at the output grid
        grid = values // int(pointwise.shape[-1])
        return grid * int(np.prod(depthwise.shape)) + values * int(np.prod(pointwise.shape[:-1]))
    if depthwise is not None:
        return values * int(np.prod(depthwise.shape[:-2]))
    kernel = getattr(layer, "kernel", None)
    if kernel is not None and hasattr(kernel, "shape"):
        return values * int(np.prod(kernel.shape[:-1]))
    return 0


#: Layers whose cost is per step of the sequence they read, not per output value.
SEQUENCE_LAYERS = ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention")


def _sequence_macs(layer: Any) -> int:
    """A recurrent layer's (each direction's): every step multiplies the input and the previous
    state by all of its gates' kernels; an attention layer's: its four projections at every
    position, and the scores and their weighted sum over every pair of positions."""
    shapes = layer.input_shape  # an attention layer's: one per input (query, value)
    steps = int((shapes[0] if isinstance(shapes, list) else shapes)[1])
    if type(layer).__name__ == "MultiHeadAttention":
        kernels = [w for w in layer.weights if "kernel" in w.name]
        query = next(w for w in kernels if "query" in w.name)
        projections = sum(int(np.prod(w.shape)) for w in kernels)
        return steps * projections + 2 * steps * steps * int(np.prod(query.shape[1:]))
    directions = [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
    return sum(steps * (int(np.prod(rnn.cell.kernel.shape)) + int(np.prod(rnn.cell.recurrent_kernel.shape)))
               for rnn in directions)
