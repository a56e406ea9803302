"""Result rows: the schema, environment capture and atomic JSONL/CSV files.

The report reads only these files, so every number a report shows can be
rebuilt offline, without TensorFlow, from what a run saved.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.models.backend import TRAINING_THREADS

SCHEMA_VERSION = 2
RESULTS_FILE = "results.jsonl"
CSV_FILE = "results.csv"
#: A run's settings, teachers and state beside its rows; a tune's search and choice.
RUN_MANIFEST = "run.json"
TUNE_FILE = "tune.json"
#: A row's ``reason`` is one line of at most this many characters (tracebacks go to errors.log).
REASON_LIMIT = 500

#: Every field of a row, in the order the CSV uses.
FIELDS = (
    "schema_version", "run_id", "strategy", "spec", "label", "family", "role", "control_of",
    "status", "reason",
    "notes", "params", "dataset", "scenario", "preprocessing", "class_names", "seed", "majority_rate",
    "teacher_architecture", "teacher_cached",
    "teacher_train_accuracy", "teacher_val_accuracy", "teacher_train_seconds",
    "artifact", "size_bytes", "size_gzip_bytes", "params_count", "nonzero_params", "sparsity",
    "pruned_sparsity", "kernel_unique_max", "macs", "arithmetic", "stored_as", "unaccounted_ops", "io_type",
    "arena_bytes", "peak_rss_bytes", "model_rss_bytes",
    "micro_runs", "micro_reason", "micro_arena_bytes", "micro_flash_bytes", "micro_accuracy",
    "micro_agreement",
    "latency_us_p50", "latency_us_p50_ci_low",
    "latency_us_p50_ci_high", "latency_us_p95", "latency_us_p99", "latency_us_iqr",
    "latency_warning", "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_rounds",
    "speedup_rounds_faster", "throughput_sps", "latency_cpu_us", "latency_cpu_us_ci_low",
    "latency_cpu_us_ci_high", "latency_disturbed_rounds", "latency_rounds", "latency_steady_rounds",
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1_macro", "fidelity", "mcnemar_p",
    "test_correct",
    "train_seconds", "training_cost", "budget_stopped", "env",
)

_PACKAGES = (
    "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy",
    "scikit-learn", "scipy", "compress",
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
    root = Path(__file__).resolve().parents[2]  # the checkout, when installed from one
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(*, threads: int) -> dict[str, Any]:
    """Machine, thread counts, the timing span and library versions, recorded with every row."""
    from compress.measure.latency import latency_span  # only callers that time models get here

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
        "train_threads": TRAINING_THREADS,
        "latency_span_seconds": latency_span(),
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


def read_runs(paths: Sequence[Path | str]) -> list[dict[str, Any]]:
    """The rows of several runs, to merge.  A seed of one configuration (same dataset, teacher and
    spec) counts once, or one model would count as two seeds and narrow every interval for
    nothing.  When two runs hold it with the same test predictions (a copied run; the teacher's
    row in two runs of other strategies on one seed) the first is kept, and the later run's rows
    of that seed join the first's (same test split, same baseline); with different predictions
    (two models for one seed) the merge is refused."""
    given = [Path(p) / RESULTS_FILE if Path(p).is_dir() else Path(p) for p in paths]
    repeated = next((p for i, p in enumerate(given) if p.resolve() in {q.resolve() for q in given[:i]}), None)
    if repeated is not None:
        raise UserError(f"{repeated} is given twice; give each run once")
    rows: list[dict[str, Any]] = []
    first: dict[tuple[str, ...], tuple[Path, dict[str, Any]]] = {}

    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row.get(k)) for k in ("dataset", "teacher_architecture", "spec", "seed"))

    def same_model(row: dict[str, Any], where: Path) -> bool:
        kept = first[key(row)][1]
        if kept.get("test_correct") == row.get("test_correct") and kept["status"] == row["status"]:
            return True
        raise UserError(f"seed {row['seed']} of {row['label']} is a different model in "
                        f"{first[key(row)][0]} and {where}; merge runs of different seeds, or re-run one")

    for path in given:
        batch = read_results(path)
        joins = {(row.get("run_id"), row.get("seed")): first[key(row)][1].get("run_id") for row in batch
                 if row.get("role") == "baseline" and key(row) in first and same_model(row, path)}
        for row in batch:
            row = {**row, "run_id": joins.get((row.get("run_id"), row.get("seed")), row.get("run_id"))}
            if key(row) not in first:
                first[key(row)] = (path, row)
                rows.append(row)
            else:
                same_model(row, path)
    return rows


def comparable_group(row: dict[str, Any]) -> tuple[str, str]:
    """(dataset, teacher): rows of one group can be averaged and ranked together."""
    return str(row.get("dataset")), str(row.get("teacher_architecture"))


def mixed(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The (dataset, teacher) groups among these rows, described, when there is more than one:
    their numbers cannot be averaged or ranked together."""
    kinds = sorted({comparable_group(r) for r in rows})
    return [f"{d} with teacher {t}" for d, t in kinds] if len(kinds) > 1 else []


def require_one_group(rows: Iterable[dict[str, Any]], remedy: str) -> None:
    """Refuse rows of several (dataset, teacher) groups, saying which and ``remedy``."""
    groups = mixed(rows)
    if groups:
        raise UserError(f"these runs differ in dataset or teacher ({'; '.join(groups)}); {remedy}")


def read_results(path: Path | str) -> list[dict[str, Any]]:
    """Rows from a results.jsonl (or a run folder holding one), schema and field types checked.

    Every field the report and the recommendation rely on is checked here, so a damaged or
    hand-edited file is one UserError naming the line, never a crash further on.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"no results file at {path}; pass a results.jsonl written by 'compress run'")
    if path.name == CSV_FILE:
        raise UserError(f"{path} is the spreadsheet copy; pass {path.with_name(RESULTS_FILE)} or the run "
                        "folder instead")
    if path.suffix.lower() != ".jsonl":
        raise UserError(f"{path} is not a results file; pass a run folder, or the {RESULTS_FILE} "
                        "'compress run' wrote in it")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; the file is damaged, re-run to write it again") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check its permissions") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise UserError(f"{where} is not valid JSON; the file is damaged") from None
        if not isinstance(row, dict):
            raise UserError(f"{where} is a JSON {_JSON_TYPES.get(type(row), 'value')}, not a result row "
                            "(an object); the file is damaged")
        version = row.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise UserError(
                f"{where} has schema_version {_shown(version)}, this compress reads "
                f"{SCHEMA_VERSION}; re-run or use a matching compress version"
            )
        row = new_row(**{k: v for k, v in row.items() if k in FIELDS})
        problem = _row_problem(row)
        if problem:
            raise UserError(f"{where}: {problem}; the file is damaged, re-run or fix that line")
        rows.append(row)
    if not rows:
        raise UserError(f"{path} holds no result rows; pass the results.jsonl of a run that finished a row")
    return rows


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}
STATUSES = ("ok", "skipped", "failed")
ROLES = ("baseline", "technique", "control")
_TEXT_FIELDS = ("run_id", "strategy", "spec", "label", "family", "control_of", "reason", "notes",
                "stored_as",
                "dataset", "scenario", "preprocessing", "teacher_architecture", "artifact", "arithmetic",
                "latency_warning", "test_correct", "budget_stopped", "micro_reason", "io_type")
_TEXT_LIST_FIELDS = ("class_names", "unaccounted_ops")
_OBJECT_FIELDS = ("params", "env")
_NUMBER_FIELDS = tuple(
    name for name in FIELDS
    if name not in {"schema_version", "status", "role", "seed", "teacher_cached", "micro_runs", *_TEXT_FIELDS,
                    *_TEXT_LIST_FIELDS, *_OBJECT_FIELDS}
)
#: A measurement and the interval that must come with it.
_WITH_INTERVAL = {"accuracy": ("accuracy_ci_low", "accuracy_ci_high"),
                  "latency_us_p50": ("latency_us_p50_ci_low", "latency_us_p50_ci_high"),
                  "speedup": ("speedup_ci_low", "speedup_ci_high")}
#: Counts of rounds (whole, part of it) that come together.
_ROUND_COUNTS = (("speedup_rounds", "speedup_rounds_faster"), ("latency_rounds", "latency_steady_rounds"))
#: No measurement comes near this; larger values are damage (and break the figures' axes).
_LARGEST = 1e18
#: What every finished row carries: the report compares and averages these.
_FINISHED = ("spec", "role", "size_bytes", "size_gzip_bytes", "accuracy")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what every numeric field holds, or null."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a row's fields, or None: types first, then what a finished row needs."""
    if row["status"] not in STATUSES:
        return f"status is {_shown(row['status'])}, not one of {', '.join(STATUSES)}"
    if row["role"] is not None and row["role"] not in ROLES:
        return f"role is {_shown(row['role'])}, not one of {', '.join(ROLES)}"
    seed = row["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"seed is {_shown(seed)}, not a non-negative integer"
    for name in _TEXT_FIELDS:
        if row[name] is not None and not isinstance(row[name], str):
            return f"{name} is {_shown(row[name])}, not a string or null"
    if row["spec"] is None or row["strategy"] is None:
        return "a row needs its strategy and spec"
    if row["test_correct"] is not None and set(row["test_correct"]) - {"0", "1"}:
        return "test_correct holds characters other than 0 and 1"
    for name in _TEXT_LIST_FIELDS:
        value = row[name]
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"{name} is {_shown(value)}, not a list of strings or null"
    for name in _OBJECT_FIELDS:
        if row[name] is not None and not isinstance(row[name], dict):
            return f"{name} is {_shown(row[name])}, not an object or null"
    env = row["env"] or {}
    if env.get("versions") is not None and not isinstance(env["versions"], dict):
        return f"env.versions is {_shown(env['versions'])}, not an object or null"
    if isinstance(env.get("cpu"), (list, dict)):
        return f"env.cpu is {_shown(env['cpu'])}, not a name"
    for name in ("teacher_cached", "micro_runs"):
        if row[name] is not None and not isinstance(row[name], bool):
            return f"{name} is {_shown(row[name])}, not true, false or null"
    for name in _NUMBER_FIELDS:
        value = row[name]
        if value is not None and not (_is_number(value) and 0 <= value <= _LARGEST):
            return f"{name} is {_shown(value)}, not a number from 0 to {_LARGEST:g} or null"
    for whole, part in _ROUND_COUNTS:
        for name in (whole, part):
            if row[name] is not None and row[name] != int(row[name]):
                return f"{name} is {_shown(row[name])}, not a whole number"
        if (row[whole] is None) != (row[part] is None) or (row[whole] is not None
                                                           and row[part] > row[whole]):
            return f"{part} must come with {whole} and be at most it"
    if row["status"] != "ok":
        return None
    missing = [name for name in _FINISHED if row[name] is None]
    if missing:
        return f"a finished (ok) row has no {', '.join(missing)}"
    for name in ("size_bytes", "size_gzip_bytes"):
        if row[name] <= 0:
            return f"{name} is {_shown(row[name])}; a finished row's file has at least one byte"
    for name in ("latency_us_p50", "latency_us_p50_ci_low", "latency_us_p50_ci_high"):
        if row[name] == 0:
            return f"{name} is 0; a measured latency is above 0 (leave it null if not timed)"
    for name in ("accuracy", "accuracy_ci_low", "accuracy_ci_high"):
        if row[name] is not None and row[name] > 1:
            return f"{name} is {_shown(row[name])}, not a fraction between 0 and 1"
    for name, (low, high) in _WITH_INTERVAL.items():
        if (row[low] is None) != (row[high] is None) or (row[name] is None and row[low] is not None):
            return f"{low} and {high} come with {name}, both or neither"
        if name != "accuracy" and row[name] is not None and row[low] is None:
            return f"{name} has no interval ({low}, {high})"
    return None
