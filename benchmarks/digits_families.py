"""The numbers docs/benchmarks.md records per family: digits, CNN teacher, seed 0.

Run: .venv/bin/python benchmarks/digits_families.py 'quantize-*' [more specs...]
Prints a Markdown table (size, gzip, latency with interval, speed-up, accuracy).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from compress.analysis import compared, speed_verdict
from compress.api import compare
from compress.results import environment


def main(specs: list[str]) -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; specs: {' '.join(specs)}")
    with tempfile.TemporaryDirectory() as tmp:
        frame = compare("digits", specs, seed=0, out=Path(tmp) / "run")
    rows = frame.to_dict("records")
    print("| strategy | size KB | % of teacher | gzip KB | p50 µs [95% CI] | speed-up [95% CI] | "
          "accuracy | Δ pp | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for item in compared(rows):
        r = item.row
        print(f"| {r['strategy']} | {r['size_bytes'] / 1024:.1f} | {100 / item.size_factor:.0f}% | "
              f"{r['size_gzip_bytes'] / 1024:.1f} | {r['latency_us_p50']:.2f} "
              f"[{r['latency_us_p50_ci_low']:.2f}, {r['latency_us_p50_ci_high']:.2f}] | "
              f"{r['speedup']:.2f}× [{r['speedup_ci_low']:.2f}, {r['speedup_ci_high']:.2f}] "
              f"{speed_verdict(r)} | {r['accuracy']:.3f} | {item.delta_pp:+.1f} | "
              f"{r['train_seconds']:.1f} |")
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['strategy']}: {row['status']}: {row['reason']}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["quantize-*"])
