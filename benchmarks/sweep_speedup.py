"""Local sweep speed-up: a 12-job sweep with --jobs 1 against --jobs 2.

Run: .venv/bin/python benchmarks/sweep_speedup.py
The teacher cache is warmed first. Prints the whole sweep's wall time and the parallel job
phase alone: preparing jobs and the serial latency phase do not parallelize by design.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from compress.orchestrate.executors import LocalExecutor
from compress.orchestrate.sweep import load_sweep, sweep
from compress.results.rows import environment

CONFIG = """
dataset = "digits"
seeds = [0, 1]
[[grid]]
strategy = "prune-magnitude"
sparsity = [0.5, 0.8, 0.9]
[[grid]]
strategy = "cluster"
clusters = [8, 16]
"""


def main() -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.toml"
        path.write_text(CONFIG)
        config = load_sweep(path)
        sweep(config, Path(tmp) / "warm", LocalExecutor(2))  # trains and caches the teachers
        results = {}
        for jobs in (1, 2):
            start = time.perf_counter()
            result = sweep(config, Path(tmp) / f"jobs{jobs}", LocalExecutor(jobs))
            results[jobs] = (time.perf_counter() - start, result.seconds["rows"], len(result.rows))
    for jobs, (total, phase, count) in results.items():
        print(f"| --jobs {jobs} | {count} rows | {total:.1f} s | {phase:.1f} s |")
    print(f"speed-up: whole sweep {results[1][0] / results[2][0]:.2f}x, "
          f"row phase {results[1][1] / results[2][1]:.2f}x")


if __name__ == "__main__":
    main()
