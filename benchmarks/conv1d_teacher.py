"""A user's Conv1D teacher on 1-D signals: what pruning and distillation do to it (issue 13).

Run: .venv/bin/python benchmarks/conv1d_teacher.py [--seeds 3]
Generates 5-class signals (a frequency band with a random phase, a random position and noise:
patterns a convolution finds and a dense layer on raw samples does not), trains a Conv1D
teacher as a user would (tf_keras, global pooling, ~46k parameters), saves it as .keras, then
runs prune-magnitude and distill (with its controls) on it over seeds with a fixed test split.
Prints the rows, the pruned Conv1D sparsity, distill against student-scratch per seed, and
what the default teacher (no --teacher) reaches on the same data.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from compress.api import compare
from compress.models.backend import keras
from compress.results.rows import environment

CLASSES, LENGTH = 5, 128


def signals(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % CLASSES
    t = np.arange(LENGTH) / LENGTH
    frequency = (y[:, None] + 2) * 3 + rng.uniform(-0.8, 0.8, size=(rows, 1))
    burst = np.exp(-((t - rng.uniform(0.2, 0.8, size=(rows, 1))) ** 2) / 0.02)  # where it sounds
    x = burst * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi, size=(rows, 1)))
    x += rng.normal(scale=0.6, size=x.shape)
    return x[..., None].astype(np.float32), y


def user_teacher(x: np.ndarray, y: np.ndarray) -> keras.Model:
    layers = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((LENGTH, 1)),
        layers.Conv1D(32, 7, padding="same", activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(64, 7, padding="same", activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(64, 5, padding="same", activation="relu"), layers.GlobalAveragePooling1D(),
        layers.Dense(64, activation="relu"), layers.Dense(CLASSES),
    ], name="user_conv1d")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=64, verbose=0, validation_split=0.2)
    return model


def main(seeds: int) -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; seeds 0..{seeds - 1}")
    x, y = signals(3000, seed=1)
    x_test, y_test = signals(1000, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        data, model = Path(tmp) / "signals.npz", Path(tmp) / "teacher.keras"
        np.savez(data, x=x, y=y, x_test=x_test, y_test=y_test)
        teacher = user_teacher(x, y)
        teacher.save(model)
        print(f"teacher: {teacher.count_params():,} parameters")
        frame = compare(data=data, teacher=model, strategies=["prune-magnitude", "distill"],
                        seed=list(range(seeds)), out=Path(tmp) / "run")
        default = compare(data=data, strategies=["baseline"], seed=0, out=Path(tmp) / "default")
    own = default.iloc[0]
    print(f"no --teacher: the default teacher {own['teacher_architecture']} reaches "
          f"{own['accuracy']:.3f} on the same test split")
    rows = frame.to_dict("records")
    for row in rows:
        said = (row.get("notes") or row.get("reason") or "")[:110]
        print(f"seed {row['seed']} {row['label']:<22} {row['status']:<7} acc {row.get('accuracy', 0):.3f} "
              f"params {row.get('params_count') or 0:>7,} sparsity {row.get('pruned_sparsity') or 0:.2f} "
              f"{said}")
    wins = 0
    for seed in range(seeds):
        by = {r["strategy"]: r for r in rows if r["seed"] == seed and r["status"] == "ok"}
        gain = by["distill"]["accuracy"] - by["student-scratch"]["accuracy"]
        wins += gain > 0
        print(f"seed {seed}: distill {by['distill']['accuracy']:.3f} vs student-scratch "
              f"{by['student-scratch']['accuracy']:.3f} ({100 * gain:+.1f} pp), teacher "
              f"{by['baseline']['accuracy']:.3f}")
    print(f"distill beats student-scratch on {wins} of {seeds} seeds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    main(parser.parse_args().seeds)
