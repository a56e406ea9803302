"""The default strategy set and ``prune-structured:max_drop=1`` on a real-size image model: a
MobileNetV2 (alpha 0.35) teacher at 96x96x3 on a generated folder of 5,391 colour images.

Run: .venv/bin/python benchmarks/real_size_images.py [--jobs 2] [--jobs 1 ...]

- Data: each of scikit-learn's 1,797 digits drawn three times, enlarged to 40-72 px, turned by
  up to 15 degrees and placed anywhere on a 96x96 canvas, in a random bright colour on a random
  dark gradient with Gaussian noise (no download); one sub-folder per class, PNG.
- Teacher: ``tf_keras.applications.MobileNetV2(alpha=0.35, weights=None)`` at 96x96x3, trained
  once on the run's own training split and saved as a user's .keras file.  A user brings a
  trained model, so its training is not part of the timed run; it is cached with the images in
  $COMPRESS_CACHE_DIR/bench-images96 and its time printed once.

Each ``--jobs N`` runs ``compress run --data FOLDER --teacher FILE --jobs N`` with the default
strategies and ``--strategy prune-structured:max_drop=1`` in a fresh process (the images were
decoded, and cached, when the teacher was trained, so every timed run reads the same cache).
Prints, as Markdown, the wall time, its phases (every model made, then timing and report), and
every row's share of the training time, accuracy, speed-up, size and planned budget.  Each
run's folder, log and times stay in $COMPRESS_CACHE_DIR/bench-images96/runs (``--report-only``
prints their tables again).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from compress.orchestrate.config import DEFAULT_STRATEGIES
from compress.results.rows import environment

sys.path.insert(0, str(Path(__file__).resolve().parent))  # time_budget's helpers
from time_budget import prepared, timed_run, train_mobilenet

SEED = 0
SIZE = 96
STRATEGIES = (*DEFAULT_STRATEGIES, "prune-structured:max_drop=1")


def write_images(root: Path, copies: int = 3) -> None:
    """Every digit drawn ``copies`` times (see the module docstring), written atomically as a
    whole: a half-written folder is never taken for the data."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(SEED)
    partial = root.with_name(root.name + ".partial")
    ramp = np.linspace(0.0, 1.0, SIZE)[None, :, None]
    for n in range(copies * len(digits.target)):
        index = n % len(digits.target)
        side = int(rng.integers(40, 73))
        glyph = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8), mode="L")
        glyph = glyph.resize((side, side), Image.BILINEAR).rotate(float(rng.uniform(-15, 15)),
                                                                  resample=Image.BILINEAR)
        mask = np.zeros((SIZE, SIZE, 1))
        top, left = rng.integers(0, SIZE - side + 1, size=2)
        mask[top:top + side, left:left + side, 0] = np.asarray(glyph) / 255.0
        start, end = rng.uniform(0.0, 0.35, size=(2, 3))
        background = start + (end - start) * (ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2))
        colour = rng.uniform(0.55, 1.0, size=3)
        image = background * (1 - mask) + colour * mask + rng.normal(0, 0.06, (SIZE, SIZE, 3))
        folder = partial / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), mode="RGB").save(
            folder / f"{n:05d}.png")
    partial.rename(root)


def train_teacher(images: Path, path: Path) -> None:
    """MobileNetV2 from scratch on the run's training split, on a fixed schedule: a teacher chosen
    by its best validation epoch would look better on that split than it is, and every pruned
    model judged there worse."""
    from compress.data.images import load_image_folder

    dataset, _ = load_image_folder(images, seed=SEED)
    train_mobilenet(dataset.training, ((14, 1e-3), (4, 1e-4)), verbose=2).save(path)


def prepare() -> tuple[Path, Path]:
    return prepared("bench-images96", "images", write_images, "mobilenetv2-96.keras", train_teacher)


def run(images: Path, teacher: Path, jobs: int, out: Path) -> float:
    """One timed ``compress run``, kept in ``out``; its wall time in seconds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "compress"), "run", "--data", str(images),
               "--teacher", str(teacher), "--jobs", str(jobs), "--out", str(out), "--overwrite"]
    for strategy in STRATEGIES:
        command += ["--strategy", strategy]
    wall, made = timed_run(command, out.with_suffix(".log"))
    out.with_suffix(".json").write_text(json.dumps({"wall": wall, "made": made}))
    return report(out, jobs)


def report(out: Path, jobs: int) -> float:
    """Print a kept run's table (see the module docstring); its wall time in seconds."""
    timed = json.loads(out.with_suffix(".json").read_text())
    wall, made = timed["wall"], timed["made"]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    trained = sum(row["train_seconds"] or 0 for row in rows)
    dataset = json.loads((out / "run.json").read_text())["dataset"]
    print(f"\n#### `--jobs {jobs}`: **{wall / 60:.1f} min** wall ({dataset['n_train']:,}/"
          f"{dataset['n_val']:,}/{dataset['n_test']:,} train/val/test)\n")
    print(f"Every model made after {made:.0f} s; timing, memory probes and report {wall - made:.0f} s. "
          f"The rows' training adds up to {trained:.0f} s of one core.\n")
    print("| row | train s | share of training | accuracy | speed-up p50 [95% CI] | × smaller (gzip) | "
          "budget (the first in its notes) |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0]
    for row in rows:
        found = re.search(r"\d[\d,]* (?:of [\d,]+ )?epochs?(?: of batch \d+)?(?: \([^)]*\))?",
                          row.get("notes") or "")
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        speed = (f"{row['speedup']:.2f}× [{row['speedup_ci_low']:.2f}, {row['speedup_ci_high']:.2f}]"
                 if row.get("speedup") else "")
        smaller = (f"{base['size_gzip_bytes'] / row['size_gzip_bytes']:.1f}×"
                   if row.get("size_gzip_bytes") else "")
        seconds = row["train_seconds"] or 0
        print(f"| {row['label']} | {seconds:.0f} | {seconds / max(trained, 1e-9):.0%} | "
              f"{accuracy or row['status']} | {speed} | {smaller} | {found.group(0) if found else ''} |")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, action="append")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="print the kept runs' tables again")
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {env['cpu']}, {env['cores']} cores")
    images, teacher = prepare()
    if args.prepare_only:
        return
    walls = {}
    for jobs in args.jobs or [2]:  # kept beside the data, so a run of half an hour is never lost
        out = images.parent / "runs" / f"jobs{jobs}"
        walls[jobs] = report(out, jobs) if args.report_only else run(images, teacher, jobs, out)
    if 1 in walls and 2 in walls:
        print(f"\n2 workers over 1: **{walls[1] / walls[2]:.2f}×**")


if __name__ == "__main__":
    main()
