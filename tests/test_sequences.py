"""1-D signals: (N, L, C) arrays are sequences, never images, and get a 1-D CNN teacher."""

from __future__ import annotations

import numpy as np

import compress


def signals(path, rows: int = 900, length: int = 40, seed: int = 0) -> None:
    """Three classes told apart by frequency, with a random phase and noise: position-free
    patterns that a 1-D convolution finds and a dense layer on raw samples does not."""
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    t = np.arange(length) / length
    phase = rng.uniform(0, 2 * np.pi, size=(rows, 1))
    x = np.sin(2 * np.pi * (y[:, None] + 1) * 2 * t + phase) + rng.normal(scale=0.5, size=(rows, length))
    np.savez(path, x=x[..., None].astype(np.float32), y=y)


def test_sequence_data_gets_a_conv1d_teacher_and_keeps_its_shape(tmp_path):
    signals(tmp_path / "signals.npz")
    frame = compress.compare(data=tmp_path / "signals.npz", strategies=["quantize-dynamic"],
                             out=tmp_path / "run")
    baseline = frame[frame["role"] == "baseline"].iloc[0]
    assert baseline["teacher_architecture"] == "cnn1d:32,64,64:64"
    assert baseline["accuracy"] >= 0.85
    assert set(frame["status"]) == {"ok"}


def test_a_variable_length_teacher_is_fixed_to_the_datas_length(tmp_path):
    """Input((None, 1)) is how 1-D signal models are often saved: it fits data of any length."""
    from compress.data.builtin import Dataset, TrainingData
    from compress.models.backend import keras
    from compress.models.teacher import load_teacher

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 32, 1)).astype(np.float32)
    y = np.arange(60) % 2
    model = keras.Sequential([keras.Input((None, 1)), keras.layers.Conv1D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model.save(tmp_path / "signal.keras")
    dataset = Dataset(TrainingData("s", x, y, x, y, ("a", "b")), x, y)
    teacher = load_teacher(tmp_path / "signal.keras", dataset)
    assert teacher.model.input_shape == (None, 32, 1)
    assert "(its input (None, 1) fixed to the data's (32, 1))" in teacher.architecture
    np.testing.assert_allclose(teacher.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
