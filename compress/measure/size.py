"""Size of a TFLite flatbuffer, read from the file itself: bytes, gzip bytes, parameters,
non-zeros, MACs, clustering and what the compute ops multiply.

This module knows nothing of strategies: every row, the teacher included, is read the same way.
"""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass

import numpy as np

from compress.models.backend import tflite_schema
from compress.models.flatbuffer import OP_NAMES, TYPE_NAMES, describe, op_macs, opcodes

#: quantized kernels have next to no exact zeros, pruned ones have their target share.
PRUNED_KERNEL = 0.25

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
    io_type: str  # what the model takes and gives: "float32", "int8", or "int8 in, float32 out"


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: fixed mtime and level, so a model always gives one number."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def _constant(model: tflite_schema.ModelT, tensor: tflite_schema.TensorT) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    type_name = TYPE_NAMES.get(tensor.type, "")
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



def _kernel_indices(graph: tflite_schema.SubGraphT, codes: list[int]) -> list[int]:
    """Tensor indices of the Dense/Conv kernels, looking through float16 DEQUANTIZE ops."""
    produced_by_dequantize = {
        int(op.outputs[0]): int(op.inputs[0]) for op in graph.operators or []
        if OP_NAMES.get(codes[op.opcodeIndex]) == "DEQUANTIZE"
    }
    kernels = []
    for op in graph.operators or []:
        if OP_NAMES.get(codes[op.opcodeIndex]) in _WEIGHTED_OPS:
            index = int(op.inputs[1])
            index = produced_by_dequantize.get(index, index)
            if index not in kernels:
                kernels.append(index)
    return kernels


def kernels(flatbuffer: bytes) -> list[np.ndarray]:
    """Every Dense/Conv kernel as stored (TFLite layout: output channels first)."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = opcodes(model)
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
    act, weight = TYPE_NAMES.get(activation.type, "?").lower(), TYPE_NAMES.get(weights.type, "?").lower()
    return act if act == weight else f"{weight} weights × {act} activations"


def _io_type(model: tflite_schema.ModelT) -> str:
    """The element types of the main graph's inputs and outputs: one word when they agree (a
    microcontroller pipeline feeds and reads int8 directly), else "X in, Y out"."""
    graph = model.subgraphs[0]

    def kinds(indices: list[int]) -> str:
        return "/".join(sorted({TYPE_NAMES.get(graph.tensors[i].type, "?").lower() for i in indices}))

    given, taken = kinds(list(graph.inputs)), kinds(list(graph.outputs))
    return given if given == taken else f"{given} in, {taken} out"


def size_stats(flatbuffer: bytes) -> SizeStats:
    """Bytes, gzip bytes, parameters, non-zeros and MACs, read from the flatbuffer itself."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = opcodes(model)
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
            name = OP_NAMES.get(codes[op.opcodeIndex], f"OP_{codes[op.opcodeIndex]}")
            if name in _WEIGHTED_OPS and len(op.inputs) > 2 and op.inputs[2] >= 0:
                bias_inputs.add(int(op.inputs[2]))
            if name in _WEIGHTED_OPS:
                arithmetic.add(_arithmetic(tensors[op.inputs[0]], tensors[op.inputs[1]]))
            multiplies = op_macs(name, op, tensors)
            if multiplies is not None:
                macs += multiplies
            elif name not in _FREE_OPS:
                unaccounted.add(name)
        for index, tensor in enumerate(tensors):
            type_name = TYPE_NAMES.get(tensor.type, "")
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
        io_type=_io_type(model),
    )


def size_fields(flatbuffer: bytes) -> dict[str, object]:
    """``size_stats`` as result-row fields (lists, not tuples, so they survive JSON unchanged),
    and what the file stores per op kind: read back, because the converter decides per layer
    (dynamic range leaves kernels under 1,024 weights float), so no strategy's plan can say it."""
    fields = asdict(size_stats(flatbuffer))
    fields["unaccounted_ops"] = list(fields["unaccounted_ops"])
    fields["stored_as"] = describe(flatbuffer)
    return fields
