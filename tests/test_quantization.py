from __future__ import annotations

import linecache

import numpy as np

from compress.data.builtin import TrainingData
from compress.measure.size import size_stats
from compress.models.backend import keras
from compress.models.flatbuffer import TFLiteModel
from compress.models.training import compile_for_training
from compress.strategies import quantization
from compress.strategies.apply import apply_strategy
from compress.strategies.quantization import QuantizeInt8, QuantizeInt8IO, QuantizeQAT


def test_qat_quantizes_a_batchnorm_after_a_relu_though_its_source_file_changed(tmp_path, monkeypatch):
    """A BatchNorm after a ReLU has no convolution to fold into: it gets the output-only config,
    whose methods the traced QuantizeWrapper calls.  AutoGraph used to transpile them from this
    module's file by line number, so a file edited since import (here: 12 lines inserted, as when
    a developer edits it mid-run) made it call another function ("takes 0 positional arguments")."""
    source, getlines = quantization.__file__, linecache.getlines
    monkeypatch.setattr(linecache, "getlines", lambda file, *rest: (
        ["# edited\n"] * 12 if file == source else []) + getlines(file, *rest))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 3)).astype(np.float32), rng.integers(0, 2, 64)
    data = TrainingData("image", x[:48], y[:48], x[48:], y[48:], ("a", "b"))
    keras.utils.set_random_seed(0)
    L = keras.layers
    teacher = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
                                L.BatchNormalization(name="bn"), L.GlobalAveragePooling2D(), L.Dense(2)])
    compile_for_training(teacher, 1e-3)
    artifact = apply_strategy(QuantizeQAT(epochs=1), teacher, "custom", data, seed=0, workdir=tmp_path)
    assert "bn (BatchNormalization)" in artifact.notes
    assert size_stats(artifact.flatbuffer).arithmetic == "int8"
    assert np.all(np.isfinite(TFLiteModel(artifact.flatbuffer).predict(data.x_val)))


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


def test_the_measurement_says_what_each_file_holds(tiny, tmp_path):
    """The converter decides per layer: a fixed sentence ("about 4x smaller") could be false, so
    the row's ``stored_as`` is read back from the file by the measurement, not told by the
    strategy."""
    from compress.measure.size import size_fields
    from compress.strategies.apply import apply_strategy
    from compress.strategies.resolve import strategy_from_name

    data, teacher, architecture = tiny
    stored = {name: size_fields(apply_strategy(strategy_from_name(name), teacher, architecture, data,
                                               seed=0, workdir=tmp_path).flatbuffer)["stored_as"]
              for name in ("quantize-dynamic", "quantize-float16")}
    assert stored["quantize-dynamic"].startswith("FULLY_CONNECTED")
    assert "float16 weights × float32 activations" in stored["quantize-float16"]  # not the dequantized copy


def test_qat_applies_to_a_separable_model_whose_conv_kept_the_default_name():
    """tfmot splits a SeparableConv2D into layers Keras names conv2d...; a teacher layer already
    named so used to receive the wrong weights and the row was skipped."""
    import tensorflow_model_optimization as tfmot

    from compress.strategies.quantization import QuantizeQAT, _clear_of_tfmot_names

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv2d")(inputs)
    h = keras.layers.SeparableConv2D(16, 3, padding="same", name="separable_conv2d")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    clear = _clear_of_tfmot_names(model)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(clear.predict(x, verbose=0), model.predict(x, verbose=0))
    quantized, _ = QuantizeQAT()._quantize_apply(
        clear, tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme())
    assert any("depthwise" in layer.name for layer in quantized.layers)


def test_dynamic_range_says_when_it_quantized_nothing(tmp_path):
    """Every kernel under the converter's 1,024-weight threshold: the file stays float32."""
    from compress.strategies.resolve import strategy_from_name

    data = TrainingData("t", np.zeros((40, 4), np.float32), np.arange(40) % 2,
                        np.zeros((10, 4), np.float32), np.arange(10) % 2, ("a", "b"))
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    made = apply_strategy(strategy_from_name("quantize-dynamic"), teacher, "mlp:8", data, seed=0,
                          workdir=tmp_path)
    assert "The converter quantized no layer of this model" in made.notes
    assert size_stats(made.flatbuffer).arithmetic == "float32"
