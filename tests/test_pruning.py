from __future__ import annotations

import numpy as np
import pytest

from compress.backend import keras, to_tflite
from compress.errors import UserError
from compress.measure import TFLiteModel, kernels, size_stats
from compress.runner import apply_strategy
from compress.strategies import Skip, strategies_from_spec
from compress.strategies.clustering import Cluster
from compress.strategies.pruning import (
    MIN_PRUNED_WEIGHTS,
    Prune2of4,
    PruneMagnitude,
    PruneStructured,
    polynomial_schedule,
)
from compress.strategies.structured import shrink


def test_the_schedule_fires_on_small_data_and_ends_on_a_pruning_step():
    schedule = polynomial_schedule(0.8, epochs=4, steps_per_epoch=22)
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
        groups = kernel.reshape(kernel.shape[0], -1, 4)
        assert np.all(np.count_nonzero(groups, axis=-1) == 2)
        pruned += 1
    assert pruned == 2


def _conv_flatten_dense(batch_norm: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
               keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
    model = keras.Sequential(layers)
    weights = model.get_weights()
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) if w.ndim > 1 else
                       rng.uniform(0.5, 1.5, size=w.shape).astype(np.float32) for w in weights])
    return model


@pytest.mark.parametrize("batch_norm", [False, True])
def test_structured_pruning_is_exact_when_the_removed_units_are_zero(batch_norm):
    model = _conv_flatten_dense(batch_norm)
    conv, dense = model.layers[0], model.layers[-2]
    kernel, bias = conv.get_weights()
    kernel[..., [0, 2]], bias[[0, 2]] = 0.0, 0.0  # filters 0 and 2: lowest L1, output exactly 0
    conv.set_weights([kernel, bias])
    if batch_norm:
        gamma, beta, mean, variance = model.layers[1].get_weights()
        beta[[0, 2]], mean[[0, 2]] = 0.0, 0.0  # BN keeps them at 0 too
        model.layers[1].set_weights([gamma, beta, mean, variance])
    kernel, bias = dense.get_weights()
    kernel[:, [1, 4, 5]], bias[[1, 4, 5]] = 0.0, 0.0
    dense.set_weights([kernel, bias])
    smaller = shrink(model, 0.5)
    assert smaller.layers[0].filters == 2 and smaller.layers[-2].units == 3
    assert smaller.layers[-1].units == 3  # the output layer is never pruned
    x = np.random.default_rng(1).normal(size=(16, 6, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_structured_pruning_skips_layers_it_cannot_slice():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                              keras.layers.LayerNormalization(), keras.layers.Dense(2)])
    with pytest.raises(Skip, match="LayerNormalization"):
        shrink(model, 0.5)


def test_structured_pruning_is_really_smaller_and_cheaper(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(PruneStructured(fraction=0.5, epochs=1), teacher, architecture, data,
                              seed=0, workdir=tmp_path)
    before, after = size_stats(to_tflite(teacher)), size_stats(artifact.flatbuffer)
    assert after.size_bytes < 0.4 * before.size_bytes
    assert after.macs < 0.4 * before.macs
    assert TFLiteModel(artifact.flatbuffer).predict(data.x_val).shape == (len(data.x_val), 3)


def test_clustering_leaves_at_most_clusters_values_per_kernel(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(Cluster(clusters=8, epochs=1), teacher, architecture, data, seed=0,
                              workdir=tmp_path)
    assert all(len(np.unique(kernel)) <= 8 for kernel in kernels(artifact.flatbuffer))
    assert size_stats(artifact.flatbuffer).kernel_unique_max <= 8


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
