"""MLPerf Tiny's reference classifiers as built-in teachers: their shapes, TFLite Micro, and
every family on one."""

from __future__ import annotations

import numpy as np
import pytest

import compress
from compress.measure.micro import micro_unavailable, run_in_micro
from compress.models.architectures import TINY_MODELS, build_model, parse_architecture
from compress.models.backend import keras, to_tflite

#: Each model on the input of its MLPerf Tiny task: CIFAR-10, keyword spotting (49 MFCC frames
#: of 10), visual wake words (96x96 RGB).
TASKS = {"resnet8": ((32, 32, 3), 10), "dscnn": ((49, 10, 1), 12), "mobilenetv1-0.25": ((96, 96, 3), 2)}


def _count(model: keras.Model, kind: type) -> int:
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_a_reference_model_has_its_papers_shape(name):
    shape, classes = TASKS[name]
    model = build_model(name, shape, classes, seed=0)
    layers = keras.layers
    final = model.get_layer("global_pool").input.shape[1:3]
    if name == "resnet8":  # three residual blocks, two of them halving: 32 -> 8
        assert _count(model, layers.Add) == 3 and tuple(final) == (8, 8)
    elif name == "dscnn":  # a strided 10x4 stem, four separable blocks of 64
        assert model.get_layer("stem_conv").kernel_size == (10, 4)
        assert _count(model, layers.DepthwiseConv2D) == 4 and tuple(final) == (25, 5)
    else:  # thirteen separable blocks, five halvings (96 -> 3), 256 wide at the end (alpha 0.25)
        assert _count(model, layers.DepthwiseConv2D) == 13 and tuple(final) == (3, 3)
        assert model.get_layer("global_pool").input.shape[-1] == 256
    assert parse_architecture(name) == parse_architecture(TINY_MODELS[name])


@pytest.mark.skipif(micro_unavailable() is not None, reason="tflite-micro has no wheel for this machine")
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_a_reference_model_runs_in_tflite_micro(name):
    shape, classes = TASKS[name]
    flatbuffer = to_tflite(build_model(name, shape, classes, seed=0))
    found = run_in_micro(flatbuffer, np.zeros((1, *shape), np.float32))
    assert found["runs"] and found["arena"] > 0


@pytest.mark.slow
def test_every_family_runs_on_a_resnet8_teacher(tmp_path):
    frame = compress.compare("digits", ["quantize-int8", "prune-structured:epochs=1", "distill:epochs=1"],
                             epochs=1, teacher_architecture="resnet8", out=tmp_path / "run",
                             allow_weak_teacher=True)
    assert set(frame["status"]) == {"ok"}, frame[["strategy", "reason"]]
    assert frame.loc[frame["strategy"] == "baseline", "teacher_architecture"].item() == "resnet8"
