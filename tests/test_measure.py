from __future__ import annotations

import numpy as np
import pytest

from compress.measure.accuracy import accuracy_stats
from compress.measure.latency import measure_latency
from compress.measure.size import gzip_bytes, size_stats
from compress.models.backend import keras, to_tflite
from compress.models.flatbuffer import TFLiteModel
from compress.strategies.quantizing import representative_data


def _model(*layers, shape):
    """Biases start at zero and the converter drops all-zero biases: give every bias a value."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape), *layers])
    model.set_weights([w if w.ndim > 1 else np.full_like(w, 0.1) for w in model.get_weights()])
    return model


def test_dense_params_and_macs_by_hand():
    model = _model(keras.layers.Dense(3), shape=(4,))
    stats = size_stats(to_tflite(model))
    assert stats.params_count == 4 * 3 + 3
    assert stats.macs == 4 * 3
    assert stats.unaccounted_ops == ()


def test_conv_pool_dense_macs_by_hand():
    model = _model(
        keras.layers.Conv2D(2, 3, padding="same"),  # 8*8*2 outputs x 3*3*1 = 1152
        keras.layers.MaxPooling2D(2),  # 4*4*2 outputs x 2*2 = 128
        keras.layers.Flatten(),
        keras.layers.Dense(3),  # 3 x 32 = 96
        shape=(8, 8, 1),
    )
    stats = size_stats(to_tflite(model))
    assert stats.macs == 1152 + 128 + 96
    assert stats.params_count == (2 * 9 + 2) + (32 * 3 + 3)


def test_depthwise_and_average_pool_macs_by_hand():
    model = _model(
        keras.layers.DepthwiseConv2D(3, padding="same"),  # 8*8*2 outputs x 3*3 = 1152
        keras.layers.AveragePooling2D(2),  # 4*4*2 outputs x 2*2 = 128
        keras.layers.Flatten(),
        keras.layers.Dense(3),  # 96
        shape=(8, 8, 2),
    )
    stats = size_stats(to_tflite(model))
    assert stats.macs == 1152 + 128 + 96
    assert stats.params_count == (9 * 2 + 2) + (32 * 3 + 3)


def test_unaccounted_layers_are_listed():
    model = _model(keras.layers.Dense(4), keras.layers.Softmax(), shape=(4,))
    assert "SOFTMAX" in size_stats(to_tflite(model)).unaccounted_ops


def test_zeros_are_counted_in_float_and_int8_models():
    model = _model(keras.layers.Dense(8), shape=(16,))
    kernel, bias = model.get_weights()
    kernel[:, :4] = 0.0
    model.set_weights([kernel, bias])
    float_stats = size_stats(to_tflite(model))
    assert float_stats.params_count == 16 * 8 + 8
    assert float_stats.nonzero_params == 16 * 4 + np.count_nonzero(bias)
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    int8_stats = size_stats(to_tflite(model, representative=representative_data(x, 50, 0)))
    assert int8_stats.nonzero_params <= float_stats.nonzero_params
    assert int8_stats.sparsity >= 4 * 16 / (16 * 8 + 8) - 1e-9


def test_gzip_is_deterministic_whatever_the_clock(monkeypatch):
    data = bytes(range(256)) * 100
    first = gzip_bytes(data)
    monkeypatch.setattr("time.time", lambda: 1e9)
    assert gzip_bytes(data) == first


def test_integer_io_models_are_scored_like_float_ones():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    model = _model(keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3), shape=(6,))
    reference = model.predict(x, verbose=0)
    calibration = representative_data(x, 100, 0)
    for int8_io in (False, True):
        predictions = TFLiteModel(to_tflite(model, representative=calibration, int8_io=int8_io)).predict(x)
        assert predictions.dtype == np.float32
        assert np.mean(predictions.argmax(1) == reference.argmax(1)) > 0.9
        error = np.abs(predictions - reference)  # int8 rounding, not raw integers
        assert error.mean() < 0.05 and error.max() < 0.5


def test_accuracy_against_a_reference():
    y = np.array([0, 1, 2, 0, 1, 2])
    stats = accuracy_stats(y, np.array([0, 1, 2, 0, 1, 0]), 3, reference=y)
    assert stats.accuracy == pytest.approx(5 / 6)
    assert stats.accuracy_ci_low < 5 / 6 < stats.accuracy_ci_high
    assert stats.fidelity == pytest.approx(5 / 6)
    assert stats.mcnemar_p == 1.0  # a single discordant pair


def test_latency_is_summarised_per_model_with_paired_ratios():
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    small = to_tflite(_model(keras.layers.Dense(3), shape=(4,)))
    large = to_tflite(_model(keras.layers.Dense(256), keras.layers.Dense(3), shape=(4,)))
    stats = measure_latency({"a": small, "b": large}, x, reference="a", rounds=6, span_seconds=0.0,
                            round_seconds=0.001, warmup_seconds=0.001, throughput_batch=8)
    assert set(stats) == {"a", "b"}
    for value in stats.values():
        spread = value.spread
        assert spread.p50_ci_low <= spread.p50 <= spread.p50_ci_high
        assert spread.p50 <= spread.p99
        assert value.throughput_sps > 0
    assert stats["a"].speedup == 1.0
    assert stats["b"].speedup_ci_low <= stats["b"].speedup <= stats["b"].speedup_ci_high


def test_rounds_go_on_for_the_span_and_are_counted():
    x = np.zeros((8, 4), dtype=np.float32)
    model = to_tflite(_model(keras.layers.Dense(3), shape=(4,)))
    fields = measure_latency({"m": model}, x, rounds=2, span_seconds=0.2, round_seconds=0.001,
                             warmup_seconds=0.0, throughput_batch=8)["m"].fields()
    assert fields["latency_rounds"] > 2  # 2 rounds of 1 ms cannot fill 0.2 s
    assert 0 < fields["latency_steady_rounds"] <= fields["latency_rounds"]


def test_a_round_slowed_for_one_model_of_a_pair_leaves_the_speedup_alone():
    """The candidate runs twice as fast; in 12 of 20 rounds something slowed its slot alone
    (a neighbour's burst between the two): over every round the speed-up would read 1.33."""
    from compress.common.stats import steady_rounds
    from compress.measure.latency import _paired_speedup

    reference = [np.full(50, 10.0)] * 20
    candidate = [np.full(50, 7.5 if i < 12 else 5.0) for i in range(20)]
    both = steady_rounds(reference) & steady_rounds(candidate)
    ratio, low, high, faster, differ = _paired_speedup(reference, candidate, both)
    assert (ratio, low, high) == (2.0, 2.0, 2.0) and (faster, differ) == (8, 8)
    everything = _paired_speedup(reference, candidate, np.zeros(20, dtype=bool))  # too few: all
    assert everything[0] == pytest.approx(10 / 7.5) and everything[4] == 20


def test_the_warning_names_a_busy_or_an_unsteady_machine_and_nothing_else():
    from compress.common.stats import Spread
    from compress.measure.latency import latency_warning

    def spread(rounds: int, steady: int) -> Spread:
        return Spread(15.0, 14.9, 15.1, 16.0, 17.0, 0.5, rounds, steady)

    assert latency_warning(spread(100, 60), disturbed=5) is None
    assert latency_warning(spread(100, 30), disturbed=20) is None  # a third steady: still sound
    assert latency_warning(spread(100, 60), disturbed=21).startswith(
        "busy machine: 21 of 100 rounds spent over 20% of their time waiting for a core; the figures "
        "are the 60 rounds within 10% of the fastest")
    assert latency_warning(spread(100, 24), disturbed=0) == (
        "unsteady machine: 76 of 100 rounds ran over 10% slower than the fastest (another "
        "process, or a slowed core); the figures are the other 24's")


def test_the_arena_is_the_peak_of_tensors_alive_at_once_by_hand():
    """Input 4 floats, Dense 8, Dense 3: while the second Dense runs, its input (8) and output
    (3) are alive; while the first runs, the input (4) and its output (8): peak 12 floats."""
    from compress.measure.memory import arena_bytes

    model = _model(keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3), shape=(4,))
    assert arena_bytes(to_tflite(model)) == 12 * 4
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    int8 = to_tflite(model, representative=representative_data(x, 64, 0), int8_io=True)
    assert arena_bytes(int8) == 12  # the same tensors, one byte each


def test_resident_memory_comes_from_a_fresh_process_and_grows_with_the_model():
    from compress.measure.memory import resident_memory

    small = resident_memory(to_tflite(_model(keras.layers.Dense(3), shape=(4,))))
    large = resident_memory(to_tflite(_model(keras.layers.Dense(2048), keras.layers.Dense(2048),
                                             shape=(512,))))
    assert 10 * 2**20 < small["peak_rss_bytes"] < 500 * 2**20  # a Python process with LiteRT
    assert large["model_rss_bytes"] > small["model_rss_bytes"] + 4 * 2**20  # 5M float weights: 20 MiB


def test_rounds_that_wait_for_a_core_are_counted_and_flagged(monkeypatch):
    """A thread that gets no CPU time while its rounds take wall time waited for a core:
    every round is disturbed and the row says so."""
    import time as real_time

    import compress.measure.latency as measure

    class NoCpu:  # the measuring thread is never on a core: only wall time passes
        perf_counter_ns = staticmethod(real_time.perf_counter_ns)
        perf_counter = staticmethod(real_time.perf_counter)

        @staticmethod
        def thread_time_ns() -> int:
            return 0

    model = to_tflite(_model(keras.layers.Dense(3), shape=(4,)))
    x = np.zeros((8, 4), dtype=np.float32)
    monkeypatch.setattr(measure, "time", NoCpu)
    stats = measure_latency({"m": model}, x, rounds=6, span_seconds=0.0, round_seconds=0.001,
                            warmup_calls=2, warmup_seconds=0.0)["m"]
    assert stats.disturbed_rounds == 6
    assert stats.warning.startswith("busy machine: 6 of 6 rounds spent over 20% of their time waiting")
    assert stats.fields()["latency_disturbed_rounds"] == 6 and stats.fields()["latency_cpu_us"] == 0.0
