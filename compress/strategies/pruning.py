"""Pruning family: zero out (or remove) the weights that matter least."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from compress.common.certify import PairedLoss
from compress.models.backend import keras, tfmot
from compress.models.training import BATCH_SIZE, Plan, fit
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.budget import Judge, certifier, validation_judge
from compress.strategies.notes import by_reason, first_line, named
from compress.strategies.structured import CRITERIA, HEADS, TAYLOR_ROWS, NothingToRemove, shrink
from compress.strategies.students import train_student


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
#: few bytes but much of the accuracy (measured: docs/benchmarks.md, "Pruning, clustering and
#: pipelines on digits").
MIN_PRUNED_WEIGHTS = 2048


def pruned_weights(layer: keras.layers.Layer) -> list[Any]:
    """The weights pruning zeroes in this layer (none: it stays dense).  As in tfmot's registry
    the class must match exactly: a SeparableConv has its pointwise kernel pruned only, a
    recurrent layer its cell's input and recurrent kernels, an Embedding its table; tfmot wraps
    a DepthwiseConv2D but prunes none of its weights, here its depthwise kernel is pruned too
    (see ``_wrap``)."""
    layers = keras.layers
    if type(layer) in (layers.LSTM, layers.GRU, layers.SimpleRNN):
        return [layer.cell.kernel, layer.cell.recurrent_kernel]
    name = {layers.Dense: "kernel", layers.Conv1D: "kernel", layers.Conv2D: "kernel",
            layers.SeparableConv1D: "pointwise_kernel", layers.SeparableConv2D: "pointwise_kernel",
            layers.DepthwiseConv2D: "depthwise_kernel", layers.Embedding: "embeddings"}.get(type(layer))
    return [] if name is None else [getattr(layer, name)]


def _refusal(layer: keras.layers.Layer, m_by_n: bool) -> str | None:
    """Why this layer's weights stay dense, or None to prune it."""
    weights = pruned_weights(layer)
    if isinstance(layer, keras.layers.Bidirectional):
        return "tfmot prunes no layer inside a Bidirectional wrapper"
    if not weights:
        return "only Dense, Conv1D/2D, depthwise, separable, recurrent and Embedding kernels are pruned"
    size = sum(int(weight.shape.num_elements()) for weight in weights)
    if size < MIN_PRUNED_WEIGHTS:
        return f"under {MIN_PRUNED_WEIGHTS} weights"
    if m_by_n and isinstance(layer, keras.layers.DepthwiseConv2D):
        return "2:4 is a pattern for matrix multiplies, not depthwise convolutions"
    if m_by_n and any(weight.shape.rank not in (2, 4) for weight in weights):
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
    """Wrap the large kernels (``pruned_weights``), train with pruning steps, strip the wrappers.

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
        raise Skip(f"tfmot cannot prune this teacher: {first_line(error)}") from error
    trained = fit(model, ctx.data, epochs=epochs, lr=lr, limits=ctx.limits,
                  callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(model), list(wrapped), by_reason(dense), trained


def zero_fraction(model: keras.Model, names: list[str]) -> float:
    """The share of zeros in the pruned weights of these layers: what pruning really reached."""
    total = zeros = 0
    for name in names:
        for weight in pruned_weights(model.get_layer(name)):
            values = weight.numpy()
            total, zeros = total + values.size, zeros + int((values == 0).sum())
    return zeros / total if total else 0.0


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
        schedule = polynomial_schedule(self.sparsity, ctx.limits.plan(self.epochs, len(ctx.data.y_train)))
        model, pruned, dense, trained = _prune_and_recover(ctx, self.epochs, self.lr,
                                                           pruning_schedule=schedule)
        reached = zero_fraction(model, pruned)
        short = "" if reached >= self.sparsity - 0.005 else f" (target {self.sparsity:.0%}" + (
            ": the time budget stopped the ramp)" if ctx.limits.cut_short else ")")
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


#: The fractions ``max_drop`` climbs, one cut each: the largest whose validation accuracy stays
#: within the budget after its short recovery is kept.
SEARCH_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Steps in a row outside the budget that end the climb.  The first short recoveries from a
#: converged teacher are the roughest (a MobileNetV2's first cuts fell outside the budget and a
#: later one came back within it; measured: docs/benchmarks.md, "`max_drop=1` with annealed
#: recoveries (issue 30, 2026-12-05)"), so two are forgiven.
LADDER_PATIENCE = 3
#: A step that loses more than this beyond the budget, after its standard error, ends the climb at
#: once: in the ladders issue 30's benchmarks logged no step after such a loss came back within
#: the budget, while steps that lost less did, and the steps after it cost time for nothing
#: (measured: docs/benchmarks.md, "`max_drop=1` with annealed recoveries (issue 30, 2026-12-05)").
LADDER_GIVE_UP_PP = 5.0
#: What ``max_drop``'s ladder costs against the default schedule, for what a time budget plans:
#: up to nine cuts of a quarter recovery each, then the full one; more for a model that climbs
#: further (measured: docs/benchmarks.md, "Figures behind design decisions").
LADDER_COST = 2.5
#: The floor ``max_drop``'s notes suggest when its climb stopped early with narrow groups cut:
#: on MobileNetV2 it let the climb go much further, to a faster, smaller and more accurate model.
#: A hint, not the default: with it a separable Conv1D whose groups are all near the floor lost
#: accuracy, and a ResNet gave up most of its speed-up (measured: docs/benchmarks.md, "What the
#: ladder's 2-epoch steps lose, and what does not fix it" and "The floor on issue 30's three
#: models, three seeds").
SUGGESTED_FLOOR = 32
#: A ``max_drop`` climb that kept at most this fraction stopped early.
EARLY_STOP = 0.3
#: Recovery targets: ``alpha`` × the labels + (1 - ``alpha``) × the unpruned teacher's logits
#: softened at this temperature (the anchors' recipe: Torch-Pruning and NNCF recover a pruned
#: network from its own unpruned outputs).
RECOVERY_TEMPERATURE = 2.0


@register
class PruneStructured(Strategy):
    """Half the channels of every dependency group removed (``structured.shrink``), by default in
    four cuts with a short recovery after each and a final recovery on the labels and the
    unpruned teacher's logits.  Against the single cut recovered on the labels alone (the recipe
    before) it won on every seed of MobileNetV2 and of a separable Conv1D; on a residual CNN
    whose teacher is near perfect both stay within two test samples of it (measured:
    docs/benchmarks.md, "Structured pruning recipes: gradual cuts, the teacher's logits, criteria
    and `max_drop` (issue 30)").  ``min_channels=N`` keeps every group at N channels or more (a
    narrower one whole): MobileNetV2's residual streams are 8 to 56 channels wide, and with
    ``min_channels=32`` the ``max_drop=1`` ladder climbed much further, to a faster and more
    accurate model, where without it the steps lost far more than the budget and it kept a small
    cut (measured: docs/benchmarks.md, "What the ladder's 2-epoch steps lose, and what does not
    fix it")."""

    name = "prune-structured"
    family = "pruning"
    summary = ("Removes the least important neurons, filters, recurrent units and heads: a genuinely "
               "smaller, faster model.")
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"fraction": Range(0.25, 0.85, step=0.05)}
    follows = ("distillation",)
    cost = 4.0  # 40 recovery epochs, and 15 more between its cuts

    def __init__(self, fraction: float = 0.5, epochs: int = 40, lr: float = 1e-3, cuts: int = 4,
                 criterion: str = "l1", alpha: float = 0.5, max_drop: float | None = None,
                 min_channels: int = 1) -> None:
        self.fraction = fraction
        self.epochs = epochs
        self.lr = lr
        self.cuts = cuts
        self.criterion = criterion
        self.alpha = alpha
        self.max_drop = max_drop
        self.min_channels = min_channels
        if max_drop is not None:
            self.cost = LADDER_COST * PruneStructured.cost
        self._check_open_unit("fraction", fraction)
        self._check_budget(epochs, lr)
        self._check(cuts >= 1, f"cuts must be at least 1, got {cuts}")
        self._check(criterion in CRITERIA,
                    f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
        self._check(0 <= alpha <= 1, f"alpha must be between 0 and 1, got {alpha}")
        self._check(max_drop is None or (math.isfinite(max_drop) and max_drop >= 0),
                    f"max_drop must be 0 or more percentage points, got {max_drop}")
        self._check(isinstance(min_channels, int) and min_channels >= 1,
                    f"min_channels must be a whole number of channels, at least 1, got {min_channels}")

    def compress(self, ctx: Context) -> Compressed:
        cuts = _Cuts(self.criterion, _sample(ctx) if self.criterion == "taylor" else None,
                     self.min_channels)
        model, cut, how, judged, certificate = ctx.teacher, self.fraction, "", "", ""
        if self.max_drop is None:
            for index, fraction in enumerate(self._fractions()):
                if index and cuts.groups:  # recover from the last cut before the next one
                    self._recover(model, ctx, self._step_epochs())
                model = cuts.cut(model, fraction, last=index == len(self._fractions()) - 1)
            trained = self._recover(model, ctx, self.epochs)
        else:
            ladder = self._search(model, ctx, cuts)
            how = ladder.how
            cut, model, trained, judged, certificate = self._certified(ladder, ctx)
        groups = list(cuts.groups)
        narrowed = [name for group in groups for name in group]
        joined = [" + ".join(group) for group in groups if len(group) > 1]
        together = f"layers whose channels must match went together ({named(joined)}), " if joined else ""
        annealed = " (annealed)" if self.max_drop is not None else ""
        floor = f", no group below {self.min_channels} channels" if self.min_channels > 1 else ""
        # what each step's recovery trained: the plan its ``_recover`` made, capped as it was
        recovery = ctx.limits.plan(self._step_epochs(), len(ctx.data.y_train))
        step = f"{recovery.describe()} of recovery{annealed}"
        steps = "in one cut" if len(self._fractions()) == 1 and self.max_drop is None else \
            f"in cuts of {self._fractions()[0]:.0%}, each followed by {step}"
        units = "channels and heads" if any(name.endswith(HEADS) for name in narrowed) else "channels"
        normalized = any(isinstance(layer, keras.layers.LayerNormalization) for layer in ctx.teacher.layers)
        whole = "the input, the output and what a layer normalization mixes stay whole" if normalized \
            else "the input and output stay whole"
        targets = "the labels" if self.alpha == 1 else \
            f"the labels and the unpruned teacher's logits (alpha={self.alpha:g}, T={RECOVERY_TEMPERATURE:g})"
        return Compressed(
            model=model,
            notes=f"{how}{cut:.0%} of the {units} of {len(groups)} dependency groups removed "
            f"{steps}, ranked by {self.criterion} importance{floor} ({named(narrowed)} narrowed; {together}"
            f"{whole}), the next layers sliced to match, then {trained} of "
            f"recovery on {targets}{judged}: {ctx.teacher.count_params():,} → {model.count_params():,} "
            f"parameters, smaller and faster for real.{certificate}{self._floor_hint(cut, cuts)}",
        )

    def _floor_hint(self, kept: float, cuts: _Cuts) -> str:
        """A ``max_drop`` climb that stopped early after cutting narrow groups: say which floor
        to try, since every group losing the same share takes most from the narrowest."""
        narrowest = min((cuts.reference or {}).values(), default=SUGGESTED_FLOOR)
        if self.max_drop is None or self.min_channels > 1 or kept > EARLY_STOP \
                or narrowest >= SUGGESTED_FLOOR:
            return ""
        return (f" The climb stopped at {kept:.0%} with groups as narrow as {narrowest} channels cut: "
                f"min_channels={SUGGESTED_FLOOR} keeps narrower groups whole (MobileNetV2 at 96x96 then "
                "kept a 90% cut instead of 10%, 2.3x faster instead of 1.02x).")

    def _fractions(self) -> list[float]:
        """The cumulative fraction after each cut: the ladder ``max_drop`` climbs, or ``cuts``
        equal steps to ``fraction``."""
        if self.max_drop is not None:
            return list(SEARCH_FRACTIONS)
        return [self.fraction * k / self.cuts for k in range(1, self.cuts + 1)]

    def _step_epochs(self) -> int:
        """Recovery between cuts: short, so that a schedule to ``fraction`` costs at most about one
        and a half final recoveries; on ``max_drop``'s ladder a quarter of one, since each step's
        accuracy decides whether to go on, and a recovery much shorter than that leaves a cut
        far below where the full recovery ends (measured: docs/benchmarks.md, "Figures behind
        design decisions")."""
        if self.max_drop is not None:
            return max(1, round(self.epochs / 4))
        return max(1, round(self.epochs / (2 * len(self._fractions()))))

    def _recover(self, model: keras.Model, ctx: Context, epochs: int, *, decay: bool = False) -> str:
        """Recovery training: on the labels alone, the recipe every training strategy shares
        (``fit``); with the teacher's logits, or with the learning rate annealed (``decay``),
        the students' loop (``strategies.students``)."""
        if self.alpha == 1 and not decay:
            return fit(model, ctx.data, epochs=epochs, lr=self.lr, limits=ctx.limits).describe()
        return train_student(model, ctx, teacher=ctx.teacher, alpha=self.alpha,
                             temperature=RECOVERY_TEMPERATURE, epochs=epochs, max_steps=None,
                             lr=self.lr, batch_size=BATCH_SIZE, decay=decay)

    def _certified(self, ladder: _Ladder, ctx: Context) -> tuple[float, keras.Model, str, str, str]:
        """The cut the climb reached, recovered in full, certified on the evidence rows
        (``common.certify``); when validation already shows it outside the budget, the climb's
        cut before it is recovered in full too and goes first in the sequence, so a step too far
        still leaves an answer.  Validation decides what to recover, the evidence what to keep.
        Returns the fraction, model, recovery, its validation note and the certificate."""
        budget = float(self.max_drop or 0.0)
        trained, judged = self._final_recovery(ladder.model, ctx, ladder.judge, ladder.seen)
        candidates = [(ladder.fraction, ladder.model, trained, judged)]
        if ladder.earlier is not None and not ladder.judge(ladder.model).within(budget) \
                and not ctx.limits.out_of_time():
            model, weights, fraction, seen = ladder.earlier
            model.set_weights(weights)
            candidates.insert(0, (fraction, model, *self._final_recovery(model, ctx, ladder.judge, seen)))
        sequence, evidence = certifier(ctx, budget)
        kept = None
        for candidate in candidates:
            if not sequence.test(f"{candidate[0]:.0%} cut", evidence(candidate[1])):
                break
            kept = candidate
        if kept is None:
            raise Skip(f"the {candidates[0][0]:.0%} cut the climb reached, fully recovered, does not meet "
                       f"max_drop={budget:g} pp ({candidates[0][3].lstrip('; ')}). {sequence.describe()}")
        return (*kept, f" {sequence.describe()}")

    def _final_recovery(self, model: keras.Model, ctx: Context, judge: Judge,
                        seen: PairedLoss) -> tuple[str, str]:
        """``max_drop``'s full recovery of the cut the ladder kept (judged ``seen``), annealed like
        its steps: what it trained and what it did on validation.  It is kept only if it does at
        least as well there as the step, so the row is never worse than what chose its fraction."""
        settled = model.get_weights()
        trained = self._recover(model, ctx, self.epochs, decay=True) + ", annealed,"
        after = judge(model)
        if after.pp <= seen.pp:
            return trained, f"; on validation {after} pp, from {seen} after the ladder's step"
        model.set_weights(settled)
        return trained, (f"; set aside, since it ended at {after} pp on validation against {seen} "
                         "after the ladder's step, whose weights are kept")

    def _search(self, model: keras.Model, ctx: Context, cuts: _Cuts) -> _Ladder:
        """Climb the ladder while each cut, after its recovery, loses no more than ``max_drop``
        against the teacher on the validation rows, beyond the paired standard error of that
        loss: on a split of a few hundred rows the loss moves by points from one recovery epoch
        to the next (measured: docs/benchmarks.md, "Figures behind design decisions"), and the
        final recovery wins back more than a step's.  Two steps outside the budget are forgiven
        if the next is back within it (``LADDER_PATIENCE``), but not one far outside it
        (``LADDER_GIVE_UP_PP``).  Keep the last cut within it.  With none within, the first cut,
        not marked ``within``: a short recovery is all a costly teacher's plan may leave a step
        (MobileNetV2 at 96x96: two epochs), and the full one may still bring the smallest cut
        within the budget."""
        validation_loss = validation_judge(ctx)
        kept, earlier, first, scores, outside, ended = None, None, None, [], 0, ""
        for index, fraction in enumerate(SEARCH_FRACTIONS):
            model = cuts.cut(model, fraction, last=index == len(SEARCH_FRACTIONS) - 1)
            # Annealed, so each cut is judged settled, not mid-stride at the full rate.
            self._recover(model, ctx, self._step_epochs(), decay=True)
            loss = validation_loss(model)
            scores.append(f"{fraction:.0%} {loss}")
            if first is None and cuts.groups:  # a first step too small to cut anything is not one
                first = _snapshot(model, fraction, loss)
            if ctx.limits.out_of_time():
                break
            if not loss.plausible(self.max_drop):
                outside += 1
                if outside >= LADDER_PATIENCE:
                    break
                if not loss.plausible(self.max_drop + LADDER_GIVE_UP_PP):
                    ended = (f"; {fraction:.0%} lost over {LADDER_GIVE_UP_PP:g} pp beyond the budget, "
                             "which ended the climb")
                    break
                continue
            outside = 0
            earlier, kept = kept, _snapshot(model, fraction, loss)
        tried = ", ".join(scores) + " pp" + ended
        if kept is None and (first is None or ctx.limits.out_of_time()):  # no time left for a full recovery
            raise Skip(f"no fraction keeps validation accuracy within max_drop={self.max_drop:g} pp of "
                       f"the teacher's, beyond its standard error: {tried} after each cut's recovery")
        best, weights, fraction, seen = kept or first
        best.set_weights(weights)
        if kept is None:
            how = (f"max_drop={self.max_drop:g}: no cut stayed within {self.max_drop:g} pp of the teacher "
                   f"on validation after its short recovery ({tried}); the first was recovered in "
                   "full and judged again. ")
        else:
            how = (f"max_drop={self.max_drop:g}: cut by {SEARCH_FRACTIONS[0]:.0%} at a time while the loss "
                   f"against the teacher on validation stayed within {self.max_drop:g} pp, beyond its "
                   f"standard error (after each cut's recovery: {tried}); kept the last within it. ")
        return _Ladder(best, fraction, how, tried, validation_loss, seen, earlier)


def _snapshot(model: keras.Model, fraction: float,
              loss: PairedLoss) -> tuple[keras.Model, list, float, PairedLoss]:
    """A step of the ladder kept aside: the model's structure and weights, its fraction and loss
    (the climb goes on cutting the model itself)."""
    return keras.models.clone_model(model), model.get_weights(), fraction, loss


@dataclass
class _Ladder:
    """Where ``max_drop``'s climb stopped: the cut it kept and how it was judged."""

    model: keras.Model
    fraction: float
    how: str  # for the notes
    tried: str  # every step's loss, for a skip
    judge: Judge
    seen: PairedLoss  # the kept cut's loss after its step
    #: The cut within the budget before the kept one (a snapshot), the sequence's fallback.
    earlier: tuple[keras.Model, list, float, PairedLoss] | None = None


class _Cuts:
    """One schedule's cuts: each to a share of the teacher's channel counts (the first cut's
    ``sizes``), and every dependency group any of them narrowed, for the notes."""

    def __init__(self, criterion: str, rows: tuple[np.ndarray, np.ndarray] | None,
                 min_channels: int) -> None:
        self.criterion, self.rows, self.min_channels = criterion, rows, min_channels
        self.reference: dict[tuple[str, ...], int] | None = None
        self.groups: dict[tuple[str, ...], None] = {}

    def cut(self, model: keras.Model, fraction: float, *, last: bool = False) -> keras.Model:
        """The model cut to ``fraction``.  A step too small for any group leaves the model as it
        is, unless it is the last and nothing was ever cut."""
        try:
            shrunk = shrink(model, fraction, criterion=self.criterion, reference=self.reference,
                            rows=self.rows, min_channels=self.min_channels)
        except NothingToRemove:
            if last and not self.groups:
                raise
            return model
        self.reference = self.reference or shrunk.sizes
        self.groups.update(dict.fromkeys(shrunk.groups))
        return shrunk.model


def _sample(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Training rows the data-aware criterion scores channels on (never validation or test)."""
    rng = np.random.default_rng(ctx.seed)
    pick = rng.permutation(len(ctx.data.y_train))[:TAYLOR_ROWS]
    return ctx.data.x_train[pick], ctx.data.y_train[pick].astype(np.int64)
