"""The default `compress run` on real data sizes: a 50,000-row table and a 5,000-image folder.

Run: .venv/bin/python benchmarks/large_data.py [--rows 50000] [--images 5391] [--only table|images]

Each problem runs the README's main job (`compress run` with the default strategies) in a fresh
process with an empty teacher cache, so the wall time includes training the teacher.  Prints,
as Markdown, the total wall time and for every row its training time, accuracy and the budget
it was planned (from its notes), then whether distill beats same-budget scratch.

- Table: scikit-learn's make_classification (20 features, 15 informative, 3 classes), the
  document's generator at 50 times its size, as a CSV with a target column.
- Images: scikit-learn's 8x8 digits upscaled 3x to 24x24 grayscale PNGs, each drawn three
  times with a random shift of up to 2 px, Gaussian noise and contrast jitter (no download),
  one sub-folder per class.
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

from compress.results.rows import environment

SEED = 0


def write_table(folder: Path, rows: int) -> list[str]:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=15, n_classes=3,
                               random_state=SEED)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(y=y)
    frame.to_csv(folder / "table.csv", index=False)
    return ["--data", str(folder / "table.csv"), "--target", "y"]


def write_images(folder: Path, count: int) -> list[str]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(SEED)
    root = folder / "images"
    for n in range(count):
        index = n % len(digits.target)
        image = np.kron(digits.images[index] / 16.0, np.ones((3, 3)))
        image = np.roll(image, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        image = image * rng.uniform(0.7, 1.0) + rng.normal(0, 0.08, image.shape)
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        label = root / str(digits.target[index])
        label.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(label / f"{n:05d}.png")
    return ["--data", str(root)]


def run(name: str, data: list[str], folder: Path) -> None:
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(folder / "cache")}
    out = folder / f"run-{name}"
    start = time.perf_counter()
    subprocess.run([Path(sys.executable).parent / "compress", "run", *data, "--out", str(out)],
                   check=True, env=env, capture_output=True)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "run.json").read_text())
    teacher = manifest["teachers"]["0"]
    dataset = manifest["dataset"]
    print(f"\n#### {name}: {dataset['n_train']:,}/{dataset['n_val']:,}/{dataset['n_test']:,} "
          f"train/val/test, {manifest['workers']} workers: **{wall / 60:.1f} min** wall\n")
    print(f"Teacher `{teacher['architecture']}`: {teacher['epochs_trained']} epochs, validation "
          f"accuracy {teacher['val_accuracy']:.3f}, trained in "
          f"{rows[0]['teacher_train_seconds']:.0f} s.\n")
    print("| row | train s | accuracy | budget (from the notes) |")
    print("|---|---|---|---|")
    for row in rows:
        found = re.search(r"\d[\d,]* (?:of [\d,]+ )?epochs(?: of batch \d+)?(?: \([^)]*\))?",
                          row.get("notes") or "")
        planned = found.group(0) if found else ""
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        print(f"| {row['label']} | {row['train_seconds'] or 0:.1f} | {accuracy or row['status']} | "
              f"{planned} |")
    accuracy = {row["strategy"]: row["accuracy"] or 0.0 for row in rows}
    verdict = "beats" if accuracy["distill"] > accuracy["student-scratch"] else "does not beat"
    print(f"\ndistill ({accuracy['distill']:.4f}) {verdict} student-scratch "
          f"({accuracy['student-scratch']:.4f}); student-scratch-mixup "
          f"{accuracy['student-scratch-mixup']:.4f}.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--images", type=int, default=5_391)  # each digit drawn three times
    parser.add_argument("--only", choices=("table", "images"))
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{time.strftime('%Y-%m-%d')}, {env['cpu']}, {env['cores']} cores")
    with tempfile.TemporaryDirectory(prefix="compress-large-") as tmp:
        folder = Path(tmp)
        if args.only in (None, "table"):
            run(f"{args.rows:,}-row table", write_table(folder, args.rows), folder)
        if args.only in (None, "images"):
            run(f"{args.images:,}-image folder", write_images(folder, args.images), folder)


if __name__ == "__main__":
    main()
