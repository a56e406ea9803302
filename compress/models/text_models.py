"""Text architectures: token ids (int32, 0 the padding id) in, logits out.

- ``textcnn:E:C[,C...]``: an Embedding of width E, then per C a Conv1D of C filters (kernel 3,
  ReLU), max pooling over time, logits (Kim 2014, stacked rather than parallel).  The default
  for texts: a convolution trains in a fraction of a recurrent layer's time on 2 cores.
- ``bilstm:E:U[,U...]``: an Embedding of width E, then per U a bidirectional LSTM of U units
  (every one but the last returning its sequence), logits.  Its LSTMs keep Keras' default
  activations, no recurrent dropout and no mask, so LiteRT fuses them
  (``UNIDIRECTIONAL_SEQUENCE_LSTM``, ``backend.recurrent_conversion``).
- ``transformer:L,H,W``: an Embedding of width W plus two position encodings, then L post-norm
  encoder blocks of H heads (attention, Add, LayerNormalization; a 2W ReLU feed-forward, Add,
  LayerNormalization), average pooling, logits.  The positions come from standard layers only
  (a custom layer would be code every saved teacher depends on): a learned table, one vector per
  position, made by a causal Conv1D as long as the text over a channel of ones (a frozen
  Dense(1) with bias 1); and a Conv1D of kernel 3 over the embeddings (Chu et al. 2021,
  "Conditional positional encodings").  Each alone failed one of the generated word-order
  tasks (``data.word_order``): the table alone never learnt ``negation`` (0.51 on test), the
  convolution alone could not see which of two far words came first in ``order`` (0.66); both
  together: 0.93 and 1.00 (seed 0, docs/benchmarks.md, "Text models").

No layer masks the padding: a mask keeps LiteRT from fusing an LSTM, and every text here is
padded to one length.
"""

from __future__ import annotations

from typing import Any

from compress.models.backend import keras

TEXT_KINDS = ("textcnn", "bilstm", "transformer")
TEXT_FORMS = ("textcnn:E:C[,C...]", "bilstm:E:U[,U...]", "transformer:L,H,W")
#: A transformer block's feed-forward width, as a multiple of its model width.
FEED_FORWARD = 2


def build_text_model(kind: str, embedding: int, widths: tuple[int, ...], length: int, vocabulary: int,
                     n_classes: int, name: str, dropout: float) -> keras.Model:
    """One of ``TEXT_KINDS`` (see the module docstring); ``widths`` are the convolutions'
    filters, the LSTMs' units or, for a transformer, each block's heads."""
    layers = keras.layers
    inputs = keras.Input(shape=(length,), dtype="int32", name="input")
    x = layers.Embedding(vocabulary, embedding, name="embedding")(inputs)
    if kind == "textcnn":
        for i, filters in enumerate(widths):
            x = layers.Conv1D(filters, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = layers.GlobalMaxPooling1D(name="global_pool")(x)
    elif kind == "bilstm":
        for i, units in enumerate(widths):
            last = i == len(widths) - 1
            x = layers.Bidirectional(layers.LSTM(units, return_sequences=not last, name=f"lstm_{i}"),
                                     name=f"bilstm_{i}")(x)
    else:
        x = _encoder(x, embedding, widths)
        x = layers.GlobalAveragePooling1D(name="global_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, layers.Dense(n_classes, name="logits")(x), name=name)


def _encoder(x: Any, width: int, heads: tuple[int, ...]) -> Any:
    """The two position encodings, then one post-norm encoder block per entry of ``heads``."""
    layers = keras.layers
    length = int(x.shape[1])
    ones = layers.Dense(1, kernel_initializer="zeros", bias_initializer="ones", trainable=False,
                        name="position_ones")(x)
    table = layers.Conv1D(width, length, padding="causal", use_bias=False, name="position_table")(ones)
    local = layers.Conv1D(width, 3, padding="same", name="position_conv")(x)
    x = layers.Add(name="position_add")([x, local, table])
    for i, count in enumerate(heads):
        attended = layers.MultiHeadAttention(count, max(1, width // count), name=f"block{i}_attention")(x, x)
        x = layers.LayerNormalization(name=f"block{i}_attention_norm")(
            layers.Add(name=f"block{i}_attention_add")([x, attended]))
        hidden = layers.Dense(FEED_FORWARD * width, activation="relu", name=f"block{i}_ffn_in")(x)
        x = layers.LayerNormalization(name=f"block{i}_ffn_norm")(
            layers.Add(name=f"block{i}_ffn_add")([x, layers.Dense(width, name=f"block{i}_ffn_out")(hidden)]))
    return x


def read_text_model(model: keras.Model) -> tuple[str, tuple[int, ...], int]:
    """A user's text model as the closest built-in text architecture, (kind, widths, embedding
    width): attention layers make a transformer (its heads per block), recurrent ones a bilstm
    (their units), else a text CNN (its convolutions' filters)."""
    layers = keras.layers
    found = _flat_layers(model)
    embedding = next((layer.output_dim for layer in found if isinstance(layer, layers.Embedding)), 64)
    attention = [layer for layer in found if isinstance(layer, layers.MultiHeadAttention)]
    if attention:
        return "transformer", tuple(layer.get_config()["num_heads"] for layer in attention), embedding
    cells = (layers.LSTM, layers.GRU, layers.SimpleRNN)
    recurrent = [layer.units for layer in found if isinstance(layer, cells)]
    if recurrent:
        return "bilstm", tuple(recurrent), embedding
    convs = [layer.filters for layer in found if isinstance(layer, layers.Conv1D)]
    return "textcnn", tuple(convs) or (embedding,), embedding


def _flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer, a wrapper's (Bidirectional, TimeDistributed) inner layer in its place."""
    found = []
    for layer in model.layers:
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
        found.append(inner if isinstance(inner, keras.layers.Layer) else layer)
    return found

