"""A user's teacher that prepares its own input (an adapted Normalization, a Rescaling): every
model built to stand in for it (students, the from-scratch controls) keeps that preprocessing
with the teacher's values, or it learns from raw features the teacher never saw."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data.builtin import TrainingData
from compress.models.architectures import build_model, input_preprocessing
from compress.models.backend import keras
from compress.strategies import Context
from compress.strategies.resolve import strategy_from_name

#: Features on the scale of raw sensor counts or prices: hopeless for a net without its scaler.
SCALE = 5000.0


@pytest.fixture(scope="module")
def scaled():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    x = x * SCALE + SCALE
    data = TrainingData("scaled", x[:300], y[:300], x[300:], y[300:], ("a", "b", "c"))
    normalize = keras.layers.Normalization(name="scaler")
    normalize.adapt(data.x_train)
    teacher = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Rescaling(1.0, name="unit"),
                                normalize, keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(3)])
    return data, teacher


def test_the_leading_preprocessing_layers_are_found_in_order(scaled):
    _, teacher = scaled
    assert [layer.name for layer in input_preprocessing(teacher)] == ["unit", "scaler"]
    assert input_preprocessing(build_model("mlp:16", (6,), 3, seed=0)) == []


def test_a_built_student_starts_with_a_copy_of_the_teachers_preprocessing(scaled):
    data, teacher = scaled
    student = build_model("mlp:8", (6,), 3, seed=0, preprocessing=input_preprocessing(teacher))
    copied = student.get_layer("preprocessing_1")
    assert type(copied).__name__ == "Normalization"
    for mine, theirs in zip(copied.get_weights(), teacher.get_layer("scaler").get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert not copied.trainable_weights  # training the student leaves it as the teacher fitted it
    scaled_input = student.layers[1](student.layers[0](data.x_val)).numpy()
    assert abs(scaled_input.mean()) < 0.5 and 0.5 < scaled_input.std() < 2  # not thousands
    bare = build_model("mlp:8", (6,), 3, seed=0)  # the same initial weights after the copies
    np.testing.assert_array_equal(bare.get_layer("dense_0").get_weights()[0],
                                  student.get_layer("dense_0").get_weights()[0])


@pytest.mark.parametrize("name", ["student-scratch", "retrain-scratch"])
def test_the_controls_keep_the_teachers_fitted_preprocessing_and_say_so(scaled, tmp_path, name):
    data, teacher = scaled
    cls = type(strategy_from_name(name))
    strategy = cls.from_params(**cls.fast_params)
    made = strategy.compress(Context(data=data, teacher=teacher, teacher_architecture="user",
                                     seed=0, workdir=tmp_path))
    normalizers = [layer for layer in made.model.layers if type(layer).__name__ == "Normalization"]
    assert len(normalizers) == 1
    fitted = teacher.get_layer("scaler").get_weights()
    np.testing.assert_array_equal(normalizers[0].get_weights()[0], fitted[0])
    assert "keeps the teacher's input preprocessing (Rescaling, Normalization)" in made.notes
