"""Repeatability: three separate `compress bench` processes on the digits teacher, on a quiet
machine and while a CPU-bound process runs on every core.

Run: .venv/bin/python benchmarks/bench_repeatability.py
Prints each process's p50 with its interval, its CPU time per call and steady rounds, and the
largest deviation of a median from the mean of the three, per condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from compress.results.rows import environment

COMPRESS = str(Path(sys.executable).parent / "compress")
BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def every_core_busy() -> Iterator[None]:
    """One CPU-bound process per core for the duration."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def three_benches(model: Path) -> None:
    medians = []
    for attempt in range(1, 4):
        done = subprocess.run([COMPRESS, "bench", str(model), "--data", "digits", "--json"],
                              check=True, capture_output=True, text=True)
        (row,) = json.loads(done.stdout)
        medians.append(row["latency_us_p50"])
        print(f"| {attempt} | {row['latency_us_p50']:.2f} | [{row['latency_us_p50_ci_low']:.2f}, "
              f"{row['latency_us_p50_ci_high']:.2f}] | {row['latency_cpu_us']:.2f} | "
              f"{row['latency_steady_rounds']} of {row['latency_rounds']} | "
              f"{row['latency_disturbed_rounds']} | {row['latency_warning'] or '—'} |")
    mean = sum(medians) / len(medians)
    spread = max(abs(m - mean) / mean for m in medians)
    print(f"largest deviation from the mean of the three medians: {spread:.1%}")


def main() -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits"
        subprocess.run([COMPRESS, "run", "--dataset", "digits", "--strategy", "baseline",
                        "--out", str(out)], check=True, capture_output=True)
        print("| process | p50 µs | 95% CI | CPU µs/call | steady rounds | waited for a core | warning |")
        print("quiet:")
        three_benches(out / "baseline.tflite")
        print(f"a CPU-bound process on each of {os.cpu_count()} cores:")
        with every_core_busy():
            three_benches(out / "baseline.tflite")


if __name__ == "__main__":
    main()
