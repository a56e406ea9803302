"""Choose the default distillation recipe by experiment, with same-budget scratch controls.

Run: .venv/bin/python benchmarks/distill_recipe.py [--seeds 3] [--specs SPEC ...]
     [--data FILE --target COLUMN]   (a user's data: the regularized setting only)
     [--problems digits conv1d keras3 table]   (issue 31's four problems, benchmarks/distill_budget.py)
For synthetic (MLP teacher, Dense-32 student) and digits (CNN teacher, narrow CNN student):
  - the document's setting: plain 20-epoch teacher; T=2, alpha=0.5, 20 epochs, batch 32;
  - a regularized teacher (dropout, noise or shifts, early stopping) with 300-epoch students:
    the default (function matching: T=1, alpha=0 on mixup blends), Hinton's mix with the
    teacher's logits computed once (T in {2, 4}, alpha in {0.1, 0.5}), and T=2 variants.
Each distill row is compared with student-scratch and student-scratch-mixup trained with
the same student, budget, batches and seed. Prints one Markdown table per setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from compress.analysis.configurations import Pairing, configurations, pairings
from compress.models.teacher import DEFAULT_RECIPE, DOCUMENT_RECIPE
from compress.orchestrate.config import RunConfig
from compress.orchestrate.presets import DOCUMENT_DISTILL
from compress.orchestrate.run import run

GRID = [
    "distill",
    "distill:temperature=4,alpha=0.5,transfer=none",
    "distill:temperature=4,alpha=0.1,transfer=none",
    "distill:temperature=2,alpha=0.5,transfer=none",
    "distill:temperature=2,alpha=0.0",
]
SETTINGS = [
    ("document setting, plain teacher", DOCUMENT_RECIPE, [DOCUMENT_DISTILL]),
    ("regularized teacher, 300 epochs", DEFAULT_RECIPE, GRID),
]


def closure(pairing: Pairing) -> str:
    value, why = pairing.gap_closure()
    return why or f"{value:+.0%}"


def summarize(title: str, rows: list[dict]) -> None:
    configs = configurations(rows)
    teacher = next(c for c in configs if c.role == "baseline").values("accuracy")
    links = pairings(configs)
    controls: dict[str, list[float]] = {}
    for pairing in links:  # the first technique's controls (the others differ only in T, alpha)
        controls.setdefault(pairing.control.row["strategy"], pairing.control.values("accuracy"))
    print(f"\n### {title}\n")
    print("; ".join([f"teacher {fmt(teacher)}", *(f"{name} {fmt(v)}" for name, v in controls.items())])
          + "\n")
    print("| distill spec | accuracy | gap closed vs scratch (pooled) | wins | vs scratch+mixup | wins | "
          "s/run |")
    print("|---|---|---|---|---|---|---|")
    for technique in (c for c in configs if c.role == "technique"):
        mine = {p.control.row["strategy"]: p for p in links if p.technique is technique}
        cells = []
        for control in ("student-scratch", "student-scratch-mixup"):
            pairing = mine[control]
            won, of = pairing.wins
            cells.append(f"{closure(pairing)} | {won}/{of}")
        short = technique.label.replace("distill:", "").replace("distill", "defaults")
        print(f"| {short} | {fmt(technique.values('accuracy'))} | {' | '.join(cells)} | "
              f"{technique.mean('train_seconds'):.1f} |")


def fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", type=Path, help="a .csv/.parquet/.npz or image folder instead of "
                        "the built-in problems (the regularized setting only)")
    parser.add_argument("--target", help="--data's label column")
    parser.add_argument("--specs", nargs="+", default=GRID)
    parser.add_argument("--problems", nargs="+", help="issue 31's problems instead of the built-in "
                        "settings: digits, conv1d, keras3, table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.problems:
            from compress.api import compare
            from compress.results.rows import read_results

            sys.path.insert(0, str(Path(__file__).resolve().parent))  # distill_budget's problems
            from distill_budget import problem

            for name in args.problems:
                folder = Path(tmp) / name
                folder.mkdir()
                frame = compare(strategies=args.specs, seed=list(range(args.seeds)), out=folder / "run",
                                jobs=os.cpu_count() or 1, **problem(name, folder))
                summarize(name, read_results(frame.attrs["run_dir"]))
            return
        if args.data is not None:
            result = run(RunConfig(dataset=None, data=args.data, target=args.target,
                                   strategies=args.specs, seeds=range(args.seeds), out=Path(tmp) / "run",
                                   jobs=os.cpu_count() or 1))
            summarize(f"{args.data.name}: regularized teacher", result.rows)
            return
        for dataset in ("synthetic", "digits"):
            for title, recipe, specs in SETTINGS:
                out = Path(tmp) / f"{dataset}-{len(specs)}"
                result = run(RunConfig(dataset=dataset, strategies=specs if recipe is DOCUMENT_RECIPE
                                       else args.specs, seeds=range(args.seeds),
                                       teacher_recipe=recipe, out=out, jobs=os.cpu_count() or 1))
                summarize(f"{dataset}: {title}", result.rows)


if __name__ == "__main__":
    main()
