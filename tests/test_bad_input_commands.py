"""Bad input to every command: exit code 2 (or the documented code), exactly one line on stderr
naming the problem, no traceback, and every file already on disk left byte-identical.

``tests/test_bad_input.py`` covers `run` with bad data files, teachers and strategy parameters;
these cases cover the rest of `run` and every other command.  Nothing here trains a model: a
fixture makes any attempt to train a teacher fail the case, so validation that comes too late
shows up as a failure instead of a slow test.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.results.outdir import open_output
from compress.results.rows import write_results
from tests.rows import spine_rows

# Cases ------------------------------------------------------------------------------------
# name -> (arguments, key phrase of the one stderr line[, exit code]).  "{key}" is a path from
# the ``world`` fixture below.  Every case also checks that no file under the test's folder
# (the run, sweep and user folders included) changed, appeared or disappeared.

RUN = {
    "run: negative seed": (["--seed", "-1"], "--seed/--seeds: seeds must be integers from 0 to"),
    "run: seed beyond 2**32": (["--seed", "5000000000"], "--seed"),
    "run: negative seed count": (["--seeds", "-2"], "--seeds must be at least 1, got -2"),
    "run: seed count not a number": (["--seeds", "x"], "'x' is not a valid integer"),
    "run: zero threads": (["--threads", "0"], "--threads must be a whole number of at least 1, got 0"),
    "run: resume without a folder": (["--resume"], "--resume resumes the folder --out names"),
    "run: unknown device": (["--device", "arduino"], "--device 'arduino' is not a device; choose one of"),
    "run: negative device size": (["--device", "mcu:ram=-256k,flash=1m"], "is not a size above 0"),
    "run: device size unit": (["--device", "mcu:ram=256q,flash=1m"], "ram='256q' is not a size above 0"),
    "run: device without flash": (["--device", "mcu:ram=256k"], "needs flash=SIZE"),
    "run: device without micro": (["--device", "nrf52840", "--no-micro"], "drop --no-micro"),
    "run: resume and overwrite": (["--resume", "--overwrite", "--out", "{csv}.run"], "not both"),
    "run: address without dask": (["--address", "tcp://127.0.0.1:8786"], "--address is for --executor dask"),
    "run: zero target rows in a shift": (["--scenario", "shift", "--target-train", "0"],
                                         "--target-train must be a whole number of at least 1"),
    "run: shift with own data": (["--scenario", "shift", "--data", "{csv}", "--target", "label"],
                                 "--scenario shift builds its own source and target"),
    "run: --target with an npz": (["--data", "{npz}", "--target", "y"], "an .npz holds its labels"),
    "run: unknown preset": (["--preset", "fast"], "Invalid value for '--preset'"),
    "run: empty strategy spec": (["--strategy", ""], "strategy spec '' is malformed"),
    "run: spec with a bare colon": (["--strategy", "distill:"], "has ':' but no parameters"),
    "run: parameter given twice": (["--strategy", "distill:alpha=0.1,alpha=0.2"], "sets 'alpha' twice"),
    "run: NaN parameter": (["--strategy", "distill:alpha=NaN"], "alpha must be float, got nan"),
    "run: boolean for an integer": (["--strategy", "finetune:epochs=true"], "epochs must be int, got True"),
    "run: overflowing parameter": (["--strategy", "prune-magnitude:sparsity=1e400"],
                                   "sparsity must be float, got inf"),
    "run: control without its technique": (["--strategy", "student-scratch"],
                                           "student-scratch is a control for distill"),
    "run: stage after a TFLite stage": (["--strategy", "quantize-int8>prune-magnitude"],
                                        "produces a TFLite file, so no stage can follow it"),
    "run: empty chain stage": (["--strategy", "prune-magnitude>"], "a chain has an empty stage"),
    "run: unknown chain stage": (["--strategy", "prune-magnitude>nope"], "unknown chain stage 'nope'"),
    "run: unknown student architecture": (["--strategy", "distill:student=zzz"],
                                          "architecture 'zzz' is not understood"),
    "run: wildcard matching nothing": (["--strategy", "zz*"], "no strategy matches 'zz*'"),
    "run: data is a folder without class folders": (["--data", "{user}"], "has no class folders; "
                                                    "--data takes a .csv, .tsv, .parquet or .npz file"),
    "run: npz labels with NaN": (["--data", "{npz_nan_y}"], "y contains NaN or inf"),
    "run: npz labels in two columns": (["--data", "{npz_y_2d}"], "y must be one label per row"),
    "run: npz x_test without y_test": (["--data", "{npz_x_test_only}"], "give both x_test and y_test"),
    "run: npz x_test of another shape": (["--data", "{npz_test_shape}"], "x_test rows have shape (5,)"),
    "run: npz scalar x": (["--data", "{npz_scalar}"], "must be arrays with one entry per row"),
    "run: npz rows without features": (["--data", "{npz_no_features}"], "with no features"),
    "run: npz text inputs": (["--data", "{npz_text_x}"], "x must be numeric, got dtype <U1"),
    "run: npz labels of two kinds": (["--data", "{npz_mixed_labels}"],
                                     "y holds numeric labels but y_test text"),
    "run: .npy renamed .npz": (["--data", "{npy_as_npz}"], "holds a single array, not an .npz archive"),
    "run: truncated npz": (["--data", "{npz_truncated}"], "is not a readable .npz"),
    "run: teacher of an unknown kind": (["--teacher", "{text}"], "--teacher takes a .keras file"),
    "run: teacher folder without a model": (["--teacher", "{user}"], "folder without a SavedModel"),
    "run: out is a file": (["--out", "{file}"], "is a file, not a folder"),
    "run: out is a user's folder": (["--out", "{user}"], "not made by compress"),
}

SWEEP_FILES = {
    "binary": b"\xff\xfe\x00 not text",
    "not toml": "this is = = not toml",
    "unknown key": "colour = 'red'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "no grid": "seeds = [0]\n",
    "grid a single table": "[grid]\nstrategy = 'quantize-dynamic'\n",
    "grid of numbers": "grid = [1, 2]\n",
    "grid without strategy": "[[grid]]\nsparsity = [0.5]\n",
    "strategy not text": "[[grid]]\nstrategy = 5\n",
    "empty axis": "[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = []\n",
    "date value": "[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = 1979-05-27\n",
    "table value": "[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = {a = 1}\n",
    "list of lists": "[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = [[0.5]]\n",
    "key not a name": "[[grid]]\nstrategy = 'prune-magnitude'\n'sparsity=0.5,epochs' = 1\n",
    "value splitting into two": "[[grid]]\nstrategy = 'distill'\nstudent = 'mlp:8,alpha=0.9'\n",
    "spec and axes": "[[grid]]\nstrategy = 'distill:alpha=0.1'\ntemperature = [2, 4]\n",
    "boolean seed": "seeds = [true]\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "repeated seed": "seeds = [0, 0]\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "seed beyond 2**32": "seeds = [5000000000]\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "seeds not a list": "seeds = 3\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "epochs as text": "epochs = '3'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "zero epochs": "epochs = 0\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "fractional epochs": "epochs = 1.5\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "unknown dataset": "dataset = 'mnist'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "dataset and data": "dataset = 'digits'\ndata = 'x.csv'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "data not text": "data = 5\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "target without data": "target = 'label'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "unknown missing policy": "missing = 'guess'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "imports not a list": "imports = 'tests.sweep_helpers'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "empty import name": "imports = ['']\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "import that is missing": "imports = ['no_such_module_xyz']\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "import that raises": "imports = ['compress_test_boom']\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "unknown strategy": "[[grid]]\nstrategy = 'nope'\n",
    "unknown parameter": "[[grid]]\nstrategy = 'distill'\ntempreature = [2]\n",
    "parameter out of range": "[[grid]]\nstrategy = 'prune-magnitude'\nsparsity = [0.5, 1.5]\n",
    "control alone": "[[grid]]\nstrategy = 'student-scratch'\n",
    "missing data file": "data = 'nope.csv'\ntarget = 'label'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
    "good": "dataset = 'digits'\n[[grid]]\nstrategy = 'quantize-dynamic'\n",
}


def _sweep(name: str, phrase: str, *options: str) -> tuple[list[str], str]:
    return ["{sweep_" + name + "}", *options], phrase


SWEEP = {
    "sweep: missing file": (["{tmp}/nope.toml"], "sweep file"),
    "sweep: file is binary": _sweep("binary", "is not valid TOML"),
    "sweep: not TOML": _sweep("not toml", "is not valid TOML"),
    "sweep: unknown key": _sweep("unknown key", "unknown key 'colour'"),
    "sweep: no grid": _sweep("no grid", "needs at least one [[grid]]"),
    "sweep: grid a single table": _sweep("grid a single table", "needs at least one [[grid]]"),
    "sweep: grid of numbers": _sweep("grid of numbers", "is not a table"),
    "sweep: grid without strategy": _sweep("grid without strategy", "needs strategy = \"NAME\""),
    "sweep: strategy not text": _sweep("strategy not text", "needs strategy = \"NAME\""),
    "sweep: empty axis": _sweep("empty axis", "has an empty list for sparsity"),
    "sweep: date value": _sweep("date value", "is not a number, boolean or text"),
    "sweep: table value": _sweep("table value", "is not a number, boolean or text"),
    "sweep: list of lists": _sweep("list of lists", "is not a number, boolean or text"),
    "sweep: key not a name": _sweep("key not a name", "is not a parameter name"),
    "sweep: value splitting into two": _sweep("value splitting into two", "do not make one parameter each"),
    "sweep: spec and axes": _sweep("spec and axes", "carries its own parameters"),
    "sweep: boolean seed": _sweep("boolean seed", "seeds must be a list of integers"),
    "sweep: repeated seed": _sweep("repeated seed", "seeds must be distinct"),
    "sweep: seed beyond 2**32": _sweep("seed beyond 2**32", "from 0 to 4294967295"),
    "sweep: seeds not a list": _sweep("seeds not a list", "seeds must be a list of integers"),
    "sweep: epochs as text": _sweep("epochs as text", "epochs must be a whole number"),
    "sweep: zero epochs": _sweep("zero epochs", "epochs must be a whole number of at least 1, got 0"),
    "sweep: fractional epochs": _sweep("fractional epochs", "epochs must be a whole number"),
    "sweep: unknown dataset": _sweep("unknown dataset", "unknown dataset 'mnist'"),
    "sweep: dataset and data": _sweep("dataset and data", "give dataset or data, not both"),
    "sweep: data not text": _sweep("data not text", "data must be a non-empty string"),
    "sweep: target without data": _sweep("target without data", "target names a column"),
    "sweep: unknown missing policy": _sweep("unknown missing policy", "missing must be one of"),
    "sweep: imports not a list": _sweep("imports not a list", "imports must be a list of module names"),
    "sweep: empty import name": _sweep("empty import name", "imports must be a list of module names"),
    "sweep: import that is missing": _sweep("import that is missing", "cannot import 'no_such_module_xyz'"),
    "sweep: import that raises": _sweep("import that raises", "compress_test_boom"),
    "sweep: unknown strategy": _sweep("unknown strategy", "no strategy matches 'nope'"),
    "sweep: unknown parameter": _sweep("unknown parameter", "unknown parameter 'tempreature'"),
    "sweep: parameter out of range": _sweep("parameter out of range", "sparsity must be between 0 and 1"),
    "sweep: control alone": _sweep("control alone", "student-scratch is a control for distill"),
    "sweep: missing data file": _sweep("missing data file", "does not exist"),
    "sweep: out is a file": _sweep("good", "is a file, not a folder", "--out", "{file}"),
    "sweep: out is a run folder": _sweep("good", "holds a compress run, not a sweep", "--out", "{run}"),
    "sweep: out is a user's folder": _sweep("good", "not made by compress", "--out", "{user}"),
    "sweep: out under a file": _sweep("good", "is not a writable folder", "--out", "{file}/sweep"),
    "sweep: zero jobs": _sweep("good", "--jobs must be a whole number of at least 1, got 0", "--jobs", "0"),
    "sweep: negative jobs": _sweep("good", "--jobs must be a whole number of at least 1, got -3",
                                   "--jobs", "-3"),
    "sweep: address without dask": _sweep("good", "--address is for --executor dask",
                                          "--address", "tcp://127.0.0.1:8786"),
    "sweep: unknown executor": _sweep("good", "Invalid value for '--executor'", "--executor", "ray"),
    "sweep: unknown timing": _sweep("good", "Invalid value for '--time'", "--time", "some"),
}

REPORT = {
    "report: missing folder": (["{tmp}/nope"], "no results file at"),
    "report: empty folder": (["{empty_dir}"], "no results file at"),
    "report: no arguments": ([], "Missing argument 'RESULTS...'"),
    "report: one of two runs missing": (["{run}", "{tmp}/nope"], "no results file at"),
    "report: damaged line": (["{bad_damaged}"], "results.jsonl:3 is not valid JSON"),
    "report: truncated last line": (["{bad_truncated}"], "is not valid JSON"),
    "report: binary results": (["{bad_binary}"], "is not UTF-8 text"),
    "report: empty results file": (["{bad_empty}"], "holds no result rows"),
    "report: results.csv given": (["{run}/results.csv"], "is the spreadsheet copy"),
    "report: accuracy is a string": (["{bad_accuracy_string}"], "accuracy is 'high'"),
    "report: accuracy is NaN": (["{bad_accuracy_nan}"], "accuracy is nan"),
    "report: accuracy above 1": (["{bad_accuracy_above_one}"], "not a fraction between 0 and 1"),
    "report: size is zero": (["{bad_size_zero}"], "size_bytes is 0"),
    "report: size is infinite": (["{bad_size_inf}"], "size_bytes is inf"),
    "report: latency is zero": (["{bad_latency_zero}"], "latency_us_p50 is 0"),
    "report: finished row without size": (["{bad_no_size}"], "has no size_bytes"),
    "report: latency without interval": (["{bad_no_interval}"], "latency_us_p50 has no interval"),
    "report: more faster rounds than rounds": (["{bad_rounds}"], "speedup_rounds_faster must come"),
    "report: seed is a string": (["{bad_seed_string}"], "seed is 'x'"),
    "report: status unknown": (["{bad_status}"], "status is 'done'"),
    "report: role unknown": (["{bad_role}"], "role is 'teacher'"),
    "report: params not an object": (["{bad_params}"], "params is [1], not an object"),
    "report: env.versions not an object": (["{bad_versions}"], "env.versions is"),
    "report: schema_version 1": (["{bad_schema_1}"], "has schema_version 1, this compress reads 2"),
    "report: no schema_version": (["{bad_schema_none}"], "has schema_version None"),
    "report: line is an array": (["{bad_array}"], "is a JSON array, not a result row"),
    "report: run.json damaged": (["{bad_manifest}"], "run.json is not valid JSON"),
    "report: run.json not an object": (["{bad_manifest_list}"], "run.json"),
    "report: out into another run": (["{run_b}", "--out", "{run}"], "holds a compress run, not a report"),
    "report: out into a sweep": (["{run}", "--out", "{sweep}"], "holds a compress sweep, not a report"),
    "report: out is a file": (["{run}", "--out", "{file}"], "is a file, not a folder"),
    "report: out is a user's folder": (["{run}", "--out", "{user}"], "not made by compress"),
    "report: out under a file": (["{run}", "--out", "{file}/report"], "is not a writable folder"),
    "report: unknown format": (["{run}", "--format", "md,pdf"], "unknown report format pdf"),
    "report: empty format": (["{run}", "--format", " , "], "unknown report format (none)"),
    "report: runs of different datasets": (["{run}", "{run_digits}", "--out", "{tmp}/merged"],
                                          "differ in dataset or teacher"),
}

RECOMMEND = {
    "recommend: negative size budget": (["{run}", "--max-size-kib", "-5"],
                                        "--max-size-kib must be a number above 0"),
    "recommend: zero size budget": (["{run}", "--max-size-kib", "0"],
                                    "--max-size-kib must be a number above 0"),
    "recommend: NaN size budget": (["{run}", "--max-size-kib", "nan"], "got nan"),
    "recommend: infinite latency budget": (["{run}", "--max-latency-us", "inf"],
                                           "--max-latency-us must be a number above 0, got inf"),
    "recommend: negative latency budget": (["{run}", "--max-latency-us", "-1"], "--max-latency-us must be"),
    "recommend: negative accuracy drop": (["{run}", "--max-accuracy-drop", "-1"],
                                          "--max-accuracy-drop must be 0 or more"),
    "recommend: NaN accuracy drop": (["{run}", "--max-accuracy-drop", "nan"], "--max-accuracy-drop must be"),
    "recommend: minus infinite accuracy drop": (["{run}", "--max-accuracy-drop", "-inf"],
                                                "--max-accuracy-drop must be"),
    "recommend: budget not a number": (["{run}", "--max-size-kib", "small"], "'small' is not a valid float"),
    "recommend: old option name": (["{run}", "--max-size-kb", "64"], "No such option '--max-size-kb'"),
    "recommend: unknown objective": (["{run}", "--objective", "cost"], "Invalid value for '--objective'"),
    "recommend: missing results": (["{tmp}/nope"], "no results file at"),
    "recommend: a data file given": (["{text}"], "is not a results file; pass a run folder"),
    "recommend: a run given twice": (["{run}", "{run}"], "is given twice; give each run once"),
    "recommend: runs of two datasets": (["{run}", "{run_digits}"], "differ in dataset or teacher"),
    "recommend: empty results file": (["{bad_empty}"], "holds no result rows"),
    "recommend: damaged results": (["{bad_damaged}"], "is not valid JSON"),
    "recommend: accuracy is a string": (["{bad_accuracy_string}"], "accuracy is 'high'"),
    "recommend: size is a string": (["{bad_size_string}"], "size_bytes is 'big'"),
    "recommend: nothing meets the budgets": (["{run}", "--max-size-kib", "0.001"],
                                             "nothing meets every constraint; closest is", 1),
    "recommend: no finished baseline": (["{bad_only_failed}"], "no finished rows with a baseline", 1),
}

BENCH = {
    "bench: no model": ([], "Missing argument 'MODELS...'"),
    "bench: empty file": (["{empty_tflite}"], "is not a TFLite flatbuffer (0 bytes"),
    "bench: text renamed .tflite": (["{text_tflite}"], "no TFL3 identifier"),
    "bench: TFL3 identifier on garbage": (["{garbage_tflite}"], "cannot be loaded by the LiteRT interpreter"),
    "bench: missing file": (["{tmp}/nope.tflite"], "does not exist"),
    "bench: folder named .tflite": (["{dir_tflite}"], "is a folder; pass a .tflite or .keras file"),
    "bench: wrong suffix": (["{onnx}"], "compress bench takes .tflite or .keras files"),
    "bench: damaged .keras": (["{bad_keras}"], "cannot load"),
    "bench: second model bad": (["{tflite}", "{text_tflite}"], "text.tflite is not a TFLite flatbuffer"),
    "bench: zero threads": (["{tflite}", "--threads", "0"], "--threads must be at least 1, got 0"),
    "bench: zero batch": (["{tflite}", "--batch", "0"], "--batch must be at least 1, got 0"),
    "bench: threads not a number": (["{tflite}", "--threads", "two"], "'two' is not a valid integer"),
    "bench: data a missing file": (["{tflite}", "--data", "{tmp}/nope.npz"], "neither a built-in dataset"),
    "bench: data not a zip": (["{tflite}", "--data", "{text_npz}"], "is not a readable .npz"),
    "bench: data without x": (["{tflite}", "--data", "{bench_no_x}"], "has no array named 'x'"),
    "bench: data a single array": (["{tflite}", "--data", "{npy_as_npz}"], "holds a single array"),
    "bench: data of another shape": (["{tflite}", "--data", "{bench_shape}"], "expects inputs of shape (4,)"),
    "bench: labels beyond the outputs": (["{tflite}", "--data", "{bench_labels_high}"],
                                         "has 3 outputs but labels go up to 6"),
    "bench: negative labels": (["{tflite}", "--data", "{bench_labels_negative}"], "negative label"),
    "bench: fractional labels": (["{tflite}", "--data", "{bench_labels_fraction}"],
                                 "must hold integer class indices"),
    "bench: fewer labels than inputs": (["{tflite}", "--data", "{bench_labels_short}"],
                                        "one class label per input row"),
    "bench: x_test with the train labels": (["{tflite}", "--data", "{bench_x_test_y}"],
                                            "has x_test and y but no y_test"),
    "bench: no rows": (["{tflite}", "--data", "{bench_empty}"], "has no rows"),
    "bench: NaN inputs": (["{tflite}", "--data", "{bench_nan}"], "contains NaN or inf"),
    "bench: text inputs": (["{tflite}", "--data", "{bench_text}"], "must be numeric"),
}

LIST = {
    "list: extra argument": (["quantize"], "Got unexpected extra argument (quantize)"),
    "list: unknown option": (["--family", "pruning"], "No such option '--family'"),
    "list: extra argument and unknown option": (["extra", "--bogus"], "No such option '--bogus'"),
}

TOP = {
    "compress: no command": ([], "no command given; choose one of"),
    "compress: unknown command": (["lst"], "No such command 'lst'"),
    "compress: unknown global option": (["--verbose", "list"], "No such option '--verbose'"),
}

CASES = {command: cases for command, cases in (
    ("run", RUN), ("sweep", SWEEP), ("report", REPORT), ("recommend", RECOMMEND), ("bench", BENCH),
    ("list", LIST), ("", TOP))}


def _params():
    for command, cases in CASES.items():
        for name, case in cases.items():
            yield pytest.param(command, *case[:2], case[2] if len(case) > 2 else 2, id=name)


# The files every case can point at ----------------------------------------------------------


def _lines(rows):
    return "".join(json.dumps(row) + "\n" for row in rows)


def _run_folder(path: Path, rows=None, *, text: str | bytes | None = None) -> Path:
    """A marked run folder holding results (or exactly ``text`` as its results.jsonl)."""
    open_output(path, "run")
    write_results(path, rows if rows is not None else spine_rows(run_id=path.name))
    if text is not None:
        target = path / "results.jsonl"
        target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text)
    (path / "report.md").write_text("an earlier report\n")
    return path


def _changed(index: int, **fields):
    rows = spine_rows()
    rows[index].update(fields)
    return _lines(rows)


BAD_RESULTS = {
    "damaged": _lines(spine_rows()[:2]) + "{not json\n" + _lines(spine_rows()[2:]),
    "truncated": _lines(spine_rows())[:-40] + "\n",
    "binary": b"\xff\xfe\x00\x81" * 50,
    "empty": "\n\n",
    "accuracy_string": _changed(1, accuracy="high"),
    "accuracy_nan": _changed(1, accuracy=float("nan")),
    "accuracy_above_one": _changed(1, accuracy=1.5),
    "size_zero": _changed(1, size_bytes=0),
    "size_inf": _changed(1, size_bytes=float("inf")),
    "size_string": _changed(1, size_bytes="big"),
    "latency_zero": _changed(1, latency_us_p50=0.0, latency_us_p50_ci_low=0.0, latency_us_p50_ci_high=0.0),
    "no_size": _changed(2, size_bytes=None),
    "no_interval": _changed(2, latency_us_p50_ci_low=None, latency_us_p50_ci_high=None),
    "rounds": _changed(2, speedup_rounds=10, speedup_rounds_faster=12),
    "seed_string": _changed(2, seed="x"),
    "status": _changed(2, status="done"),
    "role": _changed(0, role="teacher"),
    "params": _changed(3, params=[1]),
    "versions": _changed(0, env={"cpu": "x", "versions": ["tensorflow"]}),
    "schema_1": _changed(0, schema_version=1),
    "schema_none": _lines([{k: v for k, v in spine_rows()[0].items() if k != "schema_version"}]),
    "array": "[1, 2, 3]\n",
    "only_failed": _lines([{**row, "status": "failed", "reason": "boom"} for row in spine_rows()]),
}


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _template(root: Path) -> dict[str, Path]:
    """Every file the cases need, built once; each case works on its own copy."""
    from compress.models.backend import keras, to_tflite

    paths: dict[str, Path] = {}
    paths["run"] = _run_folder(root / "run")
    paths["run_b"] = _run_folder(root / "run-b")
    paths["run_digits"] = _run_folder(root / "run-digits",
                                      [dict(r, dataset="digits") for r in spine_rows(run_id="run-digits")])
    for name, text in BAD_RESULTS.items():
        paths[f"bad_{name}"] = _run_folder(root / f"bad-{name.replace('_', '-')}", text=text)
    paths["bad_manifest"] = _run_folder(root / "bad-manifest")
    (paths["bad_manifest"] / "run.json").write_text("{not json")
    paths["bad_manifest_list"] = _run_folder(root / "bad-manifest-list")
    (paths["bad_manifest_list"] / "run.json").write_text("[1, 2]")
    paths["sweep"] = root / "sweep"
    open_output(paths["sweep"], "sweep")
    write_results(paths["sweep"], spine_rows(run_id="sweep"))
    paths["user"] = root / "user"
    paths["user"].mkdir()
    (paths["user"] / "notes.txt").write_text("the user's own notes\n")
    paths["empty_dir"] = root / "empty"
    paths["empty_dir"].mkdir()
    paths["file"] = root / "a-file.txt"
    paths["file"].write_text("not a folder\n")
    paths["text"] = root / "notes.txt"
    paths["text"].write_text("hello\n")
    (root / "compress_test_boom.py").write_text("raise RuntimeError('boom at import')\n")

    sweeps = root / "sweeps"
    sweeps.mkdir()
    for name, text in SWEEP_FILES.items():
        path = sweeps / f"{name.replace(' ', '-')}.toml"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        paths[f"sweep_{name}"] = path

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60),
                          "label": [("a", "b", "c")[i % 3] for i in range(60)]})
    paths["csv"] = root / "data.csv"
    frame.to_csv(paths["csv"], index=False)
    x, y = rng.normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3
    data = root / "data"
    data.mkdir()
    paths["npz"] = _npz(data / "good.npz", x=x, y=y)
    paths["npz_nan_y"] = _npz(data / "nan-y.npz", x=x, y=np.where(y == 2, np.nan, y))
    paths["npz_y_2d"] = _npz(data / "y-2d.npz", x=x, y=np.stack([y, y], axis=1))
    paths["npz_x_test_only"] = _npz(data / "x-test-only.npz", x=x, y=y, x_test=x[:10])
    paths["npz_test_shape"] = _npz(data / "test-shape.npz", x=x, y=y, x_test=np.zeros((10, 5)),
                                   y_test=y[:10])
    paths["npz_scalar"] = _npz(data / "scalar.npz", x=np.float32(1.0), y=y)
    paths["npz_no_features"] = _npz(data / "no-features.npz", x=np.zeros((60, 0)), y=y)
    paths["npz_text_x"] = _npz(data / "text-x.npz", x=np.array([["a"] * 4] * 60), y=y)
    paths["npz_mixed_labels"] = _npz(data / "mixed.npz", x=x, y=y, x_test=x[:10],
                                     y_test=np.array(list("abcabcabca")))
    paths["npy_as_npz"] = data / "array.npz"
    buffer = io.BytesIO()
    np.save(buffer, x)
    paths["npy_as_npz"].write_bytes(buffer.getvalue())
    paths["npz_truncated"] = data / "truncated.npz"
    paths["npz_truncated"].write_bytes(paths["npz"].read_bytes()[:200])
    paths["text_npz"] = data / "text.npz"
    paths["text_npz"].write_text("x,y\n1,2\n")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    models = root / "models"
    models.mkdir()
    paths["tflite"] = models / "tiny.tflite"
    paths["tflite"].write_bytes(to_tflite(model))
    paths["empty_tflite"] = models / "empty.tflite"
    paths["empty_tflite"].write_bytes(b"")
    paths["text_tflite"] = models / "text.tflite"
    paths["text_tflite"].write_text("this is not a model, only text\n")
    paths["garbage_tflite"] = models / "garbage.tflite"
    paths["garbage_tflite"].write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x01" * 200)
    paths["dir_tflite"] = models / "folder.tflite"
    paths["dir_tflite"].mkdir()
    paths["onnx"] = models / "model.onnx"
    paths["onnx"].write_bytes(b"\x08\x07")
    paths["bad_keras"] = models / "bad.keras"
    paths["bad_keras"].write_text("not a zip archive")
    paths["bench_no_x"] = _npz(data / "bench-no-x.npz", inputs=x, y=y)
    paths["bench_shape"] = _npz(data / "bench-shape.npz", x=np.zeros((20, 5)), y=y[:20])
    paths["bench_labels_high"] = _npz(data / "bench-high.npz", x=x, y=np.arange(60) % 7)
    paths["bench_labels_negative"] = _npz(data / "bench-negative.npz", x=x, y=-y)
    paths["bench_labels_fraction"] = _npz(data / "bench-fraction.npz", x=x, y=y + 0.5)
    paths["bench_labels_short"] = _npz(data / "bench-short.npz", x=x, y=y[:30])
    paths["bench_x_test_y"] = _npz(data / "bench-x-test.npz", x=x, y=y, x_test=x[:10])
    paths["bench_empty"] = _npz(data / "bench-empty.npz", x=x[:0], y=y[:0])
    paths["bench_nan"] = _npz(data / "bench-nan.npz", x=np.where(x > 1, np.nan, x), y=y)
    paths["bench_text"] = _npz(data / "bench-text.npz", x=np.array([["a"] * 4] * 60), y=y)
    return paths


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input-template")
    return root, _template(root)


@pytest.fixture
def world(template, tmp_path, monkeypatch):
    """A fresh copy of every file, the working directory inside it, and training forbidden."""
    import compress.orchestrate.steps
    import compress.orchestrate.teachers

    def refuse(*args, **kwargs):
        raise AssertionError("a teacher or strategy would train: bad input was not caught first")

    monkeypatch.setattr(compress.orchestrate.teachers, "get_teacher", refuse)
    monkeypatch.setattr(compress.orchestrate.steps, "apply_strategy", refuse)
    source, paths = template
    root = tmp_path / "world"
    shutil.copytree(source, root)
    monkeypatch.chdir(root)  # default output folders (reports/...) land here, inside the snapshot
    monkeypatch.syspath_prepend(str(root))
    values = {key: str(root / path.relative_to(source)) for key, path in paths.items()}
    return root, {**values, "tmp": str(root)}


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


@pytest.mark.parametrize(("command", "args", "phrase", "code"), list(_params()))
def test_bad_input_is_one_line_and_changes_nothing(world, command, args, phrase, code):
    root, paths = world
    args = [a.format(**paths) for a in args]
    before = _snapshot(root)
    result = CliRunner().invoke(cli, [command, *args] if command else args)
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("compress: error: " if code == 2 else "compress: "), lines[0]
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.output
    assert _snapshot(root) == before


def test_every_command_has_bad_input_cases():
    assert {name for name in CASES if name} == {"run", "sweep", "report", "recommend", "bench", "list"}
    assert sum(len(cases) for cases in CASES.values()) >= 60


def test_bench_of_two_models_prints_the_table(world):
    """The happy path the fixed checks sit on: labels checked first, then timed, then a table."""
    _, paths = world
    result = CliRunner().invoke(cli, ["bench", paths["tflite"], paths["tflite"], "--data", paths["npz"]])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Speed-up vs tiny.tflite" in result.output and "Accuracy [95% CI]" in result.output
