"""Look-up-table compression for TFLite Micro: kernels with few distinct values stored as
narrow indices into a table of them, unpacked on the device by ``DECODE`` operators.

Clustering leaves a float file as large as before, since nothing in it stores fewer bits per
weight; this step does (TFLite Micro's own compression tool, in the ``tflite-micro`` package).
After ``cluster`` (``cluster>lut``) the kernels already hold at most 2**``bits`` values, learnt
with fine-tuning; on its own, each kernel with more is first palettized after training: every
weight replaced by the nearest of 2**``bits`` values found by one-dimensional k-means (what
Core ML calls palettization).  LiteRT cannot load the result, so measurement scores it in
TFLite Micro and does not time it; the decoded weights take tensor arena on the device.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from compress.models.backend import to_tflite
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register

#: Tensors smaller than this many values are left as they are: a table and its indices would
#: not be smaller.
MIN_VALUES = 64
#: Lloyd iterations of the one-dimensional k-means that palettizes a kernel (it settles in far
#: fewer on weight distributions; the cap bounds the cost of a pathological one).
PALETTE_ITERATIONS = 50


def palettized(values: np.ndarray, count: int) -> np.ndarray:
    """``values`` with each replaced by the nearest of ``count`` centres of one-dimensional
    k-means (Lloyd's algorithm from the quantiles, so the same weights give the same palette)."""
    flat = values.ravel().astype(np.float64)
    centres = np.quantile(flat, (np.arange(count) + 0.5) / count)
    for _ in range(PALETTE_ITERATIONS):
        nearest = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
        sums, sizes = np.bincount(nearest, flat, count), np.bincount(nearest, minlength=count)
        moved = np.where(sizes > 0, sums / np.maximum(sizes, 1), centres)
        if np.allclose(moved, centres):
            break
        centres = np.sort(moved)
    nearest = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
    return centres[nearest].reshape(values.shape).astype(values.dtype)


@register
class LookUpTable(Strategy):
    name = "lut"
    family = "clustering"
    summary = ("TFLite Micro's look-up-table compression: kernels as 2**bits-value palettes (learnt by "
               "cluster before it, else found after training): fewer bytes of flash; TFLite Micro only.")
    produces_tflite = True
    #: Never searched by ``tune``: its files run only in TFLite Micro, so they have no latency
    #: to rank by, and a search on size alone would always end on it.
    tunable: ClassVar[dict[str, Range | Choice] | None] = None
    follows = ("clustering",)
    cost = 0.0

    def __init__(self, bits: int = 4) -> None:
        self.bits = bits
        self._check(isinstance(bits, int) and 1 <= bits <= 8,
                    f"bits must be a whole number from 1 to 8 (tables of 2 to 256 values), "
                    f"got {bits}")

    def compress(self, ctx: Context) -> Compressed:
        try:
            from tflite_micro.tensorflow.lite.micro.compression import compress as packed_file
            from tflite_micro.tensorflow.lite.micro.compression import constant_inputs, model_editor
            from tflite_micro.tensorflow.lite.micro.compression import spec as compression
        except Exception as error:  # ImportError, or a wheel built for another machine
            raise Skip(f"TFLite Micro's compression tools are not installed here "
                       f"({type(error).__name__}); the tflite-micro package has wheels for CPython "
                       "3.10 to 3.13 on Linux x86-64") from error
        model = model_editor.read(to_tflite(ctx.teacher))
        graph, count = model.subgraphs[0], 2**self.bits
        specs, palettes, kept = [], [], []
        for index, tensor in enumerate(graph.tensors):
            values = tensor.array if tensor.buffer is not None and tensor.buffer.data else None
            if values is None or values.ndim < 2 or values.size < MIN_VALUES or values.dtype != np.float32 \
                    or constant_inputs.find_uses(graph, tensor):
                continue  # a bias, a small or integer tensor, or one an op must read as it is
            name, distinct = tensor.name.split(";")[-1], len(np.unique(values))
            if distinct > count:
                tensor.array = palettized(values, count)
                palettes.append(name)
                distinct = len(np.unique(tensor.array))
            else:
                kept.append(f"{name} ({distinct} values)")
            table = compression.LookUpTableCompression(index_bitwidth=max(1, math.ceil(math.log2(distinct))),
                                                       mode=compression.PerTensor())
            specs.append(compression.Tensor(subgraph=0, tensor=index, compression=[table]))
        if not specs:
            raise Skip(f"no float kernel of at least {MIN_VALUES} weights to compress")
        flatbuffer = bytes(model.build())
        parts = [f"kernels palettized here to {count} values each (1-D k-means after training): "
                 f"{', '.join(palettes)}"] if palettes else []
        parts += [f"kernels with at most {count} values already: {', '.join(kept)}"] if kept else []
        compressed = bytes(packed_file(flatbuffer, specs))
        return Compressed(tflite=compressed, notes=(
            f"Look-up-table compressed for TFLite Micro at up to {self.bits} bits per weight: "
            f"{'; '.join(parts)}; {len(flatbuffer):,} → {len(compressed):,} bytes. DECODE operators "
            "unpack each table at run time, into the tensor arena; LiteRT cannot load the file, so it "
            "is scored in TFLite Micro and not timed."))
