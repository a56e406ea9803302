"""Below int8 with litert-quantizer: int4 and int2 weights, int16 activations, mixed int4/int8.

The TFLite converter stops at 8 bits.  litert-quantizer (Google's post-training quantizer for
.tflite files) rewrites the teacher's float flatbuffer from a *recipe*: which ops, matched by a
regex on their output tensor names, get which weight and activation precision.  A recipe can
ask for more than the runtime executes, so every strategy here runs its result in LiteRT on a
few validation rows and turns anything the quantizer or the runtime refuses into a ``Skip``
that says why.  Notes are read back from the file, not from the recipe.
"""

from __future__ import annotations

import functools
import math
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from compress.common.errors import UserError
from compress.models.backend import keras, quiet_stderr, to_tflite
from compress.models.flatbuffer import (
    WeightedOp,
    kernel_types,
    signature_input,
    weighted_ops,
)
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.quantization import FLOAT_MODEL_FAMILIES, representative_data

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData

#: The integer weight precisions litert-quantizer writes, by name (importing this module
#: imports no TensorFlow, so ``compress sensitivity`` checks a typo at once).
PRECISION_NAMES = ("int8", "int4", "int2")
PRECISIONS = {name: int(name.removeprefix("int")) for name in PRECISION_NAMES}
GRANULARITIES = ("channel", "block")
BLOCK_SIZES = (32, 64, 128, 256)  # the block sizes litert-quantizer offers
_DYNAMIC_NOTE = ("Activations stay float32 in the file; the kernels quantize them on the fly "
                 "(dynamic range), so only the weights shrink.")


# litert-quantizer --------------------------------------------------------------------------


def _reason(error: BaseException) -> str:
    """One short line from a library error (LiteRT glues several messages into one)."""
    text = " ".join(str(error).split()) or type(error).__name__
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


#: Relative output error above which a probe says LiteRT computes a precision wrongly; rounding
#: the activations on the fly alone costs about 0.7%.
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
                raise UserError(f"cannot tell which Keras layer each of the {len(ops)} Dense/Conv ops "
                                f"of the TFLite file computes (kernel layers: {', '.join(kernel_layers)})")
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


# Strategies ------------------------------------------------------------------------------


class _LowBitWeights(Strategy):
    """Every Dense/Conv kernel at ``bits``, activations float: the converter cannot go below int8."""

    family = "quantization"
    produces_tflite = True
    bits: ClassVar[int]
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"granularity": Choice(GRANULARITIES)}
    follows = FLOAT_MODEL_FAMILIES
    cost = 0.0

    def __init__(self, granularity: str = "channel", block_size: int = 32) -> None:
        self.granularity = granularity
        self.block_size = block_size
        self._check(granularity in GRANULARITIES,
                    f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        self._check(block_size in BLOCK_SIZES, f"block_size must be one of "
                    f"{', '.join(map(str, BLOCK_SIZES))} (litert-quantizer's sizes), got {block_size}")

    def compress(self, ctx: Context) -> Compressed:
        block = self.block_size if self.granularity == "block" else None
        what = f"int{self.bits} weights " + (f"in blocks of {block}" if block else "per output channel")
        flatbuffer = quantize_weights(to_tflite(ctx.teacher), [(".*", self.bits)], block_size=block)
        if f"int{self.bits}" not in {precision for _, precision in kernel_types(flatbuffer)}:
            raise Skip(f"litert-quantizer quantized no layer of this model to {what} "
                       "(it does int4/int2 for Dense and Conv2D kernels only)")
        defects = runtime_defects(flatbuffer, self.bits, block)
        if defects:
            raise Skip("; ".join(defects))
        require_runs(flatbuffer, ctx.data, what)
        fallback = (" litert-quantizer has no blockwise convolution, so convolutions keep one scale "
                    "per output channel.") if block else ""
        return Compressed(tflite=flatbuffer, notes=f"{_DYNAMIC_NOTE}{fallback}")


@register
class QuantizeInt4(_LowBitWeights):
    name = "quantize-int4"
    summary = "int4 weights (litert-quantizer, dynamic range): about 8x smaller than float."
    bits = 4


@register
class QuantizeInt2(_LowBitWeights):
    name = "quantize-int2"
    summary = "int2 weights (litert-quantizer, dynamic range): the extreme case, measured."
    bits = 2


@register
class QuantizeInt16x8(Strategy):
    name = "quantize-int16x8"
    family = "quantization"
    tunable: ClassVar[dict[str, Range | Choice] | None] = {}
    follows = FLOAT_MODEL_FAMILIES
    cost = 0.0
    summary = "Static 16x8 (litert-quantizer): int16 activations, int8 weights, calibrated on train data."
    fast_params: ClassVar[dict[str, Any]] = {"samples": 20}
    produces_tflite = True

    def __init__(self, samples: int = 200) -> None:
        self.samples = samples
        self._check(samples >= 1, f"samples must be at least 1, got {samples}")

    def compress(self, ctx: Context) -> Compressed:
        from litert_quantizer import algorithm_manager, qtyping

        flatbuffer = to_tflite(ctx.teacher)
        try:
            signature, name = signature_input(flatbuffer)
        except UserError as error:
            raise Skip(str(error)) from error
        op = qtyping.TFLOperationName

        def configure(qt: Any) -> None:
            qt.add_static_config(".*", op.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8)
            for io in (op.INPUT, op.OUTPUT):  # float in and out, like quantize-int8
                qt.update_quantization_recipe(".*", io, None, algorithm_manager.AlgorithmName.NO_QUANTIZE)

        what = "int16 activations with int8 weights"
        batches = representative_data(ctx.data.x_train, self.samples, ctx.seed)
        quantized = run_quantizer(flatbuffer, configure, what, {signature: [{name: x} for (x,) in batches()]})
        require_runs(quantized, ctx.data, what)
        return Compressed(tflite=quantized, notes=(
            f"Activation ranges from {self.samples} train rows; float input "
            "and output through QUANTIZE/DEQUANTIZE ops."))


@register
class QuantizeMixed(Strategy):
    name = "quantize-mixed"
    family = "quantization"
    summary = "Per-layer mixed precision: int4 (or int2) where validation accuracy allows, int8 elsewhere."
    produces_tflite = True
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"max_drop": Range(0.25, 2.0, step=0.25)}
    follows = FLOAT_MODEL_FAMILIES
    cost = 0.5  # one validation pass per layer

    def __init__(self, max_drop: float = 0.5, low: str = "int4") -> None:
        self.max_drop = max_drop
        self.low = low
        self._check(low in ("int4", "int2"), f"low must be int4 or int2, got {low!r}")
        self._check(math.isfinite(max_drop) and max_drop >= 0,
                    f"max_drop must be 0 or more percentage points, got {max_drop}")

    def compress(self, ctx: Context) -> Compressed:
        try:
            graph = LayerGraph(ctx.teacher)
        except UserError as error:
            raise Skip(str(error)) from error
        low = PRECISIONS[self.low]
        defects = {name: {d for op in graph.layers[name] if (d := runtime_defect(op.kind, low))}
                   for name in graph.layers}
        runnable = [name for name in graph.layers if not defects[name]]

        def build(layers: Sequence[str]) -> bytes:
            return quantize_weights(graph.float, [(".*", 8), *((graph.regex(n), low) for n in layers)])

        def accuracy(flatbuffer: bytes) -> float:
            return validation_accuracy(flatbuffer, ctx.data)

        int8 = build(())
        require_runs(int8, ctx.data, "int8 weights")
        base, floor = accuracy(int8), accuracy(int8) - self.max_drop / 100
        chosen, flatbuffer, score, all_low = [], int8, base, math.nan
        if runnable:
            everything = build(runnable)
            require_runs(everything, ctx.data, f"{self.low} weights")
            all_low = accuracy(everything)
            if all_low >= floor and len(everything) <= len(int8):
                chosen, flatbuffer, score = runnable, everything, all_low
            else:
                # Least sensitive first (alone at low, the rest int8); among equals, the largest saving.
                alone = {name: accuracy(build([name])) for name in runnable}
                for name in sorted(runnable, key=lambda n: (-alone[n], -graph.weight_bytes(n))):
                    trial = build([*chosen, name])
                    trial_score = accuracy(trial)
                    if trial_score >= floor and len(trial) < len(flatbuffer):
                        chosen, flatbuffer, score = [*chosen, name], trial, trial_score
        chosen = [name for name in graph.layers if name in chosen]
        kept = [name for name in graph.layers if name not in chosen]
        plan = "; ".join(f"{label} weights: {', '.join(names)}"
                         for label, names in ((self.low, chosen), ("int8", kept)) if names)
        blocked = "; ".join(sorted({d for found in defects.values() for d in found}))
        why = f" Kept at int8 whatever LiteRT cannot run at {self.low}: {blocked}." if blocked else ""
        return Compressed(tflite=flatbuffer, notes=(
            f"{plan}. Validation accuracy {score:.3f}; int8 everywhere {base:.3f}, {self.low} on every "
            f"layer LiteRT runs at {self.low} {all_low:.3f}; budget {self.max_drop:g} pp below int8.{why} "
            f"{_DYNAMIC_NOTE}"))
