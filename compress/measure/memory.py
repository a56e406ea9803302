"""The memory a model needs at run time, measured the same way for every row.

On a phone or a microcontroller the RAM a model needs decides as much as its file size.
Two figures, both at batch 1, both from the flatbuffer alone (no strategy involved):

- ``arena_bytes``: the largest total of the tensors alive at the same moment while the
  graph runs (its input, its output and every intermediate activation; weights excluded,
  they stay in the flatbuffer), from the operators' execution order.  This is what the
  interpreter's tensor arena must hold: TFLite's arena planner packs exactly these tensors
  into one block, which is at least this large (LiteRT's Python API reports no arena size,
  and kernels' scratch buffers, e.g. im2col, are not counted).  Integer activations are a
  quarter of float ones, so int8 models need a smaller arena.
- ``peak_rss_bytes``: the peak resident memory (Linux ``VmHWM``) of a fresh process that
  imports LiteRT, loads the model and runs it once, the peak restarted after the imports;
  ``model_rss_bytes`` is that peak minus the process's resident memory just before the model
  was loaded, i.e. what the model adds to the runtime (the flatbuffer, the arena, XNNPACK's
  packed weights).  Needs Linux's /proc (as ``ru_maxrss`` would not restart).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from compress.models.backend import tflite_schema

#: Bytes per element of each TFLite tensor type (sub-byte types round up per tensor).
_ELEMENT_BITS = {"FLOAT32": 32, "FLOAT16": 16, "FLOAT64": 64, "INT32": 32, "INT64": 64, "INT16": 16,
                 "UINT16": 16, "INT8": 8, "UINT8": 8, "BOOL": 8, "INT4": 4, "INT2": 2, "UINT32": 32}
_TYPE_NAMES = {v: k for k, v in vars(tflite_schema.TensorType).items() if not k.startswith("_")}

#: Run in a fresh interpreter: the model arrives on standard input, the peaks leave as JSON.
_PROBE = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

flatbuffer = sys.stdin.buffer.read()
if not flatbuffer:  # a spare probe whose parent finished
    sys.exit(0)
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # restart the peak (VmHWM) from here: the imports' own peak does not count
before = status("VmRSS")
interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
interpreter.invoke()
print(json.dumps({"before_kib": before, "peak_kib": status("VmHWM")}))
"""
#: The next model's probe, started early so that its imports overlap other work (measured:
#: docs/benchmarks.md, "Figures behind design decisions").
_spare: subprocess.Popen[bytes] | None = None


def _start_probe() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _PROBE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def arena_bytes(flatbuffer: bytes) -> int:
    """Peak bytes of the main graph's tensors alive at once (see the module docstring)."""
    model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]
    constant = {index for index, tensor in enumerate(graph.tensors)
                if tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None
                and len(model.buffers[tensor.buffer].data) > 0}
    operators = list(graph.operators or [])
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for step, op in enumerate(operators):
        for index in [*op.inputs, *op.outputs]:
            if index >= 0 and index not in constant:
                first.setdefault(int(index), step)
                last[int(index)] = step
    for index in graph.inputs:
        first[int(index)] = 0
        last.setdefault(int(index), 0)
    for index in graph.outputs:
        first.setdefault(int(index), len(operators) - 1)
        last[int(index)] = max(len(operators) - 1, 0)
    sizes = {index: _tensor_bytes(graph.tensors[index]) for index in first}
    peak = 0
    for step in range(max(len(operators), 1)):
        peak = max(peak, sum(size for index, size in sizes.items() if first[index] <= step <= last[index]))
    return peak


def _tensor_bytes(tensor: tflite_schema.TensorT) -> int:
    shape = [abs(int(d)) for d in (tensor.shape if tensor.shape is not None else [])]
    bits = _ELEMENT_BITS.get(_TYPE_NAMES.get(tensor.type, ""), 32)
    return -(-int(np.prod(shape, dtype=np.int64)) * bits // 8)


def resident_memory(flatbuffer: bytes, timeout: float = 120.0) -> dict[str, int]:
    """``peak_rss_bytes`` and ``model_rss_bytes`` from a fresh process (see the module docstring)."""
    global _spare
    probe = _spare if _spare is not None and _spare.poll() is None else _start_probe()
    _spare = _start_probe()
    out, err = probe.communicate(flatbuffer, timeout=timeout)
    if probe.returncode != 0:
        raise RuntimeError(f"memory probe failed: {err.decode().strip().splitlines()[-1:]}")
    peaks = json.loads(out.decode().strip().splitlines()[-1])
    return {"peak_rss_bytes": peaks["peak_kib"] * 1024,
            "model_rss_bytes": max(0, peaks["peak_kib"] - peaks["before_kib"]) * 1024}


def memory_fields(flatbuffer: bytes) -> dict[str, int | None]:
    """Both figures as result-row fields; the resident-memory ones are None where the probe
    cannot run (no Linux /proc, e.g. macOS), rather than failing the row."""
    try:
        resident: dict[str, int | None] = dict(resident_memory(flatbuffer))
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError):
        resident = {"peak_rss_bytes": None, "model_rss_bytes": None}
    return {"arena_bytes": arena_bytes(flatbuffer), **resident}
