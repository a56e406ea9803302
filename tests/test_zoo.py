"""Every registered strategy on every zoo member ends ok or skipped with a reason, never failed.

The rows are produced as a run produces them, with each strategy's ``fast_params``: this checks
that nothing breaks on real architectures, not how accurate anything ends up.  Each row costs a
few seconds of single-threaded graph tracing (training, TFLite export), so the members are
spread over one worker process per core.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat

import numpy as np
import pytest

from compress.measure.size import kernels, size_fields
from compress.models.backend import keras, to_tflite
from compress.models.flatbuffer import TFLiteModel
from compress.strategies import registry, strategies_from_spec
from compress.strategies.apply import apply_strategy
from tests.zoo import ZOO, MemberRun, make_data, run_member, two_of_four

#: Every built-in and plugin strategy at its fast settings (controls are paired with their
#: techniques by ``plan_steps``); no baseline, nothing a test defines.
SPECS = [cls.from_params(**cls.fast_params).spec() for cls in registry().values()
         if cls.role != "baseline" and not cls.__module__.startswith("tests")]
NAMES = [spec.partition(":")[0] for spec in SPECS]
#: Members that prune-structured must really shrink: residual adds and depthwise convolutions.
MUST_SHRINK = ("resnet", "mobilenet-v2")
#: The slowest members first, so that the two workers finish together.
BY_COST = ("mobilenet-v2", "resnet", "conv1d", "cnn-bn", "mlp")


@pytest.fixture(scope="module")
def matrix() -> dict[str, MemberRun]:
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(zip(BY_COST, pool.map(run_member, BY_COST, repeat(SPECS)), strict=True))


def test_the_matrix_covers_every_member_and_every_strategy():
    assert sorted(BY_COST) == sorted(ZOO)
    assert {"prune-structured", "quantize-qat", "student-scratch", "retrain-scratch"} <= set(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_every_member_is_small_and_beats_chance(name, matrix):
    run = matrix[name]
    assert run.params < 50_000
    assert run.val_accuracy > 1 / run.n_classes + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("strategy", NAMES)
@pytest.mark.parametrize("name", ZOO)
def test_every_strategy_ends_ok_or_skipped_on_every_member(name, strategy, matrix):
    run = matrix[name]
    outcome = run.outcomes[strategy]
    if outcome.status == "failed":
        pytest.fail(f"{strategy} failed on {name}:\n{outcome.reason}")
    if outcome.status == "skipped":
        assert " " in outcome.reason.strip(), "a skip must say why"
        pytest.skip(f"{strategy} on {name}: {outcome.reason}")
    predictions = TFLiteModel(outcome.flatbuffer).predict(run.x_val)
    assert predictions.shape == (len(run.x_val), run.n_classes)
    assert np.all(np.isfinite(predictions))
    if strategy == "prune-2of4":  # the pattern survives conversion: every kernel is untouched or 2:4
        pruned = [k for k in kernels(outcome.flatbuffer) if np.count_nonzero(k) < k.size]
        assert pruned and all(two_of_four(k) for k in pruned)
    if strategy == "prune-structured" and name in MUST_SHRINK:
        before, after = size_fields(run.teacher_flatbuffer), size_fields(outcome.flatbuffer)
        assert after["size_bytes"] < before["size_bytes"] and after["macs"] < before["macs"]


@pytest.fixture(scope="module")
def real_mobilenet_v2() -> tuple:
    """``tf_keras.applications.MobileNetV2`` (softmax outputs: the tool reads them as
    probabilities), briefly trained, with its TFLite size fields."""
    data = make_data("image", shape=(32, 32, 3), classes=10, train=320)
    keras.utils.set_random_seed(0)
    teacher = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=10)
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0)
    return data, teacher, size_fields(to_tflite(teacher))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["prune-structured:epochs=1", "prune-magnitude:epochs=1",
                                  "quantize-int8:samples=20"])
def test_a_real_mobilenet_v2_compresses(spec, real_mobilenet_v2, tmp_path):
    data, teacher, before = real_mobilenet_v2
    (strategy,) = strategies_from_spec(spec)
    artifact = apply_strategy(strategy, teacher, "MobileNetV2", data, seed=0, workdir=tmp_path)
    assert TFLiteModel(artifact.flatbuffer).predict(data.x_val).shape == (len(data.x_val), 10)
    after = size_fields(artifact.flatbuffer)
    if strategy.name == "prune-structured":
        assert after["size_bytes"] < 0.6 * before["size_bytes"] and after["macs"] < 0.6 * before["macs"]
    if strategy.name == "prune-magnitude":  # depthwise kernels of 2,048+ weights are pruned too
        depthwise = [k for k in kernels(artifact.flatbuffer) if k.shape[0] == 1 and k.size >= 2048]
        assert depthwise and all(np.count_nonzero(k) < 0.25 * k.size for k in depthwise)
        assert after["pruned_sparsity"] > 0.75
