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
from compress.data import SHIFT_TARGET_TRAIN, Dataset, TrainingData, load_dataset, load_shift
from compress.errors import UserError
from compress.fileio import write_atomic
from compress.measure import (
    TFLiteModel,
    accuracy_stats,
    measure_latency,
    reference_stats,
    size_fields,
)
from compress.models import clone
from compress.results import RESULTS_FILE, environment, new_row, write_results
from compress.strategies import Context, Skip, Strategy, strategies_from_spec
from compress.strategies.base import strategy_from_name
from compress.strategies.baseline import Baseline
from compress.teacher import DEFAULT_RECIPE, Teacher, TeacherRecipe, get_teacher, load_teacher
from compress.userdata import load_file

DEFAULT_STRATEGIES = (
    "baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune",
)
SCENARIOS = ("standard", "shift")
#: What --scenario shift compares when no --strategy is given: adaptation to the target.
SHIFT_STRATEGIES = (
    "finetune:epochs=30,lr=0.001", "finetune:epochs=30,lr=0.001,freeze=-1",
    "retrain-scratch:epochs=100",
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
    epochs: int | None = None  # overrides the teacher's and every strategy's default epochs
    teacher_recipe: TeacherRecipe = DEFAULT_RECIPE
    out: Path | None = None
    threads: int = 1
    teacher_architecture: str | None = None
    data: Path | None = None  # a user's .csv/.parquet/.npz instead of a built-in dataset
    target: str | None = None
    missing: str = "error"
    teacher: Path | None = None  # a user's trained tf_keras model instead of training one
    trust_model: bool = False
    scenario: str = "standard"  # "shift": teacher on a source domain, strategies on a target
    target_train: int = SHIFT_TARGET_TRAIN
    overwrite: bool = False
    use_cache: bool = True
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.strategies = tuple(self.strategies)  # any iterable in, JSON-friendly values out
        self.seeds = tuple(self.seeds)


@dataclass
class RunResult:
    out: Path
    rows: list[dict[str, Any]]

    @property
    def failed(self) -> bool:
        return any(row["status"] == "failed" for row in self.rows)


def default_out_dir(dataset: str) -> Path:
    """reports/<dataset>-<timestamp>, with a suffix if two runs start in the same second."""
    stem = Path("reports") / f"{dataset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out, n = stem, 2
    while out.exists():
        out, n = stem.with_name(f"{stem.name}-{n}"), n + 1
    return out


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


def resolve_strategies(specs: Sequence[str], epochs: int | None = None) -> list[Strategy]:
    """Instances for every spec, with the baseline first and every companion control present.

    ``epochs`` overrides each strategy's own default (not what a spec sets explicitly).
    """
    overrides = {} if epochs is None else {"epochs": epochs}
    strategies = [s for spec in specs for s in strategies_from_spec(spec, overrides)]
    names = {s.name for s in strategies}
    for strategy in list(strategies):
        for companion in strategy.companions:
            if companion not in names:
                strategies.append(strategy_from_name(companion, overrides))
                names.add(companion)
    if "baseline" not in names:
        strategies.insert(0, Baseline())
    strategies.sort(key=lambda s: not isinstance(s, Baseline))  # the reference is measured first
    return [s.paired_with(strategies) for s in strategies]


class RunInterrupted(Exception):
    """Ctrl-C: every finished row is saved and the run is marked incomplete."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted; {len(result.rows)} finished rows kept in {result.out}")
        self.result = result


@dataclass(frozen=True)
class Source:
    """One seed's data: what strategies are scored on, and what the teacher learns from."""

    dataset: Dataset
    teacher_data: Dataset  # the same dataset, or the source domain in a shift scenario
    preprocessing: str | None = None


def load_source(config: RunConfig, seed: int) -> Source:
    """The run's data for one seed (a built-in, a user's file, or a shift scenario)."""
    if config.scenario == "shift":
        if config.data is not None or config.teacher is not None:
            raise UserError("--scenario shift builds its own source and target from a built-in "
                            "--dataset; drop --data and --teacher")
        source, target = load_shift(config.dataset, seed, config.target_train)
        return Source(target, source)
    if config.data is None:
        dataset = load_dataset(config.dataset, seed)
        return Source(dataset, dataset)
    dataset, record = load_file(config.data, seed=seed, target=config.target, missing=config.missing)
    return Source(dataset, dataset, record.summary())


def _teacher(config: RunConfig, source: Source, seed: int, loaded: dict[int, Teacher]) -> Teacher:
    if seed in loaded:  # the user's teacher, already loaded to validate it
        return loaded.pop(seed)
    if config.teacher is not None:
        return load_teacher(config.teacher, source.dataset, trust=config.trust_model)
    return get_teacher(source.teacher_data, seed=seed,
                       recipe=config.teacher_recipe.with_epochs(config.epochs),
                       architecture=config.teacher_architecture, use_cache=config.use_cache)


def run(config: RunConfig, progress: Progress | None = None) -> RunResult:
    """Run every strategy for every seed against one dataset and teacher per seed.

    Everything the user gave is validated before the output folder is touched.
    Rows are saved as each finishes; latency is measured per seed once all of
    that seed's models exist, with the seed's baseline as the reference.
    Ctrl-C raises RunInterrupted after saving what finished.
    """
    if config.epochs is not None and config.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {config.epochs}")
    if config.threads < 1:
        raise UserError(f"--threads must be at least 1, got {config.threads}")
    if not config.seeds or any(seed < 0 for seed in config.seeds):
        raise UserError(f"seeds must be one or more non-negative integers, got {list(config.seeds)}")
    strategies = resolve_strategies(config.strategies, config.epochs)
    if config.scenario not in SCENARIOS:
        raise UserError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {config.scenario!r}")
    sources = {seed: load_source(config, seed) for seed in config.seeds}
    first = sources[config.seeds[0]].dataset
    loaded: dict[int, Teacher] = {}
    if config.teacher is not None:  # fail before writing anything
        loaded[config.seeds[0]] = load_teacher(config.teacher, first, trust=config.trust_model)
    out = config.out or default_out_dir(first.name)
    prepare_out_dir(out, config.overwrite)

    report = progress or (lambda done, total, what: None)
    total, done = (len(strategies) + 2) * len(config.seeds), 0
    env = environment(threads=config.threads)
    manifest: dict[str, Any] = {
        "run_id": out.name,
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "dataset": first.summary(),
        "preprocessing": sources[config.seeds[0]].preprocessing,
        "teachers": {},
        "env": env,
        "started": _now(),
        "complete": False,
    }
    rows: list[dict[str, Any]] = []
    try:
        for seed, source in sources.items():
            dataset = source.dataset
            report(done, total, f"seed {seed}: preparing the teacher (cached after the first run)")
            teacher = _teacher(config, source, seed, loaded)
            manifest["teachers"][str(seed)] = {
                "architecture": teacher.architecture, "recipe": asdict(teacher.recipe),
                "epochs_trained": teacher.epochs_trained, "from_cache": teacher.from_cache,
                "train_accuracy": teacher.train_accuracy, "val_accuracy": teacher.val_accuracy,
                "cache_key": teacher.cache_key,
            }
            write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
            seed_rows: list[dict[str, Any]] = []
            flatbuffers: dict[int, bytes] = {}
            reference: np.ndarray | None = None  # the baseline's predicted labels
            for strategy in strategies:
                done += 1
                report(done, total, f"seed {seed}: {strategy.name}")
                stem = f"{strategy.name}-seed{seed}" if len(sources) > 1 else strategy.name
                result = evaluate_strategy(
                    strategy, teacher, source, seed, scenario=config.scenario,
                    threads=config.threads, env=env, out=out,
                    artifact=artifact_name(stem, {r["artifact"] for r in rows}),
                )
                if result.labels is not None:
                    reference = result.labels if reference is None else reference  # baseline first
                    result.row.update(reference_stats(dataset.y_test, result.labels, reference))
                    flatbuffers[len(seed_rows)] = result.flatbuffer
                seed_rows.append(result.row)
                rows.append(result.row)
                write_results(out, rows)
            done += 1
            report(done, total, f"seed {seed}: timing every model (interleaved rounds)")
            add_latency(seed_rows, flatbuffers, dataset.x_test, config.threads)
            write_results(out, rows)
    except KeyboardInterrupt:
        manifest.update(interrupted=True, finished=_now())
        write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
        raise RunInterrupted(RunResult(out, rows)) from None
    manifest.update(complete=True, finished=_now())
    write_atomic(out / RUN_MANIFEST, json.dumps(manifest, indent=2))
    report(total, total, "done")
    return RunResult(out, rows)


@dataclass(frozen=True)
class Evaluated:
    row: dict[str, Any]
    flatbuffer: bytes | None = None
    labels: np.ndarray | None = None  # predicted test labels, for comparisons with a reference


def evaluate_strategy(
    strategy: Strategy, teacher: Teacher, source: Source, seed: int, *, scenario: str,
    threads: int, env: dict[str, Any], out: Path, artifact: str,
) -> Evaluated:
    """One row: run the strategy, save its artifact, add size and accuracy.

    Shared by runs and sweep jobs; comparisons with the baseline (fidelity, McNemar)
    are added by the caller, who knows the baseline's predictions.
    """
    dataset = source.dataset
    row = new_row(
        run_id=out.name, strategy=strategy.name, spec=strategy.spec(), family=strategy.family,
        control=strategy.control, params=strategy.get_params(), dataset=dataset.name,
        scenario=scenario, preprocessing=source.preprocessing,
        class_names=list(dataset.class_names), seed=seed,
        teacher_architecture=teacher.architecture, teacher_cached=teacher.from_cache,
        teacher_train_accuracy=teacher.train_accuracy, teacher_val_accuracy=teacher.val_accuracy,
        teacher_train_seconds=teacher.train_seconds or None, env=env,
    )
    flatbuffer = _compress(strategy, teacher, dataset, seed, out, row)
    if flatbuffer is None:
        return Evaluated(row)
    row["artifact"] = artifact
    write_atomic(out / artifact, flatbuffer)
    labels = np.argmax(TFLiteModel(flatbuffer, threads=threads).predict(dataset.x_test), axis=1)
    row.update(size_fields(flatbuffer), **asdict(
        accuracy_stats(dataset.y_test, labels, dataset.n_classes)
    ), test_correct="".join("1" if ok else "0" for ok in labels == dataset.y_test))
    return Evaluated(row, flatbuffer, labels)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    flatbuffer: bytes
    notes: str
    train_seconds: float


def apply_strategy(
    strategy: Strategy, teacher: keras.Model, teacher_architecture: str, data: TrainingData,
    *, seed: int, workdir: Path,
) -> Artifact:
    """Seed, hand the strategy a fresh clone of the teacher, time it, export TFLite.

    The one path from a strategy to a flatbuffer, shared by runs and the
    conformance suite.  Raises ``Skip`` or whatever the strategy raised.
    """
    seed_everything(seed)
    ctx = Context(
        data=data, teacher=clone(teacher), teacher_architecture=teacher_architecture,
        seed=seed, workdir=workdir,
    )
    start = time.perf_counter()
    compressed = strategy.compress(ctx)
    seconds = time.perf_counter() - start
    flatbuffer = compressed.tflite if compressed.tflite is not None else to_tflite(compressed.model)
    return Artifact(flatbuffer, compressed.notes, round(seconds, 3))


def _compress(
    strategy: Strategy, teacher: Teacher, dataset: Dataset, seed: int, out: Path,
    row: dict[str, Any],
) -> bytes | None:
    """Apply one strategy and record its status in ``row``; return its flatbuffer if ok."""
    try:
        artifact = apply_strategy(
            strategy, teacher.model, teacher.architecture, dataset.training,
            seed=seed, workdir=out,
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


def add_latency(
    rows: list[dict[str, Any]], flatbuffers: dict[int, bytes], x: np.ndarray, threads: int
) -> None:
    """Time all models together; speed-ups are paired against row 0, the baseline."""
    latencies = measure_latency(
        {str(i): fb for i, fb in flatbuffers.items()}, x,
        reference="0" if 0 in flatbuffers else None, threads=threads,
    )
    for key, latency in latencies.items():
        rows[int(key)].update(latency.fields())
