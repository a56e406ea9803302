"""``run.json``: what a folder of results was asked, on which data and teachers, in which
environment, and whether it finished; one typed definition written by every command (run,
sweep, tune) and read by the report, ``recommend`` and ``encode_rows``.

Folders written before this definition (a run's run.json without ``kind``, a sweep's with only
four keys) read as the same record with what they lack left empty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.results.records import Record, RecordError, read_json
from compress.results.rows import RUN_MANIFEST

#: Version 1: run.json before this definition; 2: every command writes every field.
MANIFEST_VERSION = 2


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tokenizer_file(seed: int, several: bool) -> str:
    """A seed's tokenizer file, named as its models are: one seed's plainly, several by seed."""
    return f"tokenizer-seed{seed}.json" if several else "tokenizer.json"


@dataclass
class RunManifest(Record):
    """A folder's run.json."""

    run_id: str
    kind: str = "run"  # the command that wrote it: run, sweep or tune
    config: dict[str, Any] = field(default_factory=dict)  # the resolved run settings
    #: The command's own settings beside the run's (a sweep file's, a tune's search).
    settings: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None  # the first seed's dataset summary
    preprocessing: str | None = None
    #: What turns a raw row of the user's table into the models' inputs, per seed (each seed
    #: fits it on its own train split): ``compress.encode_rows`` applies it.
    input_encoding: dict[str, Any] | None = None
    data: dict[str, str] = field(default_factory=dict)  # each seed's data fingerprint
    teachers: dict[str, dict[str, Any]] = field(default_factory=dict)  # per seed (``teacher_record``)
    weak_teacher: dict[str, str] | None = None  # why each kept weak teacher is weak
    env: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    started: str | None = None
    finished: str | None = None
    complete: bool = False
    interrupted: bool = False
    reused: int = 0  # rows taken from the folder instead of made again
    version: int = MANIFEST_VERSION

    def write(self, folder: Path) -> None:
        """run.json, and beside the models each seed's text tokenizer as a file of its own
        (``tokenizer_file``): what a deployment applies to raw text before a .tflite file."""
        write_atomic(folder / RUN_MANIFEST, json.dumps(asdict(self), indent=2, default=str))
        texts = {seed: e for seed, e in (self.input_encoding or {}).items() if e.get("kind") == "text"}
        for seed, encoding in texts.items():
            name = tokenizer_file(int(seed), len(texts) > 1)
            write_atomic(folder / name, json.dumps(encoding, indent=1, ensure_ascii=False))

    def encoding(self, seed: int) -> dict[str, Any] | None:
        return (self.input_encoding or {}).get(str(seed))

    @classmethod
    def read(cls, folder: Path) -> RunManifest | None:
        """The folder's run.json (None when it has none); a damaged one is a one-line error."""
        path = folder / RUN_MANIFEST
        if not path.exists():
            return None
        remedy = "re-run, or delete run.json to report the results alone"
        raw = read_json(path, remedy)
        if isinstance(raw, dict):  # what a folder written before this definition lacks
            raw = {"run_id": folder.name, "version": 1, "complete": True, **raw}
        try:
            return cls.from_dict(raw)
        except RecordError as error:
            raise UserError(f"{path} is damaged ({error}); {remedy}") from None


def unfinished_runs(paths: Sequence[Path | str]) -> list[Path]:
    """The folders among ``paths`` (or their results files) whose run.json says they stopped
    early (Ctrl-C, a killed worker): their missing strategies are absent from any choice made
    from them.  A folder without run.json, or with a damaged one, is not listed: the report
    names a damaged one."""
    unfinished = []
    for given in map(Path, paths):
        folder = given if given.is_dir() else given.parent
        try:
            manifest = RunManifest.read(folder)
        except UserError:
            continue
        if manifest is not None and not manifest.complete:
            unfinished.append(folder)
    return unfinished
