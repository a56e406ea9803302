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
