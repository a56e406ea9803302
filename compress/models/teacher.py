"""The baseline teacher: trained once per (data, architecture, recipe, seed), cached on disk.

Every strategy starts from this one model, so a run compares techniques and
not teachers.  The cache key is a content hash, so changed data or settings
can never pick up a stale teacher.

The default recipe trains a well-regularized teacher (dropout, input noise
or one-pixel shifts, early stopping on the validation split): an over-fitted
teacher has little to teach a student.  ``DOCUMENT_RECIPE`` is the source
document's plain 20-epoch teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from compress.common.errors import UserError, option
from compress.common.fileio import cache_dir, write_atomic
from compress.data.builtin import Dataset, TrainingData
from compress.models.architectures import TOKEN_LAYERS, build_model, default_teacher
from compress.models.backend import keras, recurrent_conversion, seed_everything, tf
from compress.models.training import BATCH_SIZE, TrainingLimits, compile_for_training

# Bump when the training code changes in a way the recipe fields do not capture.
#: 3: cnn1d pools globally; 4: budgets planned for the data size; 5: one TensorFlow thread
CODE_VERSION = 5
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class TeacherRecipe:
    """How the teacher is trained; every field is part of the cache key."""

    epochs: int = 100
    dropout: float = 0.3  # after each hidden layer
    augment: bool = True  # Gaussian input noise (tabular) or ±1 px shifts (images)
    noise: float = 0.1  # input noise std for tabular data, in feature units
    patience: int | None = 15  # early stopping on validation accuracy; None trains all epochs
    batch_size: int = BATCH_SIZE

    def with_epochs(self, epochs: int | None) -> TeacherRecipe:
        return self if epochs is None else replace(self, epochs=epochs)


DEFAULT_RECIPE = TeacherRecipe()
DOCUMENT_RECIPE = TeacherRecipe(epochs=20, dropout=0.0, augment=False, patience=None)


@dataclass(frozen=True)
class Teacher:
    model: keras.Model | None  # None: on disk (``file``), or still to be trained (``pending``)
    architecture: str
    recipe: TeacherRecipe
    epochs_trained: int
    from_cache: bool
    train_accuracy: float | None  # None while pending
    val_accuracy: float | None
    train_seconds: float
    cache_key: str
    file: Path | None = None  # where the model is saved (the cache), for worker processes
    cut_short: str | None = None  # what --time-budget cut of its training (never cached then)

    @property
    def pending(self) -> bool:
        """Still to be trained, by a worker process: only its architecture and recipe are known."""
        return self.model is None and self.file is None


def pending_teacher(dataset: Dataset, *, seed: int = 0, recipe: TeacherRecipe = DEFAULT_RECIPE,
                    architecture: str | None = None, use_cache: bool = True) -> Teacher | None:
    """The record, before any result, of the teacher ``get_teacher`` would train with these
    settings; None when it would load it from the cache instead."""
    arch = architecture or default_teacher(dataset.input_shape, dataset.vocabulary)
    key, model_path, meta_path = _cache_files(dataset, arch, recipe, seed)
    if use_cache and model_path.exists() and meta_path.exists():
        return None
    return Teacher(None, arch, recipe, 0, False, None, None, 0.0, key)


def _cache_key(dataset: Dataset, architecture: str, recipe: TeacherRecipe, seed: int) -> str:
    parts = {
        "data": dataset.fingerprint(),
        "architecture": architecture,
        "recipe": asdict(recipe),
        "seed": seed,
        "code": CODE_VERSION,
        "tf_keras": metadata.version("tf-keras"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    logits = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


#: The share of a text's tokens word dropout replaces by the padding id: Iyyer et al. 2015 drop
#: 30% of words; a tenth keeps short texts readable.
WORD_DROPOUT = 0.1


def augmenter(data: TrainingData, noise: float) -> tf.types.experimental.GenericFunction:
    """Label-preserving input perturbation: ±1 px shifts for images, word dropout for token ids
    (``WORD_DROPOUT`` of the tokens become the padding id: noise added to ids would turn them into
    other words), Gaussian noise otherwise."""
    if data.kind == "tokens":
        def drop_words(x: tf.Tensor) -> tf.Tensor:
            kept = tf.random.uniform(tf.shape(x)) >= WORD_DROPOUT
            return x * tf.cast(kept, x.dtype)

        return tf.function(drop_words)
    if data.is_image:
        height, width, _ = data.input_shape

        def shift(x: tf.Tensor) -> tf.Tensor:
            padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            dy, dx = (tf.random.uniform([], 0, 3, dtype=tf.int32) for _ in range(2))
            return padded[:, dy:dy + height, dx:dx + width, :]

        return tf.function(shift)
    return tf.function(lambda x: x + tf.random.normal(tf.shape(x), stddev=noise))


def untrained_teacher(dataset: Dataset, architecture: str, recipe: TeacherRecipe, seed: int) -> keras.Model:
    """The teacher's layers before training: what a strategy that needs no trained teacher gets
    while the teacher trains."""
    t = dataset.training
    return build_model(architecture, t.input_shape, t.n_classes, seed=seed, name="teacher",
                       dropout=recipe.dropout, vocabulary=t.vocabulary)


def _train(dataset: Dataset, architecture: str, recipe: TeacherRecipe, seed: int,
           limits: TrainingLimits) -> tuple[keras.Model, int]:
    t = dataset.training
    model = untrained_teacher(dataset, architecture, recipe, seed)
    compile_for_training(model, LEARNING_RATE)
    batches = tf.data.Dataset.from_tensor_slices((t.x_train, t.y_train))
    batches = batches.shuffle(len(t.y_train), seed=seed, reshuffle_each_iteration=True)
    planned = limits.plan(recipe.epochs, len(t.y_train), batch_size=recipe.batch_size)
    batches = batches.batch(planned.batch_size)
    if recipe.augment:
        perturb = augmenter(t, recipe.noise)
        batches = batches.map(lambda x, y: (perturb(x), y))
    callbacks = limits.callbacks(model, planned)
    if recipe.patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=recipe.patience, restore_best_weights=True))
    history = model.fit(batches, epochs=planned.epochs, validation_data=(t.x_val, t.y_val),
                        callbacks=callbacks, verbose=0)
    return model, len(history.history["loss"])


def get_teacher(
    dataset: Dataset,
    *,
    seed: int = 0,
    recipe: TeacherRecipe = DEFAULT_RECIPE,
    architecture: str | None = None,
    use_cache: bool = True,
    load: bool = True,
    deadline: float | None = None,
) -> Teacher:
    """Load the teacher from the cache, or train and cache it (unless ``deadline``, a
    ``time.time()`` value, cut its training short: an under-trained teacher must not be reused
    as the real one).

    ``load=False`` leaves a cached teacher's model on disk (``model`` None, ``file`` set):
    a parent whose workers load it need not import TensorFlow at all.
    """
    arch = architecture or default_teacher(dataset.input_shape, dataset.vocabulary)
    key, model_path, meta_path = _cache_files(dataset, arch, recipe, seed)
    folder = model_path.parent
    if use_cache and model_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        model = keras.models.load_model(model_path, compile=False) if load else None
        return Teacher(model, arch, recipe, meta["epochs_trained"], True, meta["train_accuracy"],
                       meta["val_accuracy"], meta["train_seconds"], key, model_path)

    seed_everything(seed)
    limits = TrainingLimits.until(deadline)
    start = time.perf_counter()
    model, epochs_trained = _train(dataset, arch, recipe, seed, limits)
    seconds = time.perf_counter() - start
    t = dataset.training
    train_acc, val_acc = _accuracy(model, t.x_train, t.y_train), _accuracy(model, t.x_val, t.y_val)
    stopped = limits.cut_short
    if use_cache and stopped is None:
        folder.mkdir(parents=True, exist_ok=True)
        # Save under a temporary name, then rename: a killed run leaves no half-written teacher.
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            tmp_model = Path(tmp) / "teacher.keras"
            model.save(tmp_model)
            os.replace(tmp_model, model_path)
        meta = {"train_accuracy": train_acc, "val_accuracy": val_acc, "train_seconds": seconds,
                "architecture": arch, "recipe": asdict(recipe), "epochs_trained": epochs_trained,
                "seed": seed}
        write_atomic(meta_path, json.dumps(meta, indent=2))
    return Teacher(model, arch, recipe, epochs_trained, False, train_acc, val_acc, seconds, key,
                   model_path if use_cache and stopped is None else None, stopped)


def _cache_files(dataset: Dataset, architecture: str, recipe: TeacherRecipe, seed: int
                 ) -> tuple[str, Path, Path]:
    """The cache key, the model's file and its metadata's file."""
    key = _cache_key(dataset, architecture, recipe, seed)
    folder = cache_dir() / "teachers"
    return key, folder / f"{key}.keras", folder / f"{key}.json"


SAFE_MODE_WHY = (
    "Keras safe mode cannot protect this load (arbitrary code can run: CVE-2025-1550, "
    "CVE-2025-9905, CVE-2025-9906)"
)


def _load_untrusted(path: Path, trust: bool) -> keras.Model:
    """Load a user's model; anything that can run code needs --trust-model."""
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise UserError(f"{path} is a folder without a SavedModel (no saved_model.pb); pass a "
                            ".keras file or the folder model.save() wrote")
        metadata_file = path / "keras_metadata.pb"
        if not trust and metadata_file.exists() and b'"Lambda"' in metadata_file.read_bytes():
            raise _lambda_refused(path)
        return _load_or_explain(path, lambda: keras.models.load_model(path, compile=False))
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".pkl", ".pickle", ".joblib"):
        if not trust:
            raise UserError(f"{path}: {suffix} files are refused because {SAFE_MODE_WHY}; re-save "
                            "the model as .keras, or pass "
                            f"{option('trust_model', True)} if you trust its source")
        if suffix in (".h5", ".hdf5"):
            return _load_or_explain(path, lambda: keras.models.load_model(path, compile=False))
        import pickle

        with open(path, "rb") as handle:
            return pickle.load(handle)
    if suffix != ".keras":
        raise UserError(f"{path}: {option('teacher')} takes a .keras file or a SavedModel folder")
    from compress.models.keras3 import is_keras3_file, translate

    if is_keras3_file(path):
        return translate(path)  # tf_keras cannot read Keras 3 files; translating runs no code from it
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not trust)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise _lambda_refused(path) from None
        raise UserError(f"{path} cannot be loaded: {str(error).splitlines()[0]}") from None
    except (TypeError, OSError) as error:
        raise UserError(f"{path} cannot be loaded (a custom layer needs its code registered, or "
                        f"the file is damaged): {str(error).splitlines()[0]}") from None


def takes_token_ids(path: Path | str) -> bool:
    """Whether a user's model file starts from token ids (an integer input, or a layer that reads
    ids such as ``Embedding``), read from its saved configuration without loading it: the data is
    read before the teacher, and an integer .npz is read as token ids for such a teacher."""
    path = Path(path)
    try:
        if path.is_dir():
            found = (path / "keras_metadata.pb").read_bytes().decode(errors="replace")
        elif path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                found = str(handle.attrs.get("model_config", ""))
        else:
            with zipfile.ZipFile(path) as archive:
                found = archive.read("config.json").decode(errors="replace")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False  # unreadable here: loading it says why, in its own words
    named = re.findall(r'"class_name":\s*"(\w+)"', found)
    integer_input = re.search(r'"class_name":\s*"InputLayer".{0,400}?"dtype":\s*"u?int', found, re.S)
    return bool(TOKEN_LAYERS & set(named)) or integer_input is not None


def _lambda_refused(path: Path) -> UserError:
    return UserError(f"{path} contains a Lambda layer; {SAFE_MODE_WHY}. Pass "
                     f"{option('trust_model', True)} only if you trust where the model came from")


def _load_or_explain(path: Path, load: Callable[[], keras.Model]) -> keras.Model:
    """``load()``, with what tf_keras raises on a file it cannot read as one line: an .h5 file
    Keras 3 saved fails on its config (``batch_shape``), a damaged one in h5py."""
    try:
        return load()
    except (TypeError, ValueError, OSError, KeyError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} cannot be loaded by tf_keras (saved by Keras 3, needing custom "
                        f"code, or damaged): {first}; save the model as a .keras file") from None


def _with_input_shape(model: keras.Model, shape: tuple[int, ...]) -> keras.Model:
    """The same layers and weights on an input of one fixed shape (where the model left a
    dimension open), as one flat model the strategies can take apart."""
    try:
        fixed = keras.models.clone_model(model, input_tensors=keras.Input(shape, dtype=model.inputs[0].dtype))
    except (ValueError, TypeError) as error:
        raise UserError(f"the teacher's open input shape {tuple(model.input_shape[1:])} cannot be fixed to "
                        f"the data's {shape}: {error}; save it with a fixed input shape") from None
    fixed.set_weights(model.get_weights())
    return fixed


def _binary_as_two_classes(model: keras.Model) -> keras.Model | None:
    """A binary classifier with one output (``Dense(1, "sigmoid")`` probability, or a linear
    logit, or either as a Dense followed by its own ``Activation`` layer) as an equivalent
    two-logit model: the last Dense's kernel ``w`` and bias ``b`` become ``[0, w]`` and
    ``[0, b]``, and softmax([0, z]) is [1 - sigmoid(z), sigmoid(z)]."""
    binary = ("sigmoid", "linear")
    last = model.layers[-1]
    if isinstance(last, keras.layers.Activation) and len(model.layers) > 1 and \
            keras.activations.serialize(last.activation) in binary:
        before = model.layers[-2]
        if isinstance(before, keras.layers.Dense) and before.output is last.input and \
                keras.activations.serialize(before.activation) == "linear":
            last = before
    if not isinstance(last, keras.layers.Dense) or \
            keras.activations.serialize(last.activation) not in binary:
        return None
    try:
        features = last.input
    except AttributeError:  # a subclassed model: no graph to re-wire
        return None
    kernel, *bias = last.get_weights()
    bias = bias[0] if bias else np.zeros(1, dtype=kernel.dtype)
    head = keras.layers.Dense(2, name=f"{last.name}_two_classes")
    outputs = head(features)
    head.set_weights([np.concatenate([np.zeros_like(kernel), kernel], axis=1),
                      np.concatenate([np.zeros_like(bias), bias])])
    return keras.Model(model.inputs, outputs, name=model.name)


def _check_token_input(path: Path, model: keras.Model, dataset: Dataset) -> None:
    """A teacher of token ids fits token-id data within its vocabulary, and only such data."""
    from compress.models.keras3 import LOOKUPS_OUTSIDE

    names = {type(layer).__name__ for layer in model.layers}
    lookups = sorted(names & TOKEN_LAYERS - {"Embedding"})
    if lookups:
        raise UserError(f"teacher {path.name} has {', '.join(lookups)}: {LOOKUPS_OUTSIDE}")
    takes_ids = model.inputs[0].dtype.is_integer or "Embedding" in names
    if not takes_ids:
        if dataset.vocabulary is not None:
            raise UserError(f"teacher {path.name} takes float inputs, but the data are token ids; give "
                            "a teacher that starts from an Embedding of these ids")
        return
    if dataset.vocabulary is None:
        raise UserError(f"teacher {path.name} takes token ids, but the data are not token ids; give "
                        f"an .npz of ids with {option('tokens', True)}, or the raw texts (a table's "
                        "text column)")
    rows = min((layer.input_dim for layer in model.layers if isinstance(layer, keras.layers.Embedding)),
               default=None)
    if rows is not None and dataset.vocabulary > rows:
        raise UserError(f"the data hold token ids up to {dataset.vocabulary - 1}, beyond teacher "
                        f"{path.name}'s vocabulary of {rows} (its Embedding's input_dim); give ids "
                        "from the tokenizer the teacher was trained with")


def load_teacher(path: Path | str, dataset: Dataset, *, trust: bool = False,
                 use_cache: bool = True) -> Teacher:
    """A user's trained teacher, checked against the data before anything runs (``use_cache``:
    a Keras 3 file's reference predictions may come from the cache)."""
    from compress.models.keras3 import TOLERANCE, check_translation, is_keras3_file

    path = Path(path)
    if not path.exists():
        raise UserError(f"teacher {path} does not exist; check the path")
    model = _load_untrusted(path, trust)
    if not isinstance(model, keras.Model):
        raise UserError(f"{path} does not hold a tf_keras model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"teacher {path.name} has {len(model.inputs)} inputs and {len(model.outputs)} "
                        "outputs; compress compares classifiers with one input and one output")
    _check_token_input(path, model, dataset)
    expected = dataset.input_shape
    got = tuple(model.input_shape[1:])
    fits = len(got) == len(expected) and all(g in (None, e) for g, e in zip(got, expected, strict=True))
    if not fits:
        raise UserError(f"teacher {path.name} expects inputs of shape {got} but the data has "
                        f"{expected}; use a teacher trained on this data")
    fixed = got != expected
    if fixed:  # a variable length (None): TFLite times one shape, the data's
        model = _with_input_shape(model, expected)
    units = model.output_shape[-1]
    widened = _binary_as_two_classes(model) if units == 1 and dataset.n_classes == 2 else None
    if widened is None and units != dataset.n_classes:
        raise UserError(f"teacher {path.name} has {units} outputs but the data has "
                        f"{dataset.n_classes} classes; use a teacher trained on this data")
    t = dataset.training
    architecture = f"user:{path.name}"
    if is_keras3_file(path):
        difference = check_translation(path, model, t.x_val, use_cache=use_cache)
        if not difference <= TOLERANCE:  # also refuses NaN
            raise UserError(f"teacher {path.name}: its tf_keras translation predicts up to {difference:.1g} "
                            f"away from Keras 3 on the validation split (allowed: {TOLERANCE:g}); "
                            "save the model as a tf_keras model instead")
        # The bound, not the difference measured on this seed's validation rows: the teacher's
        # description is what groups a run's seeds, and the same file must group as one teacher.
        architecture += f" (Keras 3 file, translated; predictions within {TOLERANCE:g} of Keras 3's)"
    if fixed:
        architecture += f" (its input {got} fixed to the data's {expected})"
    converted = recurrent_conversion(model)
    if converted is not None:
        architecture += f" ({converted})"
    if widened is not None:
        model = widened
        architecture += " (its one binary output as two class logits)"
    return Teacher(model, architecture, DEFAULT_RECIPE, 0, False,
                   _accuracy(model, t.x_train, t.y_train), _accuracy(model, t.x_val, t.y_val),
                   0.0, f"file:{path.name}")
