"""``compress bench``: the measurement path of a run, applied to any model files.

The first model is the reference for speed-up ratios; all models are timed in
interleaved rounds, exactly as rows of a run are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compress.analysis.configurations import speed_verdict
from compress.common.errors import UserError, option
from compress.data.arrays import read_npz
from compress.data.builtin import BUILTIN_DATASETS, load_dataset
from compress.measure.accuracy import accuracy_stats
from compress.measure.latency import latency_span, measure_latency
from compress.measure.size import size_fields
from compress.models.backend import keras, to_tflite
from compress.models.flatbuffer import TFLiteModel, micro_only
from compress.results.rows import environment

RANDOM_ROWS = 256


def load_flatbuffer(path: Path) -> bytes:
    """A .tflite as is, or a .keras file converted the way runs convert (a Keras 3 file
    translated to tf_keras first, as ``run --teacher`` translates it)."""
    if path.is_dir():
        raise UserError(f"model file {path} is a folder; pass a .tflite or .keras file")
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; check the path")
    if path.suffix == ".tflite":
        flatbuffer = path.read_bytes()
        if len(flatbuffer) < 8 or flatbuffer[4:8] != b"TFL3":
            raise UserError(f"{path} is not a TFLite flatbuffer ({len(flatbuffer)} bytes, no TFL3 "
                            "identifier); pass a .tflite written by a TFLite converter")
        return flatbuffer
    if path.suffix == ".keras":
        from compress.models.keras3 import is_keras3_file, translate

        if is_keras3_file(path):
            return to_tflite(translate(path))
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot load {path} as a tf_keras model: {first}") from None
        return to_tflite(model)
    raise UserError(f"{path}: compress bench takes .tflite or .keras files")


def load_inputs(data: str | None, input_shape: tuple[int, ...], *, ids: bool = False,
                ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Test inputs (and labels) from a built-in dataset or an .npz, else seeded random rows (for
    a model of token ids, ``ids``: ids 0 and 1, which every table of two rows or more holds); and
    what they are, in words."""
    if data is None:
        rng = np.random.default_rng(0)
        shape = (RANDOM_ROWS, *input_shape)
        rows = rng.integers(0, 2, size=shape).astype(np.int32) if ids else \
            rng.normal(size=shape).astype(np.float32)
        return rows, None, f"{RANDOM_ROWS} seeded random rows (no accuracy)"
    if data in BUILTIN_DATASETS:
        dataset = load_dataset(data, 0)
        return dataset.x_test, dataset.y_test, f"the test split of {data} (seed 0)"
    path = Path(data)
    if path.suffix != ".npz" or not path.is_file():
        raise UserError(f"{option('data')} {data!r} is neither a built-in dataset "
                        f"({', '.join(BUILTIN_DATASETS)}) nor an existing .npz file")
    arrays = read_npz(path)
    if "x" not in arrays and "x_test" not in arrays:
        raise UserError(f"{path} has no array named 'x'; save inputs as x (and labels as y)")
    name = "x_test" if "x_test" in arrays else "x"  # labels must belong to these inputs
    label = "y_test" if name == "x_test" else "y"
    if name == "x_test" and "y" in arrays and label not in arrays:
        raise UserError(f"{path} has x_test and y but no y_test (y labels x, not x_test); "
                        "save y_test too, or drop x_test")
    x, y = arrays[name], arrays.get(label)
    what = (f"x_test of {path.name}" if name == "x_test" else
            f"every row of x in {path.name} (it has no x_test: rows a model trained on flatter it)")
    return (_checked_inputs(path, name, x), None if y is None else _checked_labels(path, label, y, len(x)),
            what)


def _checked_inputs(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 0 or len(x) == 0:
        raise UserError(f"{path}: {name} has no rows (shape {x.shape}); save at least one input row")
    if x.dtype.kind not in "fiub":
        raise UserError(f"{path}: {name} must be numeric, got dtype {x.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{path}: {name} contains NaN or inf (or values beyond float32); clean those "
                        "rows first")
    return x


def _checked_labels(path: Path, name: str, y: np.ndarray, rows: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != rows:
        raise UserError(f"{path}: {name} must hold one class label per input row ({rows}), "
                        f"got shape {y.shape}")
    whole = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.isfinite(y).all())
                                      and bool((y == np.round(y)).all()))
    if not whole:
        raise UserError(f"{path}: {name} must hold integer class indices, got dtype {y.dtype}"
                        + (" with NaN, inf or fractions" if y.dtype.kind == "f" else ""))
    if y.min() < 0:
        raise UserError(f"{path}: {name} holds the negative label {y.min()}; class indices start at 0")
    return y.astype(np.int64)


def _loaded(name: str, flatbuffer: bytes) -> TFLiteModel:
    if micro_only(flatbuffer):
        raise UserError(f"{name} runs only in TFLite Micro (its weights are look-up-table compressed): "
                        "time it on the device; its run's row has its TFLite Micro accuracy and arena")
    try:
        return TFLiteModel(flatbuffer)
    except (ValueError, RuntimeError) as error:
        raise UserError(f"{name} cannot be loaded by the LiteRT interpreter: "
                        f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def bench(
    paths: Path | str | Sequence[Path | str], *, data: str | None = None, threads: int = 1,
    batch: int = 256,
) -> list[dict[str, Any]]:
    """Size, latency (and accuracy with labels) per model; ratios against the first."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise UserError("give at least one model file")
    if threads < 1:
        raise UserError(f"{option('threads')} must be at least 1, got {threads}")
    if batch < 1:
        raise UserError(f"{option('batch')} must be at least 1, got {batch}")
    latency_span()
    flatbuffers = {str(path): load_flatbuffer(path) for path in paths}
    loaded = {name: _loaded(name, fb) for name, fb in flatbuffers.items()}
    shapes = {name: model.input_shape for name, model in loaded.items()}
    first = str(paths[0])
    takes_ids = np.issubdtype(loaded[first].input_dtype, np.integer) and not loaded[first].quantized_input
    x, y, scored_on = load_inputs(data, shapes[first], ids=takes_ids)
    for name, shape in shapes.items():
        if shape != tuple(x.shape[1:]):
            raise UserError(f"{name} expects inputs of shape {shape} but the data has {tuple(x.shape[1:])}")
    outputs = {}
    if y is not None:  # labels are checked against every model before anything is timed
        for name, flatbuffer in flatbuffers.items():
            outputs[name] = TFLiteModel(flatbuffer, threads=threads).predict(x)
            if outputs[name].ndim != 2 or outputs[name].shape[1] <= int(y.max()):
                raise UserError(f"{name} has {outputs[name].shape[1]} outputs but labels go up to "
                                f"{y.max()}; pass labels that match the model")
    latencies = measure_latency(flatbuffers, x, reference=first, threads=threads,
                                throughput_batch=batch)
    env = environment(threads=threads)
    results, reference = [], None
    for name, flatbuffer in flatbuffers.items():
        row: dict[str, Any] = {"artifact": name, "inputs": scored_on, **size_fields(flatbuffer),
                               **latencies[name].fields(), "env": env}
        if y is not None:
            labels = outputs[name].argmax(axis=1)
            reference = labels if reference is None else reference
            row.update(asdict(accuracy_stats(y, labels, outputs[name].shape[1], reference)))
        results.append(row)
    return results


def bench_table(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Display records: ratios read as 'b/a' against the first model."""
    first = rows[0]["artifact"]
    records = []
    for row in rows:
        record = {
            "Model": row["artifact"],
            "Size KiB": f"{row['size_bytes'] / 1024:,.1f}",
            "gzip KiB": f"{row['size_gzip_bytes'] / 1024:,.1f}",
            "Params (non-zero)": f"{row['params_count']:,} ({row['nonzero_params']:,})",
            "MACs": f"{row['macs']:,}",
            "p50 µs [95% CI]": f"{row['latency_us_p50']:.2f} [{row['latency_us_p50_ci_low']:.2f}, "
            f"{row['latency_us_p50_ci_high']:.2f}]",
            "CPU µs/call [95% CI]": f"{row['latency_cpu_us']:.2f} [{row['latency_cpu_us_ci_low']:.2f}, "
            f"{row['latency_cpu_us_ci_high']:.2f}]",
            "p95 / p99 µs": f"{row['latency_us_p95']:.2f} / {row['latency_us_p99']:.2f}",
            "IQR µs": f"{row['latency_us_iqr']:.2f}",
            "Steady rounds": f"{row['latency_steady_rounds']} of {row['latency_rounds']}",
            "Throughput /s": f"{row['throughput_sps']:,.0f}",
            f"Speed-up vs {Path(first).name}": "—" if row["artifact"] == first else
            f"{row['speedup']:.2f}× [{row['speedup_ci_low']:.2f}, {row['speedup_ci_high']:.2f}] "
            f"{speed_verdict(row['speedup'], row['speedup_ci_low'], row['speedup_ci_high'])}",
        }
        if "accuracy" in row:
            record["Accuracy [95% CI]"] = (f"{row['accuracy']:.3f} [{row['accuracy_ci_low']:.3f}, "
                                           f"{row['accuracy_ci_high']:.3f}]")
        records.append(record)
    return records
