"""Quantization family: post-training conversions of the teacher to lower precision."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from compress.backend import keras, to_tflite
from compress.strategies.base import Compressed, Context, Strategy, register


def representative_data(
    x: np.ndarray, samples: int, seed: int
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration batches drawn from the train split (never the test split)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=min(samples, len(x)), replace=False)

    def batches() -> Iterator[list[np.ndarray]]:
        for row in rows:
            yield [x[row : row + 1].astype(np.float32)]

    return batches


class _PostTraining(Strategy):
    """Shared shape of the post-training variants: convert the teacher, no training."""

    family = "quantization"
    notes = ""

    def convert(self, model: keras.Model, ctx: Context) -> bytes:
        raise NotImplementedError

    def compress(self, ctx: Context) -> Compressed:
        return Compressed(tflite=self.convert(ctx.teacher, ctx), notes=self.notes)


@register
class QuantizeDynamic(_PostTraining):
    name = "quantize-dynamic"
    summary = "Dynamic-range quantization: int8 weights, float activations, no calibration data."
    notes = "Weights int8, activations float: about 4x smaller, kernels dequantize on the fly."

    def __init__(self) -> None:
        pass

    def convert(self, model: keras.Model, ctx: Context) -> bytes:
        return to_tflite(model, optimize=True)


@register
class QuantizeFloat16(_PostTraining):
    name = "quantize-float16"
    summary = "Float16 weights: half the size, float32 compute on CPU."
    notes = "Weights float16, dequantized to float32 on CPU: 2x smaller, no speed-up expected."

    def __init__(self) -> None:
        pass

    def convert(self, model: keras.Model, ctx: Context) -> bytes:
        return to_tflite(model, float16=True)


@register
class QuantizeInt8(_PostTraining):
    name = "quantize-int8"
    summary = "Full-integer post-training quantization, float input and output."
    notes = "Weights and activations int8, calibrated on train data; float I/O adds (de)quantize ops."
    int8_io = False

    def __init__(self, samples: int = 200) -> None:
        self.samples = samples
        self._check(samples >= 1, f"samples must be at least 1, got {samples}")

    def convert(self, model: keras.Model, ctx: Context) -> bytes:
        calibration = representative_data(ctx.data.x_train, self.samples, ctx.seed)
        return to_tflite(model, representative=calibration, int8_io=self.int8_io)


@register
class QuantizeInt8IO(QuantizeInt8):
    name = "quantize-int8-io"
    summary = "Full-integer quantization with int8 input and output, as microcontrollers need."
    notes = "All int8 including I/O: the caller quantizes inputs and dequantizes outputs."
    int8_io = True
