"""Structured pruning recipes on real architectures: one cut or gradual cuts, labels or the
teacher's logits for recovery, and the importance criterion; over seeds.

Run: .venv/bin/python benchmarks/structured_recipes.py MODEL [--seeds 3 | --seed S ...] [--extras]
                                                     [--only CONFIGURATION ...]
     MODEL: mobilenetv2 | resnet | sepconv1d   (mobilenetv2: about 12 minutes a seed)

- mobilenetv2: ``tf_keras.applications.MobileNetV2(alpha=0.35, weights=None)`` at 32x32x3,
  trained from scratch on scikit-learn's digits upscaled (as benchmarks/structured_mobilenet.py).
- resnet: a ResNet-style CNN of our own (three stages of two residual blocks, BatchNorm) on the
  same images.
- sepconv1d: a depthwise-separable 1-D network of our own on a generated signal benchmark
  (six classes of tone mixtures with close frequencies in strong noise, 128 samples).

Every pruned model removes half the channels of every dependency group (or what ``max_drop=1``
chooses) and is scored on the test split as TFLite, timed at batch 1 against its teacher in
interleaved rounds.  The main configurations run on every seed; ``--extras`` adds the criterion
and schedule comparison on seed 0.  Teachers are cached in $COMPRESS_CACHE_DIR/bench-structured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compress.common.fileio import cache_dir
from compress.data.builtin import Dataset, split_dataset
from compress.measure.latency import measure_latency
from compress.models.backend import keras, seed_everything, to_tflite
from compress.models.flatbuffer import TFLiteModel
from compress.models.training import compile_for_training
from compress.results.rows import environment
from compress.strategies import Skip
from compress.strategies.apply import apply_strategy
from compress.strategies.pruning import PruneStructured

L = keras.layers
MAIN = {
    "one cut, labels (before)": PruneStructured(cuts=1, alpha=1.0),
    "4 cuts, teacher's logits": PruneStructured(cuts=4, alpha=0.5),
    "max_drop=1": PruneStructured(max_drop=1, alpha=0.5),
}
EXTRAS = {
    "one cut, teacher's logits": PruneStructured(cuts=1, alpha=0.5),
    "4 cuts, labels": PruneStructured(cuts=4, alpha=1.0),
    "4 cuts, teacher's logits, l2": PruneStructured(cuts=4, alpha=0.5, criterion="l2"),
    "4 cuts, teacher's logits, taylor": PruneStructured(cuts=4, alpha=0.5, criterion="taylor"),
    "max_drop=1, min_channels=32": PruneStructured(max_drop=1, alpha=0.5, min_channels=32),
}


def digits_32(seed: int) -> Dataset:
    """Digits (8x8) upscaled 4x by pixel repetition, grey copied to 3 channels, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((4, 4)))[..., None].repeat(3, axis=-1).astype(np.float32)
    return split_dataset("digits32", x, digits.target, seed=seed)


def signals(seed: int) -> Dataset:
    """Six classes of tone mixtures (two frequencies each) in noise, random phases, 128 samples."""
    rng = np.random.default_rng(1234)  # the task is fixed; the seed only splits it
    t = np.arange(128) / 128
    pairs = [(3, 5), (3, 6), (4, 5), (4, 6), (5, 7), (6, 7)]
    y = rng.integers(0, len(pairs), 3000)
    phase = rng.uniform(0, 2 * np.pi, (len(y), 2, 1))
    freqs = np.array(pairs)[y][..., None]
    x = np.sin(2 * np.pi * freqs * t + phase).sum(axis=1) + rng.normal(0, 1.5, (len(y), 128))
    return split_dataset("signals", x[..., None].astype(np.float32), y, seed=seed)


def mobilenetv2(shape: tuple[int, ...], classes: int) -> keras.Model:
    return keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=shape, classes=classes,
                                          classifier_activation=None)


def resnet(shape: tuple[int, ...], classes: int) -> keras.Model:
    inputs = keras.Input(shape)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inputs)))
    for stage, width in enumerate((16, 32, 64)):
        for block in range(2):
            stride = 2 if stage and not block else 1
            y = L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 3, stride, padding="same")(x)))
            y = L.BatchNormalization()(L.Conv2D(width, 3, padding="same")(y))
            if stride != 1 or x.shape[-1] != width:
                x = L.BatchNormalization()(L.Conv2D(width, 1, stride)(x))
            x = L.ReLU()(L.Add()([x, y]))
    return keras.Model(inputs, L.Dense(classes)(L.GlobalAveragePooling2D()(x)))


def sepconv1d(shape: tuple[int, ...], classes: int) -> keras.Model:
    inputs = keras.Input(shape)
    x = L.ReLU()(L.BatchNormalization()(L.Conv1D(32, 7, padding="same")(inputs)))
    for width in (48, 64, 96):
        x = L.ReLU()(L.BatchNormalization()(L.SeparableConv1D(width, 5, padding="same")(x)))
        x = L.MaxPooling1D(2)(x)
    x = L.ReLU()(L.Dense(64)(L.GlobalAveragePooling1D()(x)))
    return keras.Model(inputs, L.Dense(classes)(x))


MODELS = {"mobilenetv2": (digits_32, mobilenetv2, (40, 10)), "resnet": (digits_32, resnet, (30, 10)),
          "sepconv1d": (signals, sepconv1d, (30, 10))}


def teacher(model: str, data: Dataset, seed: int) -> keras.Model:
    """Trained at lr 1e-3 then 1e-4 (BatchNorm momentum 0.9, so the moving statistics follow
    within a few hundred steps), cached per model and seed."""
    path = cache_dir() / "bench-structured" / f"{model}-seed{seed}.keras"
    if path.exists():
        return keras.models.load_model(path, compile=False)
    _, build, epochs = MODELS[model]
    seed_everything(seed)
    net = build(data.input_shape, data.n_classes)
    for layer in net.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    for count, lr in zip(epochs, (1e-3, 1e-4), strict=True):
        compile_for_training(net, lr)
        net.fit(data.training.x_train, data.training.y_train, epochs=count, batch_size=32, verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save(path)
    return net


def accuracy(flatbuffer: bytes, data: Dataset) -> float:
    return float(np.mean(TFLiteModel(flatbuffer).predict(data.x_test).argmax(axis=1) == data.y_test))


def run_seed(model: str, seed: int, configs: dict[str, PruneStructured]) -> dict[str, dict[str, float]]:
    data = MODELS[model][0](seed)
    start = time.perf_counter()
    net = teacher(model, data, seed)
    files, out = {"teacher": to_tflite(net)}, {}
    base = accuracy(files["teacher"], data)
    print(f"{model} seed {seed}: teacher {net.count_params():,} parameters, test accuracy {base:.4f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    for name, strategy in configs.items():
        with tempfile.TemporaryDirectory() as workdir:
            try:
                made = apply_strategy(strategy, net, model, data.training, seed=seed, workdir=Path(workdir))
            except Skip as reason:
                print(f"  {name}: skipped: {reason}", flush=True)
                continue
        files[name] = made.flatbuffer
        out[name] = {"drop_pp": 100 * (base - accuracy(made.flatbuffer, data)), "seconds": made.train_seconds}
        print(f"  {name}: {out[name]['drop_pp']:+.2f} pp lost, {made.train_seconds:.0f} s; {made.notes}",
              flush=True)
    timed = measure_latency(files, data.x_test, reference="teacher", threads=1)
    for name in out:
        out[name]["speedup"] = float(timed[name].speedup)
        out[name]["size_ratio"] = len(files["teacher"]) / len(files[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--extras", action="store_true")
    parser.add_argument("--seed", type=int, action="append",
                        help="only these seeds (repeat), e.g. to split the seeds over two processes")
    parser.add_argument("--only", action="append", choices=sorted({**MAIN, **EXTRAS}),
                        help="only these configurations (repeat)")
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{env['cpu']}, {env['cores']} cores; {env['versions']}", flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    for seed in args.seed or range(args.seeds):
        configs = {**MAIN, **(EXTRAS if args.extras and seed == 0 else {})}
        if args.only:
            configs = {name: strategy for name, strategy in {**MAIN, **EXTRAS}.items() if name in args.only}
        for name, row in run_seed(args.model, seed, configs).items():
            results.setdefault(name, []).append(row)
    print(f"\n| {args.model}: configuration | seeds | Δ pp per seed | mean Δ pp | speed-up (mean) | "
          "× smaller | recovery s |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        drops = [-r["drop_pp"] for r in rows]
        print(f"| {name} | {len(rows)} | {' / '.join(f'{d:+.2f}' for d in drops)} | "
              f"{statistics.fmean(drops):+.2f} | {statistics.fmean(r['speedup'] for r in rows):.2f}× | "
              f"{statistics.fmean(r['size_ratio'] for r in rows):.2f}× | "
              f"{statistics.fmean(r['seconds'] for r in rows):.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
