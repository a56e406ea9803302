"""Does `compress tune` give the same answer every time?  The README's command, run several times
into fresh folders, then once more with --trials at the first run's count and another --jobs (3).

Run: .venv/bin/python benchmarks/tune_repeat.py [--runs 3] [--minutes 15]   (runs × minutes)

Each run's choice, × smaller (gzip) than the teacher's float TFLite, speed-up, test Δ pp over
3 seeds, trials and stop reason are printed as a Markdown table for docs/benchmarks.md.  The
last line says whether the --trials replay chose the same configuration as the first run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compress.results.rows import TUNE_FILE, environment

COMPRESS = str(Path(sys.executable).with_name("compress"))
COMMAND = ["tune", "--dataset", "digits", "--max-accuracy-drop", "1", "--objective", "size", "--seeds", "3"]


def tune(out: Path, *extra: str) -> dict:
    started = time.monotonic()
    done = subprocess.run([COMPRESS, *COMMAND, *extra, "--out", str(out)], capture_output=True, text=True)
    summary = json.loads((out / TUNE_FILE).read_text()) if (out / TUNE_FILE).exists() else {}
    summary["minutes"] = (time.monotonic() - started) / 60
    summary["exit"] = done.returncode
    return summary


def row(name: str, summary: dict) -> str:
    test = summary.get("test") or {}
    search = summary.get("search") or {}
    trials = len(summary.get("trials") or [])
    return (f"| {name} | `{summary.get('chosen_spec')}` | {test.get('times_smaller_gzip') or 0:.1f}× | "
            f"{test.get('speedup') or 0:.2f}× | {-(test.get('drop_pp') or 0):+.2f} | {trials} | "
            f"{search.get('stopped')} | {summary['minutes']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep the runs' tune folders in (default: a temporary one)")
    args = parser.parse_args()
    env = environment(threads=1)
    print(f"{env['cpu']}, {env['cores']} cores; {env['versions']}", flush=True)
    print("| run | chosen | × smaller (gzip) | speed-up | test Δ pp (3 seeds) | trials | stopped | min |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        runs = [tune(Path(tmp) / f"run{i}", "--time-budget", f"{args.minutes:g}") for i in range(args.runs)]
        for i, summary in enumerate(runs):
            print(row(f"{i + 1}", summary), flush=True)
        count = len(runs[0].get("trials") or [])
        # Another worker count, and time to spare: the trial count alone must end the search.
        replay = tune(Path(tmp) / "replay", "--trials", str(count), "--jobs", "3",
                      "--time-budget", f"{3 * args.minutes:g}")
        print(row(f"--trials {count} --jobs 3", replay))
    same = replay.get("chosen_spec") == runs[0].get("chosen_spec")
    factors = [s["test"]["times_smaller_gzip"] for s in runs if s.get("test")]
    spread = (max(factors) / min(factors) - 1) if factors else float("nan")
    print(f"\nreplay chose {'the same' if same else 'a different'} configuration; × smaller spread "
          f"{spread:.0%} across runs")


if __name__ == "__main__":
    main()
