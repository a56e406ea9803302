"""Architectures named by short specs, shared by the teacher and the students.

``mlp:128,64`` is Dense 128 then Dense 64 (ReLU) then a logits layer;
``cnn:32,64:128`` is Conv 32 and Conv 64 (3x3, ReLU, each followed by 2x2
max-pooling), then Dense 128, then logits.  Every model outputs logits, so
temperature scaling in distillation acts where Hinton et al. put it.
"""

from __future__ import annotations

from dataclasses import dataclass

from compress.backend import keras, seed_everything
from compress.errors import UserError

TABULAR_TEACHER = "mlp:128,64"
IMAGE_TEACHER = "cnn:32,64:128"
TABULAR_STUDENT = "mlp:32"
IMAGE_STUDENT = "cnn:8,16:32"


@dataclass(frozen=True)
class Architecture:
    kind: str  # "mlp" or "cnn"
    conv: tuple[int, ...]
    dense: tuple[int, ...]

    @property
    def spec(self) -> str:
        dense = ",".join(map(str, self.dense))
        if self.kind == "mlp":
            return f"mlp:{dense}"
        return f"cnn:{','.join(map(str, self.conv))}:{dense}"


def _widths(text: str, spec: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise UserError(f"architecture {spec!r}: widths must be integers like 'mlp:128,64'") from None
    if any(w <= 0 for w in widths):
        raise UserError(f"architecture {spec!r}: widths must be positive")
    return widths


def parse_architecture(spec: str) -> Architecture:
    """Parse ``mlp:W[,W...]`` or ``cnn:C[,C...]:W[,W...]`` into an Architecture."""
    kind, _, rest = spec.partition(":")
    if kind == "mlp" and rest:
        return Architecture("mlp", (), _widths(rest, spec))
    if kind == "cnn" and rest.count(":") == 1:
        conv, dense = rest.split(":")
        return Architecture("cnn", _widths(conv, spec), _widths(dense, spec))
    raise UserError(
        f"architecture {spec!r} is not understood; use 'mlp:128,64' or 'cnn:32,64:128'"
    )


def default_teacher(is_image: bool) -> str:
    return IMAGE_TEACHER if is_image else TABULAR_TEACHER


def default_student(is_image: bool) -> str:
    """The document's Dense-32 student for tabular data, a narrow CNN for images."""
    return IMAGE_STUDENT if is_image else TABULAR_STUDENT


def build_model(
    spec: str, input_shape: tuple[int, ...], n_classes: int, *, seed: int, name: str = "model",
    dropout: float = 0.0,
) -> keras.Sequential:
    """Build an untrained logits model; the same seed gives the same initial weights.

    ``dropout`` adds a Dropout layer after each hidden Dense layer (a no-op at inference,
    absent from the TFLite file).
    """
    arch = parse_architecture(spec)
    if arch.kind == "cnn" and len(input_shape) != 3:
        raise UserError(
            f"architecture {spec!r} needs image inputs (height, width, channels) "
            f"but the data has shape {input_shape}; use an 'mlp:...' architecture"
        )
    seed_everything(seed)
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
    for filters in arch.conv:
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        layers.append(keras.layers.MaxPooling2D(2, padding="same"))
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    for width in arch.dense:
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, seed=seed))
    layers.append(keras.layers.Dense(n_classes, name="logits"))
    return keras.Sequential(layers, name=name)


def clone(model: keras.Model) -> keras.Model:
    """An independent copy with the same weights, so no strategy can touch the original."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
