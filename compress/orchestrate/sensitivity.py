"""Per-layer sensitivity: how much each layer alone costs when quantized or pruned.

Mixed precision and selective pruning pay off only where layers differ: a layer that holds
most of the bytes but loses nothing at int4 is where to spend the savings.  Each row
compresses one layer and leaves every other layer float, then scores the model on the
validation split (never the test split, which ``TrainingData`` does not even carry).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.strategies.quantizing import PRECISION_NAMES

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData
    from compress.models.backend import keras
    from compress.strategies.quantizing import LayerGraph

COLUMNS = ("layer", "method", "setting", "bytes_share", "macs_share", "accuracy_drop_pp", "output_cosine",
           "not_measured")
CSV_FILE, PNG_FILE = "sensitivity.csv", "sensitivity.png"


def layer_sensitivity(
    model: keras.Model,
    data: TrainingData,
    *,
    precisions: Sequence[str] = ("int8", "int4", "int2"),
    sparsities: Sequence[float] = (0.8,),
    layers: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (quantizable layer, method, setting), layers in model order.

    Quantizing a layer: litert-quantizer's dynamic-range recipe at that precision (per-channel
    scales) on that layer's ops only.  Pruning a layer: its smallest-magnitude kernel weights
    set to zero up to the sparsity, on a clone.  ``bytes_share`` and ``macs_share`` are the
    layer's share of the float model's Dense/Conv weight bytes (kernel and bias) and MACs, so
    each sums to 1 over all quantizable layers.  ``accuracy_drop_pp`` is float minus compressed
    validation accuracy in percentage points (positive = worse).  ``output_cosine`` is the cosine
    similarity of the layer's output tensor to the float model's (1 = unchanged), over the
    validation rows, as litert-quantizer's ``Quantizer.validate`` computes it; None for pruning.
    Both are None where litert-quantizer cannot apply the precision to the layer (int4 on a
    depthwise convolution) or LiteRT cannot compute it (int2 convolutions: ``runtime_defect``),
    and ``not_measured`` says which.
    """
    from compress.models.flatbuffer import signature_input
    from compress.strategies.quantizing import PRECISIONS, LayerGraph

    precisions, sparsities = check_settings(precisions, sparsities)
    graph = LayerGraph(model)
    if not graph.layers:
        raise UserError("the model has no Dense or Conv layer to quantize or prune")
    if layers is not None:
        missing = [name for name in layers if name not in graph.layers]
        if missing:
            raise UserError(f"unknown layer {missing[0]!r}; quantizable layers: {', '.join(graph.layers)}")
    chosen = [name for name in graph.layers if layers is None or name in layers]
    total_bytes = sum(graph.weight_bytes(name) for name in graph.layers)
    total_macs = sum(op.macs for ops in graph.layers.values() for op in ops)
    reference = _accuracy(graph.float, data)
    feed = signature_input(graph.float)
    rows = []
    for name in chosen:
        shares = {"bytes_share": graph.weight_bytes(name) / total_bytes,
                  "macs_share": sum(op.macs for op in graph.layers[name]) / total_macs if total_macs else 0.0}
        for precision in precisions:
            drop, cosine, why = _quantized(graph, name, PRECISIONS[precision], data, reference, feed)
            rows.append({"layer": name, "method": "quantize", "setting": precision, **shares,
                         "accuracy_drop_pp": drop, "output_cosine": cosine, "not_measured": why})
        for sparsity in sparsities:
            drop = (reference - _accuracy(_pruned(model, name, sparsity), data)) * 100
            rows.append({"layer": name, "method": "prune", "setting": f"{sparsity:g}", **shares,
                         "accuracy_drop_pp": drop, "output_cosine": None, "not_measured": None})
    return rows


def check_settings(precisions: str | Sequence[str], sparsities: float | Sequence[float],
                   ) -> tuple[list[str], list[float]]:
    """The precisions and sparsities as lists (one value may be given bare), or a one-line error:
    checked before a teacher is trained, so a typo costs nothing."""
    precisions = [precisions] if isinstance(precisions, str) else list(precisions)
    sparsities = [sparsities] if isinstance(sparsities, (int, float)) else list(sparsities)
    unknown = [p for p in precisions if p not in PRECISION_NAMES]
    if unknown:
        raise UserError(f"unknown precision {unknown[0]!r}; valid precisions: {', '.join(PRECISION_NAMES)}")
    bad = [s for s in sparsities if isinstance(s, bool) or not (isinstance(s, (int, float)) and 0 <= s < 1)]
    if bad:
        raise UserError(f"sparsity must be at least 0 and below 1, got {bad[0]!r}")
    if not precisions and not sparsities:
        raise UserError("nothing to measure: give at least one precision or one sparsity")
    return precisions, sparsities


def _accuracy(flatbuffer: bytes, data: TrainingData) -> float:
    from compress.strategies.quantizing import validation_accuracy

    return validation_accuracy(flatbuffer, data)


def _quantized(graph: LayerGraph, layer: str, bits: int, data: TrainingData, reference: float,
               feed: tuple[str, str]) -> tuple[float | None, float | None, str | None]:
    """(accuracy drop, cosine similarity at the layer's output, None) with only ``layer`` at
    ``bits``, or (None, None, why not) where it cannot be measured."""
    from litert_quantizer import quantizer
    from litert_quantizer.utils.validation_utils import ValidationErrorMetric

    from compress.models.backend import quiet_stderr
    from compress.models.flatbuffer import kernel_types
    from compress.strategies import Skip
    from compress.strategies.quantizing import quantize_weights, runtime_defect

    defects = [defect for op in graph.layers[layer] if (defect := runtime_defect(op.kind, bits))]
    if defects:
        return None, None, defects[0]  # LiteRT would score its own defect, not the precision
    try:
        flatbuffer = quantize_weights(graph.float, [(graph.regex(layer), bits)])
    except Skip as refused:
        return None, None, str(refused)
    if f"int{bits}" not in {precision for _, precision in kernel_types(flatbuffer)}:
        kinds = ", ".join(sorted({op.kind for op in graph.layers[layer]}))
        return None, None, f"litert-quantizer leaves {kinds} float at int{bits}: nothing to measure"
    signature, name = feed
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": it is what we want
        compared = quantizer.Quantizer(graph.float, previous_quantized_model=flatbuffer).validate(
            {signature: [{name: data.x_val}]}, error_metrics=[ValidationErrorMetric.COSINE_SIMILARITY],
            num_threads=1)
    tensors = compared.get_all_tensor_results()
    output = graph.layers[layer][-1].output
    metric = ValidationErrorMetric.COSINE_SIMILARITY.value
    cosine = tensors[output][metric] if output in tensors else None
    return (reference - _accuracy(flatbuffer, data)) * 100, cosine, None


def _pruned(model: keras.Model, layer: str, sparsity: float) -> bytes:
    """A float flatbuffer of a clone whose ``layer`` kernel has its smallest weights zeroed."""
    from compress.models.architectures import clone
    from compress.models.backend import to_tflite
    from compress.strategies.quantizing import leaf_layers

    copy = clone(model)
    target = next(candidate for candidate in leaf_layers(copy) if candidate.name == layer)
    weights = target.get_weights()
    kernel = weights[0]
    flat = kernel.reshape(-1).copy()
    flat[np.argsort(np.abs(flat), kind="stable")[: round(sparsity * flat.size)]] = 0
    target.set_weights([flat.reshape(kernel.shape), *weights[1:]])
    return to_tflite(copy)


def write_sensitivity(rows: Sequence[dict[str, Any]], out: Path) -> None:
    """``sensitivity.csv`` and ``sensitivity.png`` in the folder ``out``; same rows, same bytes."""
    if not rows:
        raise ValueError("no sensitivity rows to write")
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in COLUMNS})
    write_atomic(out / CSV_FILE, buffer.getvalue())
    write_atomic(out / PNG_FILE, _figure_png(rows))


def _figure_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """Grouped bars: one cluster per layer (model order), one bar per method/setting."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from compress.report.plots import STYLE

    layers = list(dict.fromkeys(row["layer"] for row in rows))
    groups = list(dict.fromkeys((row["method"], row["setting"]) for row in rows))
    drops = {(row["layer"], row["method"], row["setting"]): row["accuracy_drop_pp"] for row in rows}
    shares = {row["layer"]: row["bytes_share"] for row in rows}
    width = 0.8 / len(groups)
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(max(5.0, 1.1 * len(layers) * max(1, len(groups)) / 2 + 2), 3.8))
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        for index, (method, setting) in enumerate(groups):
            heights = [drops.get((layer, method, setting)) for layer in layers]
            positions = [i - 0.4 + width * (index + 0.5) for i in range(len(layers))]
            axes.bar(positions, [math.nan if h is None else h for h in heights], width,
                     label=f"{method} {setting}")
        axes.axhline(0, color="#333333", linewidth=0.8)
        axes.set_xticks(range(len(layers)),
                        [f"{layer}\n{shares[layer]:.0%} of bytes" for layer in layers])
        axes.set_ylabel("Validation accuracy drop (pp)")
        axes.set_title("One layer compressed at a time, the rest float (higher = more sensitive)")
        axes.legend(frameon=False, fontsize=8)
        axes.set_axisbelow(True)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
