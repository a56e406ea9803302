"""The models a chain's leading stages made, kept on disk for the chains that start the same way.

A model store like the teacher's cache, so it lives with the models: a strategy's ``Context``
carries one, and ``compress tune`` shares one across its trials.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compress.models.backend import keras


@dataclass(frozen=True)
class StageCache:
    """The models a chain's leading stages made, on disk, keyed by those stages' specs and by
    ``key`` (everything else that decides them: data, teacher, seed, code).  A tuner proposes
    many chains that start with the same distillation; only the first one trains it."""

    folder: Path
    key: str

    def _path(self, stages: Sequence[str]) -> Path:
        digest = hashlib.sha256(json.dumps([self.key, list(stages)]).encode()).hexdigest()[:20]
        return self.folder / digest

    def load(self, stages: Sequence[str]) -> tuple[keras.Model, str] | None:
        path = self._path(stages)
        try:
            model = keras.models.load_model(path / "model.keras", compile=False)
            return model, (path / "notes.txt").read_text(encoding="utf-8")
        except Exception:  # absent, or unreadable here (a custom layer): train the stage again
            return None

    def save(self, stages: Sequence[str], model: keras.Model, notes: str) -> None:
        """Written whole into a temporary folder, then renamed: a reader never sees half."""
        path = self._path(stages)
        if path.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=self.folder))
        try:
            model.save(staging / "model.keras")
            (staging / "notes.txt").write_text(notes, encoding="utf-8")
            os.replace(staging, path)
        except Exception:  # a layer Keras cannot save, a full disk, a race: the cache is optional
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
