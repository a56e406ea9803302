"""The only orchestration: dataset -> teacher -> strategies -> measurement -> results.

Strategies run first, each on its own clone of the teacher; each finished row
(size and accuracy) is saved at once.  Latency is then measured for all rows
together with interleaved rounds, so training never competes with timing.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from compress.backend import keras, seed_everything, to_tflite
from compress.data import Dataset, TrainingData, load_dataset
from compress.errors import UserError
from compress.fileio import write_atomic
from compress.measure import TFLiteModel, accuracy_stats, measure_latency, size_fields
from compress.models import clone
from compress.results import RESULTS_FILE, environment, new_row, write_results
from compress.strategies import Context, Skip, Strategy, strategies_from_spec
from compress.strategies.baseline import Baseline
from compress.teacher import Teacher, get_teacher

DEFAULT_STRATEGIES = (
    "baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune",
)
RUN_MANIFEST = "run.json"
ERROR_LOG = "errors.log"

#: Called as progress(done, total, what is happening now).
Progress = Callable[[int, int, str], None]


@dataclass
class RunConfig:
    """Everything that decides a run's results; saved in run.json."""

    dataset: str = "synthetic"
    strategies: Sequence[str] = DEFAULT_STRATEGIES
    seeds: Sequence[int] = (0,)
    epochs: int = 20
    out: Path | None = None
    threads: int = 1
    teacher_architecture: str | None = None
    overwrite: bool = False
    use_cache: bool = True
    command: str | None = field(default=None, compare=False)


@dataclass
class RunResult:
    out: Path
    rows: list[dict[str, Any]]

    @property
    def failed(self) -> bool:
        return any(row["status"] == "failed" for row in self.rows)


def default_out_dir(dataset: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{dataset}-{stamp}"


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace an earlier run's results unless asked; check it is writable."""
    if (out / RESULTS_FILE).exists() and not overwrite:
        raise UserError(f"{out} already holds results; choose another --out or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to {out} ({error.strerror}); choose a writable --out") from None


def artifact_name(stem: str, taken: set[str]) -> str:
    """A file name per row, safe for any strategy name and unique within the run."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    name, n = f"{stem}.tflite", 2
    while name in taken:
        name, n = f"{stem}-{n}.tflite", n + 1
    return name


def resolve_strategies(specs: Sequence[str], epochs: int) -> list[Strategy]:
    """Instances for every spec, bound to the run's epochs, baseline first and always present."""
    strategies = [s.bind(epochs=epochs) for spec in specs for s in strategies_from_spec(spec)]
    if not any(isinstance(s, Baseline) for s in strategies):
        strategies.insert(0, Baseline())
    strategies.sort(key=lambda s: not isinstance(s, Baseline))  # the reference is measured first
    return strategies


def run(config: RunConfig, progress: Progress | None = None) -> RunResult:
    """Run every strategy for every seed against one dataset and teacher per seed.

    Rows are saved as each finishes; latency is measured per seed once all of
    that seed's models exist, with the seed's baseline as the reference.
    """
    if config.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {config.epochs}")
    if config.threads < 1:
        raise UserError(f"--threads must be at least 1, got {config.threads}")
    if not config.seeds or any(seed < 0 for seed in config.seeds):
        raise UserError(f"seeds must be one or more non-negative integers, got {list(config.seeds)}")
    strategies = resolve_strategies(config.strategies, config.epochs)
    datasets = {seed: load_dataset(config.dataset, seed) for seed in config.seeds}
    out = config.out or default_out_dir(config.dataset)
    prepare_out_dir(out, config.overwrite)

    report = progress or (lambda done, total, what: None)
    steps_per_seed = len(strategies) + 2
    total, done = steps_per_seed * len(config.seeds), 0
    env = environment(threads=config.threads)
    manifest: dict[str, Any] = {
        "run_id": out.name,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "dataset": datasets[config.seeds[0]].summary(),
        "teachers": {},
        "env": env,
        "started": _now(),
        "complete": False,
    }
    rows: list[dict[str, Any]] = []
    multi_seed = len(config.seeds) > 1
    for seed, dataset in datasets.items():
        report(done, total, f"seed {seed}: training the teacher (cached after the first run)")
        teacher = get_teacher(
            dataset, seed=seed, epochs=config.epochs,
            architecture=config.teacher_architecture, use_cache=config.use_cache,
        )
        manifest["teachers"][str(seed)] = {
            "architecture": teacher.architecture, "epochs": teacher.epochs,
            "from_cache": teacher.from_cache, "train_accuracy": teacher.train_accuracy,
            "val_accuracy": teacher.val_accuracy, "cache_key": teacher.cache_key,
        }
        write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
        seed_rows: list[dict[str, Any]] = []
        flatbuffers: dict[int, bytes] = {}
        reference: np.ndarray | None = None  # the baseline's predicted labels
        for strategy in strategies:
            done += 1
            report(done, total, f"seed {seed}: {strategy.name}")
            row = new_row(
                run_id=out.name, strategy=strategy.name, spec=strategy.spec(),
                family=strategy.family, control=strategy.control, params=strategy.get_params(),
                dataset=dataset.name, seed=seed, teacher_architecture=teacher.architecture,
                teacher_cached=teacher.from_cache, teacher_train_accuracy=teacher.train_accuracy,
                teacher_val_accuracy=teacher.val_accuracy, teacher_train_seconds=teacher.train_seconds,
                env=env,
            )
            flatbuffer = _compress(strategy, teacher, dataset, seed, config, out, row)
            if flatbuffer is not None:
                stem = f"{strategy.name}-seed{seed}" if multi_seed else strategy.name
                row["artifact"] = artifact_name(stem, {r["artifact"] for r in rows})
                write_atomic(out / row["artifact"], flatbuffer)
                model = TFLiteModel(flatbuffer, threads=config.threads)
                labels = np.argmax(model.predict(dataset.x_test), axis=1)
                reference = labels if reference is None else reference  # baseline runs first
                row.update(size_fields(flatbuffer), **asdict(
                    accuracy_stats(dataset.y_test, labels, dataset.n_classes, reference)
                ))
                flatbuffers[len(seed_rows)] = flatbuffer
            seed_rows.append(row)
            rows.append(row)
            write_results(out, rows)
        done += 1
        report(done, total, f"seed {seed}: timing every model (interleaved rounds)")
        _add_latency(seed_rows, flatbuffers, dataset.x_test, config.threads)
        write_results(out, rows)
    manifest.update(complete=True, finished=_now())
    write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
    report(total, total, "done")
    return RunResult(out, rows)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    flatbuffer: bytes
    notes: str
    train_seconds: float


def apply_strategy(
    strategy: Strategy, teacher: keras.Model, teacher_architecture: str, data: TrainingData,
    *, seed: int, epochs: int, workdir: Path,
) -> Artifact:
    """Seed, hand the strategy a fresh clone of the teacher, time it, export TFLite.

    The one path from a strategy to a flatbuffer, shared by runs and the
    conformance suite.  Raises ``Skip`` or whatever the strategy raised.
    """
    seed_everything(seed)
    ctx = Context(
        data=data, teacher=clone(teacher), teacher_architecture=teacher_architecture,
        seed=seed, epochs=epochs, workdir=workdir,
    )
    start = time.perf_counter()
    compressed = strategy.compress(ctx)
    seconds = time.perf_counter() - start
    flatbuffer = compressed.tflite if compressed.tflite is not None else to_tflite(compressed.model)
    return Artifact(flatbuffer, compressed.notes, round(seconds, 3))


def _compress(
    strategy: Strategy, teacher: Teacher, dataset: Dataset, seed: int, config: RunConfig,
    out: Path, row: dict[str, Any],
) -> bytes | None:
    """Apply one strategy and record its status in ``row``; return its flatbuffer if ok."""
    try:
        artifact = apply_strategy(
            strategy, teacher.model, teacher.architecture, dataset.training,
            seed=seed, epochs=config.epochs, workdir=out,
        )
    except Skip as reason:
        row.update(status="skipped", reason=str(reason))
        return None
    except Exception as error:  # one broken strategy must not sink the run
        row.update(status="failed", reason=f"{type(error).__name__}: {error}".strip())
        with open(out / ERROR_LOG, "a") as log:
            log.write(f"--- {row['spec']}\n{traceback.format_exc()}\n")
        return None
    row.update(status="ok", notes=artifact.notes, train_seconds=artifact.train_seconds)
    return artifact.flatbuffer


def _add_latency(
    rows: list[dict[str, Any]], flatbuffers: dict[int, bytes], x: np.ndarray, threads: int
) -> None:
    """Time all models together; speed-ups are paired against row 0, the baseline."""
    latencies = measure_latency(
        {str(i): fb for i, fb in flatbuffers.items()}, x,
        reference="0" if 0 in flatbuffers else None, threads=threads,
    )
    for key, latency in latencies.items():
        rows[int(key)].update(latency.fields())
