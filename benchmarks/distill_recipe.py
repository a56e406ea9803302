"""Choose the default distillation recipe by experiment, with same-budget scratch controls.

Run: .venv/bin/python benchmarks/distill_recipe.py [--seeds 3]
For synthetic (MLP teacher, Dense-32 student) and digits (CNN teacher, narrow CNN student):
  - the document's setting: plain 20-epoch teacher; T=2, alpha=0.5, 20 epochs, batch 32;
  - a regularized teacher (dropout, noise or shifts, early stopping) with 300-epoch students:
    T in {2, 4}, alpha in {0.1, 0.5}, transfer in {none, augment}.
Each distill row is compared with student-scratch and student-scratch-mixup trained with
the same student, budget, batches and seed. Prints one Markdown table per setting.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from compress.analysis import compared, gap_closures, mean_std
from compress.presets import DOCUMENT_DISTILL
from compress.runner import RunConfig, run
from compress.teacher import DEFAULT_RECIPE, DOCUMENT_RECIPE

GRID = [
    "distill:temperature=4,alpha=0.1",
    "distill:temperature=4,alpha=0.5",
    "distill:temperature=2,alpha=0.1",
    "distill:temperature=2,alpha=0.5",
    "distill:temperature=4,alpha=0.1,transfer=augment",
]
SETTINGS = [
    ("document setting, plain teacher", DOCUMENT_RECIPE, [DOCUMENT_DISTILL]),
    ("regularized teacher, 300 epochs", DEFAULT_RECIPE, GRID),
]


def summarize(title: str, rows: list[dict]) -> None:
    items = compared(rows)
    accuracy = {name: mean_std([i.row["accuracy"] for i in items if i.name == name])
                for name in ("baseline", "student-scratch", "student-scratch-mixup")}
    print(f"\n### {title}\n")
    print("teacher {0[0]:.3f} ± {0[1]:.3f}; scratch {1[0]:.3f} ± {1[1]:.3f}; scratch+mixup "
          "{2[0]:.3f} ± {2[1]:.3f}\n".format(*accuracy.values()))
    print("| distill spec | accuracy | gap closed vs scratch | wins | vs scratch+mixup | wins | s/run |")
    print("|---|---|---|---|---|---|---|")
    scratch, mixup = gap_closures(items, "student-scratch"), gap_closures(items, "student-scratch-mixup")
    for spec, pairs in scratch.items():
        acc = mean_std([p.distilled.row["accuracy"] for p in pairs])
        cells = []
        for group in (pairs, mixup.get(spec, [])):
            closures = [p.closure for p in group if p.closure is not None]
            mean = mean_std(closures) if closures else (float("nan"), 0.0)
            cells.append(f"{mean[0]:+.0%} ± {mean[1]:.0%} | {sum(p.gain_pp > 0 for p in group)}/{len(group)}")
        seconds = mean_std([p.distilled.row["train_seconds"] for p in pairs])[0]
        short = spec.replace("distill:", "")
        print(f"| {short} | {acc[0]:.3f} ± {acc[1]:.3f} | {cells[0]} | {cells[1]} | {seconds:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in ("synthetic", "digits"):
            for title, recipe, specs in SETTINGS:
                out = Path(tmp) / f"{dataset}-{len(specs)}"
                result = run(RunConfig(dataset=dataset, strategies=specs, seeds=range(args.seeds),
                                       teacher_recipe=recipe, out=out))
                summarize(f"{dataset}: {title}", result.rows)


if __name__ == "__main__":
    main()
