"""The automatic student of a MobileNet teacher: ``mobile`` (now) against ``cnn:4,4:16`` (before).

Run: .venv/bin/python benchmarks/mobile_student.py [--seeds 3]

The teacher is ``tf_keras.applications.MobileNetV2(alpha=0.35, weights=None)`` at 32x32x3 on
scikit-learn's digits upscaled, trained and cached per seed by ``structured_recipes.py``.  For
each student, ``distill`` (the defaults) and its strongest control, ``student-scratch-mixup``,
train it; each row is scored on the test split as TFLite.  Prints, per student and row, the test
accuracy per seed, the mean, and the training seconds (the notes name the student's size).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # structured_recipes' teachers
from structured_recipes import accuracy, digits_32, teacher

from compress.models.backend import to_tflite
from compress.results.rows import environment
from compress.strategies.apply import apply_strategy
from compress.strategies.distillation import Distill, StudentScratchMixup

STUDENTS = ("auto", "cnn:4,4:16")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{env['cpu']}, {env['cores']} cores; {env['versions']}", flush=True)
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        data = digits_32(seed)
        net = teacher("mobilenetv2", data, seed)
        print(f"seed {seed}: teacher test accuracy {accuracy(to_tflite(net), data):.4f}", flush=True)
        for student in STUDENTS:
            for row in (Distill(student=student), StudentScratchMixup(student=student)):
                with tempfile.TemporaryDirectory() as workdir:
                    made = apply_strategy(row, net, "mobilenetv2", data.training, seed=seed,
                                          workdir=Path(workdir))
                result = (accuracy(made.flatbuffer, data), made.train_seconds)
                scores.setdefault((student, row.name), []).append(result)
                print(f"  {student} {row.name}: {result[0]:.4f}, {result[1]:.0f} s; {made.notes}", flush=True)
    print("\n| student | row | test accuracy per seed | mean | train s (mean) |")
    print("|---|---|---|---|---|")
    for (student, row), results in scores.items():
        print(f"| {student} | {row} | {' / '.join(f'{a:.4f}' for a, _ in results)} | "
              f"{statistics.fmean(a for a, _ in results):.4f} | "
              f"{statistics.fmean(s for _, s in results):.0f} |")


if __name__ == "__main__":
    main()
