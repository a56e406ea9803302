"""Recurrent teachers (issue 41): an LSTM converts to the fused op for one row at a time, every
row starts from a zero state, a GRU's loop converts in float and is refused full-integer
calibration in one line, and magnitude pruning reaches the recurrent kernels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import compress
from compress.data.builtin import split_dataset
from compress.measure.micro import micro_unavailable, run_in_micro
from compress.models.backend import Unconvertible, keras, recurrent_conversion, to_tflite
from compress.models.flatbuffer import TFLiteModel, _read
from compress.strategies.apply import apply_strategy
from compress.strategies.base import Skip
from compress.strategies.pruning import PruneMagnitude, zero_fraction
from compress.strategies.quantization import QuantizeInt8, QuantizeQAT

LENGTH, CHANNELS, CLASSES = 16, 2, 3


def _model(*body: keras.layers.Layer) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((LENGTH, CHANNELS)), *body, keras.layers.Dense(CLASSES)])


def _rows(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, LENGTH, CHANNELS)).astype(np.float32)


def _ops(flatbuffer: bytes) -> list[str]:
    return [kind for kind, _ in _read(flatbuffer)[1]]


def test_an_lstm_becomes_the_fused_op_and_every_row_starts_from_zeros():
    model = _model(keras.layers.LSTM(8, return_sequences=True), keras.layers.LSTM(6))
    flatbuffer = to_tflite(model)
    assert _ops(flatbuffer).count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2 and "WHILE" not in _ops(flatbuffer)
    runtime = TFLiteModel(flatbuffer)
    assert not runtime.resizable and runtime.stateful  # one row a call, its state kept between calls
    x = _rows()
    assert np.abs(runtime.predict(x) - model.predict(x, verbose=0)).max() < 1e-5  # no state leaks
    first = runtime.predict(x[:1])
    assert np.array_equal(first, runtime.predict(x[:1]))
    if micro_unavailable() is None:  # TFLite Micro keeps the state too, and is reset every row
        labels = run_in_micro(flatbuffer, x)["labels"]
        assert labels == model.predict(x, verbose=0).argmax(axis=1).tolist()


def test_a_gru_converts_as_a_loop_and_unrolls_for_full_integer_calibration_up_to_a_length(
        tmp_path, monkeypatch):
    from compress.models import backend

    model = _model(keras.layers.GRU(8))
    flatbuffer = to_tflite(model)
    assert "WHILE" in _ops(flatbuffer)  # float files keep the loop: unrolled ones are larger
    x = _rows()
    assert np.abs(TFLiteModel(flatbuffer).predict(x) - model.predict(x, verbose=0)).max() < 1e-5

    def calibration():
        for row in range(8):
            yield [x[row:row + 1]]

    integer = to_tflite(model, representative=calibration)  # its 16 steps unrolled: plain ops
    assert "WHILE" not in _ops(integer) and "FULLY_CONNECTED" in _ops(integer)
    agreement = np.mean(TFLiteModel(integer).predict(x).argmax(1) == model.predict(x, verbose=0).argmax(1))
    assert agreement >= 0.8
    monkeypatch.setattr(backend, "UNROLL_STEPS", LENGTH - 1)  # too long to unroll
    gru = model.layers[0].name
    with pytest.raises(Unconvertible, match=rf"cannot calibrate the loop of {gru} \(GRU\)") as refused:
        to_tflite(model, representative=calibration)  # it would crash the converter's process
    assert "\n" not in str(refused.value) and f"more than {LENGTH - 1} steps" in str(refused.value)
    data = split_dataset("signals", x, np.arange(len(x)) % CLASSES, seed=0).training
    with pytest.raises(Skip, match=f"cannot calibrate the loop of {gru}"):
        apply_strategy(QuantizeInt8(samples=4), model, "user", data, seed=0, workdir=tmp_path)
    with pytest.raises(Skip, match=rf"no quantizer for recurrent layers \({gru} \(GRU\)\)"):
        apply_strategy(QuantizeQAT(epochs=1), model, "user", data, seed=0, workdir=tmp_path)


def test_a_teachers_description_says_how_each_recurrent_layer_converts():
    model = _model(keras.layers.LSTM(4, return_sequences=True, name="fused"),
                   keras.layers.LSTM(4, return_sequences=True, activation="relu", name="relu_lstm"),
                   keras.layers.GRU(3, unroll=True, name="unrolled"))
    said = recurrent_conversion(model)
    assert said.startswith("recurrent: fused (LSTM) as the fused UNIDIRECTIONAL_SEQUENCE_LSTM; ")
    assert "relu_lstm (LSTM) as a WHILE loop (only an LSTM with tanh and sigmoid" in said
    assert "unrolled for full-integer quantization" in said  # 16 steps: short enough
    assert "unrolled (GRU) as plain ops (unrolled)" in said and said.endswith("one row a call")
    assert recurrent_conversion(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])) is None


def test_magnitude_pruning_reaches_the_recurrent_kernels(tmp_path: Path):
    model = _model(keras.layers.LSTM(32))  # 4 x (2 + 32) x 32 = 4,352 kernel weights
    x = _rows(120)
    data = split_dataset("signals", x, np.arange(len(x)) % CLASSES, seed=0).training
    made = apply_strategy(PruneMagnitude(sparsity=0.5, epochs=1), model, "user", data, seed=0,
                          workdir=tmp_path)
    lstm = model.layers[0].name
    reached = re.match(rf"(\d+)% of the weights of {lstm} set to zero", made.notes)
    assert reached and int(reached.group(1)) >= 49, made.notes
    assert zero_fraction(model, [lstm]) == 0.0  # the teacher itself is untouched
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in _ops(made.flatbuffer)


@pytest.mark.slow  # a run of nine strategies: about 2 minutes
def test_a_recurrent_teacher_gets_a_row_or_a_one_line_skip_from_every_family(tmp_path):
    """A user's LSTM and GRU teacher through a run: no row fails, the LSTM stays fused in every
    float row, and what cannot take it says which layer."""
    rng = np.random.default_rng(0)
    y = np.arange(240) % CLASSES
    x = (rng.normal(size=(240, LENGTH, CHANNELS)) + 2 * y[:, None, None]).astype(np.float32)
    np.savez(tmp_path / "signals.npz", x=x, y=y)
    model = _model(keras.layers.LSTM(24, return_sequences=True), keras.layers.GRU(12),  # 2,496 LSTM weights
                   keras.layers.Dense(32, activation="relu"))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, verbose=0)
    model.save(tmp_path / "recurrent.keras")
    strategies = ["quantize-dynamic", "quantize-float16", "quantize-int8", "quantize-qat",
                  "prune-magnitude", "prune-structured", "factorize", "distill", "finetune"]
    frame = compress.compare(data=tmp_path / "signals.npz", teacher=tmp_path / "recurrent.keras",
                             strategies=strategies, epochs=1, out=tmp_path / "run", jobs=1)
    rows = {row["strategy"]: row for row in frame.to_dict("records")}
    assert not [name for name, row in rows.items() if row["status"] == "failed"], \
        {name: row["reason"] for name, row in rows.items()}
    for name in ("baseline", "quantize-dynamic", "quantize-float16", "quantize-int8", "prune-magnitude",
                 "factorize", "distill", "finetune"):  # int8: the GRU unrolled over its 16 steps
        assert rows[name]["status"] == "ok", (name, rows[name]["reason"])
    for name, layer in (("quantize-qat", "GRU"), ("prune-structured", "LSTM")):
        assert rows[name]["status"] == "skipped" and f"({layer})" in rows[name]["reason"], rows[name]
    assert "as the fused UNIDIRECTIONAL_SEQUENCE_LSTM" in rows["baseline"]["teacher_architecture"]
    baseline = (tmp_path / "run" / rows["baseline"]["artifact"]).read_bytes()
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in _ops(baseline)
