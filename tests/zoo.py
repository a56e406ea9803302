"""A zoo of small teachers of real architecture kinds, for checking every strategy on each.

Each member is under 50k parameters and is trained briefly on small generated data that it can
learn, so it beats chance: the zoo checks that strategies handle the layers (Conv1D, BatchNorm,
residual adds, depthwise and separable convolutions, ReLU6, concatenation, global pooling,
Reshape and Flatten), not how accurate they end up.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.data.builtin import TrainingData
from compress.models.backend import keras, seed_everything, to_tflite
from compress.models.training import compile_for_training
from compress.orchestrate.plan import plan_steps
from compress.strategies import Skip
from compress.strategies.apply import apply_strategy

L = keras.layers
IMAGE = (16, 16, 3)
SEQUENCE = (40, 1)
FEATURES = (20,)
CLASSES = 4


@dataclass(frozen=True, eq=False)
class Member:
    name: str
    data: TrainingData
    teacher: keras.Model
    architecture: str  # what a run calls the teacher (its rows' teacher_architecture)
    val_accuracy: float


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """Stripes whose orientation gives the class, random phase and period, plus noise."""
    y = rng.integers(0, classes, n)
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    angles = np.pi * np.arange(classes) / classes
    x = np.empty((n, *shape), np.float32)
    for i, label in enumerate(y):
        along = np.cos(angles[label]) * rows + np.sin(angles[label]) * cols
        wave = np.sin(along * 2 * np.pi / rng.uniform(3, 6) + rng.uniform(0, 2 * np.pi))
        x[i] = wave[..., None] * rng.uniform(0.5, 1.0, shape[-1]) + rng.normal(0, 0.3, shape)
    return x, y


def _sequences(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """A sine wave whose frequency gives the class, random phase, scaled per channel, plus noise."""
    y = rng.integers(0, classes, n)
    t = np.arange(shape[0], dtype=np.float32)
    wave = np.sin(t * (0.25 + 0.3 * y[:, None]) + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = wave[..., None] * rng.uniform(0.5, 1.0, (n, 1, shape[-1])) + rng.normal(0, 0.3, (n, *shape))
    return x.astype(np.float32), y


def _features(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int) -> tuple[
    np.ndarray, np.ndarray
]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=shape[0], n_informative=10, n_classes=classes,
                               random_state=int(rng.integers(1 << 31)))
    return x.astype(np.float32), y


GENERATORS = {"image": (_images, IMAGE), "sequence": (_sequences, SEQUENCE),
              "features": (_features, FEATURES)}


def make_data(kind: str, *, shape: tuple[int, ...] | None = None, classes: int = CLASSES, train: int = 256,
              val: int = 128, seed: int = 0) -> TrainingData:
    """Train and validation splits of a generated problem: "image", "sequence" or "features"."""
    generate, default_shape = GENERATORS[kind]
    x, y = generate(np.random.default_rng(seed), train + val, shape or default_shape, classes)
    return TrainingData(kind, x[:train], y[:train], x[train:], y[train:],
                        tuple(f"class{k}" for k in range(classes)))


def _bn() -> keras.layers.Layer:
    """BatchNorm whose moving statistics settle within the few dozen steps of a brief training."""
    return L.BatchNormalization(momentum=0.9)


def mlp(input_shape: tuple[int, ...], classes: int) -> keras.Model:
    """Sequential: Dense, Dropout, Dense, logits."""
    return keras.Sequential([keras.Input(input_shape), L.Dense(64, activation="relu"), L.Dropout(0.2),
                             L.Dense(64, activation="relu"), L.Dense(classes, name="logits")], name="mlp")


def cnn_bn(input_shape: tuple[int, ...], classes: int) -> keras.Model:
    """Sequential: Conv2D and SeparableConv2D, each with BatchNorm after its ReLU (nothing for
    QAT to fold it into), global pooling, then a MobileNetV1-style head: Reshape to 1x1, a 1x1
    convolution as classifier, Flatten."""
    return keras.Sequential([
        keras.Input(input_shape),
        L.Conv2D(24, 3, padding="same", activation="relu"), _bn(), L.MaxPooling2D(),
        L.SeparableConv2D(96, 3, padding="same", activation="relu"), _bn(),
        L.GlobalAveragePooling2D(), L.Reshape((1, 1, 96)), L.Conv2D(classes, 1), L.Flatten(name="logits"),
    ], name="cnn_bn")


def conv1d(input_shape: tuple[int, ...], classes: int) -> keras.Model:
    """Sequential on (length, channels): Conv1D, pooling, SeparableConv1D, Flatten, Dense."""
    return keras.Sequential([
        keras.Input(input_shape),
        L.Conv1D(16, 5, padding="same", activation="relu"), L.MaxPooling1D(2),
        L.Conv1D(32, 5, padding="same", activation="relu"), L.MaxPooling1D(2),
        L.SeparableConv1D(64, 3, padding="same", activation="relu"), L.Flatten(),
        L.Dense(32, activation="relu"), L.Dense(classes, name="logits"),
    ], name="conv1d")


def resnet(input_shape: tuple[int, ...], classes: int) -> keras.Model:
    """Functional: a stem and one residual block (Conv, BatchNorm, ReLU, Conv, BatchNorm, Add:
    the stem's channels are tied to the block's), global average and max pooling concatenated,
    logits."""
    inputs = keras.Input(input_shape)
    x = L.Conv2D(24, 3, padding="same", activation="relu")(inputs)
    y = L.ReLU()(_bn()(L.Conv2D(24, 3, padding="same")(x)))
    x = L.Add()([x, _bn()(L.Conv2D(24, 3, padding="same")(y))])
    x = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    return keras.Model(inputs, L.Dense(classes, name="logits")(x), name="resnet")


def mobilenet_v2(input_shape: tuple[int, ...], classes: int) -> keras.Model:
    """Functional, MobileNetV2-style: a strided stem, then the inverted residual block (1x1
    expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 linear projection + BN, residual add),
    global average pooling, logits."""
    inputs = keras.Input(input_shape)
    x = L.Conv2D(32, 3, strides=2, padding="same")(inputs)
    y = L.ReLU(6.0)(_bn()(L.Conv2D(192, 1, use_bias=False)(x)))
    y = L.ReLU(6.0)(_bn()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(y)))
    x = L.Add()([x, _bn()(L.Conv2D(32, 1, use_bias=False)(y))])
    return keras.Model(inputs, L.Dense(classes, name="logits")(L.GlobalAveragePooling2D()(x)),
                       name="mobilenet_v2")


#: name: (builder, data kind, training epochs to beat chance clearly)
ZOO: dict[str, tuple[Callable[[tuple[int, ...], int], keras.Model], str, int]] = {
    "mlp": (mlp, "features", 10),
    "cnn-bn": (cnn_bn, "image", 6),
    "conv1d": (conv1d, "sequence", 10),
    "resnet": (resnet, "image", 6),
    "mobilenet-v2": (mobilenet_v2, "image", 10),
}


def trained(name: str, *, seed: int = 0) -> Member:
    """A zoo member trained on its generated data, with its validation accuracy."""
    build, kind, epochs = ZOO[name]
    data = make_data(kind, seed=seed)
    seed_everything(seed)
    teacher = build(data.input_shape, data.n_classes)
    compile_for_training(teacher, 3e-3)
    teacher.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = teacher.evaluate(data.x_val, data.y_val, verbose=0)
    return Member(name, data, teacher, f"zoo:{name}", float(accuracy))


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok", "skipped" or "failed", as a run's row would say
    reason: str  # an ok row's notes, a skip's reason, a failure's traceback
    flatbuffer: bytes | None = None


@dataclass(frozen=True)
class MemberRun:
    """A trained member and what every strategy made of it (picklable, for a worker process)."""

    params: int
    val_accuracy: float
    x_val: np.ndarray
    n_classes: int
    teacher_flatbuffer: bytes
    outcomes: dict[str, Outcome]  # by strategy name


def run_member(name: str, specs: list[str]) -> MemberRun:
    """Train a member, then apply each strategy of ``specs`` to it as a run does (``plan_steps``
    pairs the controls, ``apply_strategy`` exports the flatbuffer); no baseline."""
    member = trained(name)
    outcomes = {}
    for step in plan_steps(specs):
        if step.role == "baseline":
            continue
        with tempfile.TemporaryDirectory() as workdir:
            try:
                artifact = apply_strategy(step.strategy, member.teacher, member.architecture, member.data,
                                          seed=0, workdir=Path(workdir))
                outcome = Outcome("ok", artifact.notes, artifact.flatbuffer)
            except Skip as reason:
                outcome = Outcome("skipped", str(reason))
            except Exception:  # the row a run would mark failed
                outcome = Outcome("failed", traceback.format_exc())
        outcomes[step.strategy.name] = outcome
    return MemberRun(member.teacher.count_params(), member.val_accuracy, member.data.x_val,
                     member.data.n_classes, to_tflite(member.teacher), outcomes)


def two_of_four(kernel: np.ndarray) -> bool:
    """At most 2 non-zeros in every group of 4 along the input axis (the last, in TFLite's
    layout); a last group shorter than 4 is padded with zeros, as tfmot pads it."""
    rows = kernel.reshape(-1, kernel.shape[-1])
    rows = np.pad(rows, ((0, 0), (0, -rows.shape[1] % 4)))
    return bool(np.all(np.count_nonzero(rows.reshape(len(rows), -1, 4), axis=-1) <= 2))
