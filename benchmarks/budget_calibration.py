"""Do `max_drop` answers land within their budget on the test split, and what do they give up?

Run: .venv/bin/python benchmarks/budget_calibration.py [--seeds 3] [--budget 1]
     [--only digits conv1d keras3 table mobilenet32]

The problems of benchmarks/distill_budget.py, as a user brings them, over seeds 0..n-1.
Each problem is one run of every budget answerer (`quantize-mixed`, `prune-structured`,
`distill`, each with `max_drop=B`), certified on the evidence rows the run sets aside, beside the
fixed configurations an oracle looks at: int8 and int4 weights everywhere; structured pruning of
30, 50, 70 and 90% on its default schedule; and every student of distill's ladder narrower than
the one it kept (all of them where it skipped), trained in full by name with distill's defaults
on the same data and teacher.  The oracle, which looks at the test split, is the most compressed
of the answer and its family's fixed configurations within B there; compression is the gzip
size against the teacher's.

Prints one Markdown row per problem, seed and answerer, then the three figures issue 42 asks of
them: the share of answers within B on the test split, the share of budgets answered, and the
median over asked budgets of the answer's compression over the oracle's (a skip counts 0).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

QUANTIZE_GRID = ("quantize-int8", "quantize-int4")
PRUNE_GRID = tuple(f"prune-structured:fraction={f}" for f in (0.3, 0.5, 0.7, 0.9))


def answerers(budget: float) -> dict[str, tuple[str, ...]]:
    """Each budget answerer's spec and the fixed configurations of its family the oracle sees."""
    return {f"quantize-mixed:max_drop={budget:g}": QUANTIZE_GRID,
            f"prune-structured:max_drop={budget:g}": PRUNE_GRID,
            f"distill:max_drop={budget:g}": ()}


def ladder_students(config, rows: list[dict], seed: int, folder: Path) -> list[dict]:
    """distill's ladder students narrower than the one its row kept (every one when it skipped),
    each trained in full by name on the run's data and teacher, scored on the test split."""
    from compress.measure.size import size_stats
    from compress.models.flatbuffer import TFLiteModel
    from compress.orchestrate.teachers import load_source, teacher_for
    from compress.strategies.apply import apply_strategy
    from compress.strategies.distillation import Distill

    answer = next(r for r in rows if r["seed"] == seed and str(r["spec"]).startswith("distill:")
                  and r["role"] == "technique" and "max_drop=null" not in r["spec"])
    text = answer.get("notes") or answer.get("reason") or ""
    rungs = re.findall(r"(\S+) \(([\d,]+)\) [-+]", text)  # "SPEC (PARAMS) -1.2±0.3 pp after ..."
    kept = re.search(r"kept (\S+), the smallest", text)
    limit = next((int(p.replace(",", "")) for s, p in rungs if kept and s == kept.group(1)), None)
    source = load_source(config, seed)
    teacher = teacher_for(config, source, seed)
    made = []
    for spec, params in rungs:
        if limit is not None and int(params.replace(",", "")) >= limit:
            continue
        artifact = apply_strategy(Distill(student=spec), teacher.model, teacher.architecture,
                                  source.dataset.training.read_only(), seed=seed, workdir=folder)
        predicted = TFLiteModel(artifact.flatbuffer).predict(source.dataset.x_test).argmax(axis=1)
        made.append({"spec": f"distill:student={spec}", "seed": seed, "status": "ok",
                     "accuracy": float(np.mean(predicted == source.dataset.y_test)),
                     "size_gzip_bytes": len(gzip.compress(artifact.flatbuffer, 9)),
                     "params_count": size_stats(artifact.flatbuffer).params_count})
    return made


def score(rows: list[dict], answer_spec: str, grid: list[dict], seed: int,
          budget: float) -> dict:
    """One answer against the oracle on one seed: within the budget on test, its compression
    and the oracle's (gzip, against the teacher)."""
    teacher = next(r for r in rows if r["seed"] == seed and r["role"] == "baseline")
    answer = next(r for r in rows if r["seed"] == seed and r["spec"] == answer_spec)

    def drop(row: dict) -> float:
        return 100 * (teacher["accuracy"] - row["accuracy"])

    def factor(row: dict) -> float:
        return teacher["size_gzip_bytes"] / row["size_gzip_bytes"]

    candidates = [r for r in [answer, *grid] if r["status"] == "ok" and drop(r) <= budget + 1e-9]
    oracle = max((factor(r) for r in candidates), default=1.0)
    if answer["status"] != "ok":
        return {"answered": False, "reason": answer.get("reason") or "", "oracle": oracle, "ratio": 0.0,
                "seconds": answer.get("train_seconds") or 0.0}
    return {"answered": True, "drop": drop(answer), "within": drop(answer) <= budget + 1e-9,
            "factor": factor(answer), "oracle": oracle, "ratio": factor(answer) / oracle,
            "speedup": answer.get("speedup"), "seconds": answer.get("train_seconds") or 0.0}


def run_problem(name: str, seeds: list[int], budget: float, folder: Path) -> list[tuple]:
    from distill_budget import problem

    from compress.api import compare
    from compress.orchestrate.config import resolve_config
    from compress.results.rows import read_results
    from compress.strategies import strategies_from_spec

    options = problem(name, folder)
    specs = answerers(budget)
    strategies = [*specs, *(s for grid in specs.values() for s in grid)]
    out = folder / "run"
    compare(strategies=strategies, seed=seeds, out=out, jobs=2, micro=False, **options)
    rows = read_results(out)
    manifest = json.loads((out / "run.json").read_text())
    config = resolve_config(strategies=strategies, seeds=seeds, **options)
    results = []
    for seed in seeds:
        for spec, grid_specs in specs.items():
            full_specs = {s.spec() for g in grid_specs for s in strategies_from_spec(g)}
            grid = [r for r in rows if r["seed"] == seed and r["spec"] in full_specs]
            if spec.startswith("distill:"):
                grid = ladder_students(config, rows, seed, folder / f"students-{seed}")
            (full,) = strategies_from_spec(spec)
            results.append((name, seed, spec, manifest["dataset"].get("n_evidence"),
                            score(rows, full.spec(), grid, seed, budget)))
    return results


def main() -> None:
    from compress.results.rows import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--only", nargs="+", default=["digits", "conv1d", "keras3", "table"])
    args = parser.parse_args()
    machine = environment(threads=1)
    started = time.perf_counter()
    print(f"{machine['cpu']}, {machine['cores']} cores; max_drop={args.budget:g}; "
          f"seeds 0..{args.seeds - 1}\n")
    print("| problem | seed | answerer | evidence rows | answer | Δ pp on test | within | × smaller (gzip) "
          "| speed-up p50 | oracle × | of oracle | train s |")
    print("|---|---:|---|---:|---|---:|---|---:|---:|---:|---:|---:|")
    every = []
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            for problem_name, seed, spec, evidence, s in run_problem(name, list(range(args.seeds)),
                                                                      args.budget, Path(tmp)):
                every.append(s)
                answer = "ok" if s["answered"] else f"skipped: {s['reason'][:90]}…"
                print(f"| {problem_name} | {seed} | `{spec}` | {evidence} | {answer} | "
                      + (f"{-s['drop'] + 0.0:+.2f} | {'yes' if s['within'] else 'no'} | {s['factor']:.1f} | "
                         f"{s['speedup'] or 0:.2f}× | " if s["answered"] else "| | | | ")
                      + f"{s['oracle']:.1f} | {s['ratio']:.2f} | {s['seconds']:.0f} |", flush=True)
    answered = [s for s in every if s["answered"]]
    within = sum(s["within"] for s in answered)
    print(f"\nwithin the budget on test: {within} of {len(answered)} answers "
          f"({within / max(1, len(answered)):.0%}); answered: {len(answered)} of {len(every)} "
          f"({len(answered) / max(1, len(every)):.0%}); median compression of the oracle's: "
          f"{statistics.median(s['ratio'] for s in every):.2f}; "
          f"{(time.perf_counter() - started) / 60:.0f} min")


if __name__ == "__main__":
    main()
