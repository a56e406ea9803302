"""The one module that imports TensorFlow, tf_keras, tfmot and LiteRT, lazily.

tfmot works only with legacy (tf_keras) Keras, and TensorFlow decides which
Keras it uses at import time, so ``TF_USE_LEGACY_KERAS`` must be set before
anything imports TensorFlow.  Keeping every such import here makes that order
impossible to get wrong, and keeps TensorFlow out of the modules that must not
need it (reporting, recommending).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ start-up noise
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its rounding differs run to run

#: TensorFlow's threads per process, for training.  A training step's float sums depend on
#: how many threads share them, so a fixed count gives the same model from the same seed
#: whatever the core count and ``--jobs``; and two workers of two threads each on two cores
#: train slower than two of one (oversubscribed; measured: docs/benchmarks.md, "Default run wall
#: time").  Parallelism comes from workers.
TRAINING_THREADS = 1

warnings.filterwarnings("ignore", module="tensorflow.*")
warnings.filterwarnings("ignore", module="tf_keras.*")
warnings.filterwarnings("ignore", module="tensorflow_model_optimization.*")



@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C++ log lines written straight to file descriptor 2.

    TensorFlow's CUDA probe and LiteRT's "Created TensorFlow Lite XNNPACK
    delegate" bypass every log-level setting; Python exceptions still surface.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _Lazy:
    """A module (or class) imported on first use.

    Importing this module is free: strategies register, ``compress list`` runs
    and reports build without TensorFlow, which loads only when a model is touched.
    LiteRT loads on its own, in a fraction of TensorFlow's import time, so a process that only
    times or scores flatbuffers never imports TensorFlow (measured: docs/benchmarks.md,
    "Figures behind design decisions").
    """

    def __init__(self, name: str, loader: Any) -> None:
        self._name = name
        self._loader = loader

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader()[self._name], attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._loader()[self._name](*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy {self._name}>"


@contextlib.contextmanager
def keras3_unimportable() -> Iterator[None]:
    """Make ``import keras`` (Keras 3) fail at once, unless this process already imported it.

    tfmot's import and TensorFlow's Keras converter import Keras 3 only to find that it is not
    what they work with: tfmot's prune registry looks for ``keras.src.engine`` (Keras 3 has
    none, and falls back), the converter asks whether the model is a Keras 3 layer (ours are
    tf_keras).  That import slowed every process's first conversion and tfmot's import (it pulls
    in scikit-learn, SciPy's statistics and matplotlib; measured: docs/benchmarks.md, "Default
    run wall time"), and it reads the user's ``KERAS_BACKEND``.  An ImportError gives both the
    answer they reach anyway.
    """
    if "keras" in sys.modules:
        yield
        return
    sys.modules["keras"] = None  # type: ignore[assignment]  # "import keras" raises ImportError
    try:
        yield
    finally:
        if "keras" in sys.modules and sys.modules["keras"] is None:
            del sys.modules["keras"]


@functools.cache
def _tensorflow() -> dict[str, Any]:
    with quiet_stderr():
        import tensorflow
        import tf_keras

    tensorflow.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        tensorflow.config.threading.set_intra_op_parallelism_threads(TRAINING_THREADS)
        tensorflow.config.threading.set_inter_op_parallelism_threads(TRAINING_THREADS)
    except RuntimeError:  # this process ran TensorFlow before importing compress
        warnings.warn("TensorFlow ran before compress could set its thread count: models trained "
                      "in this process may differ from the command line's", stacklevel=3)
    return {"tf": tensorflow, "keras": tf_keras}


@functools.cache
def _tfmot() -> dict[str, Any]:
    """tfmot on its own, for the strategies that prune, cluster or train quantization-aware:
    the other processes skip its import (measured: docs/benchmarks.md, "Default run wall time")."""
    _tensorflow()
    with quiet_stderr(), keras3_unimportable():
        import tensorflow_model_optimization
    return {"tfmot": tensorflow_model_optimization}


@functools.cache
def _litert() -> dict[str, Any]:
    with quiet_stderr():
        from ai_edge_litert import schema_py_generated
        from ai_edge_litert.interpreter import Interpreter as interpreter
    return {"tflite_schema": schema_py_generated, "Interpreter": interpreter}


def import_tensorflow() -> None:
    """Import TensorFlow now (a worker process warming up while its parent prepares work)."""
    _tensorflow()


tf: Any = _Lazy("tf", _tensorflow)
tfmot: Any = _Lazy("tfmot", _tfmot)
keras: Any = _Lazy("keras", _tensorflow)
tflite_schema: Any = _Lazy("tflite_schema", _litert)
Interpreter: Any = _Lazy("Interpreter", _litert)

__all__ = [
    "Interpreter",
    "import_tensorflow",
    "keras",
    "quiet_stderr",
    "seed_everything",
    "tf",
    "tflite_schema",
    "tfmot",
    "to_tflite",
]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so initialisation and shuffling repeat."""
    keras.utils.set_random_seed(seed)


class Unconvertible(ValueError):
    """A model the TFLite converter cannot take in the form asked; the message is one line
    that names the layers and what does convert them (a strategy's row skips with it)."""


def loops(model: keras.Model) -> list[str]:
    """The recurrent layers that convert to a ``WHILE`` loop rather than a fused op: every
    ``GRU`` and ``SimpleRNN``, and an ``LSTM`` the fused op cannot take (activations other than
    tanh and sigmoid, recurrent dropout); an unrolled one becomes plain ops."""
    looped = []
    for layer in model.submodules:
        if not isinstance(layer, keras.layers.RNN) or getattr(layer, "unroll", False):
            continue
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM) and config.get("activation") == "tanh" and \
                config.get("recurrent_activation") == "sigmoid" and not config.get("recurrent_dropout"):
            continue
        looped.append(f"{layer.name} ({type(layer).__name__})")
    return looped


#: Full-integer quantization unrolls a recurrent loop of at most this many steps (plain ops,
#: calibrated like any other: a loop's calibration crashes the converter); a float file keeps the
#: ``WHILE`` loop, which an unrolled GRU's file outweighed 2.4 to 4.8 times (docs/benchmarks.md,
#: "Text models").
UNROLL_STEPS = 128


def _steps(layer: keras.layers.Layer) -> int | None:
    """The steps of the sequence a layer of the model's graph reads (None when open)."""
    try:
        shape = layer.input_shape
    except (AttributeError, RuntimeError):
        return None
    return shape[1] if isinstance(shape, tuple) and len(shape) == 3 else None


def _inner(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A Bidirectional's forward layer, which names its loop; any other layer itself."""
    return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer


def to_unroll(model: keras.Model) -> dict[str, int]:
    """The graph's layers holding a recurrent loop (``loops``) of at most ``UNROLL_STEPS`` steps,
    with their steps: they convert unrolled."""
    looped = set(loops(model))
    return {layer.name: steps for layer in model.layers
            if f"{_inner(layer).name} ({type(_inner(layer)).__name__})" in looped
            and (steps := _steps(layer)) is not None and steps <= UNROLL_STEPS}


def unrolled(model: keras.Model) -> keras.Model:
    """The model with every loop of ``to_unroll`` unrolled (the same weights, the same function),
    for full-integer quantization: it calibrates plain ops, where a loop's calibration crashes the
    converter."""
    targets = to_unroll(model)
    if not targets:
        return model

    def rebuilt(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name in targets:
            for key in ("layer", "backward_layer") if isinstance(layer, keras.layers.Bidirectional) else ():
                if key in config:
                    config[key] = {**config[key], "config": {**config[key]["config"], "unroll": True}}
            if not isinstance(layer, keras.layers.Bidirectional):
                config["unroll"] = True
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=rebuilt)
    copy.set_weights(model.get_weights())
    return copy


def recurrent(model: keras.Model) -> list[str]:
    """The recurrent layers of a model (``LSTM``, ``GRU``, ``Bidirectional``'s, inside any
    wrapper), as "name (Class)"."""
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.submodules
            if isinstance(layer, keras.layers.RNN)]


def recurrent_conversion(model: keras.Model) -> str | None:
    """How the model's recurrent layers convert, in one line (None without any): which become
    LiteRT's fused LSTM, which a ``WHILE`` loop (and why), which plain ops (unrolled)."""
    looped = set(loops(model))
    targets = to_unroll(model)
    short = {f"{rnn.name} ({type(rnn).__name__})" for layer in model.layers if layer.name in targets
             for rnn in ([layer.layer, layer.forward_layer, layer.backward_layer]
                         if isinstance(layer, keras.layers.Bidirectional) else [layer])}
    loop = "a WHILE loop (only an LSTM with tanh and sigmoid and no recurrent dropout has a fused op"
    kinds: dict[str, list[str]] = {}
    for layer in model.submodules:
        if isinstance(layer, keras.layers.RNN):
            named = f"{layer.name} ({type(layer).__name__})"
            kind = ("plain ops (unrolled)" if getattr(layer, "unroll", False) else
                    f"{loop}; unrolled for full-integer quantization)" if named in short else
                    f"{loop}; over more than {UNROLL_STEPS} steps, not unrolled for full-integer "
                    "quantization)" if named in looped else "the fused UNIDIRECTIONAL_SEQUENCE_LSTM")
            kinds.setdefault(kind, []).append(named)
    if not kinds:
        return None
    return "recurrent: " + "; ".join(f"{', '.join(names)} as {kind}" for kind, names in kinds.items()) + \
        "; one row a call"


def fixed_batch(model: keras.Model) -> bool:
    """Whether the model converts only for a batch of one: recurrent layers do, since their loop
    needs static shapes; the LSTM then becomes the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM``, whose
    state is sized for that batch, so such a file runs one row at a time, as a device runs it."""
    return bool(recurrent(model))


def to_tflite(
    model: keras.Model,
    *,
    optimize: bool = False,
    float16: bool = False,
    representative: object | None = None,
    int8_io: bool = False,
) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    With ``representative`` (an iterable factory of ``[x]`` batches) the model
    is fully integer-quantized; ``int8_io`` also makes its input and output
    int8.  Every strategy and measurement goes through this one converter so
    that rows differ only in what the strategy did.
    """
    if representative is not None:
        model = unrolled(model)
    if representative is not None and (looped := loops(model)):
        raise Unconvertible(f"the TFLite converter cannot calibrate the loop of {', '.join(looped)} "
                            f"for full-integer quantization (a GRU's crashes its process), and it runs "
                            f"over more than {UNROLL_STEPS} steps to unroll; dynamic-range and float16 "
                            "quantization convert it")
    if fixed_batch(model):
        spec = tf.TensorSpec([1, *model.input_shape[1:]], model.inputs[0].dtype)
        function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimize or float16 or representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if float16:
        converter.target_spec.supported_types = [tf.float16]
    if representative is not None:
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with quiet_stderr(), keras3_unimportable():
        return bytes(converter.convert())
