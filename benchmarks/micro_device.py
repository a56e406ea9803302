"""Every default strategy on digits for a 256 KiB / 1 MiB board (issue 43): which rows fit, the
arena TFLite Micro needs against LiteRT's `arena_bytes`, and how often the two runtimes agree.

    python benchmarks/micro_device.py [--device nrf52840] [--seeds 3]

Prints a Markdown table for docs/benchmarks.md; the run folder stays in reports/bench-micro.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import compress
from compress.analysis.devices import fits, parse_device
from compress.results.rows import environment, read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="nrf52840")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/bench-micro"))
    args = parser.parse_args()
    device = parse_device(args.device)
    machine = environment(threads=1)
    start = time.perf_counter()
    frame = compress.compare("digits", seed=list(range(args.seeds)), device=args.device, out=args.out,
                             overwrite=args.out.exists())
    rows = read_results(frame.attrs["run_dir"])
    seconds = time.perf_counter() - start
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; {seconds / 60:.1f} min; "
          f"device {device.describe()}")
    print("| row | seed | fits | LiteRT arena_bytes | TFLite Micro arena | flash | agreement | why |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for row in (row for row in rows if row["status"] == "ok"):
        ok, why = fits(row, device)
        arena = "—" if row["micro_arena_bytes"] is None else f"{row['micro_arena_bytes']:,}"
        agreement = "—" if row["micro_agreement"] is None else f"{row['micro_agreement']:.1%}"
        print(f"| {row['label']} | {row['seed']} | {'yes' if ok else 'no'} | {row['arena_bytes']:,} | "
              f"{arena} | {row['micro_flash_bytes']:,} | {agreement} | {why} |")


if __name__ == "__main__":
    main()
