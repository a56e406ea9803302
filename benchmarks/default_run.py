"""Wall time of the README's main job, `compress run` with defaults, cold and warm cache.

Run: .venv/bin/python benchmarks/default_run.py   (prints a Markdown table row per run)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compress.results import environment


def timed_run(cache: Path, out: Path) -> float:
    env = {**os.environ, "COMPRESS_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run([Path(sys.executable).parent / "compress", "run", "--out", str(out)],
                   check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for label in ("cold cache (teacher trained)", "warm cache (teacher reused)"):
            out = Path(tmp) / "run"
            seconds = timed_run(cache, out)
            print(f"| {label} | {seconds:.1f} s |")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
