"""tune.json as one typed record: ``compress tune`` writes a ``TuneRecord`` and the report reads
its fields back, so the two cannot drift apart key by key.

Files written before ``schema_version`` existed are version 1: the same keys, some of them
missing from the oldest files (``max_slowdown``, ``confirmation``, the search's per-family counts
and resolution), which read as their defaults.  A file of a newer version is refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.results.records import Record, RecordError, read_json
from compress.results.rows import TUNE_FILE

TUNE_SCHEMA_VERSION = 1
_REWRITE = "re-run the same compress tune to rewrite it"


@dataclass
class TrialRecord(Record):
    """One proposal of the search and what became of it; ``tune_trials.Trial`` is this record
    with what the search asks of it, filled in as the trial is trained and scored."""

    number: int
    spec: str
    label: str
    stages: int
    status: str  # a row's status, or hopeless or invalid (never trained)
    reason: str | None = None
    val_accuracy: float | None = None
    drop_pp: float | None = None
    size_bytes: int | None = None
    size_gzip_bytes: int | None = None
    macs: int | None = None
    speedup: float | None = None
    train_seconds: float | None = None
    reused: bool = False
    key: str | None = None
    family: str | None = None  # of its first stage: what the report counts trials under
    #: Paired with the teacher on the search split: (teacher right and it wrong, the other way
    #: round, rows), for how surely one split of a few hundred rows rules it out.
    screen: tuple[int, int, int] | None = None
    #: On a microcontroller ``--device``: whether the model fits it (``analysis.devices.fits``;
    #: None: not measured), and why not, or by how much it fits.
    fits: bool | None = None
    fit: str | None = None


@dataclass(frozen=True)
class FinalMeasurement(Record):
    """The choice on the test split, means over its seeds against each seed's teacher
    (``analysis.configurations.against_teacher``)."""

    seeds: int
    accuracy: float
    teacher_accuracy: float
    drop_pp: float
    times_smaller_gzip: float
    times_smaller_raw: float
    speedup: float | None = None  # None when not timed


@dataclass(frozen=True)
class ConfirmationRecord(Record):
    """One candidate on every seed's validation split (``tune_trials.Evidence.record``): enough
    to redo the decision offline."""

    seeds: tuple[int, ...]
    drops_pp: tuple[float | None, ...]  # None where the seed's job failed or skipped
    pooled_seeds: tuple[int, ...]
    discordant: tuple[int, int]  # (teacher right and it wrong, the reverse), pooled
    n: int
    drop_pp: float | None  # None when a pooled seed produced nothing
    upper_pp: float | None
    confidence: float
    within_budget: bool


@dataclass(frozen=True)
class TeacherRecord(Record):
    """The search seed's teacher on its validation split."""

    val_accuracy: float
    size_bytes: int
    size_gzip_bytes: int
    architecture: str


@dataclass(frozen=True)
class FamilyRecord(Record):
    """The trials of one family of first stage: what shows why a family lost."""

    proposals: int
    trained: int
    admissible: int
    best: str | None
    best_value: float | None
    best_drop_pp: float | None
    plausible: int | None = None  # not counted by the oldest tunes


@dataclass(frozen=True)
class Resolution(Record):
    """What the confirmation's pooled rows were sized for."""

    discordance: float
    confidence: float


@dataclass(frozen=True)
class SearchRecord(Record):
    """How the search ran and why it stopped."""

    sampler: str
    seconds: float
    reused: int
    stopped: str
    space: dict[str, Any]  # per strategy, its searched parameters
    widened: int = 0
    batch: int | None = None
    validation_rows: int = 0  # of the search seed's validation split; 0 when not recorded
    validation_only_seeds: tuple[int, ...] = ()
    seeds_left_out: dict[str, str] = field(default_factory=dict)
    resolve: Resolution | None = None
    families: dict[str, FamilyRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneRecord(Record):
    """A tune folder's tune.json: the settings, every trial, the front, the choice and its
    measurement on the test split."""

    objective: str
    max_accuracy_drop: float
    time_budget_min: float
    chosen_spec: str | None
    chosen_label: str | None
    objective_value: float | None
    validation: TrialRecord | None  # the chosen trial
    test: FinalMeasurement | None
    test_meets_budget: bool | None
    teacher: TeacherRecord
    front: tuple[str, ...]
    final: tuple[str, ...]  # the specs measured on the test split
    trials: tuple[TrialRecord, ...]
    search: SearchRecord
    max_slowdown: float | None = None
    confirmation: dict[str, ConfirmationRecord] = field(default_factory=dict)
    device: str | None = None  # the --device the choice had to fit
    schema_version: int = TUNE_SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Any, source: str = TUNE_FILE) -> TuneRecord:
        """A parsed tune.json; a damaged one, or one of a newer schema, is one UserError line
        naming ``source``."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > TUNE_SCHEMA_VERSION:
            raise UserError(f"{source} has schema version {version}, and this compress reads up to "
                            f"{TUNE_SCHEMA_VERSION}; upgrade compress to report it")
        try:
            return super().from_dict(data)
        except RecordError as problem:
            raise UserError(f"{source} is damaged ({problem}); {_REWRITE}") from None

    @classmethod
    def read(cls, folder: Path) -> TuneRecord:
        """The tune.json of a tune folder; missing or damaged is one UserError line."""
        path = folder / TUNE_FILE
        return cls.from_dict(read_json(path, _REWRITE), source=str(path))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, folder: Path) -> None:
        write_atomic(folder / TUNE_FILE, self.to_json())
