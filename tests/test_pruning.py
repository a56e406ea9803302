from __future__ import annotations

import numpy as np
import pytest

from compress.common.errors import UserError
from compress.measure.size import kernels, size_stats
from compress.models.backend import keras, to_tflite
from compress.models.training import plan
from compress.strategies import Skip, strategies_from_spec
from compress.strategies.apply import apply_strategy
from compress.strategies.clustering import Cluster
from compress.strategies.pruning import MIN_PRUNED_WEIGHTS, Prune2of4, PruneMagnitude, polynomial_schedule
from compress.strategies.quantization import QuantizeQAT
from tests.zoo import make_data, two_of_four

L = keras.layers


def test_the_schedule_fires_on_small_data_and_ends_on_a_pruning_step():
    schedule = polynomial_schedule(0.8, plan(4, 22 * 32))
    assert schedule.frequency == 5  # tfmot's default of 100 would never fire in 88 steps
    assert schedule.end_step % schedule.frequency == 0 and schedule.end_step < 4 * 22


def test_magnitude_pruning_reaches_its_target_on_the_kernels(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(PruneMagnitude(sparsity=0.8, epochs=2), teacher, architecture, data,
                              seed=0, workdir=tmp_path)
    stats = size_stats(artifact.flatbuffer)
    assert stats.pruned_sparsity == pytest.approx(0.8, abs=0.01)
    assert stats.sparsity < stats.pruned_sparsity  # biases are not pruned
    assert stats.size_bytes == size_stats(to_tflite(teacher)).size_bytes  # zeros are still stored


def test_two_of_four_pattern_holds_on_the_exported_weights(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(Prune2of4(epochs=1), teacher, architecture, data, seed=0,
                              workdir=tmp_path)
    pruned = 0
    for kernel in kernels(artifact.flatbuffer):  # TFLite layout: [out, in]; groups along "in"
        if kernel.size < MIN_PRUNED_WEIGHTS:
            assert np.count_nonzero(kernel) == kernel.size  # small kernels stay dense
            continue
        assert two_of_four(kernel) and np.count_nonzero(kernel) == kernel.size // 2
        pruned += 1
    assert pruned == 2


def _conv1d(channels: int = 16) -> keras.Model:
    """A Conv1D kernel of 5 x 16 x 32 = 2560 weights (the user's report: only Dense was pruned)."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((40, channels)), L.Conv1D(32, 5, activation="relu", name="conv1d"),
                             L.Flatten(), L.Dense(4, name="logits")])


def _depthwise_separable() -> keras.Model:
    """A 1x1 expansion to 240 channels, a depthwise kernel of 3 x 3 x 240 = 2160 weights, a
    separable convolution whose pointwise kernel has 240 x 16 weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(240, 1, name="expand")(inputs)))
    x = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.SeparableConv2D(16, 3, name="separable")(x)
    return keras.Model(inputs, L.Dense(4, name="logits")(L.GlobalAveragePooling2D()(x)))


def _run(strategy, teacher, data, tmp_path):
    return apply_strategy(strategy, teacher, "test", data, seed=0, workdir=tmp_path)


def _zeros(kernel: np.ndarray) -> float:
    return 1 - np.count_nonzero(kernel) / kernel.size


def test_magnitude_pruning_reaches_conv1d_depthwise_and_separable_kernels(tmp_path):
    sequences = make_data("sequence", shape=(40, 16))
    artifact = _run(PruneMagnitude(epochs=1), _conv1d(), sequences, tmp_path)
    conv, _ = kernels(artifact.flatbuffer)
    assert conv.shape == (32, 1, 5, 16) and _zeros(conv) == pytest.approx(0.8, abs=0.01)
    assert "80% of the weights of conv1d" in artifact.notes

    artifact = _run(PruneMagnitude(epochs=1), _depthwise_separable(), make_data("image", shape=(8, 8, 3)),
                    tmp_path)
    expand, depthwise, separable_depthwise, pointwise, logits = kernels(artifact.flatbuffer)
    assert _zeros(expand) == 0 and _zeros(separable_depthwise) == 0 and _zeros(logits) == 0
    assert _zeros(depthwise) == pytest.approx(0.8, abs=0.01)  # its depthwise kernel: 2,160 weights
    assert _zeros(pointwise) == pytest.approx(0.8, abs=0.01)
    assert "depthwise, separable set to zero" in artifact.notes
    assert f"under {MIN_PRUNED_WEIGHTS} weights: expand (Conv2D), logits (Dense)" in artifact.notes


def test_two_of_four_leaves_what_tfmot_cannot_mask_dense_and_says_why(tmp_path):
    sequences = make_data("sequence", shape=(40, 16))
    teacher = keras.Sequential([keras.Input((40, 16)), L.Conv1D(32, 5, name="conv1d"), L.Flatten(),
                                L.Dense(64, name="hidden"), L.Dense(4, name="logits")])
    artifact = _run(Prune2of4(epochs=1), teacher, sequences, tmp_path)
    conv, hidden, logits = kernels(artifact.flatbuffer)
    assert _zeros(conv) == 0 and _zeros(logits) == 0
    assert two_of_four(hidden) and _zeros(hidden) == pytest.approx(0.5, abs=0.01)
    assert "rank-2 or rank-4 kernels only: conv1d (Conv1D)" in artifact.notes

    artifact = _run(Prune2of4(epochs=1), _depthwise_separable(), make_data("image", shape=(8, 8, 3)),
                    tmp_path)
    _, depthwise, _, pointwise, _ = kernels(artifact.flatbuffer)
    assert _zeros(depthwise) == 0 and two_of_four(pointwise) and _zeros(pointwise) == pytest.approx(0.5)
    assert "not depthwise convolutions: depthwise (DepthwiseConv2D)" in artifact.notes


def test_a_teacher_with_only_small_kernels_is_skipped_naming_them(tmp_path):
    teacher = keras.Sequential([keras.Input((20,)), L.Dense(8, name="small"), L.Dense(4, name="logits")])
    with pytest.raises(Skip, match=r"under 2048 weights: small \(Dense\), logits \(Dense\)"):
        _run(PruneMagnitude(epochs=1), teacher, make_data("features"), tmp_path)


def test_clustering_leaves_at_most_clusters_values_per_kernel(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(Cluster(clusters=8, epochs=1), teacher, architecture, data, seed=0,
                              workdir=tmp_path)
    assert all(len(np.unique(kernel)) <= 8 for kernel in kernels(artifact.flatbuffer))
    assert size_stats(artifact.flatbuffer).kernel_unique_max <= 8


def test_clustering_leaves_depthwise_kernels_as_tfmot_does_and_says_so(tmp_path):
    artifact = _run(Cluster(clusters=8, epochs=1), _conv1d(), make_data("sequence", shape=(40, 16)), tmp_path)
    assert all(len(np.unique(kernel)) <= 8 for kernel in kernels(artifact.flatbuffer))  # Conv1D too
    artifact = _run(Cluster(clusters=8, epochs=1), _depthwise_separable(),
                    make_data("image", shape=(8, 8, 3)), tmp_path)
    _, depthwise, _, pointwise, logits = kernels(artifact.flatbuffer)
    assert len(np.unique(depthwise)) > 8 and len(np.unique(pointwise)) <= 8 and len(np.unique(logits)) <= 8
    assert "Left as they are: depthwise kernels, which tfmot does not cluster (the accuracy lost does " \
        "not come back): depthwise (DepthwiseConv2D)." in artifact.notes
    # the separable layer's depthwise kernel keeps its values, and the note must not claim otherwise
    assert artifact.notes.startswith("Each kernel of expand, logits and the pointwise kernel of separable "
                                     "(tfmot leaves their depthwise kernel as it is) shares 8 values")


def test_clustering_says_when_a_folded_batchnorm_scales_the_clustered_kernel(tmp_path):
    teacher = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(16, 3, name="conv"),
                                L.BatchNormalization(name="norm"), L.GlobalAveragePooling2D(),
                                L.Dense(4, name="logits")])
    artifact = _run(Cluster(clusters=8, epochs=1), teacher, make_data("image", shape=(8, 8, 3)), tmp_path)
    conv, logits = kernels(artifact.flatbuffer)
    assert len(np.unique(conv)) > 8 and len(np.unique(logits)) <= 8  # what the note must not hide
    assert all(len(np.unique(channel)) <= 8 for channel in conv)  # TFLite: output channels first
    assert "the BatchNormalization after conv is folded into its kernel" in artifact.notes


def test_qat_quantizes_the_outputs_of_layers_tfmot_has_no_quantizer_for(tmp_path):
    teacher = keras.Sequential([keras.Input((40, 16)), L.Conv1D(32, 5, activation="relu", name="conv1d"),
                                L.BatchNormalization(name="norm"), L.MaxPooling1D(2, name="pool"),
                                L.Flatten(), L.Dense(4, name="logits")])
    artifact = _run(QuantizeQAT(epochs=1), teacher, make_data("sequence", shape=(40, 16)), tmp_path)
    # Without quantized outputs from these, the Dense after them would get float inputs and
    # stay float too; with them every multiply is int8.
    assert size_stats(artifact.flatbuffer).arithmetic == "int8"
    # Conv1D and MaxPooling1D have no quantizer in tfmot; the BatchNorm has nothing to fold into.
    assert ("no quantizer for conv1d (Conv1D), pool (MaxPooling1D), norm (BatchNormalization)"
            in artifact.notes)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prune-structured:fraction=1", "fraction must be between 0 and 1"),
        ("prune-structured:fraction=-0.2", "fraction must be between 0 and 1"),
        ("cluster:clusters=1", "clusters must be at least 2"),
        ("prune-2of4:epochs=0", "epochs must be at least 1"),
    ],
)
def test_pruning_hyperparameters_are_validated(spec, message):
    with pytest.raises(UserError, match=message):
        strategies_from_spec(spec)
