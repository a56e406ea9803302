"""Wall time of the README's main job, `compress run` with defaults: cold and warm cache, and
one worker against one per core, with the rows compared, and where the time goes: until the
last row is trained, the timing, and the report and exit (from the progress lines' clock).

Run: .venv/bin/python benchmarks/default_run.py [--repeats 3]   (prints Markdown table rows)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compress.results.rows import environment

#: What a row holds that depends on the clock, the folder or the page cache, not on the model
#: (peak RSS varies by a few pages from process to process; model_rss_bytes does not).
VOLATILE = ("latency", "throughput", "speedup", "seconds", "run_id", "artifact", "env",
            "peak_rss")


#: A progress line: seconds since the command started, then what happened.
PROGRESS = re.compile(r"^\[\s*([\d.]+)s\] \d+/\d+ seed \d+: (.*)$")


def timed_run(cache: Path, out: Path, jobs: int) -> tuple[float, dict[str, float]]:
    """The run's wall time, and its phases: seconds until the last row was trained, then timing
    every model, then the report and the process's exit."""
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(cache), "COMPRESS_JOBS": str(jobs)}
    start = time.perf_counter()
    done = subprocess.run([Path(sys.executable).parent / "compress", "run", "--out", str(out)],
                          check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    stamps = [(float(m[1]), m[2]) for line in (done.stdout + done.stderr).splitlines()
              if (m := PROGRESS.match(line.strip()))]
    trained = max(t for t, what in stamps if " ok (" in what or what.endswith(("failed", "skipped")))
    timed = max(t for t, what in stamps if what.startswith("every model timed"))
    return wall, {"rows": trained, "timing": timed - trained, "report and exit": wall - timed}


def model_fields(out: Path) -> list[dict[str, object]]:
    """Every row without its timing fields: what must not change with the worker count."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not any(word in k for word in VOLATILE)} for row in rows]


def main(repeats: int) -> None:
    machine = environment(threads=1)
    cores = os.cpu_count() or 1
    print(f"machine: {machine['cpu']}, {cores} cores, Python {machine['python']}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        print(f"| cold cache (teacher trained), {cores} workers | "
              f"{timed_run(cache, Path(tmp) / 'cold', cores)[0]:.1f} s |")
        seconds: dict[int, list[float]] = {1: [], cores: []}
        phases: dict[int, list[dict[str, float]]] = {1: [], cores: []}
        fields: dict[int, list[dict[str, object]]] = {}
        for repeat in range(repeats):
            for jobs in (1, cores):  # alternated, so drift hits both alike
                out = Path(tmp) / f"warm-{jobs}-{repeat}"
                wall, phase = timed_run(cache, out, jobs)
                seconds[jobs].append(wall)
                phases[jobs].append(phase)
                fields[jobs] = model_fields(out)
                shutil.rmtree(out)
        for jobs, values in seconds.items():
            spent = " | ".join(f"{statistics.median(p[name] for p in phases[jobs]):.1f} s"
                               for name in phases[jobs][0])
            print(f"| warm cache, {jobs} worker{'s' if jobs > 1 else ''} | median "
                  f"{statistics.median(values):.1f} s of {', '.join(f'{v:.1f}' for v in values)} "
                  f"| {spent} |")
        print(f"(phases: {', '.join(phases[cores][0])}; medians)")
        speedup = statistics.median(seconds[1]) / statistics.median(seconds[cores])
        print(f"speed-up {speedup:.2f}x; rows identical apart from timing: {fields[1] == fields[cores]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
