"""Measure TFLite flatbuffers: size, predictions, accuracy and latency.

This module knows nothing of strategies.  Every row, the teacher included, is
scored through the same LiteRT interpreter path, so differences between rows
are differences between models, not between code paths.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from compress.backend import Interpreter, quiet_stderr, tflite_schema
from compress.errors import UserError
from compress.stats import (
    STEADY_TOLERANCE,
    Spread,
    macro_f1,
    mcnemar_exact,
    median_ci,
    paired_ratio,
    rounds_faster,
    steady_rounds,
    summarize_rounds,
    wilson_interval,
)

DEFAULT_THREADS = 1
DISTURBED = 0.20  # a round that spent 20% of its wall time off the CPU waited for a core
#: Rounds go on for at least this long: a slowed core (another tenant on the host) comes and
#: goes over about a second on the VMs measured, so a shorter run can fall wholly inside one.
#: ``$COMPRESS_LATENCY_SPAN`` changes it (0: just the rounds asked for, for quick looks).
SPAN_SECONDS = 3.0
#: Below this many rounds steady for both models, the speed-up pairs every round instead.
MIN_STEADY_PAIRS = 5
#: Fewer steady rounds than this share earn a warning: the fast level was rare, and may be the
#: exception rather than the slowed rounds (on this VM, 27-100% of rounds were steady).
UNSTEADY_SHARE = 0.25
#: A kernel counts as pruned when at least this share of it is zero: trained or merely
#: quantized kernels have next to no exact zeros, pruned ones have their target share.
PRUNED_KERNEL = 0.25


# Size --------------------------------------------------------------------------

_OP_NAMES = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(tflite_schema.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8, "UINT8": np.uint8,
    "INT32": np.int32, "INT16": np.int16, "INT64": np.int64,
}
_WEIGHT_TYPES = {"FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT4", "INT2"}
#: Sub-byte integers are packed, lowest bits first: two int4 or four int2 values per byte.
_PACKED_BITS = {"INT4": 4, "INT2": 2}
_WEIGHTED_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}
# Ops that only move, reshape or re-encode data: no multiply-accumulates to count.
_FREE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "DELEGATE"}


@dataclass(frozen=True)
class SizeStats:
    size_bytes: int
    size_gzip_bytes: int
    params_count: int
    nonzero_params: int
    sparsity: float
    macs: int
    pruned_sparsity: float  # zeros over the Dense/Conv kernels that were pruned (see PRUNED_KERNEL)
    kernel_unique_max: int  # most distinct values in any kernel: clustering shows here
    arithmetic: str  # what compute ops multiply: "float32", "int8", "int8 weights × float32 activations"
    unaccounted_ops: tuple[str, ...]


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: fixed mtime and level, so a model always gives one number."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _constant(model: tflite_schema.ModelT, tensor: tflite_schema.TensorT) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    type_name = _TYPE_NAMES.get(tensor.type, "")
    raw = np.asarray(data, dtype=np.uint8)
    if type_name in _PACKED_BITS:
        return _unpack(raw, _PACKED_BITS[type_name], int(np.prod(tensor.shape)))
    dtype = _NUMPY_TYPES.get(type_name)
    if dtype is None:
        return None
    return np.frombuffer(raw.tobytes(), dtype=dtype)


def _unpack(raw: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Signed sub-byte integers from their packed bytes."""
    shifts = np.arange(8 // bits, dtype=np.uint8) * bits
    values = ((raw[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count].astype(np.int8)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values).astype(np.int8)


def _nonzero(values: np.ndarray, tensor: tflite_schema.TensorT) -> int:
    """Non-zero count; a quantized zero is the zero point, not the integer 0."""
    quant = tensor.quantization
    zero_points = None if quant is None else quant.zeroPoint
    if zero_points is None or len(zero_points) == 0 or not np.any(zero_points):
        return int(np.count_nonzero(values))
    shape = list(tensor.shape)
    if len(zero_points) == 1:
        return int(np.count_nonzero(values != zero_points[0]))
    axis = quant.quantizedDimension
    broadcast = [1] * len(shape)
    broadcast[axis] = len(zero_points)
    zp = np.asarray(zero_points).reshape(broadcast)
    return int(np.count_nonzero(values.reshape(shape) != zp))


def _op_macs(op_name: str, op: tflite_schema.OperatorT, tensors: list) -> int | None:
    """Multiply-accumulates of one op at batch 1, from its tensor shapes."""
    output = int(np.prod(tensors[op.outputs[0]].shape))
    if op_name == "FULLY_CONNECTED":
        return output * int(tensors[op.inputs[1]].shape[-1])
    if op_name == "CONV_2D":
        _, kh, kw, cin = tensors[op.inputs[1]].shape
        return output * int(kh * kw * cin)
    if op_name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = tensors[op.inputs[1]].shape
        return output * int(kh * kw)
    if op_name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        options = op.builtinOptions
        return output * int(options.filterHeight * options.filterWidth)
    return None


def _opcodes(model: tflite_schema.ModelT) -> list[int]:
    """Builtin operator code per opcode index (new files keep large codes in builtinCode)."""
    return [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]


def _kernel_indices(graph: tflite_schema.SubGraphT, codes: list[int]) -> list[int]:
    """Tensor indices of the Dense/Conv kernels, looking through float16 DEQUANTIZE ops."""
    produced_by_dequantize = {
        int(op.outputs[0]): int(op.inputs[0]) for op in graph.operators or []
        if _OP_NAMES.get(codes[op.opcodeIndex]) == "DEQUANTIZE"
    }
    kernels = []
    for op in graph.operators or []:
        if _OP_NAMES.get(codes[op.opcodeIndex]) in _WEIGHTED_OPS:
            index = int(op.inputs[1])
            index = produced_by_dequantize.get(index, index)
            if index not in kernels:
                kernels.append(index)
    return kernels


def kernels(flatbuffer: bytes) -> list[np.ndarray]:
    """Every Dense/Conv kernel as stored (TFLite layout: output channels first)."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = _opcodes(model)
    out = []
    for graph in model.subgraphs:
        for index in _kernel_indices(graph, codes):
            tensor = graph.tensors[index]
            values = _constant(model, tensor)
            if values is not None:
                out.append(values.reshape(list(tensor.shape)))
    return out


def _arithmetic(activation: tflite_schema.TensorT, weights: tflite_schema.TensorT) -> str:
    """The multiply's types: integer activations mean integer arithmetic."""
    act, weight = _TYPE_NAMES.get(activation.type, "?").lower(), _TYPE_NAMES.get(weights.type, "?").lower()
    return act if act == weight else f"{weight} weights × {act} activations"


def size_stats(flatbuffer: bytes) -> SizeStats:
    """Bytes, gzip bytes, parameters, non-zeros and MACs, read from the flatbuffer itself."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = _opcodes(model)
    params = nonzero = macs = 0
    unaccounted: set[str] = set()
    arithmetic: set[str] = set()
    kernel_elements = kernel_zeros = unique_max = 0
    for graph in model.subgraphs:
        tensors = graph.tensors
        for index in _kernel_indices(graph, codes):
            values = _constant(model, tensors[index])
            if values is None:
                continue
            zeros = values.size - _nonzero(values, tensors[index])
            if zeros >= PRUNED_KERNEL * values.size:
                kernel_elements += values.size
                kernel_zeros += zeros
            unique_max = max(unique_max, len(np.unique(values)))
        bias_inputs: set[int] = set()
        for op in graph.operators or []:
            name = _OP_NAMES.get(codes[op.opcodeIndex], f"OP_{codes[op.opcodeIndex]}")
            if name in _WEIGHTED_OPS and len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias_inputs.add(int(op.inputs[2]))
            if name in _WEIGHTED_OPS:
                arithmetic.add(_arithmetic(tensors[op.inputs[0]], tensors[op.inputs[1]]))
            op_macs = _op_macs(name, op, tensors)
            if op_macs is not None:
                macs += op_macs
            elif name not in _FREE_OPS:
                unaccounted.add(name)
        for index, tensor in enumerate(tensors):
            type_name = _TYPE_NAMES.get(tensor.type, "")
            if type_name not in _WEIGHT_TYPES and index not in bias_inputs:
                continue  # shape and index constants are not parameters
            values = _constant(model, tensor)
            if values is None:
                continue
            params += values.size
            nonzero += _nonzero(values, tensor)
    return SizeStats(
        size_bytes=len(flatbuffer),
        size_gzip_bytes=len(gzip_bytes(flatbuffer)),
        params_count=params,
        nonzero_params=nonzero,
        sparsity=1 - nonzero / params if params else 0.0,
        macs=macs,
        pruned_sparsity=kernel_zeros / kernel_elements if kernel_elements else 0.0,
        kernel_unique_max=unique_max,
        arithmetic=" + ".join(sorted(arithmetic)) or "none",
        unaccounted_ops=tuple(sorted(unaccounted)),
    )


def size_fields(flatbuffer: bytes) -> dict[str, object]:
    """``size_stats`` as result-row fields (lists, not tuples, so they survive JSON unchanged)."""
    fields = asdict(size_stats(flatbuffer))
    fields["unaccounted_ops"] = list(fields["unaccounted_ops"])
    return fields


# Running a model -------------------------------------------------------------


class TFLiteModel:
    """A flatbuffer in the LiteRT interpreter, with float in and float out.

    Integer-I/O models (int8 or uint8) get their inputs quantized and their
    outputs dequantized with the model's own scale and zero point, so they
    can be scored like any other model.
    """

    def __init__(self, flatbuffer: bytes, *, threads: int = DEFAULT_THREADS) -> None:
        with quiet_stderr():
            self.interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input row's shape (without the batch dimension)."""
        return tuple(int(d) for d in self._input["shape"][1:])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Float inputs in the model's input type."""
        dtype = self._input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._input["quantization"]
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def decode(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(self._output["dtype"], np.integer):
            scale, zero_point = self._output["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = [batch, *self._input["shape"][1:]]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = batch

    def call(self, encoded: np.ndarray) -> np.ndarray:
        """One timed unit: set the input, invoke, copy the output out."""
        self.interpreter.set_tensor(self._input["index"], encoded)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """Float outputs (logits or probabilities, as the model emits) for every row of x."""
        outputs = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            self.resize(len(chunk))
            outputs.append(self.decode(self.call(self.encode(chunk))))
        return np.concatenate(outputs)


# Accuracy --------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracyStats:
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    f1_macro: float
    fidelity: float | None
    mcnemar_p: float | None


def accuracy_stats(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, reference: np.ndarray | None = None
) -> AccuracyStats:
    """Accuracy with its Wilson interval; against a reference model's predictions also
    fidelity (agreement) and the exact McNemar p-value of the accuracy difference."""
    correct = y_pred == y_true
    low, high = wilson_interval(int(correct.sum()), len(correct))
    against = reference_stats(y_true, y_pred, reference) if reference is not None else {}
    return AccuracyStats(
        accuracy=float(correct.mean()),
        accuracy_ci_low=low,
        accuracy_ci_high=high,
        f1_macro=macro_f1(y_true, y_pred, n_classes),
        fidelity=against.get("fidelity"),
        mcnemar_p=against.get("mcnemar_p"),
    )


def reference_stats(y_true: np.ndarray, y_pred: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Agreement with the reference model's predictions and the exact McNemar p-value."""
    return {"fidelity": float(np.mean(y_pred == reference)),
            "mcnemar_p": mcnemar_exact(reference == y_true, y_pred == y_true)}


# Latency ---------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    spread: Spread
    speedup: float | None
    speedup_ci_low: float | None
    speedup_ci_high: float | None
    #: Paired rounds in which the model was faster than the reference, of those that differ:
    #: the counts an exact sign test (pooled over seeds) needs.
    speedup_rounds_faster: int | None
    speedup_rounds: int | None
    throughput_sps: float
    warning: str | None
    #: CPU time per call (the measuring thread's own, ``thread_time_ns``): what the model costs,
    #: whatever else the machine runs; median of the steady rounds' means, with its 95% interval.
    cpu_us: float | None = None
    cpu_us_ci_low: float | None = None
    cpu_us_ci_high: float | None = None
    #: Rounds that spent more than ``DISTURBED`` of their wall time off the CPU: the thread
    #: waited for a core (preemption), so their wall-clock figures measure the scheduler.
    disturbed_rounds: int = 0

    def fields(self) -> dict[str, float | str | None]:
        """The result-row fields, named as in ``compress.results.FIELDS``."""
        spread = self.spread
        return {
            "latency_us_p50": spread.p50, "latency_us_p50_ci_low": spread.p50_ci_low,
            "latency_us_p50_ci_high": spread.p50_ci_high, "latency_us_p95": spread.p95,
            "latency_us_p99": spread.p99, "latency_us_iqr": spread.iqr,
            "latency_warning": self.warning, "speedup": self.speedup,
            "speedup_ci_low": self.speedup_ci_low, "speedup_ci_high": self.speedup_ci_high,
            "speedup_rounds_faster": self.speedup_rounds_faster, "speedup_rounds": self.speedup_rounds,
            "throughput_sps": self.throughput_sps, "latency_cpu_us": self.cpu_us,
            "latency_cpu_us_ci_low": self.cpu_us_ci_low, "latency_cpu_us_ci_high": self.cpu_us_ci_high,
            "latency_disturbed_rounds": self.disturbed_rounds, "latency_rounds": spread.rounds,
            "latency_steady_rounds": spread.steady_rounds,
        }


@contextlib.contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """Pin the calling thread to one core: unpinned loops here jumped ~60% 1 round in 10."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def _warm_up(model: TFLiteModel, inputs: list[np.ndarray], calls: int, seconds: float) -> float:
    """Run until both the call count and the time are reached; return seconds per call."""
    done, start = 0, time.perf_counter()
    while done < calls or time.perf_counter() - start < seconds:
        model.call(inputs[done % len(inputs)])
        done += 1
    return (time.perf_counter() - start) / done


def _throughput(flatbuffer: bytes, x: np.ndarray, batch: int, threads: int) -> float:
    model = TFLiteModel(flatbuffer, threads=threads)
    rows = np.resize(x, (batch, *x.shape[1:]))
    model.resize(batch)
    encoded = model.encode(rows)
    per_call = _warm_up(model, [encoded], calls=3, seconds=0.02)
    repeats = max(5, int(0.05 / max(per_call, 1e-9)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        model.call(encoded)
        times.append(time.perf_counter_ns() - start)
    return batch / (float(np.median(times)) / 1e9)


def latency_span() -> float:
    """Seconds the timing rounds span at least: ``$COMPRESS_LATENCY_SPAN``, or ``SPAN_SECONDS``."""
    given = os.environ.get("COMPRESS_LATENCY_SPAN")
    if given is None:
        return SPAN_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise UserError(f"COMPRESS_LATENCY_SPAN must be a number of seconds, 0 or more, got "
                        f"{given!r}; unset it for the default {SPAN_SECONDS:g}")
    return seconds


def measure_latency(
    models: Mapping[str, bytes],
    x: np.ndarray,
    *,
    reference: str | None = None,
    threads: int = DEFAULT_THREADS,
    rounds: int = 30,
    round_seconds: float = 0.01,
    span_seconds: float | None = None,
    warmup_calls: int = 50,
    warmup_seconds: float = 0.1,
    throughput_batch: int = 256,
) -> dict[str, LatencyStats]:
    """Batch-1 latency of several models with interleaved rounds (A B C, B C A, ...).

    Each call times set_tensor + invoke + get_tensor.  Interleaving makes machine drift hit
    every model alike, and lets the speed-up against ``reference`` be computed per round,
    paired.  At least ``rounds`` rounds run, over at least ``span_seconds`` (None:
    ``latency_span()``); the figures come from the steady rounds (``stats.steady_rounds``).
    """
    if not models:
        return {}
    span = latency_span() if span_seconds is None else span_seconds
    names = list(models)
    loaded = {name: TFLiteModel(models[name], threads=threads) for name in names}
    inputs = {name: [m.encode(x[i : i + 1]) for i in range(min(len(x), 64))] for name, m in loaded.items()}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}  # per round: CPU µs per call
    waited: dict[str, list[float]] = {name: [] for name in names}  # per round: share off the CPU
    with pinned_to_one_core():
        calls = {}
        for name, model in loaded.items():
            per_call = _warm_up(model, inputs[name], warmup_calls, warmup_seconds)
            calls[name] = max(5, int(round_seconds / max(per_call, 1e-9)))
        round_index, began = 0, time.perf_counter()
        while round_index < rounds or time.perf_counter() - began < span:
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                model, batch = loaded[name], inputs[name]
                times = np.empty(calls[name], dtype=np.int64)
                cpu_start, wall_start = time.thread_time_ns(), time.perf_counter_ns()
                for i in range(calls[name]):
                    start = time.perf_counter_ns()
                    model.call(batch[i % len(batch)])
                    times[i] = time.perf_counter_ns() - start
                used = time.thread_time_ns() - cpu_start
                waited[name].append(1 - used / max(time.perf_counter_ns() - wall_start, 1))
                cpu[name].append(used / calls[name] / 1000.0)
                samples[name].append(times / 1000.0)
            round_index += 1
        throughput = {name: _throughput(models[name], x, throughput_batch, threads) for name in names}
    steady = {name: steady_rounds(samples[name]) for name in names}
    results = {}
    for name in names:
        spread = summarize_rounds(samples[name], steady[name])
        ratio: tuple[float | None, ...] = (None, None, None, None, None)
        if reference is not None and reference in samples:
            ratio = _paired_speedup(samples[reference], samples[name], steady[reference] & steady[name])
        steady_cpu = np.asarray(cpu[name])[steady[name]]
        cpu_low, cpu_high = median_ci(steady_cpu)
        disturbed = sum(share > DISTURBED for share in waited[name])
        results[name] = LatencyStats(spread, *ratio, throughput[name], latency_warning(spread, disturbed),
                                     float(np.median(steady_cpu)), cpu_low, cpu_high, disturbed)
    return results


def latency_warning(spread: Spread, disturbed: int) -> str | None:
    """What a row should say about the machine it was timed on, if anything."""
    if disturbed > spread.rounds * DISTURBED:
        return (f"busy machine: {disturbed} of {spread.rounds} rounds spent over {DISTURBED:.0%} of "
                f"their time waiting for a core; the figures are the {spread.steady_rounds} rounds "
                f"within {STEADY_TOLERANCE:.0%} of the fastest, and CPU time per call "
                "(latency_cpu_us) is the cross-check")
    if spread.steady_rounds < spread.rounds * UNSTEADY_SHARE:
        return (f"unsteady machine: {spread.rounds - spread.steady_rounds} of {spread.rounds} rounds "
                f"ran over {STEADY_TOLERANCE:.0%} slower than the fastest (another process, or a "
                f"slowed core); the figures are the other {spread.steady_rounds}'s")
    return None


def _paired_speedup(reference: list[np.ndarray], candidate: list[np.ndarray],
                    both_steady: np.ndarray) -> tuple[float, float, float, int, int]:
    """Speed-up and sign-test counts over the rounds steady for both models (every round if
    too few are): a round the machine slowed for one of the pair says nothing of the pair."""
    if both_steady.sum() < MIN_STEADY_PAIRS:
        both_steady = np.ones(len(reference), dtype=bool)
    pairs = [(r, c) for r, c, keep in zip(reference, candidate, both_steady, strict=True) if keep]
    kept_reference, kept_candidate = [r for r, _ in pairs], [c for _, c in pairs]
    return (*paired_ratio(kept_reference, kept_candidate), *rounds_faster(kept_reference, kept_candidate))
