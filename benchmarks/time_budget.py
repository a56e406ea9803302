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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compress.common.fileio import cache_dir
from compress.results.rows import environment

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData

SEED = 0


def digits_32(path: Path) -> None:
    """Digits (8x8) upscaled 4x by pixel repetition, grey copied to 3 channels, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((4, 4)))[..., None].repeat(3, axis=-1)
    np.savez(path, x=x.astype(np.float32), y=digits.target)


def mobilenet_teacher(data: Path, path: Path) -> None:
    """MobileNetV2 from scratch on the run's own training split."""
    from compress.data.userdata import load_file

    dataset, _ = load_file(data, seed=SEED)
    train_mobilenet(dataset.training, ((40, 1e-3), (10, 1e-4))).save(path)


def train_mobilenet(t: TrainingData, schedule: tuple[tuple[int, float], ...], verbose: int = 0) -> Any:
    """``tf_keras.applications.MobileNetV2(alpha=0.35)`` for ``t``'s images, trained from scratch
    on ``schedule`` ((epochs, learning rate) stages, batch 32), its last epoch kept.  BatchNorm
    momentum 0.9: at 0.999 the moving statistics stay near their initial values after a few
    hundred steps."""
    from compress.models.backend import keras, seed_everything
    from compress.models.training import compile_for_training

    seed_everything(SEED)
    teacher = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=t.input_shape,
                                             classes=t.n_classes, classifier_activation=None)
    for layer in teacher.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    for epochs, lr in schedule:
        compile_for_training(teacher, lr)
        teacher.fit(t.x_train, t.y_train, epochs=epochs, batch_size=32, verbose=verbose,
                    validation_data=(t.x_val, t.y_val) if verbose else None)
    return teacher


def prepared(name: str, data_name: str, write_data: Callable[[Path], None], teacher_name: str,
             train: Callable[[Path, Path], None]) -> tuple[Path, Path]:
    """A benchmark's data and trained teacher, made once and cached in $COMPRESS_CACHE_DIR/NAME;
    the teacher is saved under another name until it is complete, so an interrupted training is
    never taken for one."""
    folder = cache_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    data, teacher = folder / data_name, folder / teacher_name
    if not data.exists():
        write_data(data)
    if not teacher.exists():
        start = time.perf_counter()
        partial = teacher.with_name(f"{teacher.stem}.partial{teacher.suffix}")
        train(data, partial)
        partial.rename(teacher)
        print(f"teacher trained once in {time.perf_counter() - start:.0f} s (cached in {folder})")
    return data, teacher


def timed_run(command: list[str], log: Path | None = None) -> tuple[float, float]:
    """Run ``compress run`` in a fresh process (its stderr saved to ``log``, if given): its wall
    time and when its last model was made, in seconds; exits with its stderr if it failed."""
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if log is not None:
        log.write_text(done.stderr)
    if done.returncode not in (0, 1):  # 1: a row failed, which the table shows
        sys.exit(f"compress run failed:\n{done.stderr[-3000:]}")
    # piped, the run logs "[elapsed] k/N what" on stderr for every finished step: the line
    # before "every model timed" is the last model made
    logged = re.findall(r"\[\s*([\d.]+)s\] \d+/\d+ (.*)", done.stderr)
    timed = next(i for i, (_, what) in enumerate(logged) if "every model timed" in what)
    return wall, float(logged[timed - 1][0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{time.strftime('%Y-%m-%d')}, {env['cpu']}, {env['cores']} cores")
    data, teacher = prepared("bench", "digits32.npz", digits_32, "mobilenetv2-digits32.keras",
                             mobilenet_teacher)
    with tempfile.TemporaryDirectory(prefix="compress-budget-") as tmp:
        out = Path(tmp) / "run"
        command = [str(Path(sys.executable).parent / "compress"), "run", "--data", str(data),
                   "--teacher", str(teacher), "--strategy", "*", "--time-budget", str(args.minutes),
                   "--out", str(out)]
        wall, timing = timed_run(command)
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
