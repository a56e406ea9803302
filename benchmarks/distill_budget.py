"""Does `distill:max_drop=1` find a student within 1 pp of the teacher, at least 4x smaller?

Run: .venv/bin/python benchmarks/distill_budget.py [--seeds 3] [--only digits conv1d keras3 table]
     [--spec distill:max_drop=1]

Four problems, each as a user would bring it, over seeds 0..n-1 (each seed its own splits):
- digits: `--dataset digits` with the default CNN teacher;
- conv1d: a user's Conv1D teacher (tf_keras, global pooling) on generated 1-D signals
  (benchmarks/conv1d_teacher.py), a fixed test split;
- keras3: a Keras 3 CNN with BatchNorm trained on digits by a user, read from its .keras file;
- table: a 50,000-row make_classification CSV (the document's generator, 50 times its size);
- mobilenet32 (not in the default four): a user's ``tf_keras.applications.MobileNetV2`` (alpha
  0.35) at 32x32x3 on digits upscaled, trained once by benchmarks/time_budget.py and cached.
Prints one Markdown row per problem and seed: the teacher's and the student's test accuracy,
the drop, how many times fewer parameters, the student the ladder chose, the two controls'
accuracy on the same student, and the distill row's training seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from compress.api import compare
from compress.results.rows import environment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

KERAS3_TEACHER = """
import sys
import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_digits

digits = load_digits()
x, y = (digits.images / 16.0)[..., None].astype("float32"), digits.target
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((8, 8, 1)),
    layers.Conv2D(32, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(),
    layers.MaxPooling2D(),
    layers.Conv2D(64, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(),
    layers.MaxPooling2D(), layers.Flatten(),
    layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x[:1400], y[:1400], epochs=30, batch_size=32, verbose=0)
model.save(sys.argv[1])
np.savez(sys.argv[2], x=x, y=y)
"""


def problem(name: str, folder: Path) -> dict:
    """compare()'s data and teacher options for one problem."""
    if name == "digits":
        return {"dataset": "digits"}
    if name == "conv1d":
        from conv1d_teacher import signals, user_teacher

        x, y = signals(3000, seed=1)
        x_test, y_test = signals(1000, seed=2)
        np.savez(folder / "signals.npz", x=x, y=y, x_test=x_test, y_test=y_test)
        user_teacher(x, y).save(folder / "conv1d.keras")
        return {"data": folder / "signals.npz", "teacher": folder / "conv1d.keras"}
    if name == "keras3":
        environment_ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        subprocess.run([sys.executable, "-c", KERAS3_TEACHER, str(folder / "keras3.keras"),
                        str(folder / "digits.npz")], check=True, env=environment_)
        return {"data": folder / "digits.npz", "teacher": folder / "keras3.keras"}
    if name == "mobilenet32":
        from time_budget import digits_32, mobilenet_teacher, prepared

        data, teacher = prepared("bench", "digits32.npz", digits_32, "mobilenetv2-digits32.keras",
                                 mobilenet_teacher)
        return {"data": data, "teacher": teacher}
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=50_000, n_features=20, n_informative=15, n_classes=3,
                               random_state=0)
    pd.DataFrame(x, columns=[f"f{i}" for i in range(20)]).assign(y=y).to_csv(folder / "table.csv",
                                                                             index=False)
    return {"data": folder / "table.csv", "target": "y"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["digits", "conv1d", "keras3", "table"])
    parser.add_argument("--spec", default="distill:max_drop=1")
    args = parser.parse_args()
    machine = environment(threads=1)
    print(f"{machine['cpu']}, {machine['cores']} cores; {args.spec}; seeds 0..{args.seeds - 1}\n")
    print("| problem | seed | teacher | student | Δ pp | × fewer params | student chosen | scratch | "
          "scratch+mixup | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            options = problem(name, Path(tmp))
            frame = compare(strategies=[args.spec], seed=list(range(args.seeds)), out=Path(tmp) / "run",
                            jobs=os.cpu_count() or 1, **options)
        for seed, rows in frame.groupby("seed"):
            by = {row["role"] if row["role"] != "control" else row["strategy"]: row
                  for row in rows.to_dict("records")}
            teacher, distill = by["baseline"], by["technique"]
            if distill["status"] != "ok":
                print(f"| {name} | {seed} | {teacher['accuracy']:.4f} | {distill['status']}: "
                      f"{distill['reason']} | | | | | | |", flush=True)
                continue
            cells = [f"{by[c]['accuracy']:.4f}" if by.get(c, {}).get("status") == "ok" else "—"
                     for c in ("student-scratch", "student-scratch-mixup")]
            print(f"| {name} | {seed} | {teacher['accuracy']:.4f} | {distill['accuracy']:.4f} | "
                  f"{100 * (distill['accuracy'] - teacher['accuracy']):+.2f} | "
                  f"{teacher['params_count'] / distill['params_count']:.1f} | "
                  f"{_chosen(distill['notes'] or '')} | {' | '.join(cells)} | "
                  f"{distill['train_seconds']:.0f} |", flush=True)


def _chosen(notes: str) -> str:
    """The rung the ladder kept, as its notes name it."""
    kept = re.search(r"kept (\S+),", notes)
    return kept.group(1) if kept else "?"


if __name__ == "__main__":
    main()
