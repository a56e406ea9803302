"""What the quantization families (``quantization``, ``lowbit``) and per-layer sensitivity
share: calibration rows, and litert-quantizer driven from Python (weight recipes on a float
flatbuffer, a probe of what LiteRT computes correctly, the TFLite ops of each Keras layer).

A module of its own because one family never imports another, and ``compress sensitivity``
quantizes one layer at a time the way ``quantize-mixed`` does.
"""

from __future__ import annotations

import functools
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from compress.common.errors import UserError
from compress.common.text import one_line
from compress.models.backend import keras, quiet_stderr, to_tflite
from compress.models.flatbuffer import WeightedOp, kernel_types, weighted_ops
from compress.strategies.base import Skip

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData

#: The families whose output a quantization stage may take in a tuned chain: a model
#: still in float, whatever made it smaller.
FLOAT_MODEL_FAMILIES = ("distillation", "pruning", "clustering", "factorization")


def representative_data(
    x: np.ndarray, samples: int, seed: int
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration batches drawn from the train split (never the test split): token ids stay
    int32, as the model takes them; anything else is float32."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=min(samples, len(x)), replace=False)
    dtype = np.int32 if x.dtype.kind in "iu" else np.float32

    def batches() -> Iterator[list[np.ndarray]]:
        for row in rows:
            yield [x[row : row + 1].astype(dtype)]

    return batches


# litert-quantizer --------------------------------------------------------------------------

#: The integer weight precisions litert-quantizer writes, by name (importing this module
#: imports no TensorFlow, so ``compress sensitivity`` checks a typo at once).
PRECISION_NAMES = ("int8", "int4", "int2")
PRECISIONS = {name: int(name.removeprefix("int")) for name in PRECISION_NAMES}


def _reason(error: BaseException) -> str:
    """One short line from a library error (LiteRT glues several messages into one)."""
    text = one_line(str(error)) or type(error).__name__
    return textwrap.shorten(text, 200, placeholder=" ...")


#: litert-quantizer's calibration data: signature key -> one {input name: batch} per sample.
Calibration = dict[str, list[dict[str, np.ndarray]]]


def run_quantizer(flatbuffer: bytes, configure: Callable[[Any], None], what: str,
                  calibration: Calibration | None = None) -> bytes:
    """Build a ``Quantizer``, let ``configure`` add its recipe, calibrate (static recipes only) and
    quantize; a refusal at any step becomes a Skip naming ``what``."""
    from litert_quantizer import calibrator, quantizer

    try:
        with quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging" and the like
            qt = quantizer.Quantizer(flatbuffer)
            configure(qt)
            qsvs = None
            if calibration is not None:
                qsvs = qt.calibrate(calibration, num_threads=1,
                                    mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
            result = qt.quantize(qsvs, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as error:
        raise Skip(f"litert-quantizer cannot produce {what} for this model: {_reason(error)}") from error
    return bytes(result.quantized_model)


def quantize_weights(flatbuffer: bytes, plan: Sequence[tuple[str, int]], *,
                     block_size: int | None = None) -> bytes:
    """Dynamic-range quantization of the weights: ``plan`` is (scope regex, bits) pairs, and a
    later pair overrides an earlier one where both match.

    With ``block_size`` the Dense (FULLY_CONNECTED) kernels get blockwise scales; litert-quantizer
    has no blockwise convolution, so the other ops keep per-channel scales.  Ops that the recipe
    does not cover, or cannot quantize at that precision, stay as they were (float).
    """
    from litert_quantizer import qtyping

    op, granularity = qtyping.TFLOperationName, qtyping.QuantGranularity

    def configure(qt: Any) -> None:
        for regex, bits in plan:
            qt.add_dynamic_config(regex, op.ALL_SUPPORTED, bits, granularity.CHANNELWISE)
            if block_size is not None:
                qt.add_dynamic_config(regex, op.FULLY_CONNECTED, bits, granularity(f"BLOCKWISE_{block_size}"))

    bits = "/".join(f"int{b}" for b in sorted({b for _, b in plan}, reverse=True))
    return run_quantizer(flatbuffer, configure,
                         f"{bits} weights" + (f" in blocks of {block_size}" if block_size else ""))


#: Relative output error above which a probe says LiteRT computes a precision wrongly, well above
#: what rounding the activations on the fly alone costs (measured: docs/benchmarks.md, "Below 8
#: bits on digits (litert-quantizer)").
PROBE_TOLERANCE = 0.05


@functools.cache
def runtime_defect(kind: str, bits: int, block_size: int | None = None) -> str | None:
    """Why LiteRT cannot compute ``kind`` (CONV_2D or FULLY_CONNECTED) with int``bits`` weights,
    or None when it can.

    A file can load, run and still be wrong: LiteRT 2.3 returns NaN for int2 CONV_2D, which makes
    a uniform int2 CNN score at chance whatever int2 itself costs.  The probe is one layer whose
    weights are integers in the quantized range with the extreme value in every channel and block,
    so quantizing it is exact, and anything beyond activation rounding is the runtime's doing.
    """
    from compress.models.flatbuffer import TFLiteModel

    if kind not in ("CONV_2D", "FULLY_CONNECTED"):
        return None
    qmax = 2 ** (bits - 1) - 1
    rng = np.random.default_rng(0)
    shape = (6, 6, 4) if kind == "CONV_2D" else (256,)  # every block size divides 256
    # Named and zero-initialised: the probe moves neither Keras' name counters nor its RNG.
    layer = (keras.layers.Conv2D(8, 3, padding="same", kernel_initializer="zeros", name="probe_conv")
             if kind == "CONV_2D" else keras.layers.Dense(8, kernel_initializer="zeros", name="probe_dense"))
    model = keras.Sequential([keras.Input(shape, name="probe_input"), layer], name="probe")
    kernel = rng.integers(-qmax, qmax + 1, size=tuple(layer.kernel.shape)).astype(np.float32)
    kernel.reshape(-1, kernel.shape[-1])[::32] = qmax  # the extreme in every channel and block
    layer.set_weights([kernel, np.zeros(8, np.float32)])
    x = rng.normal(size=(16, *shape)).astype(np.float32)
    float_model = to_tflite(model)
    quantized = quantize_weights(float_model, [(".*", bits)], block_size=block_size)
    litert = f"LiteRT {metadata.version('ai-edge-litert')}"
    label = f"{kind} with int{bits} weights" + (f" in blocks of {block_size}" if block_size else "")
    try:
        outputs = TFLiteModel(quantized).predict(x)
    except (RuntimeError, ValueError) as error:
        return f"{litert} cannot run {label}: {_reason(error)}"
    exact = f"on a probe whose int{bits} weights are exact"
    if not np.all(np.isfinite(outputs)):
        return f"{litert} computes {label} wrongly: NaN or inf {exact}"
    reference = TFLiteModel(float_model).predict(x)
    error = float(np.linalg.norm(outputs - reference) / np.linalg.norm(reference))
    if error > PROBE_TOLERANCE:
        return f"{litert} computes {label} wrongly: {error:.0%} off {exact}"
    return None


def runtime_defects(flatbuffer: bytes, bits: int, block_size: int | None = None) -> list[str]:
    """``runtime_defect`` for every op kind that has int``bits`` kernels in this file."""
    kinds = sorted({kind for kind, precision in kernel_types(flatbuffer) if precision == f"int{bits}"})
    found = [runtime_defect(kind, bits, block_size if kind == "FULLY_CONNECTED" else None)
             for kind in kinds]
    return [defect for defect in found if defect]


def require_runs(flatbuffer: bytes, data: TrainingData, what: str) -> None:
    """Load the file in LiteRT and run a few validation rows: a missing kernel is a Skip, not a row."""
    from compress.models.flatbuffer import TFLiteModel

    try:
        outputs = TFLiteModel(flatbuffer).predict(data.x_val[:8])
    except (RuntimeError, ValueError) as error:
        raise Skip(f"LiteRT cannot run {what}: {_reason(error)}") from error
    if outputs.shape != (min(8, len(data.x_val)), data.n_classes):
        raise Skip(f"LiteRT ran {what} but returned outputs of shape {outputs.shape}")
    if not np.all(np.isfinite(outputs)):
        raise Skip(f"LiteRT returns NaN or inf for {what}")


def validation_accuracy(flatbuffer: bytes, data: TrainingData) -> float:
    from compress.models.flatbuffer import TFLiteModel

    return float(np.mean(TFLiteModel(flatbuffer).predict(data.x_val).argmax(axis=1) == data.y_val))


# Keras layers -> TFLite ops --------------------------------------------------------------


def leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer, looking inside nested models: the ones that own weights."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


class LayerGraph:
    """A Keras model's float flatbuffer, with the TFLite ops that compute each quantizable layer.

    An op belongs to the kernel layer whose name is a path component of the op's kernel tensor
    name (the converter writes ``teacher/dense/MatMul``; a folded BatchNorm's name may join it,
    but a BatchNorm owns no kernel).  When that leaves any op with no owner or several, ops and
    kernel layers are paired in order (a separable convolution computes two ops), if their
    counts agree.
    """

    def __init__(self, model: keras.Model) -> None:
        self.float = to_tflite(model)
        ops = weighted_ops(self.float)
        leaves = list(leaf_layers(model))
        names = [layer.name for layer in leaves]
        kernel_layers = [layer.name for layer in leaves
                         if hasattr(layer, "kernel") or hasattr(layer, "depthwise_kernel")]
        owners = []
        for op in ops:
            parts = set(re.split(r"[/;:]", op.kernel))
            matches = [name for name in kernel_layers if name in parts]
            owners.append(matches[0] if len(matches) == 1 else None)
        if None in owners:
            separable = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
            per_op = [layer.name for layer in leaves if layer.name in kernel_layers
                      for _ in range(2 if isinstance(layer, separable) else 1)]
            if len(per_op) != len(ops):
                # layers whose weights the converter turns into Dense ops of their own (attention's
                # projections, a recurrent cell's gates): what blocks the pairing, by name
                blocking = [f"{layer.name} ({type(layer).__name__})" for layer in leaves
                            if layer.weights and layer.name not in kernel_layers and not isinstance(
                                layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                                        keras.layers.Embedding))]
                raise UserError(f"cannot tell which Keras layer each of the {len(ops)} Dense/Conv ops "
                                f"of the TFLite file computes (kernel layers: {', '.join(kernel_layers)}"
                                + (f"; the other ops come from {', '.join(blocking)}" if blocking
                                   else "") + ")")
            owners = per_op
        self.layers: dict[str, list[WeightedOp]] = {}
        for name in names:  # model order
            mine = [op for op, owner in zip(ops, owners, strict=True) if owner == name]
            if mine:
                self.layers[name] = mine

    def regex(self, layer: str) -> str:
        """A recipe regex that matches exactly this layer's ops."""
        return "^(?:" + "|".join(re.escape(op.scope) for op in self.layers[layer]) + ")$"

    def weight_bytes(self, layer: str) -> int:
        return sum(op.weight_bytes for op in self.layers[layer])
