"""Result rows: the schema, environment capture and atomic JSONL/CSV files.

The report reads only these files, so every number a report shows can be
rebuilt offline, without TensorFlow, from what a run saved.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from compress.errors import UserError
from compress.fileio import write_atomic

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
CSV_FILE = "results.csv"

#: Every field of a row, in the order the CSV uses.
FIELDS = (
    "schema_version", "run_id", "strategy", "spec", "family", "control", "status", "reason",
    "notes", "params", "dataset", "scenario", "preprocessing", "class_names", "seed", "teacher_architecture",
    "teacher_cached",
    "teacher_train_accuracy", "teacher_val_accuracy", "teacher_train_seconds",
    "artifact", "size_bytes", "size_gzip_bytes", "params_count", "nonzero_params", "sparsity",
    "pruned_sparsity", "kernel_unique_max", "macs", "arithmetic", "unaccounted_ops",
    "latency_us_p50", "latency_us_p50_ci_low",
    "latency_us_p50_ci_high", "latency_us_p95", "latency_us_p99", "latency_us_iqr",
    "latency_warning", "speedup", "speedup_ci_low", "speedup_ci_high", "throughput_sps",
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1_macro", "fidelity", "mcnemar_p",
    "test_correct",
    "train_seconds", "env",
)

_PACKAGES = (
    "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy",
    "scikit-learn", "compress",
)


def new_row(**values: Any) -> dict[str, Any]:
    """A row with every field present (None where unknown) and the schema version set."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise KeyError(f"not result fields: {sorted(unknown)}")
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    row["schema_version"] = SCHEMA_VERSION
    row.update(values)
    return row


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(*, threads: int, train_threads: int | None = None) -> dict[str, Any]:
    """Machine, thread counts and library versions, recorded with every row."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "inference_threads": threads,
        "train_threads": train_threads or os.cpu_count(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The same rows flat: nested fields (params, env) as JSON text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            key: json.dumps(value) if isinstance(value, (dict, list)) else value
            for key, value in row.items()
        })
    return buffer.getvalue()


def write_results(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Write results.jsonl and results.csv, each atomically."""
    write_atomic(folder / RESULTS_FILE, to_jsonl(rows))
    write_atomic(folder / CSV_FILE, to_csv(rows))


def read_results(path: Path | str) -> list[dict[str, Any]]:
    """Rows from a results.jsonl (or a run folder holding one), schema checked."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"no results file at {path}; pass a results.jsonl written by 'compress run'")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{number} is not valid JSON; the file is damaged") from None
        version = row.get("schema_version") if isinstance(row, dict) else None
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{path}:{number} has schema_version {version!r}, this compress reads "
                f"{SCHEMA_VERSION}; re-run or use a matching compress version"
            )
        rows.append(new_row(**{k: v for k, v in row.items() if k in FIELDS}))
    if not rows:
        raise UserError(f"{path} holds no result rows")
    return rows
