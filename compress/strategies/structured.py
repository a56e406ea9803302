"""Structured pruning: rebuild a model with fewer channels (neurons and filters).

tfmot has no structured pruning (its issues #541 and #732); zeroing weights leaves dense kernels
as large and as slow as before.  ``shrink`` removes whole channels and rebuilds a genuinely
smaller functional model.

Channels are coupled across layers, as in DepGraph (Fang et al., "Towards Any Structural
Pruning", CVPR 2023): the inputs of a residual Add must keep the same channels, a Concatenate
lays its inputs' channels side by side, a depthwise convolution and a BatchNorm follow the
channels of their input, Flatten repeats each channel once per position.  Here every tensor's
channel axis is an array of channel ids; a layer that makes new channels (Dense, Conv, the
pointwise part of a SeparableConv) gives out fresh ids, every other layer maps its input's ids,
and an element-wise merge unites the ids it lines up (union-find).  Channels with one root are
removed together; a dependency group is the set of such channels made by the same producing
layers, and each group keeps ``1 - fraction`` of them, ranked by their importance summed over
the producers (``CRITERIA``).  Channels tied to the model's input or output are never removed.

Layer names survive a cut, so the groups of a smaller model are the teacher's: a gradual
schedule cuts the same groups again, each time to a share of the teacher's channel counts
(``reference``), and reaches exactly the counts one cut would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.models.backend import keras
from compress.strategies.base import Skip

#: Layers whose kernel makes new channels: the last axis of their kernel (an Embedding's table:
#: its width).
PRODUCERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "Embedding")
#: The config key of a producer's channel count.
WIDTH_KEYS = {"Dense": "units", "Embedding": "output_dim"}
#: Layers that act on each channel on its own, or over positions only: channels pass unchanged.
PASS_THROUGH = (
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Softmax",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "BatchNormalization",
)
#: A model's own input scaling: it passes the input's channels on, which are never pruned, so its
#: fitted per-channel values never need cutting; anywhere else it is refused.
INPUT_SCALING = ("Normalization", "Rescaling")
#: Merges whose inputs line up channel by channel (broadcasting a single channel is allowed).
ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
#: How a channel's importance is scored: the L1 or L2 norm of its incoming weights (BatchNorm
#: folded in), or first-order Taylor (Molchanov et al., 2019): |activation × gradient of the
#: loss| summed over positions, averaged over training rows; data-aware, it sees which channels
#: the loss actually depends on.
CRITERIA = ("l1", "l2", "taylor")
#: Training rows the Taylor criterion averages over.
TAYLOR_ROWS = 512


class _Channels:
    """Union-find over channel ids: channels with one root are kept or removed together."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.of_inputs: set[int] = set()  # the model inputs' channels: never removed

    def new(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, channel: int) -> int:
        root = channel
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[channel] != root:  # path compression
            self.parent[channel], channel = root, self.parent[channel]
        return root

    def unite(self, first: np.ndarray, second: np.ndarray) -> None:
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            ra, rb = self.find(a), self.find(b)
            if ra != rb:
                self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self, ids: np.ndarray) -> list[int]:
        return [self.find(i) for i in ids.tolist()]


@dataclass(frozen=True)
class Shrunk:
    """The rebuilt model, the producing layers narrowed together (one tuple per group), and every
    group's channel count before the cut (a gradual schedule's ``reference``)."""

    model: keras.Model
    groups: list[tuple[str, ...]]
    sizes: dict[tuple[str, ...], int]


class NothingToRemove(Skip):
    """The fraction leaves every group whole: too small for groups this narrow."""


def _unknown(layer: keras.layers.Layer, why: str = "its channels cannot be traced") -> Skip:
    return Skip(f"structured pruning cannot handle layer {layer.name} ({type(layer).__name__}): {why}")


def _graph(model: keras.Model) -> tuple[dict[str, Any], dict[str, keras.layers.Layer]]:
    """The functional config (layers and their inbound nodes) and the layers by name."""
    if not isinstance(model, keras.Model) or not model.built:
        raise Skip("structured pruning needs a built Sequential or functional model")
    graph = keras.Model(model.inputs, model.outputs) if isinstance(model, keras.Sequential) else model
    try:
        config = graph.get_config()
    except NotImplementedError as error:
        raise Skip("structured pruning needs a Sequential or functional model, not a subclassed one") \
            from error
    if not isinstance(config, dict) or "layers" not in config:
        raise Skip("structured pruning needs a Sequential or functional model, not a subclassed one")
    return config, {layer.name: layer for layer in graph.layers}


def _inbound(layer: keras.layers.Layer, spec: dict[str, Any]) -> list[str]:
    """Names of the layers feeding this one; a layer called more than once is refused."""
    nodes = spec["inbound_nodes"]
    if len(nodes) > 1:
        raise _unknown(layer, "it is shared (called more than once)")
    inputs = nodes[0] if nodes else []
    if any(not isinstance(entry, (list, tuple)) or entry[2] != 0 for entry in inputs):
        raise _unknown(layer)
    return [entry[0] for entry in inputs]


def _trace(layer: keras.layers.Layer, kind: str, config: dict[str, Any], inputs: list[np.ndarray],
           channels: _Channels) -> np.ndarray:
    """The channel ids along this layer's output's last axis."""
    if isinstance(layer, keras.Model):
        raise _unknown(layer, "nested models are not traced")
    if type(layer) is not getattr(keras.layers, kind, None):
        raise _unknown(layer, "not a built-in layer")
    if config.get("data_format") == "channels_first":
        raise _unknown(layer, "channels_first data")
    shape = layer.output.shape
    if kind == "InputLayer":
        made = channels.new(int(shape[-1]))
        channels.of_inputs.update(made.tolist())
        return made
    if kind in INPUT_SCALING:
        if not set(inputs[0].tolist()) <= channels.of_inputs:
            raise _unknown(layer, "it scales channels a layer made, which pruning would cut")
        return inputs[0]
    if kind in PRODUCERS:
        if config.get("groups", 1) != 1:
            raise _unknown(layer, "grouped convolution")
        return channels.new(int(shape[-1]))
    rank = len(shape)
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return np.repeat(inputs[0], config["depth_multiplier"])
    if kind == "BatchNormalization" and list(np.atleast_1d(config["axis"]) % rank) != [rank - 1]:
        raise _unknown(layer, "it normalizes an axis other than the channels")
    if kind in PASS_THROUGH:
        return inputs[0]
    if kind in ("Flatten", "Reshape"):
        return _reshaped(layer, inputs[0])
    if kind == "Concatenate" and config["axis"] in (-1, rank - 1):
        return np.concatenate(inputs)
    if kind in (*ELEMENTWISE, "Concatenate"):
        widest = max(inputs, key=len)
        for ids in inputs:
            if len(ids) == len(widest):
                channels.unite(widest, ids)
            elif len(ids) != 1:
                raise _unknown(layer, f"its inputs have {len(ids)} and {len(widest)} channels")
        return widest
    raise _unknown(layer)


def _reshaped(layer: keras.layers.Layer, ids: np.ndarray) -> np.ndarray:
    """Flatten, or a Reshape whose last axis is a whole number of channel rows: each position
    repeats the channels in order, so the cut carries into the next layer's input rows."""
    before, after = layer.input_shape[-1], layer.output_shape[-1]
    if before is None or after is None or after % before:
        raise _unknown(layer, "the reshape splits the channel axis")
    return np.tile(ids, after // before)


def _norms(layer: keras.layers.Layer, norm: keras.layers.Layer | None, order: int = 1) -> np.ndarray:
    """L1 (or L2) norm of each output channel's incoming weights (the pointwise kernel of a
    SeparableConv), with the BatchNorm right after it folded in, as TFLite folds it: a BatchNorm
    rescales each channel, so the raw kernel's scale says little about what the channel
    contributes."""
    separable = isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D))
    kernel = layer.get_weights()[1 if separable else 0]
    norms = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), ord=order, axis=0)
    if norm is None:
        return norms
    scale = 1 / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
    return norms * scale * (np.abs(norm.gamma.numpy()) if norm.scale else 1)


def _slice(layer: keras.layers.Layer, kind: str, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    """The layer's weights for the kept input channels (rows) and output channels (cols)."""
    weights = layer.get_weights()
    if kind in INPUT_SCALING:  # the input's channels, all kept
        return weights
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        depthwise, pointwise, *bias = weights
        multiplier = layer.depth_multiplier
        middle = (rows[:, None] * multiplier + np.arange(multiplier)).reshape(-1)
        return [depthwise[..., rows, :], pointwise[..., middle, :][..., cols], *(b[cols] for b in bias)]
    if kind == "Embedding":  # its input is ids, not channels
        return [weights[0][:, cols]]
    if kind in PRODUCERS:
        kernel, *bias = weights
        return [kernel[..., rows, :][..., cols], *(b[cols] for b in bias)]
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        kernel, *bias = weights
        return [kernel[..., rows, :], *(b[cols] for b in bias)]
    return [w[cols] for w in weights]  # BatchNormalization: one value per channel


def _taylor(model: keras.Model, outputs: dict[str, keras.layers.Layer],
            rows: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """First-order Taylor importance of each channel of each named layer's output: the mean over
    rows of |sum over positions of activation × d(loss)/d(activation)|."""
    from compress.models.backend import tf

    names = list(outputs)
    probe = keras.Model(model.inputs, [*(outputs[name].output for name in names), model.outputs[0]])
    x, y = rows
    with tf.GradientTape() as tape:
        *activations, logits = probe(x.astype(np.float32), training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    gradients = tape.gradient(loss, activations)
    scores = {}
    for name, activation, gradient in zip(names, activations, gradients, strict=True):
        product = (activation * gradient).numpy()
        per_row = product.reshape(len(x), -1, product.shape[-1]).sum(axis=1)
        scores[name] = np.abs(per_row).mean(axis=0)
    return scores


def _importance(model: keras.Model, config: dict[str, Any], layers: dict[str, keras.layers.Layer],
                feeds: dict[str, list[str]], criterion: str,
                rows: tuple[np.ndarray, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Each producing layer's per-channel scores under ``criterion``."""
    normalized = {feeds[spec["name"]][0]: layers[spec["name"]] for spec in config["layers"]
                  if spec["class_name"] == "BatchNormalization"}
    producers = [spec["name"] for spec in config["layers"] if spec["class_name"] in PRODUCERS]
    if criterion != "taylor":
        order = 2 if criterion == "l2" else 1
        return {name: _norms(layers[name], normalized.get(name), order) for name in producers}
    if rows is None:
        raise ValueError("the taylor criterion needs training rows")
    # The channel as the next layers see it: after its BatchNorm, if one follows.
    return _taylor(model, {name: normalized.get(name, layers[name]) for name in producers}, rows)


def shrink(model: keras.Model, fraction: float, *, criterion: str = "l1",
           reference: dict[tuple[str, ...], int] | None = None,
           rows: tuple[np.ndarray, np.ndarray] | None = None, min_channels: int = 1) -> Shrunk:
    """A smaller copy: every dependency group of channels keeps ``1 - fraction`` of them, or of
    its count in ``reference`` (a gradual schedule's first model), but never fewer than
    ``min_channels`` (a group that was narrower stays whole).

    On the kept channels the function is unchanged; the removed ones' contributions are simply
    gone.  ``rows`` (inputs, labels) feed the data-aware criterion.  A layer whose channels cannot
    be traced raises Skip naming it and its class; a fraction that removes nothing raises
    NothingToRemove.
    """
    config, layers = _graph(model)
    channels = _Channels()
    ids: dict[str, np.ndarray] = {}
    feeds: dict[str, list[str]] = {}
    for spec in config["layers"]:
        layer = layers[spec["name"]]
        feeds[layer.name] = _inbound(layer, spec)
        ids[layer.name] = _trace(layer, spec["class_name"], spec["config"],
                                 [ids[name] for name in feeds[layer.name]], channels)
    # The input and output keep every channel, and so does a softmax: it mixes all of them.
    ends = [entry[0] for entry in (*config["input_layers"], *config["output_layers"])]
    ends += [spec["name"] for spec in config["layers"]
             if spec["class_name"] == "Softmax" or spec["config"].get("activation") == "softmax"]
    fixed = {root for name in ends for root in channels.roots(ids[name])}
    importance: dict[int, float] = {}
    owners: dict[int, list[str]] = {}
    for name, scores in _importance(model, config, layers, feeds, criterion, rows).items():
        for root, score in zip(channels.roots(ids[name]), scores, strict=True):
            importance[root] = importance.get(root, 0.0) + float(score)
            owners.setdefault(root, [])
            if name not in owners[root]:
                owners[root].append(name)
    groups: dict[tuple[str, ...], list[int]] = {}
    for root, names in owners.items():
        if root not in fixed:
            groups.setdefault(tuple(names), []).append(root)
    kept = set(fixed)
    narrowed = []
    sizes = {names: len(roots) for names, roots in groups.items()}
    for names, roots in groups.items():
        whole = (reference or sizes).get(names, len(roots))
        count = min(len(roots), max(1, min(whole, min_channels), round(whole * (1 - fraction))))
        scores = np.array([importance[root] for root in roots])
        kept.update(roots[i] for i in np.argsort(-scores, kind="stable")[:count])
        if count < len(roots):
            narrowed.append(names)
    if not groups:
        raise Skip("structured pruning found no channel to remove: every channel is tied to the "
                   "model's input or output")
    if not narrowed:
        floor = f" and min_channels={min_channels}" if min_channels > 1 else ""
        raise NothingToRemove(f"fraction={fraction}{floor} removes no channel: the largest dependency "
                              f"group has only {max(len(roots) for roots in groups.values())} channels")
    keep = {name: np.flatnonzero([root in kept for root in channels.roots(channel_ids)])
            for name, channel_ids in ids.items()}
    # One suffix however many cuts: the name prefixes every tensor name in the flatbuffer, and a
    # suffix per cut made a file of several cuts larger than one cut's, for the same weights
    # (measured: docs/benchmarks.md, "Figures behind design decisions").
    name = model.name if model.name.endswith("_shrunk") else f"{model.name}_shrunk"
    return Shrunk(_rebuild(config, layers, feeds, keep, name), narrowed, sizes)


def _rebuild(config: dict[str, Any], layers: dict[str, keras.layers.Layer], feeds: dict[str, list[str]],
             keep: dict[str, np.ndarray], name: str) -> keras.Model:
    """The same graph with fewer units and filters, and the kept channels' weights copied."""
    config = copy.deepcopy(config)
    config["name"] = name
    for spec in config["layers"]:
        kind, settings, width = spec["class_name"], spec["config"], len(keep[spec["name"]])
        if kind in PRODUCERS:
            settings[WIDTH_KEYS.get(kind, "filters")] = width
        elif kind == "Reshape" and settings["target_shape"][-1] != -1:
            settings["target_shape"] = [*settings["target_shape"][:-1], width]
    smaller = keras.Model.from_config(config)
    for spec in config["layers"]:
        layer = layers[spec["name"]]
        if layer.weights:  # only layers with an input have weights
            rows = keep[feeds[layer.name][0]]
            smaller.get_layer(layer.name).set_weights(
                _slice(layer, spec["class_name"], rows, keep[layer.name]))
    return smaller
