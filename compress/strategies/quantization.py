"""Quantization family: post-training conversions of the teacher to lower precision."""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

from compress.models.backend import keras, recurrent, tf, tfmot, to_tflite
from compress.models.training import fit
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.notes import first_line, named
from compress.strategies.quantizing import FLOAT_MODEL_FAMILIES, representative_data


class _PostTraining(Strategy):
    """Shared shape of the post-training variants: convert the teacher, no training."""

    family = "quantization"
    notes = ""
    produces_tflite = True
    tunable: ClassVar[dict[str, Range | Choice] | None] = {}
    follows = FLOAT_MODEL_FAMILIES
    cost = 0.0
    #: What the converter is asked (``backend.to_tflite``'s options) by a variant that needs no
    #: calibration; one that does overrides ``convert``.
    converter_options: ClassVar[dict[str, bool]] = {}

    def __init__(self) -> None:
        pass

    def convert(self, model: keras.Model, ctx: Context) -> bytes:
        return to_tflite(model, **self.converter_options)

    def compress(self, ctx: Context) -> Compressed:
        """The conversion; a file the converter left float says so (dynamic range leaves kernels
        under 1,024 weights float).  What the file holds per op is measured, not told here."""
        from compress.models.flatbuffer import kernel_types

        flatbuffer = self.convert(ctx.teacher, ctx)
        if all(precision == "float32" for _, precision in kernel_types(flatbuffer)):
            return Compressed(tflite=flatbuffer, notes=(
                f"{self.notes} The converter quantized no layer of this model (dynamic range "
                "leaves kernels under 1,024 weights float): the file is float32, as the teacher."))
        return Compressed(tflite=flatbuffer, notes=self.notes)


@register
class QuantizeDynamic(_PostTraining):
    name = "quantize-dynamic"
    summary = "Dynamic-range quantization: int8 weights, float activations, no calibration data."
    notes = ("Weights int8 in layers of 1,024 weights or more (the converter's threshold), "
             "activations float: kernels quantize activations on the fly.")
    converter_options: ClassVar[dict[str, bool]] = {"optimize": True}


@register
class QuantizeFloat16(_PostTraining):
    name = "quantize-float16"
    summary = "Float16 weights: half the size, float32 compute on CPU."
    notes = "Weights float16, dequantized to float32 on CPU: 2x smaller, no speed-up expected."
    converter_options: ClassVar[dict[str, bool]] = {"float16": True}


@register
class QuantizeInt8(_PostTraining):
    name = "quantize-int8"
    fast_params: ClassVar[dict[str, Any]] = {"samples": 20}
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
    provides = ("int8-io",)
    tunable = None  # quantize-int8 with other I/O types: the same size and accuracy, searched once


@register
class QuantizeQAT(Strategy):
    name = "quantize-qat"
    family = "quantization"
    summary = "Quantization-aware training (tfmot), a fine-tuning budget, then int8 conversion."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    produces_tflite = True
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"epochs": Range(1, 5)}
    follows = FLOAT_MODEL_FAMILIES
    cost = 2.0
    #: Layers tfmot's 8-bit schemes quantize through layout transforms rather than their registry:
    #: a BatchNorm folded into the convolution or Dense before it, a separable convolution split.
    transformed: ClassVar[tuple[str, ...]] = ("BatchNormalization", "SeparableConv1D", "SeparableConv2D")

    def __init__(self, epochs: int = 3, lr: float = 1e-4) -> None:
        self.epochs = epochs
        self.lr = lr
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        looping = recurrent(ctx.teacher)
        if looping:
            raise Skip(f"tfmot's quantization-aware training has no quantizer for recurrent layers "
                       f"({named(looping)}), and their output-only simulation does not convert; "
                       "quantize-int8 quantizes a fused LSTM after training")
        if ctx.teacher.inputs[0].dtype.is_integer:
            tables = [f"{layer.name} (Embedding)" for layer in ctx.teacher.layers
                      if isinstance(layer, keras.layers.Embedding)]
            raise Skip(f"tfmot's quantization-aware training quantizes the model's input, and token ids "
                       f"are integers its QuantizeLayer cannot take ({named(tables) or 'an integer input'}); "
                       "quantize-int8 keeps the ids integers and quantizes the rest after training")
        scheme, kept = tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme(), ""
        if "clustering" in ctx.history:  # keep the clusters (and zeros) an earlier stage made
            scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity="pruning" in ctx.history)
            kept = " Cluster-preserving QAT kept the earlier stages' clusters."
        elif "pruning" in ctx.history:
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
            kept = " Prune-preserving QAT kept the earlier stage's zeros."
        model, outputs_only = self._quantize_apply(_clear_of_tfmot_names(ctx.teacher), scheme)
        outputs_only = [name.removeprefix(OWN_PREFIX) for name in outputs_only]
        # Fake-quantized weights start far from the float optimum (measured: docs/benchmarks.md,
        # "Figures behind design decisions"): only the fine-tuned model is worth converting.
        trained = fit(model, ctx.data, epochs=self.epochs, lr=self.lr, limits=ctx.limits)
        unsimulated = (f" tfmot has no quantizer for {named(outputs_only)}: only their outputs were "
                       "quantized in training, so the int8 layers after them see int8 inputs."
                       if outputs_only else "")
        return Compressed(
            tflite=to_tflite(model, optimize=True),
            notes=f"Trained {trained.describe()} with simulated int8 (lr={self.lr:g}), then int8 "
            f"weights and activations: int8 size at a training cost.{kept}{unsimulated}",
        )

    def _quantize_apply(self, teacher: keras.Model, scheme: Any) -> tuple[keras.Model, list[str]]:
        """Annotate every layer, then apply the scheme.  A layer the scheme has no quantizer for
        (Conv1D, MaxPooling1D, a BatchNorm with no convolution to fold into, which tfmot refuses
        only while applying) gets an output-only config, else the layers after it would get
        float inputs and stay float too.  Returns the model and those layers as "name (Class)"."""
        quantize = tfmot.quantization.keras
        registry = scheme.get_quantize_registry()
        output_only = _output_only_config()
        layers = {layer.name: layer for layer in teacher.layers
                  if not isinstance(layer, keras.layers.InputLayer)}
        left = [name for name, layer in layers.items()
                if not registry.supports(layer) and type(layer).__name__ not in self.transformed]

        def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
            return quantize.quantize_annotate_layer(layer, output_only() if layer.name in left else None)

        while True:
            if all(name in left for name, layer in layers.items() if layer.weights):
                raise Skip("tfmot cannot quantize any weighted layer of this teacher: "
                           f"{named([f'{name} ({type(layers[name]).__name__})' for name in left])}")
            try:
                annotated = keras.models.clone_model(teacher, clone_function=annotate)
                with quantize.quantize_scope({output_only.__name__: output_only}):
                    model = quantize.quantize_apply(annotated, scheme)
                return model, [f"{name} ({type(layers[name]).__name__})" for name in left]
            except (RuntimeError, ValueError) as error:
                refused = re.match(r"Layer (\S+?):", str(error))
                if refused is None or refused.group(1) not in layers or refused.group(1) in left:
                    raise Skip(f"tfmot cannot quantize this teacher: {first_line(error)}") from error
                left.append(refused.group(1))


#: Put before the teacher's layer names when tfmot will add layers of its own (see below).
OWN_PREFIX = "teacher_"


def _clear_of_tfmot_names(model: keras.Model) -> keras.Model:
    """The model, or, when it has separable convolutions, a copy whose layer names cannot clash
    with tfmot's: tfmot splits each into a DepthwiseConv2D and a Conv2D named by Keras' counters
    (``conv2d``), and a teacher layer already called that receives the wrong weights ("Shape
    mismatch")."""
    separable = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
    if not any(isinstance(layer, separable) for layer in model.layers):
        return model
    graph = keras.Model(model.inputs, model.outputs) if isinstance(model, keras.Sequential) else model
    config = graph.get_config()
    names = {spec["name"]: OWN_PREFIX + spec["name"] for spec in config["layers"]}
    for spec in config["layers"]:
        spec["name"] = spec["config"]["name"] = names[spec["name"]]
        for node in spec["inbound_nodes"]:
            for entry in node:
                entry[0] = names[entry[0]]
    for key in ("input_layers", "output_layers"):
        for entry in config[key]:
            entry[0] = names[entry[0]]
    copy = keras.Model.from_config(config)
    for layer in graph.layers:
        copy.get_layer(names[layer.name]).set_weights(layer.get_weights())
    return copy


@functools.cache
def _output_only_config() -> type:
    """tfmot's QuantizeConfig for a layer it has no quantizer for: its weights and arithmetic
    stay as they are in training, its output is quantized like any activation.

    Its methods are kept out of AutoGraph: QuantizeWrapper calls them inside the traced ``call``,
    and AutoGraph would re-read their source from disk by line number.  Once this file has been
    edited under a running process, that line is another function's (this one's, which takes no
    arguments: "tf___output_only_config() takes 0 positional arguments but 3 were given").  They
    have no tensor control flow, so there is nothing to convert."""
    quantize = tfmot.quantization.keras
    plain = tf.autograph.experimental.do_not_convert

    class OutputOnlyQuantizeConfig(quantize.QuantizeConfig):
        @plain
        def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list:
            return []

        @plain
        def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list:
            return []

        @plain
        def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
            pass

        @plain
        def set_quantize_activations(self, layer: keras.layers.Layer, quantize_activations: list) -> None:
            pass

        @plain
        def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
            return [quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {}

    return OutputOnlyQuantizeConfig
