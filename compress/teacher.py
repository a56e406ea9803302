"""The baseline teacher: trained once per (data, architecture, seed, epochs), cached on disk.

Every strategy starts from this one model, so a run compares techniques and
not teachers.  The cache key is a content hash, so changed data or settings
can never pick up a stale teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from compress.backend import keras
from compress.data import Dataset
from compress.fileio import write_atomic
from compress.models import build_model, default_teacher
from compress.training import BATCH_SIZE, compile_for_training

# Bump when the training recipe changes, so old cached teachers are not reused.
RECIPE_VERSION = 1
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Teacher:
    model: keras.Model
    architecture: str
    epochs: int
    from_cache: bool
    train_accuracy: float
    val_accuracy: float
    train_seconds: float
    cache_key: str


def cache_dir() -> Path:
    """``$COMPRESS_CACHE_DIR`` or ``~/.cache/compress``."""
    return Path(os.environ.get("COMPRESS_CACHE_DIR") or Path.home() / ".cache" / "compress")


def _cache_key(dataset: Dataset, architecture: str, seed: int, epochs: int) -> str:
    parts = {
        "data": dataset.fingerprint(),
        "architecture": architecture,
        "seed": seed,
        "epochs": epochs,
        "recipe": RECIPE_VERSION,
        "tf_keras": metadata.version("tf-keras"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    logits = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def get_teacher(
    dataset: Dataset,
    *,
    seed: int = 0,
    epochs: int = 20,
    architecture: str | None = None,
    use_cache: bool = True,
) -> Teacher:
    """Load the teacher from the cache, or train and cache it."""
    arch = architecture or default_teacher(dataset.training.is_image)
    key = _cache_key(dataset, arch, seed, epochs)
    folder = cache_dir() / "teachers"
    model_path, meta_path = folder / f"{key}.keras", folder / f"{key}.json"
    if use_cache and model_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        model = keras.models.load_model(model_path, compile=False)
        return Teacher(model, arch, epochs, True, meta["train_accuracy"],
                       meta["val_accuracy"], meta["train_seconds"], key)

    t = dataset.training
    model = build_model(arch, t.input_shape, t.n_classes, seed=seed, name="teacher")
    compile_for_training(model, LEARNING_RATE)
    start = time.perf_counter()
    model.fit(t.x_train, t.y_train, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    seconds = time.perf_counter() - start
    train_acc, val_acc = _accuracy(model, t.x_train, t.y_train), _accuracy(model, t.x_val, t.y_val)
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        # Save under a temporary name, then rename: a killed run leaves no half-written teacher.
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            tmp_model = Path(tmp) / "teacher.keras"
            model.save(tmp_model)
            os.replace(tmp_model, model_path)
        meta = {"train_accuracy": train_acc, "val_accuracy": val_acc, "train_seconds": seconds,
                "architecture": arch, "epochs": epochs, "seed": seed}
        write_atomic(meta_path, json.dumps(meta, indent=2))
    return Teacher(model, arch, epochs, False, train_acc, val_acc, seconds, key)
