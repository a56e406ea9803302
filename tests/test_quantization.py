from __future__ import annotations

import numpy as np

from compress.backend import keras
from compress.measure import TFLiteModel, size_stats
from compress.runner import apply_strategy
from compress.strategies.quantization import QuantizeInt8, QuantizeInt8IO, QuantizeQAT
from compress.training import compile_for_training


def test_qat_keeps_a_layer_tfmot_cannot_quantize_float_and_names_it(tiny, tmp_path):
    data, _, _ = tiny
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input(data.input_shape), keras.layers.Rescaling(0.5),
                                keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    compile_for_training(teacher, 1e-3)
    artifact = apply_strategy(QuantizeQAT(epochs=1), teacher, "custom", data, seed=0,
                              workdir=tmp_path)
    assert "rescaling (Rescaling)" in artifact.notes  # named, not silently dropped


def test_int8_io_model_has_integer_io_and_scores_like_int8(tiny, tmp_path):
    data, teacher, architecture = tiny
    plain, io = (apply_strategy(s, teacher, architecture, data, seed=0, workdir=tmp_path)
                 for s in (QuantizeInt8(samples=50), QuantizeInt8IO(samples=50)))
    model = TFLiteModel(io.flatbuffer)
    assert model.input_dtype == np.int8
    a = TFLiteModel(plain.flatbuffer).predict(data.x_val).argmax(1)
    b = model.predict(data.x_val).argmax(1)
    assert np.mean(a == b) > 0.95
    assert size_stats(io.flatbuffer).arithmetic == "int8"


def test_rows_say_what_they_trade(tiny, tmp_path):
    data, teacher, architecture = tiny
    artifact = apply_strategy(QuantizeQAT(epochs=1), teacher, architecture, data, seed=0,
                              workdir=tmp_path)
    assert "int8" in artifact.notes and artifact.train_seconds > 0
