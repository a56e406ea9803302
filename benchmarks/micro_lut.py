"""Flash a microcontroller stores: look-up-table compression against int8 (issue 43).

    python benchmarks/micro_lut.py [--seeds 3] [--device nrf52840]

Digits, the default CNN teacher: `quantize-int8`, `cluster>lut` (16 learnt values per kernel,
4-bit indices), `lut` (palettized after training) and `lut:bits=2`, each scored in TFLite Micro.
Prints a Markdown table for docs/benchmarks.md: flash, TFLite Micro arena, accuracy there
against the teacher's, and whether the row fits the device; the run folder stays in
reports/bench-lut.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import compress
from compress.analysis.devices import fits, parse_device
from compress.results.rows import environment, read_results

STRATEGIES = ("quantize-int8", "cluster>lut", "lut", "lut:bits=2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="nrf52840")
    parser.add_argument("--out", type=Path, default=Path("reports/bench-lut"))
    args = parser.parse_args()
    device = parse_device(args.device)
    machine = environment(threads=1)
    start = time.perf_counter()
    compress.compare("digits", list(STRATEGIES), seed=list(range(args.seeds)), device=args.device,
                     out=args.out, overwrite=args.out.exists())
    rows = [row for row in read_results(args.out) if row["status"] == "ok"]
    print(f"{machine['cpu']}, {machine['cores']} cores; {(time.perf_counter() - start) / 60:.1f} min; "
          f"device {device.describe()}\n")
    print("| row | seed | flash bytes | TFLite Micro arena | accuracy (TFLite Micro) | Δ pp vs teacher "
          "| fits |")
    print("|---|---:|---:|---:|---:|---:|---|")
    teachers = {row["seed"]: row for row in rows if row["role"] == "baseline"}
    for row in rows:
        teacher = teachers[row["seed"]]
        print(f"| {row['label']} | {row['seed']} | {row['micro_flash_bytes']:,} | "
              f"{row['micro_arena_bytes']:,} | {row['micro_accuracy']:.4f} | "
              f"{100 * (row['micro_accuracy'] - teacher['micro_accuracy']):+.2f} | "
              f"{'yes' if fits(row, device)[0] else 'no'} |")


if __name__ == "__main__":
    main()
