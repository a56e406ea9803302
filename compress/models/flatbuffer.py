"""A TFLite flatbuffer as a model: run it in LiteRT, and read what it is made of.

Both sides of the pipeline need this and neither owns it: a strategy runs and reads its own
candidate files to decide (quantize-mixed scores bit widths on validation rows; a quantizer
checks which layers the converter left float), and ``compress.measure`` scores the finished
ones.  Nothing here scores a row: sizes, latency, accuracy and memory are ``measure``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.common.errors import UserError
from compress.models.backend import Interpreter, quiet_stderr, tflite_schema

#: LiteRT threads when a caller names none: one, as every row is timed and trained with.
DEFAULT_THREADS = 1
OP_NAMES = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(tflite_schema.TensorType).items() if not k.startswith("_")}
#: TFLite ops whose second input is a layer's kernel: what litert-quantizer quantizes.
WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
_IO_OPS = ("QUANTIZE", "DEQUANTIZE")  # inserted around integer parts; not a precision choice


class TFLiteModel:
    """A flatbuffer in the LiteRT interpreter, with float (or token id) in and float out.

    Integer-I/O models (int8 or uint8) get their inputs quantized and their
    outputs dequantized with the model's own scale and zero point, so they
    can be scored like any other model; an integer input without a scale (token ids) takes the
    ids as they are.
    """

    def __init__(self, flatbuffer: bytes, *, threads: int = DEFAULT_THREADS) -> None:
        with quiet_stderr():
            self.interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        #: Variable tensors (a fused LSTM's state) are reset before every call, so each row
        #: starts from zeros as the Keras layer does.
        self.stateful = has_state(flatbuffer)
        signature = self._input.get("shape_signature")
        #: Whether the batch may change: a file converted for a fixed batch (recurrent layers,
        #: ``backend.fixed_batch``) runs that many rows at a time.
        self.resizable = signature is None or len(signature) == 0 or int(signature[0]) == -1

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def quantized_input(self) -> bool:
        """Whether the input has a scale: quantized numbers, not ids taken as they are."""
        return bool(self._input["quantization"][0])

    @property
    def input_batch(self) -> int:
        """The rows one call takes now."""
        return self._batch

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input row's shape (without the batch dimension)."""
        return tuple(int(d) for d in self._input["shape"][1:])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Inputs in the model's input type: quantized by the file's scale and zero point, or
        as they are for an unquantized integer input (token ids)."""
        dtype = self._input["dtype"]
        scale, zero_point = self._input["quantization"]
        if np.issubdtype(dtype, np.integer) and self.quantized_input:
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def decode(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(self._output["dtype"], np.integer):
            scale, zero_point = self._output["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def resize(self, batch: int) -> None:
        if batch != self._batch and not self.resizable:
            raise ValueError(f"this model runs {self._batch} row(s) at a time, not {batch}")
        if batch != self._batch:
            shape = [batch, *self._input["shape"][1:]]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = batch

    def call(self, encoded: np.ndarray) -> np.ndarray:
        """One timed unit: set the input (and reset the state), invoke, copy the output out."""
        if self.stateful:
            self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._input["index"], encoded)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """Float outputs (logits or probabilities, as the model emits) for every row of x."""
        outputs = []
        batch = batch if self.resizable else self._batch
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            self.resize(len(chunk))
            outputs.append(self.decode(self.call(self.encode(chunk))))
        return np.concatenate(outputs)


# Reading a flatbuffer -----------------------------------------------------------------------


def opcodes(model: tflite_schema.ModelT) -> list[int]:
    """Builtin operator code per opcode index (new files keep large codes in builtinCode)."""
    return [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]


def op_macs(op_name: str, op: tflite_schema.OperatorT, tensors: list) -> int | None:
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



#: The custom operator that unpacks look-up-table compressed tensors: TFLite Micro has it,
#: LiteRT does not.
DECODE_OP = b"TFLM_DECODE"


def micro_only(flatbuffer: bytes) -> bool:
    """Whether only TFLite Micro runs this file (it holds ``DECODE_OP``): such a file is scored
    in TFLite Micro and not timed, since the interpreter it would be timed in cannot load it."""
    try:  # the operator codes alone, read in place: every row asks, and unpacking copies the weights
        model = tflite_schema.Model.GetRootAs(flatbuffer, 0)
        codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
        return any(code.CustomCode() == DECODE_OP for code in codes)
    except Exception:  # not a flatbuffer at all: whoever loads it says so, in its own words
        return False


def has_state(flatbuffer: bytes) -> bool:
    """Whether the file keeps variable tensors between calls (a fused LSTM's state does): a
    stateless Keras layer starts every call from zeros, so the caller resets them first."""
    model = tflite_schema.Model.GetRootAs(flatbuffer, 0)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        if any(graph.Tensors(t).IsVariable() for t in range(graph.TensorsLength())):
            return True
    return False


def macs(flatbuffer: bytes) -> int:
    """Multiply-accumulates at batch 1 of the ops whose cost their shapes tell."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = opcodes(model)
    total = 0
    for graph in model.subgraphs:
        for op in graph.operators or []:
            name = OP_NAMES.get(codes[op.opcodeIndex], f"OP_{codes[op.opcodeIndex]}")
            total += op_macs(name, op, graph.tensors) or 0
    return total


def _read(flatbuffer: bytes) -> tuple[Any, list[tuple[str, Any]]]:
    """The parsed model and its main graph's (op kind, op) pairs, in execution order."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    codes = opcodes(model)
    ops = model.subgraphs[0].operators or []
    return model, [(OP_NAMES.get(codes[op.opcodeIndex], f"OP_{codes[op.opcodeIndex]}"), op) for op in ops]


def _type_name(tensor: Any) -> str:
    return TYPE_NAMES.get(tensor.type, "?").lower()


@dataclass(frozen=True)
class WeightedOp:
    """One Dense/Conv op of a float flatbuffer, as litert-quantizer and its validator name it."""

    kind: str  # TFLite op name, e.g. "CONV_2D"
    scope: str  # litert-quantizer's scope: the output tensor names joined by ";"
    output: str  # the output tensor's name, as ``Quantizer.validate`` reports it
    kernel: str  # the kernel tensor's name (the converter keeps the Keras layer's path in it)
    weight_bytes: int  # kernel and bias bytes in this (float) file
    macs: int  # multiply-accumulates at batch 1


def weighted_ops(flatbuffer: bytes) -> list[WeightedOp]:
    """The Dense/Conv ops of the main graph, in execution order."""
    from litert_quantizer.utils import tfl_flatbuffer_utils

    model, ops = _read(flatbuffer)
    tensors = model.subgraphs[0].tensors
    found = []
    for kind, op in ops:
        if kind not in WEIGHTED_OPS:
            continue
        kernel, output = tensors[op.inputs[1]], tensors[op.outputs[0]]
        constants = [tensors[i] for i in op.inputs[1:] if i >= 0]
        data = [model.buffers[t.buffer].data for t in constants if t.buffer < len(model.buffers)]
        found.append(WeightedOp(
            kind=kind,
            scope=tfl_flatbuffer_utils.get_op_scope(op, tensors),
            output=output.name.decode(),
            kernel=kernel.name.decode(),
            weight_bytes=sum(len(d) for d in data if d is not None),
            macs=int(np.prod(output.shape)) * int(np.prod(kernel.shape)) // max(1, int(output.shape[-1])),
        ))
    return found


def _stored(tensors: list[Any], ops: list[tuple[str, Any]]) -> dict[int, Any]:
    """Tensor index -> the tensor stored in the file for it: a kernel a DEQUANTIZE op makes at run
    time (float16 weights) is stored as that op's input."""
    return {op.outputs[0]: tensors[op.inputs[0]] for kind, op in ops if kind == "DEQUANTIZE"}


def op_precisions(flatbuffer: bytes) -> dict[str, str]:
    """What each op kind computes in, read from the file: kind -> "int4 weights × float32 activations"."""
    model, ops = _read(flatbuffer)
    tensors = model.subgraphs[0].tensors
    stored = _stored(tensors, ops)
    kinds: dict[str, set[str]] = {}
    for kind, op in ops:
        if kind in _IO_OPS:
            continue
        if kind in WEIGHTED_OPS:
            kernel, activation = stored.get(op.inputs[1], tensors[op.inputs[1]]), tensors[op.inputs[0]]
            quant = kernel.quantization
            blocks = (quant is not None and quant.detailsType ==
                      tflite_schema.QuantizationDetails.BlockwiseQuantization)
            layout = f" in blocks of {quant.details.blockSize}" if blocks else ""
            precision = f"{_type_name(kernel)} weights{layout} × {_type_name(activation)} activations"
        else:
            precision = _type_name(tensors[op.outputs[0]])
        kinds.setdefault(kind, set()).add(precision)
    return {kind: " / ".join(sorted(found)) for kind, found in kinds.items()}


#: Ops that look rows up in a table the file stores (an Embedding), and which input is the table.
TABLE_OPS = {"GATHER": 0, "EMBEDDING_LOOKUP": 1}


def kernel_types(flatbuffer: bytes) -> list[tuple[str, str]]:
    """(op kind, weight precision) of each Dense/Conv op and each lookup in a stored table, in
    execution order: ("CONV_2D", "int4"), ("GATHER", "int8")."""
    model, ops = _read(flatbuffer)
    tensors = model.subgraphs[0].tensors
    stored = _stored(tensors, ops)

    def constant(index: int) -> bool:
        tensor = stored.get(index, tensors[index])
        return bool(model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data))

    found = []
    for kind, op in ops:
        if kind in WEIGHTED_OPS:
            weights = op.inputs[1]
        elif kind in TABLE_OPS and constant(op.inputs[TABLE_OPS[kind]]):
            weights = op.inputs[TABLE_OPS[kind]]
        else:
            continue
        found.append((kind, _type_name(stored.get(weights, tensors[weights]))))
    return found


def describe(flatbuffer: bytes) -> str:
    """``op_precisions`` as one sentence: weighted ops first, other ops grouped by precision."""
    precisions = op_precisions(flatbuffer)
    weighted = [f"{kind} {p}" for kind, p in precisions.items() if kind in WEIGHTED_OPS]
    others: dict[str, list[str]] = {}
    for kind, precision in precisions.items():
        if kind not in WEIGHTED_OPS:
            others.setdefault(precision, []).append(kind)
    rest = [f"{', '.join(kinds)} {precision}" for precision, kinds in others.items()]
    return "; ".join(weighted + rest) + "."


def signature_input(flatbuffer: bytes) -> tuple[str, str]:
    """(signature key, input name): how litert-quantizer's calibration and validation feed data."""
    with quiet_stderr():
        signatures = Interpreter(model_content=flatbuffer).get_signature_list()
    inputs = [name for spec in signatures.values() for name in spec["inputs"]]
    if len(signatures) != 1 or len(inputs) != 1:
        raise UserError(f"litert-quantizer is fed one signature with one input here; this model has "
                        f"{len(signatures)} signatures and {len(inputs)} inputs")
    return next(iter(signatures)), inputs[0]
