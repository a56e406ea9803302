"""Factorization family: a large Dense kernel (or embedding table) replaced by two thin ones of
low rank.

A kernel W (m × n) is truncated to its r largest singular values, W ≈ A·B with A = U_r·√S_r
(m × r) and B = √S_r·V_rᵀ (r × n): two Dense layers where there was one, r·(m + n) weights and
multiply-accumulates instead of m·n, both genuinely gone from the file (unlike unstructured
pruning's zeros).  The anchors are AIMET's weight SVD and Denton et al. 2014 ("Exploiting linear
structure within convolutional networks"); no maintained Keras tool has one.  A recovery on the
labels and the unfactorized teacher's logits (structured pruning's recipe) wins back what the
truncation lost.  An Embedding table (V × E) becomes an Embedding of width r and a linear Dense
r → E, as ALBERT factorizes its embeddings (Lan et al. 2019): in small text models the table is
most of the weights.  Convolutions keep their kernels (spatial SVD is not implemented: the notes
say so), and the output layer stays whole, since its few columns leave little to factor.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np

from compress.models.backend import keras
from compress.models.training import BATCH_SIZE
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.budget import certifier
from compress.strategies.notes import named
from compress.strategies.students import train_student

#: The ranks ``max_drop`` tries, as shares of each kernel's full rank, least compressed first.
SEARCH_RANKS = (0.5, 0.35, 0.25, 0.18, 0.125, 0.09, 0.0625)
#: Recovery targets, as structured pruning recovers: labels and the teacher's softened logits.
RECOVERY_TEMPERATURE = 2.0
#: The suffix of the first of the two layers a kernel becomes.
LOW_RANK_SUFFIX = "_lowrank"


def factor(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``kernel`` ≈ a @ b with ``rank`` inner columns (truncated SVD, the singular values split
    evenly between the two), and the share of the spectrum's energy kept."""
    u, s, vt = np.linalg.svd(kernel.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    kept = float(np.sum(s[:rank] ** 2) / max(np.sum(s**2), 1e-30))
    return (u[:, :rank] * root).astype(np.float32), (root[:, None] * vt[:rank]).astype(np.float32), kept


def low_rank(model: keras.Model, share: float) -> tuple[keras.Model, list[str], list[str], float]:
    """The model with every Dense kernel but the output's, and every Embedding table, replaced by
    two of rank ``share`` of its full rank, where that saves weights; the names factorized, the
    layers left whole (with why) and the least energy kept.  Raises Skip when nothing can be
    factorized."""
    graph = keras.Model(model.inputs, model.outputs) if isinstance(model, keras.Sequential) else model
    try:
        config = copy.deepcopy(graph.get_config())
    except NotImplementedError as error:
        raise Skip("factorization needs a Sequential or functional model, not a subclassed "
                   "one") from error
    outputs = {tensor.name for tensor in graph.outputs}
    factors: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    left, energy = [], 1.0
    for layer in graph.layers:
        is_table = type(layer) is keras.layers.Embedding
        if not (hasattr(layer, "kernel") or is_table) or isinstance(layer, keras.Model):
            continue  # no kernel to factor (normalization, pooling)
        kernel = layer.get_weights()[0]
        if not is_table and type(layer) is not keras.layers.Dense:
            left.append(f"{layer.name} ({type(layer).__name__}: only Dense kernels and Embedding "
                        "tables are factorized)")
        elif not is_table and layer.output.name in outputs:
            left.append(f"{layer.name} (the output)")
        else:
            m, n = kernel.shape
            rank = max(1, round(share * min(m, n)))
            if rank * (m + n) >= m * n:
                left.append(f"{layer.name} (rank {rank} of {m}×{n} would not save weights)")
                continue
            a, b, kept = factor(kernel, rank)
            factors[layer.name] = (a, b, None if is_table or not layer.use_bias else layer.get_weights()[1])
            energy = min(energy, kept)
    if not factors:
        raise Skip(f"no Dense kernel or Embedding table to factorize at rank {share:g}: "
                   f"{'; '.join(left) or 'no layer with a kernel'}")
    smaller = keras.Model.from_config(_split(config, factors))
    for layer in graph.layers:
        if layer.name in factors:
            a, b, bias = factors[layer.name]
            smaller.get_layer(layer.name + LOW_RANK_SUFFIX).set_weights([a])
            smaller.get_layer(layer.name).set_weights([b] if bias is None else [b, bias])
        elif layer.weights and not isinstance(layer, keras.layers.InputLayer):
            smaller.get_layer(layer.name).set_weights(layer.get_weights())
    return smaller, list(factors), left, energy


def _split(config: dict[str, Any], factors: dict[str, Any]) -> dict[str, Any]:
    """The functional config with a layer of the factor's rank inserted before each factorized
    layer, which then takes its output: a linear Dense before a Dense; before an Embedding's
    place, an Embedding of the rank's width, the place then a linear Dense to the old width."""
    layers = []
    for spec in config["layers"]:
        name = spec["name"]
        if name in factors:
            rank = int(factors[name][0].shape[1])
            first = copy.deepcopy(spec)
            first["name"] = first["config"]["name"] = name + LOW_RANK_SUFFIX
            spec = copy.deepcopy(spec)
            if spec["class_name"] == "Embedding":
                first["config"].update(output_dim=rank, embeddings_regularizer=None,
                                       activity_regularizer=None)
                spec["class_name"] = "Dense"
                spec["config"] = {"name": name, "units": spec["config"]["output_dim"],
                                  "activation": "linear", "use_bias": False,
                                  "trainable": spec["config"].get("trainable", True),
                                  "dtype": spec["config"].get("dtype", "float32")}
            else:
                first["config"].update(units=rank, activation="linear", use_bias=False,
                                       kernel_regularizer=None, bias_regularizer=None,
                                       activity_regularizer=None)
            spec["inbound_nodes"] = [[[first["name"], 0, 0, {}]]]
            layers.append(first)
        layers.append(spec)
    return {**config, "layers": layers}


@register
class Factorize(Strategy):
    """Every Dense kernel but the output's and every embedding table at ``rank`` of its full rank
    (truncated SVD), then a
    recovery of ``epochs`` on the labels and the teacher's logits; with ``max_drop`` the
    smallest rank of ``SEARCH_RANKS`` certified within that many points of the teacher on the
    run's evidence rows (``common.certify``), each rank recovered from the teacher afresh."""

    name = "factorize"
    family = "factorization"
    summary = ("Low-rank (SVD) factorization of Dense kernels and embedding tables: fewer weights "
               "and MACs, then recovery.")
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    #: Not searched by ``tune`` yet: a family more in its space changes every search's path, and
    #: the digits search with it (and the wider student ladder) had found a model only 10×
    #: smaller after 193 trials, where it had chosen one 57× smaller (docs/benchmarks.md,
    #: issue 42); ``factorize:max_drop`` chooses its rank itself.
    tunable: ClassVar[dict[str, Range | Choice] | None] = None
    follows = ("distillation", "pruning")
    cost = 1.0  # ten recovery epochs

    def __init__(self, rank: float = 0.25, epochs: int = 10, lr: float = 1e-3, alpha: float = 0.5,
                 max_drop: float | None = None) -> None:
        self.rank = rank
        self.epochs = epochs
        self.lr = lr
        self.alpha = alpha
        self.max_drop = max_drop
        if max_drop is not None:  # up to every rank of the search, each recovered in full
            self.cost = len(SEARCH_RANKS) / 2 * Factorize.cost
        self._check(0 < rank <= 1, f"rank must be a share of each kernel's full rank, above 0 and at "
                                   f"most 1, got {rank}")
        self._check_budget(epochs, lr)
        self._check(0 <= alpha <= 1, f"alpha must be between 0 and 1, got {alpha}")
        self._check(max_drop is None or (math.isfinite(max_drop) and max_drop >= 0),
                    f"max_drop must be 0 or more percentage points, got {max_drop}")

    def compress(self, ctx: Context) -> Compressed:
        if self.max_drop is None:
            model, names, left, energy = low_rank(ctx.teacher, self.rank)
            trained, share, how = self._recover(model, ctx), self.rank, ""
        else:
            model, names, left, energy, trained, share, how = self._search(ctx)
        return Compressed(model=model, notes=(
            f"{how}{named(names)} factorized at rank {share:g} of each kernel's full rank by truncated "
            f"SVD (at least {energy:.1%} of each spectrum's energy kept), each now two Dense layers; "
            f"{trained} of recovery on {self._targets()}: {ctx.teacher.count_params():,} → "
            f"{model.count_params():,} parameters. Left whole: {'; '.join(left) or 'nothing'}."))

    def _search(self, ctx: Context) -> tuple[keras.Model, list[str], list[str], float, str, float,
                                             str]:
        """Ranks from the largest down, each factorized from the teacher and recovered, tested in
        a fixed sequence on the evidence rows; the smallest certified is kept."""
        sequence, judge = certifier(ctx, float(self.max_drop or 0.0))
        kept = None
        for share in SEARCH_RANKS:
            try:
                model, names, left, energy = low_rank(ctx.teacher, share)
            except Skip:
                continue  # no kernel this small saves weights: a larger rank may still
            trained = self._recover(model, ctx)
            if not sequence.test(f"rank {share:g}", judge(model)):
                break
            kept = (model, names, left, energy, trained, share)
            if ctx.limits.out_of_time():
                break
        if kept is None:
            raise Skip(f"no rank meets max_drop={self.max_drop:g} pp. {sequence.describe()}")
        return (*kept, f"max_drop={self.max_drop:g}: kept rank {kept[5]:g}. {sequence.describe()} ")

    def _recover(self, model: keras.Model, ctx: Context) -> str:
        return train_student(model, ctx, teacher=ctx.teacher, alpha=self.alpha,
                             temperature=RECOVERY_TEMPERATURE, epochs=self.epochs, max_steps=None,
                             lr=self.lr, batch_size=BATCH_SIZE, decay=True)

    def _targets(self) -> str:
        return "the labels" if self.alpha == 1 else \
            f"the labels and the teacher's logits (alpha={self.alpha:g}, T={RECOVERY_TEMPERATURE:g})"
