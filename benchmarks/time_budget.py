"""`compress run --time-budget` on the case that once took over 20 minutes: a MobileNetV2-style
teacher (tf_keras MobileNetV2, alpha 0.35, 32x32x3, 423k parameters) and every strategy.

Run: .venv/bin/python benchmarks/time_budget.py [--minutes 2]

The data is scikit-learn's digits upscaled to 32x32 with 3 channels, saved as a user's .npz; the
teacher is trained once on its training split (as `compress run` splits it) and saved as a
user's .keras file, cached in $COMPRESS_CACHE_DIR/bench.  Then `compress run --data digits32.npz
--teacher mobilenetv2.keras --strategy '*' --time-budget MIN` runs in a fresh process.  Prints the
wall time until every model exists (the budgeted part), the measurement phase after it, and per
row its training time, accuracy and what the budget cut.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compress.common.fileio import cache_dir
from compress.results.rows import environment

SEED = 0


def digits_32(path: Path) -> None:
    """Digits (8x8) upscaled 4x by pixel repetition, grey copied to 3 channels, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((4, 4)))[..., None].repeat(3, axis=-1)
    np.savez(path, x=x.astype(np.float32), y=digits.target)


def mobilenet_teacher(data: Path, path: Path) -> None:
    """MobileNetV2 from scratch on the run's own training split (BatchNorm momentum 0.9: at
    0.999 the moving statistics stay near their initial values after a few hundred steps)."""
    from compress.data.userdata import load_file
    from compress.models.backend import keras, seed_everything
    from compress.models.training import compile_for_training

    dataset, _ = load_file(data, seed=SEED)
    t = dataset.training
    seed_everything(SEED)
    teacher = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3),
                                             classes=t.n_classes, classifier_activation=None)
    for layer in teacher.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    for epochs, lr in ((40, 1e-3), (10, 1e-4)):
        compile_for_training(teacher, lr)
        teacher.fit(t.x_train, t.y_train, epochs=epochs, batch_size=32, verbose=0)
    teacher.save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{time.strftime('%Y-%m-%d')}, {env['cpu']}, {env['cores']} cores")
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    data, teacher = folder / "digits32.npz", folder / "mobilenetv2-digits32.keras"
    if not data.exists():
        digits_32(data)
    if not teacher.exists():
        start = time.perf_counter()
        mobilenet_teacher(data, teacher)
        print(f"teacher trained once in {time.perf_counter() - start:.0f} s (cached in {folder})")
    with tempfile.TemporaryDirectory(prefix="compress-budget-") as tmp:
        out = Path(tmp) / "run"
        command = [str(Path(sys.executable).parent / "compress"), "run", "--data", str(data),
                   "--teacher", str(teacher), "--strategy", "*", "--time-budget", str(args.minutes),
                   "--out", str(out)]
        start = time.perf_counter()
        done = subprocess.run(command, env={**os.environ}, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode not in (0, 1):  # 1: a row failed, which the table shows
            sys.exit(f"compress run failed:\n{done.stderr[-3000:]}")
        # piped, the run logs "[elapsed] k/N what" on stderr for every finished step: the line
        # before "every model timed" is the last model made
        logged = re.findall(r"\[\s*([\d.]+)s\] \d+/\d+ (.*)", done.stderr)
        timed = next(i for i, (_, what) in enumerate(logged) if "every model timed" in what)
        timing = float(logged[timed - 1][0])
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        print(f"\n`--time-budget {args.minutes:g}`, {json.loads((out / 'run.json').read_text())['workers']}"
              f" workers: every model made after **{timing:.0f} s**; measurement and report "
              f"{wall - timing:.0f} s more; {wall:.0f} s in all.\n")
        print("| row | status | train s | accuracy | cut by the budget |")
        print("|---|---|---|---|---|")
        for row in rows:
            accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
            print(f"| {row['label']} | {row['status']} | {row['train_seconds'] or 0:.1f} | {accuracy} | "
                  f"{row['budget_stopped'] or row.get('reason') or ''} |")


if __name__ == "__main__":
    main()
