"""Compress your own trained tf_keras model: functional, with BatchNormalization and Dropout.

Run: .venv/bin/python examples/bring_your_own_teacher.py
It trains a small model on sklearn's breast-cancer data, saves it as .keras and the data as
.npz, then compresses it from the CLI and from Python. Strategies that cannot handle the
architecture come out as `skipped` rows with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from compress import RunConfig
from compress.api import execute
from compress.models.backend import keras

OUT = Path(__file__).parent / "out"


def train_teacher(x: np.ndarray, y: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(x.shape[1],))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.Dropout(0.2)(hidden)
    hidden = keras.layers.Dense(32, activation="relu")(hidden)
    outputs = keras.layers.Dense(2)(hidden)
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model


def main() -> None:
    bunch = load_breast_cancer()
    x = StandardScaler().fit_transform(bunch.data).astype(np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / "cancer.npz", x=x, y=bunch.target)
    train_teacher(x, bunch.target).save(OUT / "teacher.keras")
    compress = str(Path(sys.executable).parent / "compress")
    subprocess.run([compress, "run", "--data", str(OUT / "cancer.npz"), "--teacher",
                    str(OUT / "teacher.keras"), "--out", str(OUT / "byo-cli"), "--overwrite"],
                   check=False)  # exit 1 would mean a strategy failed; skipped rows are fine
    result = execute(RunConfig(data=OUT / "cancer.npz", teacher=OUT / "teacher.keras",
                               strategies=["quantize-*", "prune-structured"],
                               out=OUT / "byo-python", overwrite=True))
    for row in result.rows:
        print(f"{row['strategy']:<18} {row['status']:<8} {row['reason'] or ''}")


if __name__ == "__main__":
    main()
