"""Structured pruning with dependency groups: exact on the kept channels, genuinely smaller.

Each exactness test zeroes what the channels it expects removed contribute (kernel columns,
biases, BatchNorm shifts and means), so those channels are exactly zero everywhere and have the
lowest importance of their group: the shrunk model must then compute the same outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from compress.common.errors import UserError
from compress.data.builtin import TrainingData
from compress.measure.size import size_stats
from compress.models.backend import keras, to_tflite
from compress.models.flatbuffer import TFLiteModel
from compress.strategies import Skip
from compress.strategies.apply import apply_strategy
from compress.strategies.pruning import SEARCH_FRACTIONS, PruneStructured
from compress.strategies.structured import shrink

L = keras.layers


def _randomized(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random kernels and BatchNorm statistics, so a wrong slice cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) if w.ndim > 1 else
                       rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _silence(model: keras.Model, channels: dict[str, list[int]]) -> None:
    """Make the given output channels of each named layer exactly zero: a producer's kernel
    columns and bias, a depthwise convolution's bias, a BatchNorm's shift and mean."""
    for name, removed in channels.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        if isinstance(layer, L.BatchNormalization):
            weights[1][removed], weights[2][removed] = 0.0, 0.0  # beta, moving mean
        elif isinstance(layer, L.DepthwiseConv2D):
            weights[-1][removed] = 0.0  # a zero input channel leaves only the bias
        else:
            weights[1 if isinstance(layer, L.SeparableConv2D) else 0][..., removed] = 0.0
            if layer.use_bias:
                weights[-1][removed] = 0.0
        layer.set_weights(weights)


def _assert_same_function(model: keras.Model, smaller: keras.Model) -> None:
    x = np.random.default_rng(1).normal(size=(8, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def _widths(model: keras.Model) -> dict[str, int]:
    return {layer.name: int(layer.output_shape[-1]) for layer in model.layers
            if isinstance(layer, (L.Dense, L.Conv1D, L.Conv2D, L.SeparableConv2D, L.DepthwiseConv2D))}


def residual_cnn() -> keras.Model:
    """Stem, a residual block (Add ties the stem's and the block's last channels), pooling
    concatenated (offsets into the Dense rows), logits."""
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization(name="stem_bn")(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.ReLU()(L.BatchNormalization(name="mid_bn")(L.Conv2D(6, 3, padding="same", name="mid")(x)))
    y = L.BatchNormalization(name="last_bn")(L.Conv2D(8, 3, padding="same", name="last")(y))
    x = L.ReLU()(L.Add()([x, y]))
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    x = L.Dense(6, activation="relu", name="hidden")(x)
    return _randomized(keras.Model(inputs, L.Dense(3, name="logits")(x)))


def test_a_residual_cnn_keeps_its_function_on_the_kept_channels():
    model = residual_cnn()
    _silence(model, {"stem": [1, 4, 5, 7], "stem_bn": [1, 4, 5, 7], "last": [1, 4, 5, 7],
                     "last_bn": [1, 4, 5, 7], "mid": [0, 2, 3], "mid_bn": [0, 2, 3], "hidden": [2, 3, 5]})
    shrunk = shrink(model, 0.5)
    assert _widths(shrunk.model) == {"stem": 4, "mid": 3, "last": 4, "hidden": 3, "logits": 3}
    assert ("stem", "last") in shrunk.groups  # coupled by the residual add: pruned as one
    _assert_same_function(model, shrunk.model)


def mobilenet_v2_block() -> keras.Model:
    """A stem, then MobileNetV2's inverted residual: expand 1x1 + BN + ReLU6, depthwise 3x3 +
    BN + ReLU6, project 1x1 + BN, residual add; global average pooling, logits."""
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU(6.0)(L.BatchNormalization(name="stem_bn")(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.ReLU(6.0)(L.BatchNormalization(name="expand_bn")(L.Conv2D(16, 1, use_bias=False, name="expand")(x)))
    y = L.DepthwiseConv2D(3, padding="same", name="depthwise")(y)
    y = L.ReLU(6.0)(L.BatchNormalization(name="depthwise_bn")(y))
    y = L.BatchNormalization(name="project_bn")(L.Conv2D(8, 1, use_bias=False, name="project")(y))
    x = L.GlobalAveragePooling2D()(L.Add()([x, y]))
    return _randomized(keras.Model(inputs, L.Dense(4, name="logits")(x)))


def test_a_mobilenet_v2_block_keeps_its_function_on_the_kept_channels():
    model = mobilenet_v2_block()
    residual, expanded = [0, 3, 4, 6], [1, 2, 5, 8, 9, 11, 12, 15]
    _silence(model, {"stem": residual, "stem_bn": residual, "project": residual, "project_bn": residual,
                     "expand": expanded, "expand_bn": expanded, "depthwise": expanded,
                     "depthwise_bn": expanded})
    shrunk = shrink(model, 0.5)
    widths = _widths(shrunk.model)
    assert widths == {"stem": 4, "expand": 8, "depthwise": 8, "project": 4, "logits": 4}
    assert shrunk.model.get_layer("depthwise").depthwise_kernel.shape == (3, 3, 8, 1)
    assert sorted(shrunk.groups) == [("expand",), ("stem", "project")]
    _assert_same_function(model, shrunk.model)


def test_concatenation_depth_multiplier_separable_and_flatten_keep_the_function():
    inputs = keras.Input((6, 6, 2))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    a = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(a)  # channel c -> 2c, 2c+1
    b = L.Conv2D(4, 1, name="b")(inputs)
    x = L.SeparableConv2D(6, 3, name="separable")(L.Concatenate()([a, b]))  # a at 0..7, b at 8..11
    x = L.Dense(4, activation="relu", name="hidden")(L.Flatten()(x))
    model = _randomized(keras.Model(inputs, L.Dense(2, name="logits")(x)))
    _silence(model, {"a": [0, 3], "depthwise": [0, 1, 6, 7], "b": [1, 2], "separable": [0, 2, 5],
                     "hidden": [1, 2]})
    shrunk = shrink(model, 0.5)
    assert _widths(shrunk.model) == {"a": 2, "depthwise": 4, "b": 2, "separable": 3, "hidden": 2,
                                     "logits": 2}
    assert shrunk.model.get_layer("separable").pointwise_kernel.shape == (1, 1, 6, 3)
    _assert_same_function(model, shrunk.model)


def test_conv1d_through_a_channel_last_reshape_keeps_the_function():
    inputs = keras.Input((10, 2))
    x = L.Conv1D(6, 3, padding="same", activation="relu", name="conv")(inputs)
    x = L.Reshape((5, 12))(x)  # two positions side by side: channels repeat along the last axis
    x = L.Flatten()(L.Dense(4, name="rows")(x))
    model = _randomized(keras.Model(inputs, L.Dense(3, name="logits")(x)))
    _silence(model, {"conv": [1, 2, 4], "rows": [0, 3]})
    shrunk = shrink(model, 0.5)
    assert shrunk.model.get_layer("reshape").output_shape == (None, 5, 6)
    assert _widths(shrunk.model) == {"conv": 3, "rows": 2, "logits": 3}
    _assert_same_function(model, shrunk.model)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_sequential_model_is_rebuilt_smaller_and_exact(batch_norm):
    layers = [keras.Input((6, 6, 1)), L.Conv2D(4, 3, activation="relu", name="conv")]
    layers += [L.BatchNormalization(name="conv_bn")] if batch_norm else []
    layers += [L.MaxPooling2D(2), L.Flatten(), L.Dense(6, activation="relu", name="hidden"),
               L.Dense(3, name="logits")]
    model = _randomized(keras.Sequential(layers))
    _silence(model, {"conv": [0, 2], "hidden": [1, 4, 5], **({"conv_bn": [0, 2]} if batch_norm else {})})
    shrunk = shrink(model, 0.5)
    assert _widths(shrunk.model) == {"conv": 2, "hidden": 3, "logits": 3}  # the output keeps its units
    _assert_same_function(model, shrunk.model)


def test_channels_tied_to_the_input_are_never_cut():
    inputs = keras.Input((4, 4, 3))
    x = L.Add()([inputs, L.Conv2D(3, 1, name="tied")(inputs)])
    x = L.Conv2D(8, 1, name="free")(x)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    widths = _widths(shrink(model, 0.5).model)
    assert widths["tied"] == 3 and widths["free"] == 4


def test_the_models_own_input_scaling_passes_its_channels_through():
    """A leading Normalization (a user's model scaling raw features) or Rescaling: its channels
    are the input's, never cut, so its fitted values stay whole."""
    norm = L.Normalization(name="scaling")
    norm.adapt(np.random.default_rng(0).normal(50, 20, size=(64, 5)).astype("float32"))
    model = _randomized(keras.Sequential([keras.Input((5,)), norm, L.Rescaling(0.5, name="half"),
                                          L.Dense(8, activation="relu", name="hidden"), L.Dense(2)]))
    _silence(model, {"hidden": [0, 1, 2, 3]})
    shrunk = shrink(model, 0.5)
    assert _widths(shrunk.model)["hidden"] == 4
    _assert_same_function(model, shrunk.model)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: keras.Sequential([keras.Input((8,)), L.Dense(4), L.Normalization(name="mid"),
                                   L.Dense(2)]), "layer mid (Normalization): it scales channels a layer"),
        (lambda: keras.Sequential([keras.Input((6, 2)), L.Conv1D(4, 1),
                                   L.LayerNormalization(axis=1, name="norm"), L.Flatten(), L.Dense(2)]),
         "layer norm (LayerNormalization): it normalizes an axis"),
        (lambda: keras.Sequential([keras.Input((8,)), L.Dense(4), L.LayerNormalization(), L.Dense(2)]),
         "every channel is tied to the model's input or output, or a layer"),
        (lambda: keras.Sequential([keras.Input((4, 4, 2)), L.Conv2D(4, 1), L.Permute((3, 1, 2), name="perm"),
                                   L.Flatten(), L.Dense(2)]), "layer perm (Permute)"),
        (lambda: keras.Sequential([keras.Input((8,)), L.Dense(2)]), "every channel is tied"),
    ],
)
def test_what_cannot_be_shrunk_is_skipped_with_the_reason(build, message):
    with pytest.raises(Skip, match=message.replace("(", r"\(").replace(")", r"\)")):
        shrink(build(), 0.5)


def test_a_shared_layer_is_named_in_the_skip():
    inputs = keras.Input((4,))
    shared = L.Dense(4, name="shared")
    model = keras.Model(inputs, L.Dense(2)(L.Add()([shared(inputs), shared(inputs)])))
    with pytest.raises(Skip, match="shared"):
        shrink(model, 0.5)


def test_structured_pruning_is_really_smaller_and_cheaper(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(PruneStructured(fraction=0.5, epochs=1), teacher, architecture, data,
                              seed=0, workdir=tmp_path)
    before, after = size_stats(to_tflite(teacher)), size_stats(artifact.flatbuffer)
    assert after.size_bytes < 0.4 * before.size_bytes
    assert after.macs < 0.4 * before.macs
    assert TFLiteModel(artifact.flatbuffer).predict(data.x_val).shape == (len(data.x_val), 3)
    assert "went together" not in artifact.notes  # an MLP couples no layers: nothing to claim


def _image_data() -> TrainingData:
    """Random 8x8x3 images in three classes, for residual_cnn."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    return TrainingData("image", x[:48], y[:48], x[48:], y[48:], ("a", "b", "c"))


def test_coupled_layers_are_named_in_the_notes(tmp_path):
    artifact = apply_strategy(PruneStructured(fraction=0.5, epochs=1), residual_cnn(), "test",
                              _image_data(), seed=0, workdir=tmp_path)
    assert "layers whose channels must match went together (stem + last)" in artifact.notes


def test_cuts_to_a_share_of_the_teachers_counts_reach_exactly_what_one_cut_does():
    """Layer names survive a cut, so a gradual schedule cuts the teacher's groups again, each time
    to a share of the teacher's channel counts, and ends where a single cut would."""
    model = residual_cnn()
    once = _widths(shrink(model, 0.5).model)
    first = shrink(model, 0.5 / 3)
    model_now, widths = first.model, []
    for fraction in (1 / 3, 0.5):
        model_now = shrink(model_now, fraction, reference=first.sizes).model
        widths.append(_widths(model_now))
    assert widths[-1] == once
    assert widths[0]["stem"] > once["stem"]  # the middle cut really was a step, not the whole way
    assert len(to_tflite(model_now)) == len(to_tflite(shrink(model, 0.5).model))  # names included


@pytest.mark.slow
def test_the_strategys_schedule_reaches_the_asked_fraction_with_recovery_between_cuts(
        tmp_path, monkeypatch):
    import compress.strategies.pruning as pruning

    recoveries = []
    real = pruning.train_student
    monkeypatch.setattr(pruning, "train_student", lambda model, ctx, **kw: recoveries.append(
        (model.count_params(), kw["epochs"], kw["teacher"], kw["alpha"])) or real(model, ctx, **kw))
    data = _image_data()
    teacher = residual_cnn()
    strategy = PruneStructured(fraction=0.5, epochs=4, cuts=3, alpha=0.5)
    artifact = apply_strategy(strategy, teacher, "test", data, seed=0, workdir=tmp_path)
    sizes = [params for params, *_ in recoveries]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3  # three cuts, each smaller
    assert [epochs for _, epochs, *_ in recoveries] == [1, 1, 4]  # short between cuts, then the full
    # Every recovery learns from the unpruned model (the clone the strategy was given), not labels alone.
    assert all(t is not None and t.count_params() == teacher.count_params() for *_, t, _ in recoveries)
    assert all(alpha == 0.5 for *_, alpha in recoveries)
    assert "in cuts of 17%" in artifact.notes and "teacher's logits (alpha=0.5" in artifact.notes
    one_cut = apply_strategy(PruneStructured(fraction=0.5, epochs=1), teacher, "test", data, seed=0,
                             workdir=tmp_path)
    assert size_stats(artifact.flatbuffer).params_count == size_stats(one_cut.flatbuffer).params_count


def _correct_losing(share: float, rows: int = 100_000) -> np.ndarray:
    """A stand-in's validation answers: the teacher's 90% right, less ``share`` of all rows."""
    correct = np.arange(rows) < round(rows * 0.9)
    correct[: round(rows * share)] = False
    return correct


def test_max_drop_keeps_the_largest_fraction_within_the_budget(tmp_path, monkeypatch):
    """The loss against the teacher grows one point per 10% of parameters removed (a stand-in
    on 100,000 rows, so the budget's edge is known to a hair): a 3.5 pp budget keeps the cut
    that lost 3, not one that lost 4 or more."""
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    full = teacher.count_params()
    recoveries: list[dict[str, Any]] = []
    monkeypatch.setattr(pruning, "train_student",
                        lambda model, ctx, **kw: recoveries.append(kw) or "1 epoch")
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.1 * (1 - model.count_params() / full)))
    artifact = apply_strategy(PruneStructured(max_drop=3.5, epochs=2), teacher, "test", _image_data(),
                              seed=0, workdir=tmp_path)
    kept = size_stats(artifact.flatbuffer).params_count
    within = [f for f in pruning.SEARCH_FRACTIONS
              if 0.1 * (1 - shrink(teacher, f).model.count_params() / full) <= 0.035]
    assert "max_drop=3.5" in artifact.notes and f"{within[-1]:.0%} of the channels" in artifact.notes
    assert kept == size_stats(to_tflite(shrink(teacher, within[-1]).model)).params_count
    assert len(within) < len(pruning.SEARCH_FRACTIONS)  # the budget, not the ladder, stopped it
    # every step's recovery and the final one end annealed, so each cut is judged settled
    assert len(recoveries) > len(within) and all(kw["decay"] for kw in recoveries)
    assert "annealed" in artifact.notes


@pytest.mark.slow
def test_max_drop_recovers_with_an_annealed_learning_rate(tmp_path):
    """The real loop, not a stand-in: each step and the final recovery anneal to 0 (cosine)."""
    artifact = apply_strategy(PruneStructured(max_drop=100, epochs=1), residual_cnn(), "test",
                              _image_data(), seed=0, workdir=tmp_path)
    assert "each followed by 1 epoch of recovery (annealed)" in artifact.notes
    assert ", annealed, of recovery on the labels" in artifact.notes and "; on validation" in artifact.notes


def test_max_drop_keeps_the_ladders_weights_when_the_full_recovery_does_worse(tmp_path, monkeypatch):
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    full_recovery = []  # set once the final recovery (its full epochs, not a step's) has run

    def train_student(model: keras.Model, ctx: Any, **kw: Any) -> str:
        if kw["epochs"] == 2:  # the final recovery ruins the weights, and must be set aside
            full_recovery.append(True)
            model.set_weights([np.zeros_like(w) for w in model.get_weights()])
        return "1 epoch"

    monkeypatch.setattr(pruning, "train_student", train_student)
    # the zeroed weights lose 3 pp; any others (the teacher's, the ladder's step) none
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.03 if not any(np.any(w) for w in model.get_weights()) else 0.0))
    artifact = apply_strategy(PruneStructured(max_drop=2, epochs=2), teacher, "test", _image_data(),
                              seed=0, workdir=tmp_path)
    assert "set aside, since it ended at -3.0±0.1 pp on validation against +0.0±0.0 after the " \
        "ladder's step, whose weights are kept" in artifact.notes
    assert size_stats(artifact.flatbuffer).nonzero_params > 0  # not the zeroed weights


def test_max_drop_with_nothing_within_the_budget_says_so(tmp_path, monkeypatch):
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    monkeypatch.setattr(pruning, "train_student", lambda model, ctx, **kw: "1 epoch")
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.0 if model.count_params() == teacher.count_params() else 0.4))
    with pytest.raises(Skip, match=r"^the 10% cut the climb reached, fully recovered, does not meet "
                                   r"max_drop=1 pp"):
        apply_strategy(PruneStructured(max_drop=1), teacher, "test", _image_data(), seed=0,
                       workdir=tmp_path)


@pytest.mark.parametrize("after_full", [0.0, 0.03])
def test_max_drop_with_no_step_within_gives_the_first_cut_its_full_recovery(after_full, tmp_path,
                                                                           monkeypatch):
    """A costly teacher's plan leaves each step a short recovery: when no step is within the
    budget after it, the first cut gets the full recovery and is kept if that brings it within;
    if not, the row is skipped with both losses."""
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    first = next(f for f in SEARCH_FRACTIONS
                 if shrink(teacher, f).model.count_params() < teacher.count_params())
    full_recovery: list[bool] = []

    def train_student(model: keras.Model, ctx: Any, **kw: Any) -> str:
        if kw["epochs"] == 4:  # the full recovery, not a step's (1 epoch)
            full_recovery.append(True)
        return "1 epoch"

    monkeypatch.setattr(pruning, "train_student", train_student)
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.0 if model.count_params() == teacher.count_params() else after_full if full_recovery else 0.03))
    strategy = PruneStructured(max_drop=1, epochs=4)
    if after_full > 0.01:
        with pytest.raises(Skip, match=r"^the 10% cut the climb reached, fully recovered, does not meet "
                                       r"max_drop=1 pp \(on validation -3\.0±0\.1 pp.*loses 3\.00 pp\.$"):
            apply_strategy(strategy, teacher, "test", _image_data(), seed=0, workdir=tmp_path)
        return
    notes = apply_strategy(strategy, teacher, "test", _image_data(), seed=0, workdir=tmp_path).notes
    assert "no cut stayed within 1 pp of the teacher on validation after its short recovery" in notes
    assert f"{first:.0%} of the channels" in notes and "on validation +0.0±0.0 pp" in notes
    assert len(full_recovery) == 1  # the ladder's three steps stayed short


def test_taylor_importance_sees_a_channel_the_loss_ignores():
    """Channel 0 has the largest incoming weights, so a norm keeps it; nothing downstream reads
    it, so its first-order Taylor importance is zero and the data-aware criterion removes it."""
    model = keras.Sequential([keras.Input((4,)), L.Dense(4, activation="relu", name="hidden"),
                              L.Dense(3, name="logits")])
    model = _randomized(model)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 0] = 5.0
    model.get_layer("hidden").set_weights([kernel, bias])
    out_kernel, out_bias = model.get_layer("logits").get_weights()
    out_kernel[0] = 0.0
    model.get_layer("logits").set_weights([out_kernel, out_bias])
    rng = np.random.default_rng(0)
    rows = (np.abs(rng.normal(size=(32, 4))).astype(np.float32), rng.integers(0, 3, 32))
    by_norm = shrink(model, 0.25, criterion="l1").model.get_layer("hidden").get_weights()[0]
    by_taylor = shrink(model, 0.25, criterion="taylor", rows=rows).model.get_layer("hidden").get_weights()[0]
    assert np.any(np.all(by_norm == 5.0, axis=0))  # the norm kept the loud, useless channel
    assert not np.any(np.all(by_taylor == 5.0, axis=0))  # Taylor dropped it


def test_min_channels_keeps_narrow_groups_whole_and_wide_ones_at_the_floor():
    """Groups of 8 (stem + last), 6 (mid) and 6 (hidden): at half, a floor of 7 leaves the
    6-wide groups whole and stops the 8-wide one at 7; a floor above every group cuts nothing."""
    model = residual_cnn()
    floored = shrink(model, 0.5, min_channels=7)
    assert _widths(floored.model) == {"stem": 7, "mid": 6, "last": 7, "hidden": 6, "logits": 3}
    assert floored.groups == [("stem", "last")]
    assert _widths(shrink(model, 0.5, min_channels=1).model) == _widths(shrink(model, 0.5).model)
    with pytest.raises(Skip, match=r"fraction=0\.5 and min_channels=8 removes no channel"):
        shrink(model, 0.5, min_channels=8)


def test_the_floor_is_a_parameter_the_notes_name(tmp_path):
    artifact = apply_strategy(PruneStructured(epochs=1, min_channels=7), residual_cnn(), "test",
                              _image_data(), seed=0, workdir=tmp_path)
    assert "ranked by l1 importance, no group below 7 channels (stem, last narrowed;" in artifact.notes
    for bad in (0, 2.5):
        with pytest.raises(UserError, match="min_channels must be a whole number of channels"):
            PruneStructured(min_channels=bad)


def test_a_techniques_budget_shows_in_its_label_and_its_cost():
    assert PruneStructured(max_drop=1).label() == "prune-structured:max_drop=1"
    assert PruneStructured().label() == "prune-structured"
    # a time budget plans for the ladder: several recoveries, not one schedule's
    assert PruneStructured(max_drop=1).cost > 2 * PruneStructured().cost == 2 * PruneStructured.cost


@pytest.mark.slow
def test_a_first_cut_too_small_for_any_group_waits_for_the_next(tmp_path):
    """Eight cuts to half: the first (6%) removes nothing from groups of six or eight channels;
    the schedule goes on and ends where one cut would."""
    teacher, data = residual_cnn(), _image_data()
    gradual = apply_strategy(PruneStructured(fraction=0.5, cuts=8, epochs=1), teacher, "test", data,
                             seed=0, workdir=tmp_path)
    once = apply_strategy(PruneStructured(fraction=0.5, epochs=1), teacher, "test", data, seed=0,
                          workdir=tmp_path)
    assert size_stats(gradual.flatbuffer).params_count == size_stats(once.flatbuffer).params_count
    with pytest.raises(Skip, match="removes no channel"):
        apply_strategy(PruneStructured(fraction=0.01, cuts=2, epochs=1), teacher, "test", data, seed=0,
                       workdir=tmp_path)


def test_max_drop_forgives_two_steps_outside_the_budget(tmp_path, monkeypatch):
    """Short recoveries land badly now and then, the first ones from a converged teacher most:
    two steps in a row outside the budget followed by one within it go on climbing; three in a
    row end the climb."""
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    loss = {0.1: 0.0, 0.2: 0.05, 0.3: 0.01, 0.4: 0.05, 0.5: 0.05, 0.6: 0.0, 0.7: 0.05, 0.8: 0.05,
            0.9: 0.05}
    by_params = {shrink(teacher, f).model.count_params(): share for f, share in loss.items()}
    monkeypatch.setattr(pruning, "train_student", lambda model, ctx, **kw: "1 epoch")
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.0 if model.count_params() == teacher.count_params() else by_params[model.count_params()]))
    artifact = apply_strategy(PruneStructured(max_drop=2, alpha=0.5), teacher, "test", _image_data(),
                              seed=0, workdir=tmp_path)
    assert "60% of the channels" in artifact.notes  # past 20%'s dip and 40-50%'s, stopped by 70-90%
    assert "min_channels" not in artifact.notes  # it went far: no floor to suggest


def test_max_drop_ends_the_climb_at_a_step_far_outside_the_budget(tmp_path, monkeypatch):
    """Forgiveness is for short recoveries that land a few points low: a step that lost far more
    than the budget (10 pp against 2) ends the climb, though the next would be within."""
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    loss = dict.fromkeys(pruning.SEARCH_FRACTIONS, 0.0) | {0.2: 0.10}
    by_params = {shrink(teacher, f).model.count_params(): share for f, share in loss.items()}
    recoveries = []
    monkeypatch.setattr(pruning, "train_student",
                        lambda model, ctx, **kw: recoveries.append(1) or "1 epoch")
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.0 if model.count_params() == teacher.count_params() else by_params[model.count_params()]))
    artifact = apply_strategy(PruneStructured(max_drop=2, alpha=0.5), teacher, "test", _image_data(),
                              seed=0, workdir=tmp_path)
    assert "10% of the channels" in artifact.notes
    assert "20% -10.0±0.1 pp; 20% lost over 5 pp beyond the budget, which ended the climb)" in artifact.notes
    assert len(recoveries) == 3  # two steps and the final recovery
    # stopped early with groups of 6 channels cut: the notes say which floor to try
    assert "The climb stopped at 10% with groups as narrow as 6 channels cut: min_channels=32" \
        in artifact.notes


def test_max_drop_falls_back_to_the_cut_before_when_the_last_fails_after_its_full_recovery(
        tmp_path, monkeypatch):
    """Every step of the climb is within 1 pp, so it reaches 90%; fully recovered, the 90% cut
    loses 3 pp on validation, so the 80% cut is recovered in full too and tested first: it is
    certified, the 90% cut is not, and the row is the 80% cut, both tests in its notes."""
    import compress.strategies.budget as budget
    import compress.strategies.pruning as pruning

    teacher = residual_cnn()
    last = shrink(teacher, SEARCH_FRACTIONS[-1]).model.count_params()
    before = shrink(teacher, SEARCH_FRACTIONS[-2]).model.count_params()
    fully: set[int] = set()

    def train_student(model: keras.Model, ctx: Any, **kw: Any) -> str:
        if kw["epochs"] == 4:  # a full recovery, not a step's (1 epoch)
            fully.add(model.count_params())
        return "1 epoch"

    monkeypatch.setattr(pruning, "train_student", train_student)
    monkeypatch.setattr(budget, "correct", lambda model, x, y: _correct_losing(
        0.03 if model.count_params() == last and last in fully else 0.0))
    data = _image_data()
    evidence = dataclasses.replace(data, x_evidence=data.x_val, y_evidence=data.y_val)
    artifact = apply_strategy(PruneStructured(max_drop=1, epochs=4), teacher, "test", evidence, seed=0,
                              workdir=tmp_path)
    assert fully == {last, before}
    assert size_stats(artifact.flatbuffer).params_count == size_stats(
        to_tflite(shrink(teacher, SEARCH_FRACTIONS[-2]).model)).params_count
    assert "80% cut +0.0±" in artifact.notes and "90% cut -3.0±" in artifact.notes
    assert "certified by fixed-sequence testing" in artifact.notes
