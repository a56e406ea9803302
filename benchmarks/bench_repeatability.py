"""Repeatability: three separate `compress bench` processes on the digits teacher.

Run: .venv/bin/python benchmarks/bench_repeatability.py
Prints each process's p50 with its interval and the largest deviation from their mean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from compress.results import environment

COMPRESS = str(Path(sys.executable).parent / "compress")


def main() -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits"
        subprocess.run([COMPRESS, "run", "--dataset", "digits", "--strategy", "baseline",
                        "--out", str(out)], check=True, capture_output=True)
        medians = []
        for attempt in range(1, 4):
            done = subprocess.run([COMPRESS, "bench", str(out / "baseline.tflite"), "--data", "digits",
                                   "--json"], check=True, capture_output=True, text=True)
            (row,) = json.loads(done.stdout)
            medians.append(row["latency_us_p50"])
            print(f"| {attempt} | {row['latency_us_p50']:.2f} | [{row['latency_us_p50_ci_low']:.2f}, "
                  f"{row['latency_us_p50_ci_high']:.2f}] | {row['latency_us_p99']:.2f} |")
        mean = sum(medians) / len(medians)
        spread = max(abs(m - mean) / mean for m in medians)
        print(f"largest deviation from the mean of the three medians: {spread:.1%}")


if __name__ == "__main__":
    main()
