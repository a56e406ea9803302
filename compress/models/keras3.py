"""Keras 3 ``.keras`` files, rebuilt as tf_keras models: the one module that reads them.

tfmot works only with tf_keras, and tf_keras cannot load a Keras 3 file (its configs differ), yet
Keras 3 is what ``import keras`` saves on TensorFlow ≥ 2.16.  So the file is translated: the
model is rebuilt layer by layer from ``config.json`` with the equivalent tf_keras layers, and
the weights are copied from ``model.weights.h5``.  Translation reads only data (JSON and HDF5
arrays) and never executes code from the file, so it needs no ``--trust-model``; any layer,
activation, option or nested object without an exact tf_keras equivalent is refused with a
one-line ``UserError`` instead of being approximated.

The translation is then proved, not assumed: ``check_translation`` compares its predictions
with Keras 3's own.  Those come from a child process (``sys.executable -c``).  Keras 3 can load
and run the file in this process too (tried with TF 2.21 and Keras 3.15 next to tf_keras), but
not soundly:

* Keras 3 takes its backend from the user's ``KERAS_BACKEND`` or ``~/.keras/keras.json`` at its
  first import, and tfmot already imports the ``keras`` package here: with
  ``KERAS_BACKEND=numpy`` an in-process load fails (that backend needs jax), with ``jax`` it would
  run another backend.  The child is given ``KERAS_BACKEND=tensorflow`` and the run's own
  environment is left alone.
* Loading a model changes global state the run relies on: a Keras 3 ``Dropout`` draws its seed
  from Python's global ``random`` (tried: a seeded ``random.random()`` changes), and both Keras
  share one TensorFlow runtime.  In a child, nothing Keras 3 does with the user's file can touch
  the tf_keras models or the reproducibility of the run that follows.

The price is one Python start-up and TensorFlow import per teacher load (measured:
docs/benchmarks.md, "Figures behind design decisions").
Keras 3 loads the file with ``safe_mode=True``, and only after ``translate`` has accepted it,
so it only ever sees standard Keras layers and objects.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from compress.common.errors import UserError
from compress.common.fileio import cache_dir, write_atomic
from compress.models.architectures import TOKEN_LAYERS
from compress.models.backend import keras

#: Largest absolute difference between Keras 3's and the translation's predictions accepted.
TOLERANCE = 1e-5

#: Keras 3 layers whose tf_keras namesake takes the same config and weights.
LAYERS = frozenset({
    "Dense", "Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D", "BatchNormalization", "LayerNormalization",
    "GroupNormalization", "UnitNormalization", "Normalization", "Rescaling", "Activation", "ReLU",
    "LeakyReLU", "ELU", "PReLU", "Softmax", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "Flatten", "Reshape", "Permute", "ZeroPadding1D", "ZeroPadding2D",
    "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "LSTM", "GRU", "SimpleRNN",
    "MultiHeadAttention", "Embedding",
})

#: Where a layer's arrays sit in its weight group, in the order its tf_keras equivalent lists
#: its weights: a recurrent layer's in its cell, a Bidirectional's in its forward and backward
#: layers, an attention layer's in its four projections.
_WEIGHT_PATHS: dict[str, tuple[str, ...]] = {
    "LSTM": ("cell/vars",), "GRU": ("cell/vars",), "SimpleRNN": ("cell/vars",),
    "Bidirectional": ("forward_layer/cell/vars", "backward_layer/cell/vars"),
    "MultiHeadAttention": ("query_dense/vars", "key_dense/vars", "value_dense/vars",
                           "output_dense/vars"),
}

#: Layers whose Keras 3 ``seed`` option tf_keras lacks; it only seeds their dropout in
#: training, so it is dropped, whatever its value (a Dropout layer keeps its seed in both).
_SEEDED_IN_KERAS3_ONLY = frozenset({"LSTM", "GRU", "SimpleRNN", "MultiHeadAttention"})

#: Augmentation layers: they change inputs in training only, so the translation leaves them out
#: (its predictions are still checked against Keras 3's).
INFERENCE_IDENTITY = frozenset({
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomBrightness",
})

#: Activations whose tf_keras function of the same name computes the same values (checked one
#: by one; Keras 3's hard_sigmoid is relu6(x + 3) / 6 but tf_keras's is 0.2·x + 0.5).
ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish",
    "sigmoid", "tanh", "softmax", "log_softmax", "softplus", "softsign", "exponential",
})

#: Keras 3-only options, and the value at which leaving them out changes nothing.
_KERAS3_ONLY: dict[str, dict[str, Any]] = {
    "Dense": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "Embedding": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "LayerNormalization": {"rms_scaling": False},
    "MultiHeadAttention": {"use_gate": False, "sliding_window": None},
    "ZeroPadding1D": {"data_format": "channels_last"},
}

#: Options tf_keras's ``from_config`` requires and Keras 3 does not write, at their defaults.
_TF_KERAS_ONLY: dict[str, dict[str, Any]] = {
    "MultiHeadAttention": {"query_shape": None, "key_shape": None, "value_shape": None},
}

#: Options tf_keras spells differently.
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}

#: Keras 3 models that are graphs of layers; anything else is a subclassed model.
_MODELS = frozenset({"Sequential", "Functional"})

_OBJECT_FAMILIES = ("initializers", "regularizers", "constraints")

_REFERENCE = (
    "import sys\n"
    "import numpy as np\n"
    "import keras\n"
    "model = keras.saving.load_model(sys.argv[1], compile=False, safe_mode=True)\n"
    "np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), batch_size=1024, verbose=0)))\n"
)


#: Why a model with its own lookup layers is refused.
LOOKUPS_OUTSIDE = ("compress tokenizes texts itself, fitted on the train split, so every model "
                   "starts from the same token ids; save the model from its Embedding on, and give "
                   "its token ids (an .npz with --tokens) or the raw texts (a table's text column)")


def is_keras3_file(path: Path) -> bool:
    """A zip whose ``metadata.json`` names Keras 3 (tf_keras writes its own 2.x version)."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(metadata, dict) and str(metadata.get("keras_version", "")).startswith("3")


def translate(path: Path) -> keras.Model:
    """The Keras 3 model in ``path`` as an equivalent tf_keras model, built from data only."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
        with h5py.File(io.BytesIO(weights), "r") as store:
            if not isinstance(config, dict) or config.get("class_name") not in _MODELS:
                kind = config.get("class_name") if isinstance(config, dict) else None
                raise UserError(f"{path.name} holds a {kind} model, not a Sequential or Functional "
                                "one, so it has no layer graph to translate; rebuild it from standard "
                                "layers, or save it as a tf_keras model")
            return _model(config, store)
    except (OSError, KeyError, IndexError, TypeError, AttributeError, zipfile.BadZipFile,
            json.JSONDecodeError) as error:
        raise UserError(f"{path.name} is a damaged or unusual Keras 3 file ({type(error).__name__}: "
                        f"{_first_line(error)}); re-save it, or save it as a tf_keras model") from None


def check_translation(path: Path, translated: keras.Model, x: np.ndarray, *, use_cache: bool = True) -> float:
    """The largest absolute difference between Keras 3's predictions for ``x`` and ``translated``'s.

    Keras 3 runs in a child process (see the module docstring for why), once per file, inputs
    and versions: its predictions are cached, so a later run of the same teacher on the same
    data skips the child (measured: docs/benchmarks.md, "Figures behind design decisions").
    """
    x = np.asarray(x, dtype=np.int32 if np.asarray(x).dtype.kind in "iu" else np.float32)  # ids stay ids
    reference = _keras3_predictions(Path(path), x, use_cache)
    mine = np.asarray(translated.predict(x, batch_size=1024, verbose=0))
    if mine.shape != reference.shape:
        raise UserError(f"{Path(path).name}: the translated model predicts shape {mine.shape} but "
                        f"Keras 3 {reference.shape}; save the model as a tf_keras model")
    return float(np.max(np.abs(mine - reference))) if mine.size else 0.0


def _keras3_predictions(path: Path, x: np.ndarray, use_cache: bool) -> np.ndarray:
    """What Keras 3 itself predicts for ``x`` from the file, from the cache when it ran before
    on the same bytes, inputs, Keras and TensorFlow."""
    digest = hashlib.sha256(path.read_bytes())
    digest.update(x.tobytes() + str(x.shape).encode())
    for package in ("keras", "tensorflow"):
        try:
            digest.update(metadata.version(package).encode())
        except metadata.PackageNotFoundError:
            digest.update(b"-")
    cached = cache_dir() / "keras3" / f"{digest.hexdigest()[:32]}.npy"
    if use_cache and cached.exists():
        return np.load(cached)
    with tempfile.TemporaryDirectory(prefix="compress-keras3-") as folder:
        inputs, outputs = Path(folder) / "x.npy", Path(folder) / "predictions.npy"
        np.save(inputs, x)
        environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        environment["KERAS_BACKEND"] = "tensorflow"
        # cwd is the empty folder, so no module lying next to the user's files can shadow keras.
        done = subprocess.run(
            [sys.executable, "-c", _REFERENCE, str(path.resolve()), str(inputs), str(outputs)],
            cwd=folder, env=environment, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise UserError(f"{path.name}: Keras 3 could not run the file to check its "
                            f"translation: {why}")
        reference = np.load(outputs)
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, _npy_bytes(reference))
    return reference


def _npy_bytes(array: np.ndarray) -> bytes:
    """An array as .npy bytes, for an atomic write."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _snake(name: str) -> str:
    """Keras 3's ``to_snake_case``: weight groups are named after layer classes, not layers."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _weight_groups(store: h5py.Group, classes: list[str]) -> list[h5py.Group | None]:
    """Each layer's weight group, named as Keras 3 names them: by class, in layer order
    (``dense``, ``dense_1``, ...), since layer names need not be reproducible."""
    layers = store.get("layers", {})
    used: dict[str, int] = {}
    groups = []
    for class_name in classes:
        base = _snake(class_name)
        used[base] = used.get(base, -1) + 1
        key = base if used[base] == 0 else f"{base}_{used[base]}"
        groups.append(layers.get(key))
    return groups


def _class_name(spec: dict) -> str:
    return str(spec.get("class_name"))


def _augmentation(spec: dict) -> bool:
    """A Keras augmentation layer (identity at inference): left out of the translation."""
    return _class_name(spec) in INFERENCE_IDENTITY and str(spec.get("module") or "") == "keras.layers" \
        and spec.get("registered_name") is None


def _name(spec: dict) -> str:
    return str(spec.get("name") or spec.get("config", {}).get("name"))


def _model(spec: dict, store: h5py.Group) -> keras.Model:
    """A Sequential or Functional model with its weights (nested models recurse here)."""
    config = spec["config"]
    if spec["class_name"] == "Sequential":
        return _sequential(config, store)
    return _functional(config, store)


def _input(config: dict) -> Any:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    where = f"input {config['name']!r}"
    return keras.Input(batch_shape=tuple(shape), dtype=_dtype(config.get("dtype"), where),
                       sparse=bool(config.get("sparse")), name=config["name"])


def _sequential(config: dict, store: h5py.Group) -> keras.Model:
    specs = list(config["layers"])
    if specs and specs[0]["class_name"] == "InputLayer":
        inputs = _input(specs.pop(0)["config"])
    elif config.get("build_input_shape"):
        inputs = keras.Input(batch_shape=tuple(config["build_input_shape"]))
    else:
        raise UserError(f"model {config['name']!r} was never built, so it has no weights; train "
                        "or build it before saving")
    groups = _weight_groups(store, [spec["class_name"] for spec in specs])
    kept = [(spec, group) for spec, group in zip(specs, groups, strict=True) if not _augmentation(spec)]
    specs, groups = [spec for spec, _ in kept], [group for _, group in kept]
    layers = [_layer(spec, group) for spec, group in zip(specs, groups, strict=True)]
    try:
        model = keras.Sequential([inputs, *layers], name=config["name"])
    except (TypeError, ValueError) as error:
        raise UserError(f"model {config['name']!r} cannot be rebuilt in tf_keras ({_first_line(error)}); "
                        "save it as a tf_keras model") from None
    for layer, spec, group in zip(layers, specs, groups, strict=True):
        _set_weights(layer, spec, group)
    return model


def _functional(config: dict, store: h5py.Group) -> keras.Model:
    """Rebuild the graph node by node, as Keras 3 does: a shared layer may be listed before the
    layers that feed its later calls, so nodes wait until their inputs exist."""
    specs = config["layers"]
    groups = _weight_groups(store, [s["class_name"] for s in specs])
    built: dict[str, tuple[Any, dict, h5py.Group | None]] = {}
    outputs: dict[str, list[list[Any]]] = {}  # each layer's output tensors, call by call
    pending = []
    for spec, group in zip(specs, groups, strict=True):
        name = _name(spec)
        if spec["class_name"] == "InputLayer":
            outputs[name] = [[_input(spec["config"])]]
            continue
        built[name] = (None if _augmentation(spec) else _layer(spec, group), spec, group)
        outputs[name] = []
        pending.extend((name, node) for node in spec["inbound_nodes"])
    while pending:
        waiting = []
        for name, node in pending:
            layer = built[name][0]
            where = f"layer {name!r} ({_class_name(built[name][1])})"
            # A layer's calls are made in order: its outputs are referred to by call number.
            ready = not any(n == name for n, _ in waiting)
            arguments = _tensors(node.get("args", []), outputs, where) if ready else None
            if arguments is None:
                waiting.append((name, node))
                continue
            options = _call_options(node.get("kwargs") or {}, where)
            if layer is None:  # left out: its output is its input
                outputs[name].append([arguments[0]])
                continue
            try:
                result = layer(*arguments, **options)
            except (TypeError, ValueError) as error:
                raise UserError(f"{where} cannot be called in tf_keras ({_first_line(error)}); save "
                                "the model as a tf_keras model") from None
            outputs[name].append(list(result) if isinstance(result, list | tuple) else [result])
        if len(waiting) == len(pending):
            raise UserError(f"model {config['name']!r}: the layer graph cannot be rebuilt (layers "
                            f"{sorted({n for n, _ in waiting})} never get their inputs)")
        pending = waiting

    kinds = {_name(spec): spec["class_name"] for spec in specs}

    def tensor(reference: Any) -> Any:
        if isinstance(reference, list) and len(reference) == 3 and isinstance(reference[0], str):
            name, node, index = reference
            # A Functional model counts its own inner graph as call 0 in these references.
            return outputs[name][node - (kinds[name] == "Functional")][index]
        if isinstance(reference, dict):
            return {key: tensor(value) for key, value in reference.items()}
        return [tensor(value) for value in reference]

    model = keras.Model(tensor(config["input_layers"]), tensor(config["output_layers"]),
                        name=config["name"])
    for layer, spec, group in built.values():
        if layer is not None:
            _set_weights(layer, spec, group)
    return model


def _tensors(value: Any, outputs: dict[str, list[list[Any]]], where: str) -> Any:
    """A node's arguments with each serialized tensor replaced by the rebuilt one; None while
    one of them is not built yet."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        if name not in outputs:
            raise UserError(f"{where} takes the output of {name!r}, which the file does not hold")
        calls = outputs[name]
        return calls[node][index] if node < len(calls) else None
    if isinstance(value, list):
        items = [_tensors(item, outputs, where) for item in value]
        return None if any(item is None for item in items) else items
    raise UserError(f"{where} is called with a {type(value).__name__} argument ({value!r}), which "
                    "cannot be translated; pass only tensors between layers")


def _call_options(kwargs: dict, where: str) -> dict:
    """Keyword arguments of one call: masks are empty, and ``training`` keeps its meaning."""
    options = {}
    for key, value in kwargs.items():
        if key == "training" and isinstance(value, bool):
            options[key] = value
        elif value is not None:
            raise UserError(f"{where} is called with {key}={value!r}, which cannot be translated; "
                            "call it on its inputs only")
    return options


def _layer(spec: dict, group: h5py.Group | None) -> Any:
    """A tf_keras layer equivalent to one Keras 3 layer, not yet holding its weights; a nested
    model comes back whole, with its weights."""
    name, class_name = _name(spec), spec.get("class_name")
    module, registered = str(spec.get("module") or ""), spec.get("registered_name")
    if class_name == "Lambda":
        raise UserError(f"layer {name!r} is a Lambda layer: Lambda layers hold Python code and cannot "
                        "be translated; replace it with standard layers, or save the model as a "
                        "tf_keras model")
    if class_name in _MODELS and module.startswith("keras") and registered in (None, class_name):
        return _model(spec, group if group is not None else {})
    if module.startswith("keras.src.ops"):
        raise UserError(f"{name!r} is a keras.ops call ({class_name}) inside the model, which cannot "
                        "be translated; use the matching layer instead (keras.layers.Add for x + y, "
                        "Activation for keras.ops.relu), or save the model as a tf_keras model")
    if class_name in TOKEN_LAYERS and class_name != "Embedding":
        raise UserError(f"layer {name!r} ({class_name}) maps strings or ids inside the model: "
                        f"{LOOKUPS_OUTSIDE}")
    if class_name == "Bidirectional" and module == "keras.layers" and registered is None:
        return _bidirectional(spec)
    if class_name not in LAYERS or module != "keras.layers" or registered is not None:
        raise UserError(f"layer {name!r} ({class_name}) has no tf_keras equivalent; re-save the model "
                        "with standard layers or as a tf_keras model")
    where = f"layer {name!r} ({class_name})"
    options = dict(_TF_KERAS_ONLY.get(class_name, {}))
    neutral = _KERAS3_ONLY.get(class_name, {})
    renamed = _RENAMED.get(class_name, {})
    for key, value in spec["config"].items():
        if key == "seed" and class_name in _SEEDED_IN_KERAS3_ONLY:
            continue
        if key in neutral:
            if value != neutral[key]:
                raise UserError(f"{where} sets {key}={value!r}, which tf_keras lacks; re-save the "
                                "model without it, or as a tf_keras model")
            continue
        options[renamed.get(key, key)] = _option(key, value, where)
    try:
        return getattr(keras.layers, class_name).from_config(options)
    except (TypeError, ValueError) as error:
        raise UserError(f"{where} cannot be rebuilt in tf_keras: {_first_line(error)}; "
                        "re-save the model with default options, or as a tf_keras model") from None


def _bidirectional(spec: dict) -> Any:
    """A Bidirectional wrapper around the translations of its forward and backward layers."""
    config, where = spec["config"], f"layer {_name(spec)!r} (Bidirectional)"
    inner = [config.get("layer"), config.get("backward_layer")]
    if not isinstance(inner[0], dict):
        raise UserError(f"{where} holds no layer to wrap; save the model as a tf_keras model")
    forward, backward = (None if layer is None else _layer(layer, None) for layer in inner)
    try:
        return keras.layers.Bidirectional(forward, merge_mode=config.get("merge_mode", "concat"),
                                          backward_layer=backward, name=_name(spec))
    except (TypeError, ValueError) as error:
        raise UserError(f"{where} cannot be rebuilt in tf_keras: {_first_line(error)}; save the model "
                        "as a tf_keras model") from None


def _option(key: str, value: Any, where: str) -> Any:
    if key == "dtype":
        return _dtype(value, where)
    if key == "activation":
        return _activation(value, where)
    if isinstance(value, dict) and "class_name" in value:
        return _object(value, where)
    return value


def _dtype(value: Any, where: str) -> str | None:
    """A dtype policy's name; quantized policies hold integer weights tf_keras cannot take."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        return value["config"]["name"]
    raise UserError(f"{where} uses the dtype policy {value.get('class_name')!r} (a quantized "
                    "layer), which tf_keras cannot hold; save the float model")


def _activation(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where} uses a custom activation function, which cannot be translated; "
                        "use a standard activation, or save the model as a tf_keras model")
    if value == "hard_sigmoid":
        raise UserError(f"{where} uses activation 'hard_sigmoid', which tf_keras defines "
                        "differently (0.2·x + 0.5, not relu6(x + 3) / 6); use another activation, "
                        "or save the model as a tf_keras model")
    if value not in ACTIVATIONS:
        raise UserError(f"{where} uses activation {value!r}, which tf_keras lacks; use a standard "
                        "activation, or save the model as a tf_keras model")
    return value


def _object(value: dict, where: str) -> Any:
    """A built-in initializer, regularizer or constraint, made by tf_keras from its name."""
    module, class_name = str(value.get("module") or ""), value["class_name"]
    family = next((f for f in _OBJECT_FAMILIES if module.startswith("keras") and f in module), None)
    if family is None or value.get("registered_name") is not None:
        raise UserError(f"{where} holds a {class_name} object from {module or 'an unknown module'}, "
                        "which cannot be translated; re-save the model with standard layers, or as "
                        "a tf_keras model")
    # Keras 3 added fan axes to initializers; left unset they mean what tf_keras does.
    config = {k: v for k, v in (value.get("config") or {}).items()
              if not (k in ("input_axes", "output_axes") and v is None)}
    try:
        return getattr(keras, family).get({"class_name": class_name, "config": config})
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: its {class_name} cannot be made in tf_keras "
                        f"({_first_line(error)}); re-save the model with standard "
                        "initializers, or as a tf_keras model") from None


def _set_weights(layer: Any, spec: dict, group: h5py.Group | None) -> None:
    """Copy one leaf layer's arrays; Keras 3 stores them in the order tf_keras lists weights."""
    if isinstance(layer, keras.Model):
        return  # a nested model set its own weights when it was built
    arrays = []
    for path in _WEIGHT_PATHS.get(spec["class_name"], ("vars",)):
        variables = {} if group is None else group.get(path, {})
        arrays += [np.asarray(variables[key]) for key in sorted(variables, key=int)]
    expected = [tuple(weight.shape) for weight in layer.weights]
    if [a.shape for a in arrays] != expected:
        raise UserError(f"layer {_name(spec)!r} ({spec['class_name']}) holds weights of shapes "
                        f"{[a.shape for a in arrays]} but its tf_keras equivalent has {expected}; "
                        "save the model as a tf_keras model")
    layer.set_weights(arrays)
