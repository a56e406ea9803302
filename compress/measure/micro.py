"""A flatbuffer in TFLite Micro, the runtime of microcontrollers: whether it runs there, the
tensor arena it needs, the flash it takes, and its accuracy there, from the real interpreter
(the ``tflite-micro`` package), the same way for every row.

- **Whether it runs**: TFLite Micro names a missing operator or an unsupported model (a hybrid,
  dynamic-range one) only on the C-level standard error, so that stream is read while the
  interpreter is built, and its first telling line becomes the row's reason.
- **The arena, exactly**: the interpreter allocates its arena when it is built, and says
  nothing about how much it used but through ``print_allocations``, whose total can be below
  what the model needs.  So the smallest arena that builds and invokes the model is found by
  bisection between a size that fails and one that works, to the byte.  A very small arena can
  crash the process rather than fail, so the search runs in a child process, which reports each
  size before trying it: when the child dies, that size counts as failing and a new child goes
  on from there.  The figure is for TFLite Micro's reference kernels on this machine (64-bit
  pointers, no CMSIS-NN scratch buffers): a board's differs a little, which a device profile's
  headroom covers.
- **Flash**: the flatbuffer's bytes, which a firmware stores as they are.
- **Accuracy**: every test row through the interpreter, one at a time as on a device; the share
  of rows on which its prediction equals LiteRT's is the agreement of the two runtimes.

Without the package (it has wheels for CPython 3.10 to 3.13 on Linux x86-64 only), the
columns stay empty and ``micro_reason`` says why: a skip, never a failed row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compress.common.text import one_line

#: Largest arena tried before a model is called too large for any microcontroller.
MAX_ARENA = 256 * 1024 * 1024
#: Seconds one child may take (finding the arena and scoring the test split).
CHILD_TIMEOUT = 900.0
#: Children started for one model before its arena search gives up (each one that dies marks
#: the size it was trying as too small).
MAX_CHILDREN = 8

FIELDS = ("micro_runs", "micro_reason", "micro_arena_bytes", "micro_flash_bytes", "micro_accuracy",
          "micro_agreement")

#: The child: ``model.tflite data.npz LOW HIGH`` in; a JSON line before every size it tries,
#: and one with the result, out.
_CHILD = r"""
import json, os, sys, tempfile
import numpy as np
from tflite_micro.python.tflite_micro import runtime

model = open(sys.argv[1], "rb").read()
x = np.load(sys.argv[2])["x"]
low, high, most = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def say(**fields):
    print(json.dumps(fields), flush=True)

def captured(work):
    # What ``work()`` returns, and what it wrote to the C-level stderr.
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            value = work()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return value, err.read().decode(errors="replace")

def build(size):
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=size)
        detail = interpreter.get_input_details(0)
        interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
        interpreter.invoke()
        return interpreter
    except (RuntimeError, ValueError):
        return None

def built(size):
    # The interpreter at ``size`` after one invoke, or None; and what it wrote to stderr.
    say(trying=size)
    interpreter, said = captured(lambda: build(size))
    say(**{"failed" if interpreter is None else "built": size})
    return interpreter, said

def recorded(interpreter):
    # The arena total the recording allocator reports (a hint: the need can be above it).
    _, said = captured(interpreter.print_allocations)
    for line in said.splitlines():
        if "Arena allocation total" in line:
            return int(line.split("total")[1].split()[0])
    return None

interpreter, said = built(high)
while interpreter is None and high < most and not any(
        word in said for word in ("Didn't find op", "not supported", "Unsupported", "Hybrid")):
    low, high = high, min(most, high * 2)
    interpreter, said = built(high)
if interpreter is None:
    say(runs=False, said=said)
    sys.exit(0)
total = recorded(interpreter)
for near in ([total, total - total // 16] if total else []):  # start the search beside the hint
    if low < near < high:
        trial, _ = built(near)
        if trial is None:
            low = near
        else:
            high = near
while high - low > 1:
    middle = (low + high) // 2
    trial, _ = built(middle)
    if trial is None:
        low = middle
    else:
        high = middle
interpreter, _ = built(high)
detail = interpreter.get_input_details(0)
dtype, shape = detail["dtype"], detail["shape"]
scales = detail["quantization_parameters"]["scales"]
zeros = detail["quantization_parameters"]["zero_points"]
labels = []
for row in x:
    row = row.reshape(shape)
    if np.issubdtype(dtype, np.integer) and len(scales) and scales[0]:  # not token ids: quantized
        info = np.iinfo(dtype)
        row = np.clip(np.round(row / scales[0] + zeros[0]), info.min, info.max)
    interpreter.reset()  # variable tensors (a fused LSTM's state) start every row from zeros
    interpreter.set_input(row.astype(dtype), 0)
    interpreter.invoke()
    labels.append(int(np.argmax(interpreter.get_output(0))))
say(runs=True, arena=high, labels=labels)
"""


def micro_unavailable() -> str | None:
    """Why TFLite Micro cannot be used here, or None when it can."""
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except Exception as error:  # ImportError, or a wheel built for another machine
        return (f"TFLite Micro is not installed here ({type(error).__name__}); the tflite-micro "
                "package has wheels for CPython 3.10 to 3.13 on Linux x86-64")
    return None


class Unscorable(RuntimeError):
    """A file only TFLite Micro runs cannot be scored here: TFLite Micro is missing, or cannot run
    it (an op it lacks); the row is skipped with the reason, as a strategy's Skip is."""


def micro_scored(flatbuffer: bytes, x_test: np.ndarray,
                 y_test: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """A file only TFLite Micro runs (``models.flatbuffer.micro_only``): its predicted test
    labels there, which are the row's, and its TFLite Micro columns (no agreement: there is no
    LiteRT prediction to agree with).  ``Unscorable``, with the reason, when it cannot be scored."""
    missing = micro_unavailable()
    if missing is not None:
        raise Unscorable(f"{missing}, and this file runs only there")
    outcome = run_in_micro(flatbuffer, x_test)
    if not outcome["runs"]:
        raise Unscorable(f"the file runs only in TFLite Micro, and {outcome['reason']}")
    labels = np.asarray(outcome["labels"])
    fields: dict[str, Any] = {**dict.fromkeys(FIELDS), "micro_runs": True,
                              "micro_flash_bytes": len(flatbuffer), "micro_arena_bytes": outcome["arena"],
                              "micro_accuracy": float(np.mean(labels == y_test))}
    return labels, fields


def micro_fields(flatbuffer: bytes, x_test: np.ndarray, y_test: np.ndarray,
                 litert_labels: np.ndarray) -> dict[str, Any]:
    """The TFLite Micro columns of a row (``FIELDS``), from the flatbuffer and the test split."""
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    fields["micro_flash_bytes"] = len(flatbuffer)
    missing = micro_unavailable()
    if missing is not None:
        fields.update(micro_reason=missing, micro_flash_bytes=None)
        return fields
    outcome = run_in_micro(flatbuffer, x_test)
    if not outcome["runs"]:
        fields.update(micro_runs=False, micro_reason=outcome["reason"])
        return fields
    labels = np.asarray(outcome["labels"])
    fields.update(micro_runs=True, micro_arena_bytes=outcome["arena"],
                  micro_accuracy=float(np.mean(labels == y_test)),
                  micro_agreement=float(np.mean(labels == litert_labels)))
    return fields


def run_in_micro(flatbuffer: bytes, x: np.ndarray, first_try: int | None = None) -> dict[str, Any]:
    """The exact arena and the predicted labels of ``x`` in TFLite Micro (``runs``, ``arena``,
    ``labels``), or why it does not run (``runs`` False, ``reason``).  The search starts at
    ``first_try`` bytes (default: ten times the model, at least 16 KiB, as TFLite Micro's own
    default arena), and goes on past children that a too-small arena crashed."""
    with tempfile.TemporaryDirectory(prefix="compress-micro-") as tmp:
        model, data = Path(tmp) / "model.tflite", Path(tmp) / "x.npz"
        model.write_bytes(flatbuffer)
        np.savez(data, x=np.asarray(x, np.int32 if x.dtype.kind in "iu" else np.float32))
        low, high = 0, min(MAX_ARENA, first_try or max(16 * 1024, 10 * len(flatbuffer)))
        for _ in range(MAX_CHILDREN):
            lines, code = _child(model, data, low, high)
            done = next((line for line in lines if "runs" in line), None)
            if done is not None:
                return done if done["runs"] else {"runs": False, "reason": _reason(done["said"])}
            tried = [line["trying"] for line in lines if "trying" in line]
            if not tried or code is None:
                why = "it took longer than the time allowed" if code is None else f"exit code {code}"
                return {"runs": False,
                        "reason": f"TFLite Micro stopped before it could build the model ({why})"}
            crashed, built = tried[-1], [line["built"] for line in lines if "built" in line]
            low = max([low, crashed, *(line["failed"] for line in lines if "failed" in line)])
            high = min(built) if built else max(high, min(MAX_ARENA, 2 * crashed))
            if low >= high:  # it died on a size known to work: not the arena's fault
                return {"runs": False, "reason": f"TFLite Micro crashed running the model (exit code {code})"}
        return {"runs": False, "reason": f"TFLite Micro crashed {MAX_CHILDREN} times while its arena was "
                "searched"}


def _child(model: Path, data: Path, low: int, high: int) -> tuple[list[dict[str, Any]], int | None]:
    """The JSON lines a child wrote and its exit code (None: it ran out of time)."""
    command = [sys.executable, "-c", _CHILD, str(model), str(data), str(low), str(high), str(MAX_ARENA)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as stopped:
        return _lines(stopped.stdout or b""), None
    return _lines(done.stdout), done.returncode


def _lines(output: bytes) -> list[dict[str, Any]]:
    found = []
    for line in output.decode(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _reason(said: str) -> str:
    """What TFLite Micro said when it would not build the model, on one line: the missing
    operator or the unsupported model if it named one."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    telling = next((line for line in lines if any(
        word in line for word in ("Didn't find op", "not supported", "Unsupported", "Hybrid"))), None)
    if telling is not None:
        return f"TFLite Micro cannot run it: {one_line(telling, 200)}"
    if lines:
        return f"TFLite Micro cannot run it: {one_line(lines[0], 200)}"
    return f"TFLite Micro cannot allocate it in an arena of up to {MAX_ARENA // (1024 * 1024)} MiB"
