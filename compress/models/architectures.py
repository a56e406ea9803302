"""Architectures named by short specs, shared by the teacher and the students.

- ``mlp:128,64``: Dense 128, Dense 64 (ReLU), then a logits layer; any input (flattened).
- ``cnn:32,64:128``: Conv2D 32 and 64 (3×3, ReLU, each followed by 2×2 max-pooling), then
  Dense 128, then logits; images (height, width, channels).
- ``cnn1d:32,64,64:64``: Conv1D 32, 64 and 64 (kernel 5, ReLU, each followed by max-pooling
  by 2), global average pooling, Dense 64, then logits; sequences (length, channels).  Global
  pooling, as in the 1-D CNNs people write for signals, finds a pattern wherever it sits: with
  a Flatten head the same widths fell well short of a user's pooled Conv1D (measured:
  docs/benchmarks.md, "A user's Conv1D teacher on 1-D signals (issue 13)").
- ``dsres:16,32``: a small depthwise-separable residual network for images: a 3×3 stem, then
  per width a MobileNetV2-style block (1×1 expand, 3×3 depthwise, 1×1 project, BatchNorm,
  ReLU6, a residual add when the width is unchanged), global average pooling, logits.
- ``mobile:8,16,32,64``: a MobileNet (Howard et al., 2017): a 3×3 convolution of the first width
  with stride 2, then per further width two depthwise-separable blocks (3×3 depthwise, 1×1
  pointwise, BatchNorm, ReLU6), the first with stride 2, global average pooling, logits.  It
  halves the resolution at every width as a MobileNet teacher does, so it is the student derived
  for one: distilled from MobileNetV2 at 96x96 it scored far above the full-resolution
  ``cnn:4,4:16`` derived before, in less time per batch (measured: docs/benchmarks.md, "The
  automatic student of a MobileNet: `mobile`").

The reference models of MLPerf Tiny (Banbury et al. 2021, docs/architecture.md "Teachers of
the field"), built from their papers' layers, also by name (``TINY_MODELS``):

- ``resnet:16,32,64`` (``resnet8``): a 3×3 stem, then per width one residual block of two 3×3
  convolutions (the first strided from the second width on, a strided 1×1 shortcut where the
  shape changes), BatchNorm and ReLU, global average pooling, logits.
- ``dscnn:64,64,64,64,64`` (``dscnn``): a 10×4 stem with stride 2, then per further width a
  depthwise-separable block (3×3 depthwise, 1×1 pointwise, BatchNorm, ReLU), global average
  pooling, logits: the keyword-spotting DS-CNN.
- ``mobilenetv1:8`` (``mobilenetv1-0.25``): MobileNetV1 from a first width (8 is alpha 0.25):
  a strided 3×3 stem, then its thirteen depthwise-separable blocks, doubling the width at each of
  its four strided ones (to 32 times the first), global average pooling, logits.

Texts (token ids) get ``textcnn``, ``bilstm`` or ``transformer`` (``models.text_models``).

Every model outputs logits, so temperature scaling in distillation acts where Hinton et al.
put it.  The data's kind decides the default: features get an MLP, sequences a 1-D CNN,
images a 2-D CNN, texts a text CNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compress.common.errors import UserError
from compress.data.builtin import data_kind
from compress.models.backend import keras, seed_everything
from compress.models.cost import layer_calls
from compress.models.text_models import TEXT_FORMS, TEXT_KINDS, build_text_model, read_text_model

KINDS = ("features", "sequence", "image", "tokens")
DEFAULT_TEACHERS = {"features": "mlp:128,64", "sequence": "cnn1d:32,64,64:64", "image": "cnn:32,64:128",
                    "tokens": "textcnn:64:128"}
#: Students chosen by experiment for the default teachers (docs/benchmarks.md); the text one is the
#: shrink rule's (``_text_student``), measured in "Text models".
DEFAULT_STUDENTS = {"features": "mlp:32", "sequence": "cnn1d:8,16:16", "image": "cnn:8,16:32",
                    "tokens": "textcnn:16:32"}
#: Which architectures fit which data kind (an MLP flattens any numbers, not token ids).
FITS = {"mlp": ("features", "sequence", "image"), "cnn": ("image",), "cnn1d": ("sequence",),
        "dsres": ("image",), "mobile": ("image",), "resnet": ("image",), "dscnn": ("image",),
        "mobilenetv1": ("image",), **dict.fromkeys(TEXT_KINDS, ("tokens",))}
FORMS = ("mlp:W[,W...]", "cnn:C[,C...]:W[,W...]", "cnn1d:C[,C...]:W[,W...]", "dsres:C[,C...]",
         "mobile:C[,C...]", "resnet:C[,C...]", "dscnn:C[,C...]", "mobilenetv1:W", *TEXT_FORMS)
#: Architectures of convolution widths alone (``dsres:16,32``), no Dense widths.
CONVOLUTIONAL = ("dsres", "mobile", "resnet", "dscnn", "mobilenetv1")
#: MLPerf Tiny's reference models by name: image classification (CIFAR-10), keyword spotting
#: and visual wake words.
TINY_MODELS = {"resnet8": "resnet:16,32,64", "dscnn": "dscnn:64,64,64,64,64",
               "mobilenetv1-0.25": "mobilenetv1:8"}
#: MobileNetV1's blocks after its stem: (width as a multiple of the first, stride).
MOBILENET_V1_BLOCKS = ((2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2), (16, 1), (16, 1), (16, 1),
                       (16, 1), (16, 1), (32, 2), (32, 1))


@dataclass(frozen=True)
class Architecture:
    kind: str  # "mlp", "cnn", "cnn1d", "dsres", "mobile", ... or a text kind
    conv: tuple[int, ...]  # convolutions' filters (a bilstm's units, a transformer's heads per block)
    dense: tuple[int, ...]
    embedding: int = 0  # a text model's embedding width

    @property
    def spec(self) -> str:
        conv, dense = ",".join(map(str, self.conv)), ",".join(map(str, self.dense))
        if self.kind == "transformer":
            return f"transformer:{len(self.conv)},{self.conv[0]},{self.embedding}"
        if self.kind in TEXT_KINDS:
            return f"{self.kind}:{self.embedding}:{conv}"
        if self.kind == "mlp":
            return f"mlp:{dense}"
        if self.kind in CONVOLUTIONAL:
            return f"{self.kind}:{conv}"
        return f"{self.kind}:{conv}:{dense}"


def _widths(text: str, spec: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise UserError(f"architecture {spec!r}: widths must be integers like 'mlp:128,64'") from None
    if not widths or any(w <= 0 for w in widths):
        raise UserError(f"architecture {spec!r}: give one or more positive widths")
    return widths


def parse_architecture(spec: str) -> Architecture:
    """Parse a spec (see the module docstring) into an Architecture; one-line errors."""
    kind, _, rest = TINY_MODELS.get(spec, spec).partition(":")
    if kind == "mobilenetv1" and rest and "," in rest:
        raise UserError(f"architecture {spec!r}: mobilenetv1 takes one first width, e.g. mobilenetv1:8")
    if kind == "mlp" and rest:
        return Architecture("mlp", (), _widths(rest, spec))
    if kind in CONVOLUTIONAL and rest and ":" not in rest:
        return Architecture(kind, _widths(rest, spec), ())
    if kind == "transformer" and rest.count(",") == 2 and ":" not in rest:
        blocks, heads, width = _widths(rest, spec)
        if width < heads:
            raise UserError(f"architecture {spec!r}: the width {width} cannot be split among {heads} heads")
        return Architecture(kind, (heads,) * blocks, (), width)
    if kind in ("textcnn", "bilstm") and rest.count(":") == 1:
        embedding, widths = rest.split(":")
        return Architecture(kind, _widths(widths, spec), (), _widths(embedding, spec)[0])
    if kind in ("cnn", "cnn1d") and rest.count(":") == 1:
        conv, dense = rest.split(":")
        return Architecture(kind, _widths(conv, spec), _widths(dense, spec))
    raise UserError(f"architecture {spec!r} is not understood; use one of {', '.join(FORMS)}")


def check_fits(spec: str, input_shape: tuple[int, ...], vocabulary: int | None = None) -> Architecture:
    """The architecture, if it can take this data; else a one-line error with the valid forms."""
    arch = parse_architecture(spec)
    kind = data_kind(input_shape, vocabulary)
    if kind not in FITS[arch.kind]:
        valid = [form for form in FORMS if kind in FITS[form.split(":")[0]]]
        raise UserError(f"architecture {spec!r} does not fit {kind} data of shape {input_shape}; "
                        f"for this data use {' or '.join(valid)}")
    return arch


def default_teacher(input_shape: tuple[int, ...], vocabulary: int | None = None) -> str:
    return DEFAULT_TEACHERS[data_kind(input_shape, vocabulary)]


#: Layers that prepare the input with values fitted to the data (``adapt``) or fixed, which
#: training does not learn: a model built to stand in for the teacher keeps them.
PREPROCESSING_LAYERS = ("Normalization", "Rescaling")


def input_preprocessing(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's leading Normalization and Rescaling layers, in order (none for a built-in
    teacher).  A student or a from-scratch control sees the teacher's raw input, so without
    them it learns from features the teacher never saw: students missing an adapted
    Normalization stayed below the majority-class rate (measured: docs/benchmarks.md, "Figures
    behind design decisions")."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if type(layer).__name__ not in PREPROCESSING_LAYERS:
            break
        found.append(layer)
    return found


def keep_preprocessing(model: keras.Model, teacher: keras.Model) -> None:
    """Give ``model`` (a clone of ``teacher``, with fresh weights) the teacher's fitted
    preprocessing back: ``clone_model`` resets an adapted Normalization to mean 0, variance 1."""
    for layer in input_preprocessing(teacher):
        model.get_layer(layer.name).set_weights(layer.get_weights())


def preprocessing_note(teacher: keras.Model) -> str:
    """What a row built beside the teacher says about the preprocessing it kept, if any."""
    kept = input_preprocessing(teacher)
    if not kept:
        return ""
    names = ", ".join(type(layer).__name__ for layer in kept)
    return f" It keeps the teacher's input preprocessing ({names}) with the teacher's values."


def build_model(
    spec: str, input_shape: tuple[int, ...], n_classes: int, *, seed: int, name: str = "model",
    dropout: float = 0.0, preprocessing: Sequence[keras.layers.Layer] = (), vocabulary: int | None = None,
) -> keras.Model:
    """Build an untrained logits model; the same seed gives the same initial weights.

    ``dropout`` adds a Dropout layer after each hidden Dense layer (a no-op at inference,
    absent from the TFLite file).  ``preprocessing`` (a teacher's ``input_preprocessing``) is
    copied, with its values, between the input and the first layer.  ``vocabulary``: the data
    are token ids below it (a text model's Embedding has that many rows).
    """
    arch = check_fits(spec, input_shape, vocabulary)
    seed_everything(seed)
    if arch.kind in TEXT_KINDS and vocabulary is not None:
        return build_text_model(arch.kind, arch.embedding, arch.conv, input_shape[0], vocabulary,
                                n_classes, name, dropout)
    copies = [type(layer).from_config({**layer.get_config(), "name": f"preprocessing_{i}"})
              for i, layer in enumerate(preprocessing)]
    builders = {"dsres": _dsres, "mobile": _mobile, "resnet": _resnet, "dscnn": _dscnn,
                "mobilenetv1": _mobilenet_v1}
    if arch.kind in builders:
        model = builders[arch.kind](arch.conv, input_shape, n_classes, name, copies)
    else:
        model = _stacked(arch, input_shape, n_classes, name, dropout, seed, copies)
    for copy, layer in zip(copies, preprocessing, strict=True):
        copy.set_weights(layer.get_weights())
    return model


def _stacked(arch: Architecture, input_shape: tuple[int, ...], n_classes: int, name: str,
             dropout: float, seed: int, first: list[keras.layers.Layer]) -> keras.Model:
    """An MLP, or a 1-D or 2-D CNN with a Dense head, as one Sequential."""
    # Every layer is named: automatic names (dense_7) count the models a process built before,
    # and they are written into the flatbuffer, whose bytes would then depend on that history.
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape, name="input"), *first]
    for i, filters in enumerate(arch.conv):
        if arch.kind == "cnn":
            layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_{i}"),
                       keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}")]
        else:
            layers += [keras.layers.Conv1D(filters, 5, padding="same", activation="relu", name=f"conv_{i}"),
                       keras.layers.MaxPooling1D(2, padding="same", name=f"pool_{i}")]
    if arch.kind == "cnn1d":
        layers.append(keras.layers.GlobalAveragePooling1D(name="global_pool"))
    elif len(input_shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    for i, width in enumerate(arch.dense):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"dense_{i}"))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, seed=seed, name=f"dropout_{i}"))
    layers.append(keras.layers.Dense(n_classes, name="logits"))
    return keras.Sequential(layers, name=name)


def _normalized(x: Any, name: str) -> Any:
    """BatchNorm then ReLU6, as MobileNets follow every convolution."""
    layers = keras.layers
    return layers.ReLU(6.0, name=f"{name}_relu")(layers.BatchNormalization(name=f"{name}_bn")(x))


def _dsres(widths: tuple[int, ...], input_shape: tuple[int, ...], n_classes: int,
           name: str, first: list[keras.layers.Layer]) -> keras.Model:
    """MobileNetV2-style blocks: depthwise, residual, BatchNorm, ReLU6."""
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for layer in first:
        x = layer(x)
    x = _normalized(layers.Conv2D(widths[0], 3, padding="same", name="stem_conv")(x), "stem")
    for i, width in enumerate(widths):
        block = _normalized(layers.Conv2D(2 * width, 1, name=f"block{i}_expand")(x), f"block{i}_expand")
        block = _normalized(layers.DepthwiseConv2D(3, padding="same", name=f"block{i}_depthwise")(block),
                            f"block{i}_depthwise")
        block = layers.BatchNormalization(name=f"block{i}_project_bn")(
            layers.Conv2D(width, 1, name=f"block{i}_project")(block))
        x = layers.Add(name=f"block{i}_add")([x, block]) if x.shape[-1] == width else block
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _mobile(widths: tuple[int, ...], input_shape: tuple[int, ...], n_classes: int,
            name: str, first: list[keras.layers.Layer]) -> keras.Model:
    """A MobileNet: a strided stem, then two depthwise-separable blocks per further width, the
    first strided.  Two, not one: the second block widens what each unit sees, and a student
    with two per width was clearly more accurate than one with one (measured: docs/benchmarks.md,
    "The automatic student of a MobileNet: `mobile`")."""
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for layer in first:
        x = layer(x)
    x = _normalized(layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False,
                                  name="stem_conv")(x), "stem")
    for i, width in enumerate(widths[1:]):
        for j, stride in enumerate((2, 1)):
            block = f"block{i}_{j}"
            x = _normalized(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                                   name=f"{block}_depthwise")(x), f"{block}_depthwise")
            x = _normalized(layers.Conv2D(width, 1, use_bias=False, name=f"{block}_pointwise")(x),
                            f"{block}_pointwise")
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _input(input_shape: tuple[int, ...], first: list[keras.layers.Layer]) -> tuple[Any, Any]:
    """The model's input and what its preprocessing copies make of it."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for layer in first:
        x = layer(x)
    return inputs, x


def _conv_bn(x: Any, width: int, kernel: Any, stride: int, name: str, relu: bool = True) -> Any:
    layers = keras.layers
    x = layers.BatchNormalization(name=f"{name}_bn")(
        layers.Conv2D(width, kernel, strides=stride, padding="same", use_bias=False, name=name)(x))
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _resnet(widths: tuple[int, ...], input_shape: tuple[int, ...], n_classes: int,
            name: str, first: list[keras.layers.Layer]) -> keras.Model:
    """MLPerf Tiny's ResNet-8 shape: one residual block per width."""
    layers = keras.layers
    inputs, x = _input(input_shape, first)
    x = _conv_bn(x, widths[0], 3, 1, "stem_conv")
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        y = _conv_bn(x, width, 3, stride, f"block{i}_conv0")
        y = _conv_bn(y, width, 3, 1, f"block{i}_conv1", relu=False)
        if stride != 1 or x.shape[-1] != width:
            x = _conv_bn(x, width, 1, stride, f"block{i}_shortcut", relu=False)
        x = layers.ReLU(name=f"block{i}_relu")(layers.Add(name=f"block{i}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _separable(x: Any, width: int, stride: int, name: str, relu6: bool) -> Any:
    """A depthwise-separable block: 3×3 depthwise, 1×1 pointwise, each with BatchNorm and ReLU."""
    layers = keras.layers

    def activation(y: Any, part: str) -> Any:
        return layers.ReLU(6.0 if relu6 else None, name=f"{name}_{part}_relu")(
            layers.BatchNormalization(name=f"{name}_{part}_bn")(y))

    x = activation(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                          name=f"{name}_depthwise")(x), "depthwise")
    return activation(layers.Conv2D(width, 1, use_bias=False, name=f"{name}_pointwise")(x), "pointwise")


def _dscnn(widths: tuple[int, ...], input_shape: tuple[int, ...], n_classes: int,
           name: str, first: list[keras.layers.Layer]) -> keras.Model:
    """MLPerf Tiny's keyword-spotting DS-CNN: a 10×4 strided stem, then separable blocks."""
    layers = keras.layers
    inputs, x = _input(input_shape, first)
    x = _conv_bn(x, widths[0], (10, 4), 2, "stem_conv")
    for i, width in enumerate(widths[1:]):
        x = _separable(x, width, 1, f"block{i}", relu6=False)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _mobilenet_v1(widths: tuple[int, ...], input_shape: tuple[int, ...], n_classes: int,
                  name: str, first: list[keras.layers.Layer]) -> keras.Model:
    """MobileNetV1 (Howard et al. 2017) from its first width (8: alpha 0.25, as MLPerf Tiny's
    visual wake words model)."""
    layers = keras.layers
    inputs, x = _input(input_shape, first)
    x = _normalized(layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False,
                                  name="stem_conv")(x), "stem")
    for i, (times, stride) in enumerate(MOBILENET_V1_BLOCKS):
        x = _separable(x, widths[0] * times, stride, f"block{i}", relu6=True)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def clone(model: keras.Model) -> keras.Model:
    """An independent copy with the same weights, so no strategy can touch the original."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


#: How much narrower than its teacher a derived student starts.
STUDENT_SHRINK = 4


def derive_student(teacher: keras.Model, teacher_architecture: str, input_shape: tuple[int, ...],
                   shrink: float = STUDENT_SHRINK, vocabulary: int | None = None) -> str:
    """A student of the teacher's own kind, narrower and shallower.

    A default teacher gets the student chosen by experiment; a MobileNet-class teacher (depthwise
    convolutions, strided) a ``mobile`` student of as many resolutions (``_mobile_student``); a
    built-in spec keeps its kind with widths divided by ``shrink`` and at most two hidden layers
    of each sort; a user's model is read layer by layer (Conv1D, Conv2D or depthwise layers make
    a 1-D or 2-D CNN student, otherwise an MLP) from its own widths.  The caller checks it is
    strictly smaller.  A text teacher's student has a narrower embedding and one block fewer: a
    transformer's is a transformer, a recurrent one's a text CNN (a user's model read as
    ``bilstm``, ``transformer`` or ``textcnn``: ``_text_student``).
    """
    kind = data_kind(input_shape, vocabulary)
    if teacher_architecture == DEFAULT_TEACHERS[kind] and shrink == STUDENT_SHRINK:
        return DEFAULT_STUDENTS[kind]
    mobile = _mobile_student(teacher, input_shape, shrink) if kind == "image" else None
    if mobile:
        return mobile
    arch = _teacher_as_architecture(teacher, teacher_architecture, kind)
    if kind == "tokens":
        return _text_student(arch, shrink, deep=False)
    conv = tuple(max(4, int(w / shrink)) for w in arch.conv[:2])
    dense = tuple(max(8, int(w / shrink)) for w in arch.dense[:1])
    if arch.kind == "dsres":
        return f"cnn:{','.join(map(str, conv))}:{max(8, 2 * conv[-1])}"
    return Architecture(arch.kind, conv, dense or (16,)).spec


#: A ``mobile`` student stops halving the resolution where the teacher's maps get this small:
#: a student halving down to MobileNetV2's last maps stayed at chance on validation, one
#: stopping earlier learnt (measured: docs/benchmarks.md, "The automatic student of a MobileNet:
#: `mobile`").
MOBILE_SMALLEST_SIDE = 4


def _mobile_student(teacher: keras.Model, input_shape: tuple[int, ...], shrink: float) -> str | None:
    """A ``mobile`` student for a teacher with depthwise convolutions that halves its resolution
    at least twice (MobileNets, EfficientNets): one width per resolution of the teacher's
    convolutions below the input's and at least ``MOBILE_SMALLEST_SIDE`` pixels, doubling as a
    MobileNet's do from the teacher's first convolution's width divided by ``shrink / 2`` (a
    MobileNet's first convolution is among its narrowest: MobileNetV2 at alpha 0.35 has 16
    filters there, 1,280 at the end).  None for any other teacher (one strided stem is not a
    pyramid: its student would be that stem alone), or one whose sizes Keras does not record."""
    first, sides, depthwise = None, [], False
    for layer, shape in layer_calls(teacher):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.SeparableConv2D)):
            continue
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            return None
        is_depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        depthwise = depthwise or is_depthwise or isinstance(layer, keras.layers.SeparableConv2D)
        if first is None and not is_depthwise:
            first = layer.filters
        side = min(shape[1], shape[2])
        if MOBILE_SMALLEST_SIDE <= side < min(input_shape[:2]) and side not in sides:
            sides.append(side)
    if not depthwise or first is None or len(sides) < 2:  # a pyramid, not one strided stem
        return None
    width = max(4, int(2 * first / shrink))
    return "mobile:" + ",".join(str(width * 2**k) for k in range(len(sides)))


def _teacher_as_architecture(teacher: keras.Model, teacher_architecture: str, kind: str) -> Architecture:
    """A built-in spec as it is; a user's model read as the closest built-in architecture."""
    try:
        return parse_architecture(teacher_architecture)
    except UserError:
        return _read_architecture(teacher, kind)


def _text_student(arch: Architecture, shrink: float, *, deep: bool) -> str:
    """A text teacher's kind, its embedding and widths ``shrink`` times narrower; all its blocks
    (``deep``) or one fewer, at least one.  A transformer keeps its heads while each gets at least
    4 dimensions.  A recurrent teacher's shallower student is a text CNN as wide as its last
    layer's two directions, shrunk: a convolution waits for no earlier step, and a BiLSTM student
    four times narrower ran only about twice as fast as its teacher (docs/benchmarks.md, "Text
    models")."""
    kept = arch.conv if deep else arch.conv[:max(1, len(arch.conv) - 1)]
    embedding = max(4, int(arch.embedding / shrink))
    if arch.kind == "bilstm" and not deep:
        return Architecture("textcnn", (max(8, int(2 * arch.conv[-1] / shrink)),), (), embedding).spec
    if arch.kind == "transformer":
        heads = max(1, min(kept[0], embedding // 4))
        return Architecture("transformer", (heads,) * len(kept), (), embedding).spec
    return Architecture(arch.kind, tuple(max(4, int(w / shrink)) for w in kept), (), embedding).spec


def _as_deep(teacher: keras.Model, teacher_architecture: str, input_shape: tuple[int, ...],
             shrink: float, vocabulary: int | None = None) -> str | None:
    """A student with every hidden layer of the teacher, each ``shrink`` times narrower (None
    for a residual or MobileNet-class teacher, whose blocks ``derive_student`` already replaces)."""
    kind = data_kind(input_shape, vocabulary)
    arch = _teacher_as_architecture(teacher, teacher_architecture, kind)
    if kind == "tokens":
        return _text_student(arch, shrink, deep=True)
    if arch.kind == "dsres" or (kind == "image" and _mobile_student(teacher, input_shape, shrink)):
        return None
    return Architecture(arch.kind, tuple(max(4, int(w / shrink)) for w in arch.conv),
                        tuple(max(8, int(w / shrink)) for w in arch.dense) or (16,)).spec


#: The automatic student's ladder: each rung about four times fewer weights.
STUDENT_SHRINKS = (STUDENT_SHRINK, 2 * STUDENT_SHRINK, 4 * STUDENT_SHRINK)
#: The tuner's ladder: a rung between each of the above (about half the weights each), since
#: the smallest student within an accuracy budget often falls between two of them.
FINE_STUDENT_SHRINKS = (4, 6, 8, 12, 16)


def student_candidates(teacher: keras.Model, teacher_architecture: str,
                       input_shape: tuple[int, ...], shrinks: Sequence[int] = STUDENT_SHRINKS,
                       vocabulary: int | None = None) -> tuple[str, ...]:
    """Students ``shrinks`` times narrower than the teacher, widest first; for images also the
    smallest depthwise-separable residual network, whose global pooling suits a teacher that
    pools globally (a Flatten student can outweigh such a teacher at any width); for a recurrent
    or attention text teacher also text CNNs, which run in a fraction of their time."""
    kind = data_kind(input_shape, vocabulary)
    specs = [derive_student(teacher, teacher_architecture, input_shape, s, vocabulary) for s in shrinks]
    if kind == "image":
        specs.append("dsres:4")
    if kind == "tokens":
        specs += [_convolutional(spec) for spec in specs]
    return tuple(dict.fromkeys(specs))


def _convolutional(text_spec: str) -> str:
    """A text CNN of a text student's embedding width, one convolution as wide as it."""
    embedding = parse_architecture(text_spec).embedding
    return Architecture("textcnn", (max(8, embedding),), (), embedding).spec


#: ``distill:max_drop``'s ladder: its widest rung has at most this share of the teacher's
#: parameters (half: a quarter left a budget of 1 pp out of reach on 5 of 6 seeds of two users'
#: teachers, issue 42), each next rung at most ``LADDER_STEP`` of the one before, up to
#: ``LADDER_RUNGS`` rungs: from half the teacher's size down to about a fifteenth of it.
LADDER_FIRST_SHARE = 0.5
LADDER_STEP = 0.6
LADDER_RUNGS = 5
#: The width divisors the ladder draws its rungs from, widest first.
LADDER_SHRINKS = (1.5, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
#: Depthwise-separable residual students the ladder may also use for images.
LADDER_DSRES = ("dsres:16,32", "dsres:8,16", "dsres:8", "dsres:4")


def student_ladder(teacher: keras.Model, teacher_architecture: str, input_shape: tuple[int, ...],
                   n_classes: int, *, first_share: float = LADDER_FIRST_SHARE, step: float = LADDER_STEP,
                   most: int = LADDER_RUNGS, vocabulary: int | None = None) -> list[tuple[str, int]]:
    """Students of the teacher's own kind and depth, narrower, widest first, each with its
    parameter count: the first with at most ``first_share`` of the teacher's, every next at most
    ``step`` of the one before, at most ``most`` of them, so the smallest student within a
    budget is found in a few rungs.  The teacher's depth matters: on a user's Conv1D teacher of
    three convolutions, students of two lost several points on validation after a quarter of
    their training, students of three of the same size ended close to it on the test split
    (measured: docs/benchmarks.md,
    "`distill:max_drop=1`: the smallest student within the budget (issue 31)").
    When these give fewer than two rungs, the shallower students of ``derive_student``, then
    for images depthwise-separable residual ones (a teacher that pools globally outweighs any
    Flatten head); else the family with the most.  Empty when nothing is small enough.
    A recurrent teacher keeps recurrent rungs although its text-CNN students run faster: a
    ladder of text CNNs was tried and certified fewer answers (docs/benchmarks.md, "Text
    models")."""
    kind = data_kind(input_shape, vocabulary)
    families = [
        [spec for s in LADDER_SHRINKS
         if (spec := _as_deep(teacher, teacher_architecture, input_shape, s, vocabulary))],
        [derive_student(teacher, teacher_architecture, input_shape, s, vocabulary) for s in LADDER_SHRINKS],
        list(LADDER_DSRES) if kind == "image" else []]
    best: list[tuple[str, int]] = []
    for specs in families:
        rungs = _rungs(specs, teacher.count_params(), input_shape, n_classes, first_share, step, most,
                       vocabulary)
        if len(rungs) > 1:
            return rungs
        best = max(best, rungs, key=len)
    return best


def _rungs(specs: Sequence[str], teacher_params: int, input_shape: tuple[int, ...], n_classes: int,
           first_share: float, step: float, most: int, vocabulary: int | None) -> list[tuple[str, int]]:
    sized = sorted(((spec, build_model(spec, input_shape, n_classes, seed=0,
                                       vocabulary=vocabulary).count_params())
                    for spec in dict.fromkeys(specs)), key=lambda item: -item[1])
    limit, rungs = teacher_params * first_share, []
    for spec, params in sized:
        if params <= limit and len(rungs) < most:
            rungs.append((spec, params))
            limit = params * step
    return rungs


def _read_architecture(model: keras.Model, kind: str) -> Architecture:
    """The widths of a user's model, as the closest built-in architecture of its kind."""
    layers = keras.layers
    if kind == "tokens":
        return _read_text_architecture(model)
    convs = [layer.filters for layer in model.layers
             if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.SeparableConv1D,
                                   layers.SeparableConv2D)) and not isinstance(layer, layers.DepthwiseConv2D)]
    dense = [layer.units for layer in model.layers if isinstance(layer, layers.Dense)][:-1]
    if kind == "sequence" and convs:
        return Architecture("cnn1d", tuple(convs), tuple(dense) or (64,))
    if kind == "image" and convs:
        return Architecture("cnn", tuple(convs), tuple(dense) or (64,))
    return Architecture("mlp", (), tuple(dense) or (64,))


def _read_text_architecture(model: keras.Model) -> Architecture:
    """A user's text model as the closest built-in text architecture (``read_text_model``)."""
    kind, widths, embedding = read_text_model(model)
    return Architecture(kind, widths, (), embedding)


#: Layers that read token ids or strings.
TOKEN_LAYERS = frozenset({"Embedding", "TextVectorization", "StringLookup", "IntegerLookup"})
#: Layers that take strings: tokenizing is the run's own step (``data.text``), kept out of the
#: models so every row starts from the same ids.
STRING_LAYERS = frozenset({"TextVectorization", "StringLookup"})
