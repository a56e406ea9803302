"""Structured pruning: rebuild a model with fewer channels (neurons, filters, units, heads).

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

Recurrent layers (LSTM, GRU, SimpleRNN, and a Bidirectional one whose directions are
concatenated) make one channel per unit: a unit's gate columns, its recurrent row and column go
together, and a Bidirectional layer's two directions are two groups cut alike.  A
MultiHeadAttention over one tensor (self-attention) gives out its query's channels and loses
whole heads, a group of its own ranked by the norm of each head's weights under every
criterion.  A LayerNormalization mixes all its channels, so they are kept: in a transformer the
residual width stays and the heads and feed-forward width are cut.

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

#: Recurrent layers and their gates: a unit's columns in the kernels, one block per gate.
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
#: Layers whose kernel makes new channels: the last axis of their kernel (an Embedding's table:
#: its width).
PRODUCERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "Embedding",
             *GATES, "Bidirectional")
#: The config key of a producer's channel count.
WIDTH_KEYS = {"Dense": "units", "Embedding": "output_dim", **{kind: "units" for kind in GATES}}
#: The suffix of an attention layer's group of heads, and of a Bidirectional layer's backward units.
HEADS, BACKWARD = "/heads", "/backward"
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
    names = [entry[0] for entry in inputs]
    if spec["class_name"] == "MultiHeadAttention":
        others = [value[0] for entry in inputs if len(entry) > 3 for value in entry[3].values()
                  if isinstance(value, (list, tuple)) and value and isinstance(value[0], str)]
        if len(names) != 1 or any(other != names[0] for other in others):
            raise _unknown(layer, "it attends to another tensor than its query (only self-attention "
                                  "is traced)")
    return names


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
    if kind == "Bidirectional" and (config["layer"]["class_name"] not in GATES
                                    or config["merge_mode"] != "concat"):
        raise _unknown(layer, "only a recurrent layer whose two directions are concatenated is traced")
    if kind in PRODUCERS:
        if config.get("groups", 1) != 1:
            raise _unknown(layer, "grouped convolution")
        return channels.new(int(shape[-1]))
    rank = len(shape)
    if kind == "MultiHeadAttention":
        if config.get("output_shape"):
            raise _unknown(layer, "its output_shape differs from its query's")
        return inputs[0]  # the output projection gives back the query's channels
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return np.repeat(inputs[0], config["depth_multiplier"])
    if kind in ("BatchNormalization", "LayerNormalization") and \
            list(np.atleast_1d(config["axis"]) % rank) != [rank - 1]:
        raise _unknown(layer, "it normalizes an axis other than the channels")
    if kind in (*PASS_THROUGH, "LayerNormalization"):
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
    weights = layer.get_weights()
    if isinstance(layer, keras.layers.Bidirectional):
        half, inner = len(weights) // 2, type(layer.forward_layer).__name__
        norms = np.concatenate([_unit_norms(weights[:half], inner, order),
                                _unit_norms(weights[half:], inner, order)])
    elif type(layer).__name__ in GATES:
        norms = _unit_norms(weights, type(layer).__name__, order)
    else:
        separable = isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D))
        kernel = weights[1 if separable else 0]
        norms = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), ord=order, axis=0)
    if norm is None:
        return norms
    scale = 1 / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
    return norms * scale * (np.abs(norm.gamma.numpy()) if norm.scale else 1)


def _unit_norms(weights: list[np.ndarray], kind: str, order: int) -> np.ndarray:
    """A recurrent layer's per-unit norm: every gate's input and recurrent weights into it."""
    kernel, recurrent = weights[0], weights[1]
    units = recurrent.shape[0]
    incoming = np.concatenate([kernel, recurrent]).reshape(-1, GATES[kind], units)
    return np.linalg.norm(incoming.reshape(-1, units), ord=order, axis=0)


def _head_norms(layer: keras.layers.Layer, order: int) -> np.ndarray:
    """An attention layer's per-head norm: its query, key, value and output kernels."""
    kernels = [w.numpy() for w in layer.weights if w.name.rsplit("/", 1)[-1].startswith("kernel")]
    *inputs, output = kernels  # (width, heads, size) each, then (heads, size, width)
    heads = output.shape[0]
    per_head = [k.transpose(1, 0, 2).reshape(heads, -1) for k in inputs] + [output.reshape(heads, -1)]
    return np.linalg.norm(np.concatenate(per_head, axis=1), ord=order, axis=1)


def _unit_slice(weights: list[np.ndarray], kind: str, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    """A recurrent layer's weights for the kept inputs and units: each gate's columns of a unit."""
    kernel, recurrent, *bias = weights
    units = recurrent.shape[0]
    columns = (np.arange(GATES[kind])[:, None] * units + cols).reshape(-1)
    return [kernel[rows][:, columns], recurrent[cols][:, columns], *(b[..., columns] for b in bias)]


def _slice(layer: keras.layers.Layer, kind: str, rows: np.ndarray, cols: np.ndarray,
           heads: np.ndarray | None = None) -> list[np.ndarray]:
    """The layer's weights for the kept input channels (rows), output channels (cols) and, for
    attention, heads."""
    weights = layer.get_weights()
    if kind in INPUT_SCALING:  # the input's channels, all kept
        return weights
    if kind in GATES:
        return _unit_slice(weights, kind, rows, cols)
    if kind == "Bidirectional":
        half, inner, units = len(weights) // 2, type(layer.forward_layer).__name__, weights[1].shape[0]
        return (_unit_slice(weights[:half], inner, rows, cols[cols < units])
                + _unit_slice(weights[half:], inner, rows, cols[cols >= units] - units))
    if kind == "MultiHeadAttention":
        sliced = []
        for variable, value in zip(layer.weights, weights, strict=True):
            part, name = variable.name.split("/")[-2:]
            if part == "attention_output":
                sliced.append(value[heads][..., cols] if name.startswith("kernel") else value[cols])
            else:  # query, key, value: (width, heads, size) kernels, (heads, size) biases
                sliced.append(value[rows][:, heads] if name.startswith("kernel") else value[heads])
        return sliced
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
    # The input and output keep every channel, and so do a softmax and a layer normalization:
    # each mixes all of them.
    ends = [entry[0] for entry in (*config["input_layers"], *config["output_layers"])]
    ends += [spec["name"] for spec in config["layers"]
             if spec["class_name"] in ("Softmax", "LayerNormalization")
             or spec["config"].get("activation") == "softmax"]
    fixed = {root for name in ends for root in channels.roots(ids[name])}
    importance: dict[int, float] = {}
    owners: dict[int, list[str]] = {}
    scored = _importance(model, config, layers, feeds, criterion, rows)
    for spec in config["layers"]:  # an attention layer's heads: ids of their own, on no tensor
        if spec["class_name"] == "MultiHeadAttention":
            layer = layers[spec["name"]]
            ids[layer.name + HEADS] = channels.new(layer.get_config()["num_heads"])
            scored[layer.name + HEADS] = _head_norms(layer, 2 if criterion == "l2" else 1)
    for name, scores in scored.items():
        half = len(scores) // 2 if isinstance(layers.get(name), keras.layers.Bidirectional) else None
        for index, (root, score) in enumerate(zip(channels.roots(ids[name]), scores, strict=True)):
            owner = name + BACKWARD if half is not None and index >= half else name
            importance[root] = importance.get(root, 0.0) + float(score)
            owners.setdefault(root, [])
            if owner not in owners[root]:
                owners[root].append(owner)
    groups: dict[tuple[str, ...], list[int]] = {}
    for root, names in owners.items():
        if root not in fixed:
            groups.setdefault(tuple(names), []).append(root)
    kept = set(fixed)
    narrowed = []
    sizes = {names: len(roots) for names, roots in groups.items()}
    for names, roots in groups.items():
        whole = (reference or sizes).get(names, len(roots))
        floor = 1 if names[0].endswith(HEADS) else min(whole, min_channels)  # a head is no channel
        count = min(len(roots), max(1, floor, round(whole * (1 - fraction))))
        scores = np.array([importance[root] for root in roots])
        kept.update(roots[i] for i in np.argsort(-scores, kind="stable")[:count])
        if count < len(roots):
            narrowed.append(names)
    if not groups:
        raise Skip("structured pruning found no channel to remove: every channel is tied to the "
                   "model's input or output, or a layer normalization")
    if not narrowed:
        floor = f" and min_channels={min_channels}" if min_channels > 1 else ""
        raise NothingToRemove(f"fraction={fraction}{floor} removes no channel: the largest dependency "
                              f"group has only {max(len(roots) for roots in groups.values())} channels")
    keep = {name: np.flatnonzero([root in kept for root in channels.roots(channel_ids)])
            for name, channel_ids in ids.items()}
    for name, layer in layers.items():  # both directions run with one count of units
        if isinstance(layer, keras.layers.Bidirectional) and \
                2 * np.count_nonzero(keep[name] < len(ids[name]) // 2) != len(keep[name]):
            raise _unknown(layer, "its two directions would keep different numbers of units")
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
        if kind == "Bidirectional":
            for inner in (settings["layer"], settings.get("backward_layer")):
                if inner:
                    inner["config"]["units"] = width // 2
        elif kind in PRODUCERS:
            settings[WIDTH_KEYS.get(kind, "filters")] = width
        elif kind == "MultiHeadAttention":
            settings["num_heads"] = len(keep[spec["name"] + HEADS])
            for key in ("query_shape", "key_shape", "value_shape"):  # built from these, if saved
                if settings.get(key):
                    settings[key] = [*settings[key][:-1], len(keep[feeds[spec["name"]][0]])]
        elif kind == "Reshape" and settings["target_shape"][-1] != -1:
            settings["target_shape"] = [*settings["target_shape"][:-1], width]
    smaller = keras.Model.from_config(config)
    for spec in config["layers"]:
        layer = layers[spec["name"]]
        if layer.weights:  # only layers with an input have weights
            rows = keep[feeds[layer.name][0]]
            smaller.get_layer(layer.name).set_weights(
                _slice(layer, spec["class_name"], rows, keep[layer.name], keep.get(layer.name + HEADS)))
    return smaller
