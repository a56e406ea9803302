"""Pruning family: zero out (or remove) the weights that matter least."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from compress.models.backend import keras, tfmot
from compress.models.training import Plan, cut_short, fit, plan
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.structured import shrink


def polynomial_schedule(sparsity: float, planned: Plan) -> tfmot.sparsity.keras.PolynomialDecay:
    """Ramp to ``sparsity`` over the first two thirds of training, then hold it.

    tfmot's default ``frequency=100`` never fires on a small dataset (a few
    dozen steps per epoch), so the frequency is derived from the epoch length
    and the end step is a multiple of it: the target is really reached.
    """
    total, frequency = planned.steps, max(1, planned.steps_per_epoch // 4)
    ramp = max(1, (2 * total) // 3)
    end_step = frequency * math.ceil(ramp / frequency)
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )


#: Kernels smaller than this stay dense: the first convolution and a small output layer hold
#: few bytes but much of the accuracy (digits: -1.9 pp with them pruned at 0.8, see benchmarks).
MIN_PRUNED_WEIGHTS = 2048
#: Layers named in notes and skip reasons before "and N more".
NAMED = 6


def pruned_weight(layer: keras.layers.Layer) -> str | None:
    """The weight pruning zeroes in this layer.  As in tfmot's registry the class must match
    exactly and a SeparableConv has its pointwise kernel pruned only; tfmot wraps a
    DepthwiseConv2D but prunes none of its weights, here its depthwise kernel is pruned too
    (see ``_wrap``)."""
    layers = keras.layers
    return {layers.Dense: "kernel", layers.Conv1D: "kernel", layers.Conv2D: "kernel",
            layers.SeparableConv1D: "pointwise_kernel", layers.SeparableConv2D: "pointwise_kernel",
            layers.DepthwiseConv2D: "depthwise_kernel"}.get(type(layer))


def named(items: list[str]) -> str:
    """A short list for notes: the first few, then how many more."""
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(items[:NAMED]) + more


def by_reason(left: list[tuple[keras.layers.Layer, str]]) -> str:
    """Layers a library left alone, grouped by why: "reason: name (Class), ...; reason: ..."."""
    groups: dict[str, list[str]] = {}
    for layer, reason in left:
        groups.setdefault(reason, []).append(f"{layer.name} ({type(layer).__name__})")
    return "; ".join(f"{reason}: {named(names)}" for reason, names in groups.items())


def _refusal(layer: keras.layers.Layer, m_by_n: bool) -> str | None:
    """Why this layer's weights stay dense, or None to prune it."""
    weight = pruned_weight(layer)
    if weight is None:
        return "only Dense, Conv1D/2D, depthwise and separable kernels are pruned"
    size = int(getattr(layer, weight).shape.num_elements())
    if size < MIN_PRUNED_WEIGHTS:
        return f"under {MIN_PRUNED_WEIGHTS} weights"
    if m_by_n and isinstance(layer, keras.layers.DepthwiseConv2D):
        return "2:4 is a pattern for matrix multiplies, not depthwise convolutions"
    if m_by_n and getattr(layer, weight).shape.rank not in (2, 4):
        return "tfmot's 2:4 masks take rank-2 or rank-4 kernels only"
    return None


def _wrap(layer: keras.layers.Layer, pruning: dict[str, Any]) -> keras.layers.Layer:
    """tfmot's pruning wrapper; for a DepthwiseConv2D, the depthwise kernel is handed to it through
    the hook tfmot's own registry uses on built-in layers (a ``get_prunable_weights`` method)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        layer.get_prunable_weights = lambda: [layer.depthwise_kernel]
    return tfmot.sparsity.keras.prune_low_magnitude(layer, **pruning)


def _prune_and_recover(
    ctx: Context, epochs: int, lr: float, **pruning: Any
) -> tuple[keras.Model, list[str], str, Plan]:
    """Wrap the large Dense/Conv kernels, train with pruning steps, strip the wrappers.

    Returns the model, the names of the pruned layers, why the other weighted layers
    stay dense, and the training plan.
    """
    m_by_n = "sparsity_m_by_n" in pruning
    wrapped, dense = {}, []
    for layer in ctx.teacher.layers:
        if not layer.trainable_weights or isinstance(layer, keras.layers.BatchNormalization):
            continue
        reason = _refusal(layer, m_by_n)
        if reason is None:
            wrapped[layer.name] = _wrap(layer, pruning)
        else:
            dense.append((layer, reason))
    if not wrapped:
        raise Skip(f"no layer to prune: {by_reason(dense)}" if dense else "the teacher has no weights")
    try:
        model = keras.models.clone_model(ctx.teacher,
                                         clone_function=lambda layer: wrapped.get(layer.name, layer))
    except ValueError as error:  # subclassed models
        raise Skip(f"tfmot cannot prune this teacher: {_first_line(error)}") from error
    trained = fit(model, ctx.data, epochs=epochs, lr=lr,
                  callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model), list(wrapped), by_reason(dense), trained


def zero_fraction(model: keras.Model, names: list[str]) -> float:
    """The share of zeros in the pruned weights of these layers: what pruning really reached."""
    total = zeros = 0
    for name in names:
        layer = model.get_layer(name)
        weight = getattr(layer, str(pruned_weight(layer))).numpy()
        total, zeros = total + weight.size, zeros + int((weight == 0).sum())
    return zeros / total if total else 0.0


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _kept_dense(dense: str) -> str:
    return f" Kept dense, {dense}." if dense else ""


_UNSTRUCTURED_NOTE = (
    "The dense TFLite kernels still store and multiply every zero: raw size and latency do not "
    "change, only the gzip size shrinks."
)


@register
class PruneMagnitude(Strategy):
    name = "prune-magnitude"
    family = "pruning"
    summary = "Unstructured low-magnitude pruning (tfmot) with recovery training, then strip."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"sparsity": Range(0.5, 0.95, step=0.05)}
    follows = ("distillation",)

    def __init__(self, sparsity: float = 0.8, epochs: int = 10, lr: float = 1e-3) -> None:
        self.sparsity = sparsity
        self.epochs = epochs
        self.lr = lr
        self._check_open_unit("sparsity", sparsity)
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        schedule = polynomial_schedule(self.sparsity, plan(self.epochs, len(ctx.data.y_train)))
        model, pruned, dense, trained = _prune_and_recover(ctx, self.epochs, self.lr,
                                                           pruning_schedule=schedule)
        reached = zero_fraction(model, pruned)
        short = "" if reached >= self.sparsity - 0.005 else f" (target {self.sparsity:.0%}" + (
            ": the time budget stopped the ramp)" if cut_short() else ")")
        return Compressed(
            model=model,
            notes=f"{reached:.0%} of the weights of {named(pruned)} set to zero{short} over "
            f"{trained.describe()}.{_kept_dense(dense)} {_UNSTRUCTURED_NOTE}",
        )


@register
class Prune2of4(Strategy):
    name = "prune-2of4"
    family = "pruning"
    summary = "2:4 structured sparsity (tfmot sparsity_m_by_n): 2 zeros in every 4 input weights."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    tunable: ClassVar[dict[str, Range | Choice] | None] = {}
    follows = ("distillation",)

    def __init__(self, epochs: int = 4, lr: float = 5e-4) -> None:
        self.epochs = epochs
        self.lr = lr
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        model, pruned, dense, _ = _prune_and_recover(ctx, self.epochs, self.lr,
                                                     sparsity_m_by_n=(2, 4))
        return Compressed(
            model=model,
            notes=f"At most 2 non-zeros in every group of 4 along the input axis of {named(pruned)}: "
            f"the pattern sparse tensor cores accelerate.{_kept_dense(dense)} "
            + _UNSTRUCTURED_NOTE.replace("The", "On CPU the"),
        )


@register
class PruneStructured(Strategy):
    name = "prune-structured"
    family = "pruning"
    summary = "Removes the least important neurons and filters: a genuinely smaller, faster model."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"fraction": Range(0.25, 0.85, step=0.05)}
    follows = ("distillation",)
    cost = 3.0  # 40 recovery epochs

    def __init__(self, fraction: float = 0.5, epochs: int = 40, lr: float = 1e-3) -> None:
        self.fraction = fraction
        self.epochs = epochs
        self.lr = lr
        self._check_open_unit("fraction", fraction)
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        shrunk = shrink(ctx.teacher, self.fraction)
        trained = fit(shrunk.model, ctx.data, epochs=self.epochs, lr=self.lr)
        narrowed = [name for group in shrunk.groups for name in group]
        joined = [" + ".join(group) for group in shrunk.groups if len(group) > 1]
        together = f"layers whose channels must match went together ({named(joined)}), " if joined else ""
        return Compressed(
            model=shrunk.model,
            notes=f"{self.fraction:.0%} of the channels of {len(shrunk.groups)} dependency groups removed "
            f"by summed L1 norm ({named(narrowed)} narrowed; {together}the input and output stay "
            "whole), the next layers sliced to match, then "
            f"{trained.describe()} of recovery: {ctx.teacher.count_params():,} → "
            f"{shrunk.model.count_params():,} parameters, smaller and faster for real.",
        )
