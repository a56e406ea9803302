"""Datasets: one type for every source, with splits fixed by the seed.

Strategies get a :class:`TrainingData` (train and validation only), so the
test split, which every row is scored on, can never leak into training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from compress.common.errors import UserError, option
from compress.common.text import counted

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
MIN_ROWS = 30


def data_kind(input_shape: tuple[int, ...], vocabulary: int | None = None) -> str:
    """Rows of token ids (a ``vocabulary``) are texts; otherwise one sample of rank 1 is a feature
    vector, rank 2 a sequence (length, channels), rank 3 an image (height, width, channels): the
    user's arrays say which, and no axis is ever added."""
    if vocabulary is not None:
        return "tokens"
    return {1: "features", 2: "sequence", 3: "image"}.get(len(input_shape), "features")


@dataclass(frozen=True, eq=False)
class TrainingData:
    """What a strategy may train on: train and validation splits plus metadata."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    #: Rows no training decision sees, set aside from the training rows only when the run asks an
    #: accuracy budget: the evidence that certifies its answers (``common.certify``).
    x_evidence: np.ndarray | None = None
    y_evidence: np.ndarray | None = None
    #: For texts: rows are int32 token ids below this (0 pads), and models start with an
    #: Embedding of this many rows.  None for float features, sequences and images.
    vocabulary: int | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def read_only(self) -> TrainingData:
        """The same splits as views that cannot be written: every strategy shares them, so one
        that scaled ``x_train`` in place would corrupt the rows after it, unseen."""
        def frozen(array: np.ndarray) -> np.ndarray:
            view = array.view()
            view.flags.writeable = False
            return view

        evidence = {} if self.x_evidence is None or self.y_evidence is None else {
            "x_evidence": frozen(self.x_evidence), "y_evidence": frozen(self.y_evidence)}
        return dataclasses.replace(self, x_train=frozen(self.x_train), y_train=frozen(self.y_train),
                                   x_val=frozen(self.x_val), y_val=frozen(self.y_val), **evidence)

    @property
    def n_evidence(self) -> int:
        return 0 if self.y_evidence is None else len(self.y_evidence)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def kind(self) -> str:
        return data_kind(self.input_shape, self.vocabulary)

    @property
    def is_image(self) -> bool:
        """Height x width x channels inputs get convolutional architectures."""
        return self.kind == "image"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training part for strategies and a held-out test split for measurement."""

    training: TrainingData
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def name(self) -> str:
        return self.training.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.training.class_names

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.training.input_shape

    @property
    def n_classes(self) -> int:
        return self.training.n_classes

    @property
    def vocabulary(self) -> int | None:
        return self.training.vocabulary

    def fingerprint(self) -> str:
        """A content hash of every array and name: the teacher cache's key part."""
        digest = hashlib.sha256(self.name.encode())
        t = self.training
        evidence = () if t.x_evidence is None or t.y_evidence is None else (t.x_evidence, t.y_evidence)
        for array in (t.x_train, t.y_train, t.x_val, t.y_val, self.x_test, self.y_test, *evidence):
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update("\0".join(self.class_names).encode())
        if t.vocabulary is not None:
            digest.update(f"vocabulary {t.vocabulary}".encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, object]:
        """Sizes and shapes, recorded with every result."""
        t = self.training
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "classes": list(self.class_names),
            "n_train": len(t.y_train),
            "n_val": len(t.y_val),
            "n_test": len(self.y_test),
            **({"vocabulary": t.vocabulary} if t.vocabulary is not None else {}),
            **({"n_evidence": t.n_evidence} if t.n_evidence else {}),
        }

    def with_evidence(self, rows: int, seed: int) -> Dataset:
        """``rows`` of the training rows set aside, stratified and fixed by ``seed``, as the
        evidence that certifies budget answers; the teacher and every strategy train on the rest."""
        from sklearn.model_selection import train_test_split

        t = self.training
        classes = len(np.unique(t.y_train))
        if rows < classes or len(t.y_train) - rows < classes:
            raise UserError(f"{self.name}: {len(t.y_train)} training rows cannot spare {rows} as evidence "
                            f"for an accuracy budget and keep every one of {classes} classes; add rows, "
                            f"or give {option('evidence_rows', 'N')} between {classes} and "
                            f"{len(t.y_train) - classes}")
        counts = np.bincount(t.y_train)
        stratify = t.y_train if counts[counts > 0].min() >= 2 else None
        kept, held = train_test_split(np.arange(len(t.y_train)), test_size=rows, random_state=seed,
                                      stratify=stratify)
        training = dataclasses.replace(t, x_train=t.x_train[kept], y_train=t.y_train[kept],
                                       x_evidence=t.x_train[held], y_evidence=t.y_train[held])
        return Dataset(training, self.x_test, self.y_test)


#: The most of the training rows a budget's evidence may take: beyond it the teacher itself
#: learns from too little (docs/verdicts.md, "Budgets").
EVIDENCE_CAP = 0.4
#: The fewest evidence rows a budget gets, however generous: a wide budget still needs rows
#: enough to tell a broken candidate from a good one.
EVIDENCE_FLOOR = 100


def evidence_rows(budget: float, n_train: int) -> int:
    """Rows a run that asks an accuracy budget of ``budget`` pp sets aside: enough to certify a
    candidate losing half of it at the planning discordance (``common.certify``), at least
    ``EVIDENCE_FLOOR``, at most ``EVIDENCE_CAP`` of the training rows."""
    from compress.common.certify import rows_for

    wanted = rows_for(budget / 2) if budget > 0 else n_train
    return max(1, min(max(wanted, EVIDENCE_FLOOR), math.floor(EVIDENCE_CAP * n_train)))


#: More distinct labels than this (and than a tenth of the rows), some too rare to split: a
#: measured value, not classes.
REGRESSION_LABELS = 50
#: Why a regression target is refused, for every place that finds one.
CLASSIFIERS_ONLY = ("compress compares classifiers (accuracy against a teacher's classes); give "
                    "class labels, e.g. bins of the value")


def split_indices(
    y: np.ndarray, seed: int, *, name: str, with_test: bool = True,
    class_names: Sequence[str] | None = None, test_fraction: float = TEST_FRACTION,
) -> tuple[np.ndarray, ...]:
    """Stratified (train, val[, test]) row indices fixed by ``seed``.

    Labels must be integers 0..k-1.  Each class needs enough rows to appear
    in every split.
    """
    # scikit-learn's import is slow (measured: docs/benchmarks.md, "Default run wall time"):
    # only when used
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    if len(y) < MIN_ROWS:
        raise UserError(f"{name}: only {len(y)} rows; train/validation/test splits need at least "
                        f"{MIN_ROWS}, so add rows")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise UserError(f"{name}: only one class present; classification needs at least two")
    needed = 5 if with_test else 3
    if counts.min() < needed:
        rare = classes[counts.argmin()]
        label = repr(class_names[rare]) if class_names is not None else str(rare)
        if len(classes) > max(REGRESSION_LABELS, len(y) / 10):  # many labels, few rows each: a measured value
            raise UserError(f"{name}: {len(classes)} distinct labels in {len(y)} rows, {counts.min()} "
                            f"for class {label}: that looks like a regression target; {CLASSIFIERS_ONLY}")
        raise UserError(
            f"{name}: class {label} has only {counted(int(counts.min()), 'sample')}; "
            "stratified splits need at "
            f"least {needed} per class, so add samples or drop that class"
        )
    fractions = (test_fraction, VAL_FRACTION / (1 - test_fraction)) if with_test else (VAL_FRACTION,)
    if min(_split_sizes(len(y), fractions)) < len(classes):
        enough = next(n for n in itertools.count(len(y)) if min(_split_sizes(n, fractions)) >= len(classes))
        raise UserError(f"{name}: {len(y)} rows are too few for {len(classes)} classes: every split "
                        f"needs at least one row per class, which takes {enough} rows; add rows")
    rows = np.arange(len(y))
    test: np.ndarray | None = None
    if with_test:
        rows, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=y)
    val_share = VAL_FRACTION / (1 - test_fraction) if with_test else VAL_FRACTION
    train, val = train_test_split(rows, test_size=val_share, random_state=seed, stratify=y[rows])
    return (train, val, test) if test is not None else (train, val)


def _split_sizes(rows: int, fractions: Sequence[float]) -> list[int]:
    """The rows each split gets when ``fractions`` are cut off in turn, rounded as scikit-learn's
    ``train_test_split`` rounds them (the held-out part up), the rest last."""
    sizes = []
    for fraction in fractions:
        held = math.ceil(fraction * rows)
        sizes.append(held)
        rows -= held
    return [*sizes, rows]


def split_dataset(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    class_names: Sequence[str] | None = None,
    test_fraction: float = TEST_FRACTION,
) -> Dataset:
    """Split into stratified train, validation and test parts fixed by ``seed``.

    Labels must be integers 0..k-1; ``class_names`` defaults to their digits.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise UserError(f"{name}: {len(x)} feature rows but {len(y)} labels; give one label per row")
    train, val, test = split_indices(y, seed, name=name, test_fraction=test_fraction)
    names = tuple(str(c) for c in (class_names if class_names is not None else np.unique(y)))
    training = TrainingData(name, x[train], y[train], x[val], y[val], names)
    return Dataset(training, x[test], y[test])


def _document(seed: int) -> Dataset:
    """The source document's exact data: 1000 x 20 features, 15 informative, 3 classes."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=1000, n_features=20, n_informative=15, n_classes=3, random_state=seed
    )
    return split_dataset("document", x, y, seed=seed, class_names=("0", "1", "2"))


#: The default problem: the document's generator with enough rows for a 1,000-sample test
#: split, so one seed resolves accuracy differences of about 3 pp instead of 10.
SYNTHETIC_ROWS, SYNTHETIC_TEST_FRACTION = 2000, 0.5


def _synthetic(seed: int) -> Dataset:
    """The document's generator (20 features, 15 informative, 3 classes), 2,000 rows, half for testing."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=SYNTHETIC_ROWS, n_features=20, n_informative=15, n_classes=3, random_state=seed
    )
    return split_dataset("synthetic", x, y, seed=seed, class_names=("0", "1", "2"),
                         test_fraction=SYNTHETIC_TEST_FRACTION)


def _digits(seed: int) -> Dataset:
    """scikit-learn's 8x8 digits (ships with the package), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0)[..., np.newaxis]
    return split_dataset("digits", x, bunch.target, seed=seed, class_names=bunch.target_names.astype(str))


def _word_order(name: str) -> Callable[[int], Dataset]:
    """A generated text task of ``data.word_order`` as token ids."""
    def load(seed: int) -> Dataset:
        from compress.data.word_order import VOCABULARY, word_order_task

        x, y, classes = word_order_task(name, seed)
        train, val, test = split_indices(y, seed, name=name, class_names=classes)
        training = TrainingData(name, x[train], y[train], x[val], y[val], classes, vocabulary=VOCABULARY)
        return Dataset(training, x[test], y[test])

    return load


BUILTIN_DATASETS: dict[str, Callable[[int], Dataset]] = {
    "synthetic": _synthetic,
    "document": _document,
    "digits": _digits,
    "negation": _word_order("negation"),
    "order": _word_order("order"),
}


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """A built-in dataset by name, generated and split with ``seed``."""
    try:
        factory = BUILTIN_DATASETS[name]
    except KeyError:
        raise UserError(
            f"unknown dataset {name!r}; choose one of: {', '.join(BUILTIN_DATASETS)}"
        ) from None
    return factory(seed)


#: Labelled target rows a shift scenario gives for adaptation: "a small labelled train set".
SHIFT_TARGET_TRAIN = 100
_SHIFT_SEED = 12345  # the shift itself is fixed; the run seed only varies splits and training


def _shifted_features(name: str, x: np.ndarray) -> np.ndarray:
    """The fixed domain shift: a random affine map (tabular) or inverted images (digits)."""
    if x.ndim == 4:
        return (1.0 - x).astype(np.float32)
    rng = np.random.default_rng(_SHIFT_SEED)
    width = x.shape[1]
    matrix = np.eye(width) + rng.normal(scale=0.6 / np.sqrt(width), size=(width, width))
    return (x @ matrix + rng.normal(scale=0.5, size=width)).astype(np.float32)


def load_shift(name: str, seed: int = 0, target_train: int = SHIFT_TARGET_TRAIN) -> tuple[Dataset, Dataset]:
    """(source, target): the teacher learns the source; the target is shifted and has few labels.

    Half the rows (stratified) form the source, split as usual.  The other half
    is shifted; ``target_train`` of its rows (plus a fifth as many for
    validation) are labelled for adaptation, the rest is the target test split.
    """
    from sklearn.model_selection import train_test_split

    full = load_dataset(name, seed)
    t = full.training
    x = np.concatenate([t.x_train, t.x_val, full.x_test])
    y = np.concatenate([t.y_train, t.y_val, full.y_test])
    source_rows, target_rows = train_test_split(np.arange(len(y)), test_size=0.5,
                                                random_state=seed, stratify=y)
    source = split_dataset(f"{name}-source", x[source_rows], y[source_rows], seed=seed,
                           class_names=full.class_names)
    x_t, y_t = _shifted_features(name, x[target_rows]), y[target_rows]
    val = max(full.n_classes, target_train // 5)
    if target_train + val + 5 * full.n_classes > len(y_t) or target_train < 2 * full.n_classes:
        raise UserError(f"{option('target_train', target_train)} does not fit: the {name} target part has "
                        f"{len(y_t)} rows and {full.n_classes} classes")
    labelled, test = train_test_split(np.arange(len(y_t)), train_size=target_train + val,
                                      random_state=seed, stratify=y_t)
    train, val_rows = train_test_split(labelled, test_size=val, random_state=seed, stratify=y_t[labelled])
    training = TrainingData(f"{name}-shift", x_t[train], y_t[train], x_t[val_rows], y_t[val_rows],
                            full.class_names)
    return source, Dataset(training, x_t[test], y_t[test])
