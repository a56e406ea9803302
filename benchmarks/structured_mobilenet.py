"""Structured pruning of a real MobileNetV2 (alpha 0.35, 32x32x3): is it really faster at batch 1?

Run: .venv/bin/python benchmarks/structured_mobilenet.py [fraction]   (default 0.5; ~5 minutes)

The teacher is ``tf_keras.applications.MobileNetV2`` trained from scratch on scikit-learn's digits
upscaled to 32x32 with 3 channels (no download).  prune-structured removes ``fraction`` of the
channels of every dependency group (residual adds pruned together) and retrains.  Both models are
timed at batch 1 on one thread, interleaved.  Target: at least 1.3x faster, at most 1 pp less
accurate on the test split.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compress.data.builtin import Dataset, split_dataset
from compress.measure.latency import measure_latency
from compress.measure.size import size_fields
from compress.models.backend import keras, seed_everything, to_tflite
from compress.models.flatbuffer import TFLiteModel
from compress.models.training import compile_for_training
from compress.strategies.apply import apply_strategy
from compress.strategies.pruning import PruneStructured

SEED = 0
TEACHER_EPOCHS = (40, 10)  # at lr 1e-3, then 1e-4 to settle
RECOVERY_EPOCHS = 30  # at prune-structured's default lr, 1e-3: at 3e-4 it recovers to 0.82 only
TARGET_SPEEDUP, TARGET_DROP_PP = 1.3, 1.0


def digits_32() -> Dataset:
    """Digits (8x8) upscaled 4x by pixel repetition, grey copied to 3 channels, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((4, 4)))[..., None].repeat(3, axis=-1)
    return split_dataset("digits32", x, digits.target, seed=SEED)


def train_teacher(data: Dataset) -> keras.Model:
    """MobileNetV2 from scratch; its BatchNorm momentum (0.999) would leave the moving statistics
    at their initial values after a few hundred steps, so it is set to 0.9."""
    seed_everything(SEED)
    teacher = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3),
                                             classes=data.n_classes)
    for layer in teacher.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    for epochs, lr in zip(TEACHER_EPOCHS, (1e-3, 1e-4), strict=True):
        compile_for_training(teacher, lr)
        teacher.fit(data.training.x_train, data.training.y_train, epochs=epochs, batch_size=32, verbose=0)
    return teacher


def accuracy(flatbuffer: bytes, data: Dataset) -> float:
    return float(np.mean(TFLiteModel(flatbuffer).predict(data.x_test).argmax(axis=1) == data.y_test))


def main(fraction: float) -> None:
    data = digits_32()
    start = time.perf_counter()
    teacher = train_teacher(data)
    print(f"teacher: MobileNetV2 alpha 0.35, {teacher.count_params():,} parameters, trained "
          f"{sum(TEACHER_EPOCHS)} epochs in {time.perf_counter() - start:.0f} s")
    strategy = PruneStructured(fraction=fraction, epochs=RECOVERY_EPOCHS)
    with tempfile.TemporaryDirectory() as workdir:
        pruned = apply_strategy(strategy, teacher, "MobileNetV2", data.training, seed=SEED,
                                workdir=Path(workdir))
    print(f"{strategy.spec()}: {pruned.train_seconds:.0f} s\n  {pruned.notes}")
    models = {"teacher": to_tflite(teacher), "pruned": pruned.flatbuffer}
    latency = measure_latency(models, data.x_test, reference="teacher", threads=1)
    print("| model | bytes | parameters | MACs | batch-1 p50 µs [95% CI] | speed-up [95% CI] | "
          "test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, flatbuffer in models.items():
        size, timing = size_fields(flatbuffer), latency[name]
        spread = timing.spread
        speedup = ("1.00×" if name == "teacher" else
                   f"{timing.speedup:.2f}× [{timing.speedup_ci_low:.2f}, {timing.speedup_ci_high:.2f}]")
        print(f"| {name} | {size['size_bytes']:,} | {size['params_count']:,} | {size['macs']:,} | "
              f"{spread.p50:.1f} [{spread.p50_ci_low:.1f}, {spread.p50_ci_high:.1f}] | {speedup} | "
              f"{accuracy(flatbuffer, data):.3f} |")
        if timing.warning:
            print(f"  {name}: {timing.warning}")
    speedup = latency["pruned"].speedup
    drop = 100 * (accuracy(models["teacher"], data) - accuracy(models["pruned"], data))
    met = speedup >= TARGET_SPEEDUP and drop <= TARGET_DROP_PP
    print(f"speed-up {speedup:.2f}× (target ≥ {TARGET_SPEEDUP}×), accuracy drop {drop:+.1f} pp "
          f"(target ≤ {TARGET_DROP_PP} pp) on {len(data.y_test)} test images: "
          f"{'target met' if met else 'target missed'}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
