"""Run settings: what a run is asked to do, combined once and checked before anything loads.

``resolve_config`` is the one resolver for the CLI, ``compare()`` and sweeps: defaults, then a
preset, then the scenario, then what the caller gave.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from compress.analysis.devices import parse_device
from compress.common.errors import UserError, option
from compress.data.builtin import SHIFT_TARGET_TRAIN
from compress.data.images import parse_image_size
from compress.data.options import MISSING_POLICIES, TextOptions
from compress.measure.latency import latency_span
from compress.models.architectures import parse_architecture
from compress.models.teacher import (
    DEFAULT_RECIPE,
    TeacherRecipe,
)

DEFAULT_STRATEGIES = (
    "baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune",
)


SCENARIOS = ("standard", "shift")




#: What --scenario shift compares when no --strategy is given: adaptation to the target.
SHIFT_STRATEGIES = (
    "finetune:epochs=30,lr=0.001", "finetune:epochs=30,lr=0.001,freeze=-1",
    "retrain-scratch:epochs=100",
)


#: scikit-learn and NumPy take seeds below 2**32.
MAX_SEED = 2**32 - 1


EXECUTORS = ("local", "dask")


def default_jobs() -> int:
    """Worker processes when none are asked for: ``$COMPRESS_JOBS``, else one per core; the
    same for the command line and for Python callers."""
    import os

    given = os.environ.get("COMPRESS_JOBS", "").strip()
    if given:
        try:
            return int(given)
        except ValueError:
            raise UserError(f"$COMPRESS_JOBS must be a whole number of worker processes, got "
                            f"{given!r}") from None
    return os.cpu_count() or 1


@dataclass
class RunConfig:
    """Everything that decides a run's results; saved in run.json."""

    dataset: str | None = "synthetic"  # None when ``data`` names a user's file
    strategies: Sequence[str] = DEFAULT_STRATEGIES
    seeds: Sequence[int] = (0,)
    epochs: int | None = None  # overrides the teacher's and every strategy's default epochs
    teacher_recipe: TeacherRecipe = DEFAULT_RECIPE
    out: Path | None = None
    threads: int = 1
    jobs: int = 1  # worker processes that train strategies side by side (1: in this process)
    time_budget: float | None = None  # minutes for the teacher and every strategy to train in
    teacher_architecture: str | None = None
    data: Path | None = None  # a user's .csv/.parquet/.npz instead of a built-in dataset
    target: str | None = None
    missing: str = "error"
    image_size: tuple[int, int] | None = None  # an image folder's images resized to (height, width)
    tokens: bool = False  # an .npz's integer x holds token ids (also when the teacher takes them)
    text_column: str | None = None  # a table's free-text column (None: detected)
    vocabulary: int | None = None  # the tokenizer's vocabulary (None: chosen from the data)
    sequence_length: int | None = None  # tokens per text (None: chosen from the data)
    teacher: Path | None = None  # a user's trained tf_keras model instead of training one
    trust_model: bool = False
    allow_weak_teacher: bool = False
    scenario: str = "standard"  # "shift": teacher on a source domain, strategies on a target
    target_train: int = SHIFT_TARGET_TRAIN
    overwrite: bool = False
    resume: bool = False  # take the rows the ``out`` folder already holds (same data and teachers)
    micro: bool = True  # every row measured in TFLite Micro too (``measure.micro``)
    device: str | None = None  # where the model ships (``analysis.devices``): a profile or mcu:...
    #: Training rows set aside to certify budget answers (``data.builtin.evidence_rows``): None,
    #: as many as the run's tightest ``max_drop`` needs (none without one); 0: none.
    evidence_rows: int | None = None
    use_cache: bool = True
    executor: str = "local"  # where rows train: "local" (this process or a pool) or "dask"
    address: str | None = None  # a Dask scheduler; None: a local cluster
    command: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Any iterable in, JSON-friendly values out; one name is one strategy, not its letters.
        self.strategies = (self.strategies,) if isinstance(self.strategies, str) else tuple(self.strategies)
        self.seeds = tuple(_whole(seed) for seed in self.seeds)
        self.epochs, self.threads, self.jobs, self.target_train = (
            _whole(self.epochs), _whole(self.threads), _whole(self.jobs), _whole(self.target_train))
        self.evidence_rows = _whole(self.evidence_rows)
        self.vocabulary, self.sequence_length = _whole(self.vocabulary), _whole(self.sequence_length)
        self.data, self.teacher, self.out = (Path(value) if isinstance(value, str) else value
                                             for value in (self.data, self.teacher, self.out))

    def validate(self) -> None:
        """Every run setting checked, one line per mistake, before anything is loaded."""
        least_of = {"epochs": 1, "threads": 1, "jobs": 1, "target_train": 1, "evidence_rows": 0,
                    "vocabulary": 3, "sequence_length": 1}
        for name, least in least_of.items():
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise UserError(f"{option(name)} must be a whole number of at least {least}, got {value!r}")
        for name in ("data", "teacher", "out"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, Path) and str(value).strip()):
                raise UserError(f"{option(name)} must be a non-empty string (a path), got {value!r}")
        for name in ("dataset", "target", "teacher_architecture", "address", "text_column"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise UserError(f"{option(name)} must be a non-empty string, got {value!r}")
        from compress.data.builtin import BUILTIN_DATASETS

        if self.data is None and self.dataset not in BUILTIN_DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(BUILTIN_DATASETS)}, "
                            f"or give {option('data', 'FILE')}")
        budget = self.time_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, numbers.Real)):
            raise UserError(f"{option('time_budget')} must be a number of minutes, got {budget!r}")
        if self.executor not in EXECUTORS:
            raise UserError(f"{option('executor')} must be one of {', '.join(EXECUTORS)}, "
                            f"got {self.executor!r}")
        if self.address is not None and self.executor != "dask":
            raise UserError(f"{option('address')} is for {option('executor', 'dask')}; drop it")
        if not isinstance(self.micro, bool):
            raise UserError(f"{option('micro')} must be true or false, got {self.micro!r}")
        device = parse_device(self.device)
        if device is not None and device.micro and not self.micro:
            raise UserError(f"{option('device', self.device)} is measured in TFLite Micro: drop "
                            "--no-micro (micro=False from Python)")
        if self.resume and self.overwrite:
            raise UserError(f"give {option('resume', True)} (keep the rows in {option('out')}) or "
                            f"{option('overwrite', True)} (replace them), not both")
        if self.resume and self.out is None:
            raise UserError(f"{option('resume', True)} resumes the folder {option('out')} names; "
                            f"give {option('out', 'DIR')}")
        latency_span()  # read now: a mistake there must not wait for the training to end
        if self.time_budget is not None and not (0 < self.time_budget < math.inf):
            raise UserError(f"{option('time_budget')} must be a number of minutes above 0, "
                            f"got {self.time_budget}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED
                                 for s in self.seeds):
            raise UserError(f"{option('seed')}/{option('seeds')}: seeds must be integers from 0 to "
                            f"{MAX_SEED}, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.missing not in MISSING_POLICIES:
            raise UserError(f"{option('missing')} must be one of {', '.join(MISSING_POLICIES)}, "
                            f"got {self.missing!r}")
        if self.scenario not in SCENARIOS:
            raise UserError(f"{option('scenario')} must be one of {', '.join(SCENARIOS)}, "
                            f"got {self.scenario!r}")
        self.image_size = parse_image_size(self.image_size)
        if self.image_size is not None and (self.data is None or not self.data.is_dir()):
            raise UserError(f"{option('image_size')} is for an image folder {option('data', 'DIR')} (one "
                            "sub-folder per class); drop it")
        if self.target is not None and self.data is not None and self.data.is_dir():
            raise UserError(f"{option('target')} names a column of a .csv or .parquet file; an image "
                            f"folder's labels are its sub-folder names, so drop {option('target')}")
        if self.target is not None and self.data is None:
            raise UserError(f"{option('target')} names a column of a data file; it needs "
                            f"{option('data', 'FILE')} (the built-in datasets have their labels)")
        if self.target is not None and self.data is not None and self.data.suffix.lower() == ".npz":
            raise UserError(f"{option('target')} names a column of a .csv or .parquet file; an .npz holds "
                            f"its labels in the array y, so drop {option('target')}")
        self._validate_text()
        if self.teacher is not None and self.teacher_architecture is not None:
            raise UserError(f"give {option('teacher', 'FILE')} (your trained model) or "
                            f"{option('teacher_architecture', 'SPEC')} (a built-in teacher to train), "
                            "not both")
        if self.teacher_architecture is not None:
            parse_architecture(self.teacher_architecture)
        if self.scenario == "shift" and (self.data is not None or self.teacher is not None):
            raise UserError(f"{option('scenario', 'shift')} builds its own source and target from a "
                            f"built-in {option('dataset')}; drop {option('data')} and {option('teacher')}")

    def _validate_text(self) -> None:
        """The text options fit the data they name: token ids an .npz, a column a table."""
        suffix = self.data.suffix.lower() if self.data is not None and not self.data.is_dir() else None
        if self.tokens and suffix != ".npz":
            raise UserError(f"{option('tokens', True)} reads an .npz's integer x as token ids; give "
                            f"{option('data', 'FILE.npz')} or drop it")
        tabular = suffix in (".csv", ".tsv", ".parquet")
        if self.text_column is not None and not tabular:
            raise UserError(f"{option('text_column')} names a column of a .csv, .tsv or .parquet "
                            f"{option('data')} file; drop it for this data")
        folder = self.data is not None and self.data.is_dir()
        for name in ("vocabulary", "sequence_length"):
            if getattr(self, name) is not None and not (tabular or folder):
                raise UserError(f"{option(name)} sets how texts are tokenized; it needs a .csv, .tsv or "
                                f".parquet {option('data')} file with a text column, or a folder of texts")

    def text_options(self) -> TextOptions:
        return TextOptions(self.tokens, self.text_column, self.vocabulary, self.sequence_length)


def _whole(value: Any) -> Any:
    """A NumPy or other integer as a plain int (as JSON and range() want); anything else as given,
    for ``validate`` to judge."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


def resolve_config(
    *,
    dataset: str | None = None,
    data: Path | str | None = None,
    target: str | None = None,
    missing: str | None = None,
    image_size: str | tuple[int, int] | None = None,
    tokens: bool = False,
    text_column: str | None = None,
    vocabulary: int | None = None,
    sequence_length: int | None = None,
    teacher: Path | str | None = None,
    teacher_architecture: str | None = None,
    trust_model: bool = False,
    allow_weak_teacher: bool = False,
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    epochs: int | None = None,
    scenario: str | None = None,
    target_train: int | None = None,
    preset: str | None = None,
    threads: int | None = None,
    jobs: int | None = None,
    time_budget: float | None = None,
    out: Path | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    micro: bool = True,
    device: str | None = None,
    evidence_rows: int | None = None,
    use_cache: bool = True,
    executor: str | None = None,
    address: str | None = None,
    command: str | None = None,
) -> RunConfig:
    """The one place run settings are combined: defaults, then the preset, then the scenario,
    then whatever was given explicitly (None means not given).  ``seeds`` is a list of seeds or a
    count (``3`` runs seeds 0, 1, 2)."""
    from compress.orchestrate.presets import PRESETS

    if dataset is not None and data is not None:
        raise UserError(f"give {option('dataset')} or {option('data')}, not both")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings: dict[str, Any] = {}
    settings.update(PRESETS.get(preset or "", {}))
    if scenario == "shift":
        settings["strategies"] = SHIFT_STRATEGIES
    seeds = _whole(seeds)
    if isinstance(seeds, bool) or (isinstance(seeds, int) and seeds < 1):
        raise UserError(f"{option('seeds')} must be at least 1, got {seeds}")
    explicit = {
        "dataset": dataset, "data": data, "target": target, "missing": missing,
        "image_size": image_size, "teacher": teacher, "tokens": tokens or None,
        "text_column": text_column, "vocabulary": vocabulary, "sequence_length": sequence_length,
        "teacher_architecture": teacher_architecture,
        "strategies": strategies or None, "epochs": epochs,
        "seeds": tuple(range(seeds)) if isinstance(seeds, int) else seeds,
        "scenario": scenario, "target_train": target_train, "threads": threads,
        "jobs": default_jobs() if jobs is None else jobs, "time_budget": time_budget, "out": out,
        "executor": executor, "address": address, "device": device, "evidence_rows": evidence_rows,
    }
    settings.update({key: value for key, value in explicit.items() if value is not None})
    if data is not None:
        settings["dataset"] = None
    config = RunConfig(**settings, trust_model=trust_model, allow_weak_teacher=allow_weak_teacher,
                       overwrite=overwrite, resume=resume, micro=micro, use_cache=use_cache,
                       command=command)
    config.validate()
    return config


def default_out_dir(dataset: str) -> Path:
    """reports/<dataset>-<timestamp>, with a suffix if two runs start in the same second."""
    stem = Path("reports") / f"{dataset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out, n = stem, 2
    while out.exists():
        out, n = stem.with_name(f"{stem.name}-{n}"), n + 1
    return out
