"""Compress a model for your own CSV: string labels, categorical columns, missing cells.

Run: .venv/bin/python examples/csv_workflow.py
It writes examples/out/customers.csv, then runs the same comparison twice:
  compress run --data examples/out/customers.csv --target plan --missing impute
and from Python with compress.compare-style RunConfig; then, as a deployment would, scores the
int8 model on raw CSV rows, encoded the way the run fitted them (compress.encode_rows).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from compress import RunConfig, TFLiteModel
from compress.api import encode_rows, execute

OUT = Path(__file__).parent / "out"


def make_csv(path: Path, rows: int = 600, seed: int = 0) -> None:
    """A small churn-like table whose label depends on numbers and categories."""
    rng = np.random.default_rng(seed)
    usage = rng.gamma(2.0, 10.0, rows)
    tenure = rng.integers(1, 60, rows).astype(float)
    region = rng.choice(["north", "south", "east", "west"], rows)
    device = rng.choice(["ios", "android", "web"], rows)
    score = usage / 20 + (region == "north") * 1.0 - (device == "web") * 0.8 + rng.normal(0, 0.5, rows)
    plan = np.select([score < 0.8, score < 1.8], ["basic", "plus"], "premium")
    frame = pd.DataFrame({"usage": usage, "tenure": tenure, "region": region, "device": device,
                          "plan": plan})
    frame.loc[rng.choice(rows, 15, replace=False), "usage"] = np.nan  # some missing cells
    frame.loc[rng.choice(rows, 10, replace=False), "region"] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def main() -> None:
    csv = OUT / "customers.csv"
    make_csv(csv)
    compress = str(Path(sys.executable).parent / "compress")
    subprocess.run([compress, "run", "--data", str(csv), "--target", "plan", "--missing", "impute",
                    "--strategy", "quantize-int8", "--strategy", "distill", "--out",
                    str(OUT / "csv-cli"), "--overwrite"], check=True)
    result = execute(RunConfig(data=csv, target="plan", missing="impute",
                               strategies=["quantize-int8", "prune-structured"],
                               out=OUT / "csv-python", overwrite=True))
    for row in result.rows:
        print(f"{row['strategy']:<24} {row['status']:<8} accuracy {row['accuracy'] or 0:.3f}")
    print(f"report: {result.out / 'report.md'}")

    # Deployment: the models take the encoded inputs, never raw units.  Raw rows, encoded by the
    # run's fitted encoding, get the same predictions the run scored.
    raw = pd.read_csv(csv)
    int8 = next(row for row in result.rows if row["strategy"] == "quantize-int8")
    model = TFLiteModel((result.out / int8["artifact"]).read_bytes())
    predicted = model.predict(encode_rows(result.out, raw))
    classes = int8["class_names"]
    agree = np.mean([classes[i] for i in predicted.argmax(axis=1)] == raw["plan"].to_numpy())
    print(f"quantize-int8 on every raw CSV row, encoded as the run fitted it: accuracy {agree:.3f}")


if __name__ == "__main__":
    main()
