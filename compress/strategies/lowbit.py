"""Below int8 with litert-quantizer: int4 and int2 weights, int16 activations, mixed int4/int8.

The TFLite converter stops at 8 bits.  litert-quantizer (Google's post-training quantizer for
.tflite files) rewrites the teacher's float flatbuffer from a *recipe*: which ops, matched by a
regex on their output tensor names, get which weight and activation precision.  A recipe can
ask for more than the runtime executes, so every strategy here runs its result in LiteRT on a
few validation rows and turns anything the quantizer or the runtime refuses into a ``Skip``
that says why.  Notes are read back from the file, not from the recipe.  Driving the quantizer
is ``strategies.quantizing``'s, which ``compress sensitivity`` shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from compress.common.errors import UserError
from compress.models.backend import to_tflite
from compress.models.flatbuffer import kernel_types, signature_input
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.budget import certifier
from compress.strategies.quantizing import (
    FLOAT_MODEL_FAMILIES,
    PRECISIONS,
    LayerGraph,
    quantize_weights,
    representative_data,
    require_runs,
    run_quantizer,
    runtime_defect,
    runtime_defects,
    validation_accuracy,
)

GRANULARITIES = ("channel", "block")
BLOCK_SIZES = (32, 64, 128, 256)  # the block sizes litert-quantizer offers
_DYNAMIC_NOTE = ("Activations stay float32 in the file; the kernels quantize them on the fly "
                 "(dynamic range), so only the weights shrink.")


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
    """int8 weights everywhere, then layer after layer at ``low``: the least sensitive first (each
    alone at ``low`` on validation), every prefix of that order a candidate; the most compressed
    one certified within ``max_drop`` of the teacher on the evidence rows is kept
    (``common.certify``)."""

    name = "quantize-mixed"
    family = "quantization"
    summary = "Per-layer mixed precision: int4 (or int2) where certified accuracy allows, int8 elsewhere."
    produces_tflite = True
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"max_drop": Range(0.25, 2.0, step=0.25)}
    follows = FLOAT_MODEL_FAMILIES
    cost = 0.5  # two validation passes per layer

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

        int8 = build(())
        require_runs(int8, ctx.data, "int8 weights")
        # the order is set on validation, before the evidence is looked at
        alone = {name: validation_accuracy(build([name]), ctx.data) for name in runnable}
        order = sorted(runnable, key=lambda n: (-alone[n], -graph.weight_bytes(n)))
        sequence, judge = certifier(ctx, self.max_drop)
        chosen: list[str] = []
        flatbuffer: bytes | None = None
        candidate, layers = int8, []
        for name in [None, *order]:
            if name is not None:
                layers = [*layers, name]
                trial = build(layers)
                if len(trial) >= len(candidate):  # no smaller: not a candidate (size, not evidence)
                    continue
                candidate = trial
            label = f"{self.low} on {len(layers)} of {len(graph.layers)} layers" if layers else "int8"
            if not sequence.test(label, judge.flatbuffer(candidate)):
                break
            chosen, flatbuffer = list(layers), candidate
        if flatbuffer is None:
            raise Skip(f"not even int8 weights everywhere are certified within max_drop={self.max_drop:g} pp "
                       f"of the teacher. {sequence.describe()}")
        kept = [name for name in graph.layers if name not in chosen]
        chosen = [name for name in graph.layers if name in chosen]
        plan = "; ".join(f"{label} weights: {', '.join(names)}"
                         for label, names in ((self.low, chosen), ("int8", kept)) if names)
        blocked = "; ".join(sorted({d for found in defects.values() for d in found}))
        why = f" Kept at int8 whatever LiteRT cannot run at {self.low}: {blocked}." if blocked else ""
        return Compressed(tflite=flatbuffer, notes=(
            f"{plan}. Layers tried at {self.low} least sensitive first (each alone, on validation). "
            f"{sequence.describe()}{why} {_DYNAMIC_NOTE}"))
