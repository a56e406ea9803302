"""Every default strategy for a 256 KiB / 1 MiB board (issue 43): which rows fit, the arena
TFLite Micro needs against LiteRT's `arena_bytes`, and how often the two runtimes agree.

    python benchmarks/micro_device.py [--problem digits|images96] [--device nrf52840] [--seeds 3]

- ``digits``: scikit-learn's digits with the default teacher.
- ``images96``: the generated folder of 5,391 colour digits at 96x96x3 of
  ``real_size_images.py`` (made once, cached in $COMPRESS_CACHE_DIR/bench-images96) with the
  built-in MLPerf Tiny visual-wake-words teacher ``mobilenetv1-0.25``, trained by the run.

Prints a Markdown table for docs/benchmarks.md; the run folder stays in reports/bench-micro[-PROBLEM].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import compress
from compress.analysis.devices import fits, parse_device
from compress.common.fileio import cache_dir
from compress.results.rows import environment, read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="nrf52840")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--problem", choices=("digits", "images96"), default="digits")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path("reports/bench-micro" + ("" if args.problem == "digits" else f"-{args.problem}"))
    device = parse_device(args.device)
    machine = environment(threads=1)
    if args.problem == "digits":
        data: dict[str, object] = {"dataset": "digits"}
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from real_size_images import write_images

        images = cache_dir() / "bench-images96" / "images"
        if not images.exists():
            images.parent.mkdir(parents=True, exist_ok=True)
            write_images(images)
        data = {"data": images, "teacher_architecture": "mobilenetv1-0.25"}
    start = time.perf_counter()
    frame = compress.compare(**data, seed=list(range(args.seeds)), device=args.device, out=out,
                             overwrite=out.exists())
    rows = read_results(frame.attrs["run_dir"])
    seconds = time.perf_counter() - start
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; {seconds / 60:.1f} min; "
          f"device {device.describe()}")
    print("| row | seed | fits | LiteRT arena_bytes | TFLite Micro arena | flash | accuracy | agreement "
          "| why |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for row in (row for row in rows if row["status"] == "ok"):
        ok, why = fits(row, device)
        arena = "—" if row["micro_arena_bytes"] is None else f"{row['micro_arena_bytes']:,}"
        agreement = "—" if row["micro_agreement"] is None else f"{row['micro_agreement']:.1%}"
        print(f"| {row['label']} | {row['seed']} | {'yes' if ok else 'no'} | {row['arena_bytes']:,} | "
              f"{arena} | {row['micro_flash_bytes']:,} | {row['accuracy']:.4f} | {agreement} | {why} |")


if __name__ == "__main__":
    main()
