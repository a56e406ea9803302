"""Every registered strategy on every zoo member ends ok or skipped with a reason, never failed.

The rows are produced as a run produces them (``plan_steps`` pairs the controls, ``apply_strategy``
exports the flatbuffer), with each strategy's ``fast_params``: this checks that nothing breaks on
real architectures, not how accurate anything ends up.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from compress.backend import keras, to_tflite
from compress.measure import TFLiteModel, kernels, size_fields
from compress.runner import apply_strategy, plan_steps
from compress.strategies import Skip, registry
from tests.zoo import ZOO, Member, make_data, trained, two_of_four

#: Members that prune-structured must really shrink: residual adds and depthwise convolutions.
MUST_SHRINK = ("resnet", "mobilenet-v2")


def _steps() -> list:
    """Every built-in and plugin strategy at its fast settings, controls paired with their
    techniques; no baseline, nothing defined by a test."""
    specs = [cls.from_params(**cls.fast_params).spec() for cls in registry().values()
             if cls.role != "baseline" and not cls.__module__.startswith("tests")]
    return [step for step in plan_steps(specs) if step.role != "baseline"]


STEPS = _steps()


@functools.cache
def member(name: str) -> Member:
    return trained(name)


@functools.cache
def teacher_size(name: str) -> dict[str, object]:
    return size_fields(to_tflite(member(name).teacher))


@pytest.mark.parametrize("name", ZOO)
def test_every_member_is_small_and_beats_chance(name):
    zoo = member(name)
    assert zoo.teacher.count_params() < 50_000
    assert zoo.val_accuracy > 1 / zoo.data.n_classes + 0.2


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.strategy.name)
@pytest.mark.parametrize("name", ZOO)
def test_every_strategy_ends_ok_or_skipped_on_every_member(name, step, tmp_path):
    zoo = member(name)
    try:
        artifact = apply_strategy(step.strategy, zoo.teacher, zoo.architecture, zoo.data, seed=0,
                                  workdir=tmp_path)
    except Skip as reason:
        assert " " in str(reason).strip(), "a skip must say why"
        pytest.skip(f"{step.strategy.name} on {name}: {reason}")
    predictions = TFLiteModel(artifact.flatbuffer).predict(zoo.data.x_val)
    assert predictions.shape == (len(zoo.data.x_val), zoo.data.n_classes)
    assert np.all(np.isfinite(predictions))
    if step.strategy.name == "prune-2of4":  # the pattern survives conversion: each kernel is
        pruned = [k for k in kernels(artifact.flatbuffer) if np.count_nonzero(k) < k.size]
        assert pruned and all(two_of_four(k) for k in pruned)  # untouched or 2:4, and some are 2:4
    if step.strategy.name == "prune-structured" and name in MUST_SHRINK:
        before, after = teacher_size(name), size_fields(artifact.flatbuffer)
        assert after["size_bytes"] < before["size_bytes"] and after["macs"] < before["macs"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["prune-structured:epochs=1", "prune-magnitude:epochs=1",
                                  "quantize-int8:samples=20"])
def test_a_real_mobilenet_v2_compresses(spec, tmp_path):
    from compress.strategies import strategies_from_spec

    data = make_data("image", shape=(32, 32, 3), classes=10, train=320)
    keras.utils.set_random_seed(0)
    teacher = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=10)
    teacher.compile("adam", "sparse_categorical_crossentropy")  # softmax outputs: probabilities
    teacher.fit(data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0)
    (strategy,) = strategies_from_spec(spec)
    artifact = apply_strategy(strategy, teacher, "MobileNetV2", data, seed=0, workdir=tmp_path)
    assert TFLiteModel(artifact.flatbuffer).predict(data.x_val).shape == (len(data.x_val), 10)
    before, after = size_fields(to_tflite(teacher)), size_fields(artifact.flatbuffer)
    if strategy.name == "prune-structured":
        assert after["size_bytes"] < 0.6 * before["size_bytes"] and after["macs"] < 0.6 * before["macs"]
    if strategy.name == "prune-magnitude":
        assert after["pruned_sparsity"] > 0.75 and "depthwise" in artifact.notes
