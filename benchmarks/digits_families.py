"""The numbers docs/benchmarks.md records per family: digits (or --dataset NAME), seed 0.

Run: .venv/bin/python benchmarks/digits_families.py [--dataset synthetic] 'quantize-*' [more specs...]
Prints a Markdown table (size, gzip, latency with interval, speed-up, accuracy).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from compress.analysis.configurations import compared, speed_verdict
from compress.api import compare
from compress.results.rows import environment


def main(specs: list[str], dataset: str = "digits") -> None:
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; {dataset}; specs: {' '.join(specs)}")
    with tempfile.TemporaryDirectory() as tmp:
        frame = compare(dataset, specs, seed=0, out=Path(tmp) / "run")
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
              f"{speed_verdict(r['speedup'], r['speedup_ci_low'], r['speedup_ci_high'])} | "
              f"{r['accuracy']:.3f} | {item.delta_pp:+.1f} | "
              f"{r['train_seconds']:.1f} |")
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['strategy']}: {row['status']}: {row['reason']}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = "digits"
    if arguments[:1] == ["--dataset"]:
        chosen, arguments = arguments[1], arguments[2:]
    main(arguments or ["quantize-*"], chosen)
