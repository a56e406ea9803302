"""Every row in TFLite Micro's real interpreter: whether it runs, its exact arena, its flash and
its accuracy there, and a one-line skip of those columns where the runtime is missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import compress
from compress.measure import micro
from compress.models.backend import keras, to_tflite

pytestmark = pytest.mark.skipif(micro.micro_unavailable() is not None,
                                reason="tflite-micro has no wheel for this machine")

#: Builds the model at an arena size in a child (a too-small arena may crash a process):
#: prints "built" or "failed".
_BUILD = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
try:
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
    detail = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
    interpreter.invoke()
    print("built")
except RuntimeError:
    print("failed")
"""


def _dense(inputs: int = 20, classes: int = 3) -> bytes:
    model = keras.Sequential([keras.layers.Input((inputs,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(classes)])
    return to_tflite(model)


def _builds(tmp_path, flatbuffer: bytes, arena: int) -> bool:
    path = tmp_path / "model.tflite"
    path.write_bytes(flatbuffer)
    done = subprocess.run([sys.executable, "-c", _BUILD, str(path), str(arena)], capture_output=True,
                          text=True)
    return done.stdout.strip() == "built"


def test_the_arena_found_is_the_smallest_that_builds(tmp_path):
    flatbuffer = _dense()
    found = micro.run_in_micro(flatbuffer, np.zeros((4, 20), np.float32))
    assert found["runs"] and len(found["labels"]) == 4
    assert _builds(tmp_path, flatbuffer, found["arena"])
    assert not _builds(tmp_path, flatbuffer, int(found["arena"] * 0.99))


def test_a_search_that_crashes_its_child_goes_on_past_it():
    """An arena of 100 bytes kills the process (a segfault): the next child starts above it."""
    flatbuffer = _dense()
    x = np.zeros((2, 20), np.float32)
    from_the_crash = micro.run_in_micro(flatbuffer, x, first_try=100)
    assert from_the_crash["arena"] == micro.run_in_micro(flatbuffer, x)["arena"]


def test_a_missing_operator_is_named(tmp_path):
    """TILE is not in TFLite Micro's op set: the row says so instead of failing."""
    inputs = keras.layers.Input((4,))
    tiled = keras.layers.Lambda(lambda x: compress.models.backend.tf.tile(x, [1, 2]))(inputs)
    flatbuffer = to_tflite(keras.Model(inputs, keras.layers.Dense(3)(tiled)))
    fields = micro.micro_fields(flatbuffer, np.zeros((2, 4), np.float32), np.zeros(2, int), np.zeros(2, int))
    assert fields["micro_runs"] is False and "TILE" in fields["micro_reason"]
    assert fields["micro_flash_bytes"] == len(flatbuffer) and fields["micro_arena_bytes"] is None


def test_a_run_measures_every_row_in_micro_and_int8_agrees_with_litert(tmp_path):
    frame = compress.compare("digits", ["quantize-int8", "quantize-dynamic"], epochs=1, out=tmp_path / "run")
    rows = {row["strategy"]: row for row in frame.to_dict("records")}
    for name in ("baseline", "quantize-int8"):
        assert rows[name]["micro_runs"] is True and rows[name]["micro_arena_bytes"] > 0
        assert rows[name]["micro_flash_bytes"] == rows[name]["size_bytes"]
    assert rows["quantize-int8"]["micro_agreement"] >= 0.99
    assert rows["baseline"]["micro_accuracy"] == pytest.approx(rows["baseline"]["accuracy"], abs=0.002)
    dynamic = rows["quantize-dynamic"]  # a hybrid model: TFLite Micro does not run those
    assert dynamic["micro_runs"] is False and "not supported" in dynamic["micro_reason"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## On a microcontroller (TFLite Micro)" in report


def test_without_tflite_micro_the_columns_are_a_one_line_skip(tmp_path, monkeypatch):
    monkeypatch.setattr(micro, "micro_unavailable", lambda: "TFLite Micro is not installed here")
    fields = micro.micro_fields(_dense(), np.zeros((2, 20), np.float32), np.zeros(2, int), np.zeros(2, int))
    assert fields["micro_runs"] is None and fields["micro_reason"] == "TFLite Micro is not installed here"


def test_no_micro_leaves_the_columns_empty(tmp_path):
    frame = compress.compare("synthetic", ["quantize-dynamic"], epochs=1, out=tmp_path / "run", micro=False)
    assert frame["micro_runs"].isna().all() and frame["micro_reason"].isna().all()
