"""Texts (issue 41): a table's text column tokenized on the train split only and served again by
``encode_rows``; token ids from an .npz; text teachers built, converted and shrunk; the embedding
table factorized; one line for each bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compress
from compress.common.errors import UserError
from compress.data.builtin import split_indices
from compress.data.options import TextOptions
from compress.data.text import TOKEN_PATTERN, UNKNOWN
from compress.data.userdata import load_file
from compress.models.architectures import build_model, derive_student, student_candidates, student_ladder
from compress.models.backend import keras, to_tflite
from compress.models.flatbuffer import TFLiteModel, _read
from compress.models.teacher import load_teacher, takes_token_ids
from compress.strategies.factorization import low_rank

TOPICS = ("sport", "music", "food")


def _texts(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Short texts of a dozen words whose topic words tell the class, with a numeric column."""
    rng = np.random.default_rng(seed)
    filler = ("the", "a", "of", "to", "and", "in", "is", "it", "that", "for", "on", "with", "was",
              "this", "my")
    rows = []
    for i in range(n):
        label = TOPICS[i % len(TOPICS)]
        words = [f"{label}{rng.integers(6)}" if rng.random() < 0.3 else str(rng.choice(filler))
                 for _ in range(rng.integers(6, 14))]
        rows.append((" ".join(words).capitalize() + ".", float(rng.normal()), label))
    return pd.DataFrame(rows, columns=["message", "score", "topic"])


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "texts.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_the_tokenizer_is_fitted_on_train_only_and_encode_rows_reproduces_every_split(tmp_path):
    frame = _texts()
    labels = frame["topic"].astype(str)
    classes = sorted(labels.unique())
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    train, val, test = split_indices(y, 0, name="texts.csv", class_names=classes)
    frame.loc[test[0], "message"] = "zebra zebra zebra unicorn"  # words only a test row holds
    dataset, record = load_file(_csv(tmp_path, frame), seed=0, target="topic")
    training = dataset.training
    assert training.kind == "tokens" and training.x_train.dtype == np.int32
    assert "zebra" not in record.encoding["words"] and "unicorn" not in record.encoding["words"]
    first = list(test).index(test[0])
    assert list(dataset.x_test[first][:4]) == [UNKNOWN] * 4
    assert training.vocabulary == len(record.encoding["words"]) + 2
    assert record.encoding["length"] == dataset.x_test.shape[1]
    for rows, x in ((train, training.x_train), (val, training.x_val), (test, dataset.x_test)):
        assert np.array_equal(_encode(record.encoding, frame.iloc[rows]), x)
    assert "score (a text model reads the text column 'message' alone)" in record.summary()
    said = record.summary()
    assert "95% quantile" in said and "of the validation split's words unknown" in said


def _encode(encoding: dict, rows: pd.DataFrame) -> np.ndarray:
    from compress.data.userdata import encode_rows

    return encode_rows(encoding, rows)


def test_the_portable_tokenizer_is_one_lowercase_one_pattern_and_one_word_list(tmp_path):
    """A deployment in any language reproduces the ids from the file alone."""
    import re

    frame = _texts()
    _, record = load_file(_csv(tmp_path, frame), seed=0, target="topic")
    portable = json.loads(json.dumps(record.encoding))
    index = {word: i + portable["first_word_id"] for i, word in enumerate(portable["words"])}
    text = "The SPORT1, sport2 and a Pelican!"
    ids = [index.get(w, portable["unknown_id"]) for w in re.findall(portable["token_pattern"], text.lower())]
    ids = (ids + [portable["padding_id"]] * portable["length"])[:portable["length"]]
    assert portable["token_pattern"] == TOKEN_PATTERN
    assert _encode(record.encoding, pd.DataFrame({"message": [text]}))[0].tolist() == ids


def test_vocabulary_and_length_can_be_set_and_a_named_text_column_wins(tmp_path):
    frame = _texts()
    frame["note"] = "short note"  # not text by the rule: one value
    path = _csv(tmp_path, frame)
    dataset, record = load_file(path, seed=0, target="topic",
                                text=TextOptions(column="message", vocabulary=10, length=5))
    assert dataset.vocabulary == 10 and dataset.x_test.shape[1] == 5
    assert "as asked" in record.summary()


@pytest.mark.parametrize(("mutate", "options", "message"), [
    (lambda f: f.assign(message=""), TextOptions(column="message"), r"column 'message' has 300 empty texts"),
    (lambda f: f, TextOptions(column="score"), r"column 'score' holds numbers, not texts"),
    (lambda f: f, TextOptions(column="nope"), r"no feature column 'nope' for text_column; columns are "
                                              r"message, score"),
    (lambda f: f.assign(other=f["message"] + " again"), TextOptions(),
     r"columns message, other all hold free text.*text_column='NAME'"),
])
def test_bad_texts_are_one_line_errors(tmp_path, mutate, options, message):
    path = _csv(tmp_path, mutate(_texts()))
    with pytest.raises(UserError, match=message) as refused:
        load_file(path, seed=0, target="topic", text=options)
    assert "\n" not in str(refused.value)


def test_bytes_that_are_not_utf8_are_one_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"message,topic\n" + "caf\xe9 au lait tous les jours,food\n".encode("latin-1") * 40)
    with pytest.raises(UserError, match=r"cannot be read as a table") as refused:
        load_file(path, seed=0, target="topic")
    assert "\n" not in str(refused.value)


def test_categories_of_several_words_stay_categories(tmp_path):
    rng = np.random.default_rng(0)
    cities = ["New York City", "Los Angeles County", "San Francisco Bay"]
    frame = pd.DataFrame({"city": rng.choice(cities, 300), "x": rng.normal(size=300),
                          "label": np.arange(300) % 2})
    dataset, record = load_file(_csv(tmp_path, frame), seed=0, target="label")
    assert dataset.vocabulary is None and record.one_hot == ["city"]


def _ids_npz(tmp_path: Path, n: int = 120, length: int = 12, vocabulary: int = 40) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(1, vocabulary, size=(n, length))
    np.savez(tmp_path / "ids.npz", x=x.astype(np.int64), y=np.arange(n) % 3)
    return tmp_path / "ids.npz"


def _bilstm(length: int = 12, vocabulary: int = 40, classes: int = 3, width: int = 8) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((length,), dtype="int32"), keras.layers.Embedding(vocabulary, width),
                             keras.layers.Bidirectional(keras.layers.LSTM(6)), keras.layers.Dense(classes)])


def test_an_integer_npz_is_token_ids_only_when_asked_or_when_the_teacher_takes_them(tmp_path):
    path = _ids_npz(tmp_path)
    numbers, _ = load_file(path, seed=0)
    assert numbers.vocabulary is None and numbers.training.x_train.dtype == np.float32
    ids, record = load_file(path, seed=0, text=TextOptions(tokens=True))
    assert ids.vocabulary == 40 and ids.training.kind == "tokens" and "token ids" in record.layout
    model = _bilstm()
    model.save(tmp_path / "bilstm.keras")
    assert takes_token_ids(tmp_path / "bilstm.keras")
    float_model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(3)])
    float_model.save(tmp_path / "floats.keras")
    assert not takes_token_ids(tmp_path / "floats.keras")
    teacher = load_teacher(tmp_path / "bilstm.keras", ids)
    assert "as the fused UNIDIRECTIONAL_SEQUENCE_LSTM" in teacher.architecture


@pytest.mark.parametrize(("x", "message"), [
    (-np.ones((120, 12)), r"negative token ids \(e\.g\. -1\); ids start at 0"),
    (np.full((120, 12), 0.5), r"fractional numbers, not token ids"),
    (np.ones((120, 3, 4)), r"token ids in x must be \(rows, length\)"),
])
def test_bad_token_ids_are_one_line_errors(tmp_path, x, message):
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(120) % 3)
    with pytest.raises(UserError, match=message) as refused:
        load_file(tmp_path / "bad.npz", seed=0, text=TextOptions(tokens=True))
    assert "\n" not in str(refused.value)


def test_a_teacher_that_cannot_take_these_ids_is_one_line(tmp_path):
    ids, _ = load_file(_ids_npz(tmp_path, vocabulary=40), seed=0, text=TextOptions(tokens=True))
    small = _bilstm(vocabulary=20)
    small.save(tmp_path / "small.keras")
    with pytest.raises(UserError, match=r"ids up to 39, beyond teacher small\.keras's vocabulary of 20"):
        load_teacher(tmp_path / "small.keras", ids)
    _bilstm(length=16).save(tmp_path / "long.keras")
    with pytest.raises(UserError, match=r"expects inputs of shape \(16,\) but the data has \(12,\)"):
        load_teacher(tmp_path / "long.keras", ids)
    numbers, _ = load_file(_ids_npz(tmp_path), seed=0)
    with pytest.raises(UserError, match=r"takes token ids, but the data are not token ids; give an \.npz "
                                        r"of ids with tokens=True"):
        load_teacher(tmp_path / "small.keras", numbers)


@pytest.mark.parametrize("spec", ["textcnn:16:32", "bilstm:16:8", "transformer:2,2,16"])
def test_text_teachers_convert_to_builtin_ops_and_take_ids_as_they_are(spec):
    model = build_model(spec, (12,), 3, seed=0, vocabulary=40, dropout=0.2)
    assert model.inputs[0].dtype == "int32"
    flatbuffer = to_tflite(model)
    ops = [kind for kind, _ in _read(flatbuffer)[1]]
    assert "CUSTOM" not in ops  # no select-TF (Flex) op, which LiteRT's pip interpreter lacks
    if spec.startswith("bilstm"):
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops or "BIDIRECTIONAL_SEQUENCE_LSTM" in ops
    x = np.random.default_rng(0).integers(0, 40, size=(20, 12)).astype(np.int32)
    runtime = TFLiteModel(flatbuffer)
    assert np.abs(runtime.predict(x) - model.predict(x, verbose=0)).max() < 1e-4


@pytest.mark.slow
def test_text_students_are_smaller_of_the_teachers_kind_and_a_cnn_for_a_recurrent_one():
    teacher = build_model("bilstm:64:32,32", (12,), 3, seed=0, vocabulary=500)
    student = derive_student(teacher, "bilstm:64:32,32", (12,), vocabulary=500)
    assert student == "textcnn:16:16"  # a convolutional student of a recurrent teacher
    candidates = student_candidates(teacher, "bilstm:64:32,32", (12,), vocabulary=500)
    assert candidates[0] == "textcnn:16:16"
    rungs = student_ladder(teacher, "bilstm:64:32,32", (12,), 3, vocabulary=500)
    assert rungs and all(params <= teacher.count_params() / 2 for _, params in rungs)
    assert all(spec.startswith("bilstm:") for spec, _ in rungs)  # the kind that agrees with it
    transformer = build_model("transformer:2,4,32", (12,), 3, seed=0, vocabulary=500)
    assert derive_student(transformer, "transformer:2,4,32", (12,), vocabulary=500) == "transformer:1,2,8"
    # a user's model is read layer by layer: the same teacher, not named by a spec
    assert derive_student(transformer, "user:t.keras", (12,), vocabulary=500) == "transformer:1,2,8"
    assert derive_student(teacher, "user:b.keras", (12,), vocabulary=500) == "textcnn:16:16"


def test_factorization_reduces_the_embedding_table_to_the_asked_rank():
    teacher = build_model("textcnn:32:16", (12,), 3, seed=0, vocabulary=1000)
    smaller, names, _, energy = low_rank(teacher, 0.25)
    assert "embedding" in names and 0 < energy <= 1
    table = smaller.get_layer("embedding" + "_lowrank").get_weights()[0]
    assert table.shape == (1000, 8)  # rank 0.25 of min(1000, 32)
    assert smaller.get_layer("embedding").get_weights()[0].shape == (8, 32)
    saved = 1000 * 32 - (1000 * 8 + 8 * 32)
    assert teacher.count_params() - smaller.count_params() == saved
    original = teacher.get_layer("embedding").get_weights()[0]
    approximation = table @ smaller.get_layer("embedding").get_weights()[0]
    spectrum = np.linalg.svd(original, compute_uv=False)  # the best rank-8 error (Eckart-Young)
    assert np.isclose(np.linalg.norm(original - approximation), np.sqrt(np.sum(spectrum[8:] ** 2)), rtol=1e-3)


def test_a_folder_of_text_files_is_read_as_one_class_per_folder(tmp_path):
    frame = _texts(90)
    for i, (message, topic) in enumerate(zip(frame["message"], frame["topic"], strict=True)):
        (tmp_path / "texts" / topic).mkdir(parents=True, exist_ok=True)
        (tmp_path / "texts" / topic / f"{i}.txt").write_text(message, encoding="utf-8")
    dataset, record = load_file(tmp_path / "texts", seed=0)
    assert dataset.class_names == tuple(sorted(TOPICS)) and dataset.vocabulary is not None
    assert record.rows_read == 90 and record.encoding["column"] == "text"
    (tmp_path / "texts" / "food" / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(UserError, match=r"bad\.txt is not UTF-8 text"):
        load_file(tmp_path / "texts", seed=0)


#: The families issue 41 asks an ``ok`` row of on every text teacher.
TEXT_FAMILIES = ("quantize-dynamic", "quantize-float16", "quantize-int8", "prune-magnitude", "factorize",
                 "distill", "finetune")


def _rows_of(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["strategy"]: row for row in frame.to_dict("records")}


def test_a_text_table_runs_through_every_family_and_its_tokenizer_serves_raw_rows(tmp_path):
    frame = _texts(240)
    path = _csv(tmp_path, frame)
    result = compress.compare(data=path, target="topic", strategies=TEXT_FAMILIES, epochs=1,
                              out=tmp_path / "run", jobs=1)
    rows = _rows_of(result)
    assert {"student-scratch", "student-scratch-mixup"} <= set(rows)
    assert all(row["status"] == "ok" for row in rows.values()), {n: r["reason"] for n, r in rows.items()}
    assert rows["baseline"]["teacher_architecture"] == "textcnn:64:128"
    assert rows["factorize"]["notes"].startswith("embedding factorized at rank 0.25")  # the table, first
    for name in ("distill", "student-scratch-mixup"):  # ids are never blended
        assert "word dropout (10% of the words as padding) in place of mixup" in rows[name]["notes"]
    assert "word dropout" not in rows["student-scratch"]["notes"]
    portable = json.loads((tmp_path / "run" / "tokenizer.json").read_text())
    assert portable["column"] == "message" and portable["words"]
    ids = compress.encode_rows(tmp_path / "run", frame.head(5))
    runtime = TFLiteModel((tmp_path / "run" / rows["baseline"]["artifact"]).read_bytes())
    assert ids.dtype == np.int32 and runtime.predict(ids).shape == (5, len(TOPICS))


def _make_keras3_transformer(data: str, path: str) -> None:
    """In a Keras 3 child: a two-block Transformer over the token ids of ``data``, saved."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    arrays = np.load(data)
    inputs = keras.Input(arrays["x"].shape[1:], dtype="int32")
    x = layers.Embedding(int(arrays["x"].max()) + 1, 16)(inputs)
    for _ in range(2):
        x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(2, 8)(x, x)]))
        hidden = layers.Dense(32, activation="relu")(x)
        x = layers.LayerNormalization()(layers.Add()([x, layers.Dense(16)(hidden)]))
    x = layers.GlobalAveragePooling1D()(layers.Conv1D(16, 3, padding="same", activation="relu")(x))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dropout(0.1)(x)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(arrays["x"], arrays["y"], epochs=3, batch_size=64, verbose=0)
    model.save(path)


@pytest.mark.slow  # every strategy on two teachers: about 8 minutes
def test_recurrent_and_attention_teachers_of_token_ids_get_a_row_or_a_one_line_skip_from_every_family(
        tmp_path):
    import os
    import subprocess
    import sys

    from compress.data.builtin import load_dataset
    from compress.strategies.base import registry

    negation = load_dataset("negation", 0)
    np.savez(tmp_path / "ids.npz", x=np.concatenate([negation.training.x_train, negation.x_test]),
             y=np.concatenate([negation.training.y_train, negation.y_test]))
    model = _bilstm(length=negation.input_shape[0], vocabulary=negation.vocabulary, classes=2,
                    width=16)  # a table of 3,952 weights: large enough to prune
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(negation.training.x_train, negation.training.y_train, epochs=3, verbose=0)
    model.save(tmp_path / "bilstm.keras")
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    code = ("import sys\nfrom tests.test_text import _make_keras3_transformer\n"
            "_make_keras3_transformer(*sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ids.npz"), str(tmp_path / "t.keras")],
                          cwd=Path(__file__).resolve().parent.parent, env=environment, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for teacher in ("bilstm.keras", "t.keras"):
        result = compress.compare(data=tmp_path / "ids.npz", teacher=tmp_path / teacher,
                                  strategies=sorted(registry()), epochs=1, out=tmp_path / f"run-{teacher}",
                                  jobs=1)
        rows = _rows_of(result)
        for name in (*TEXT_FAMILIES, "baseline", "student-scratch", "student-scratch-mixup"):
            assert rows[name]["status"] == "ok", (teacher, name, rows[name]["reason"])
        for name, row in rows.items():
            assert row["status"] in ("ok", "skipped"), (teacher, name, row["reason"])
            if row["status"] == "skipped":
                # it names the layer, "name (Class)", or the TFLite op, "CONV_2D"
                assert "\n" not in row["reason"] and re.search(r"\w+ \(\w+\)|\b[A-Z][A-Z0-9_]{2,}\b",
                                                              row["reason"]), row
        if teacher == "bilstm.keras":
            baseline = (tmp_path / f"run-{teacher}" / rows["baseline"]["artifact"]).read_bytes()
            ops = [kind for kind, _ in _read(baseline)[1]]
            assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops or "BIDIRECTIONAL_SEQUENCE_LSTM" in ops


def test_structured_pruning_narrows_the_embedding_and_names_what_it_cannot_trace():
    from compress.strategies.base import Skip
    from compress.strategies.structured import shrink

    teacher = build_model("textcnn:32:64", (12,), 3, seed=0, vocabulary=500)
    cut = shrink(teacher, 0.5)
    assert cut.groups == [("embedding",), ("conv_0",)]
    assert cut.model.get_layer("embedding").output_dim == 16 and cut.model.get_layer("conv_0").filters == 32
    ids = keras.Input((12,), dtype="int32")
    embedded = keras.layers.Embedding(500, 16)(ids)
    crossed = keras.layers.MultiHeadAttention(2, 8, name="cross")(embedded, keras.layers.Dense(16)(embedded))
    with pytest.raises(Skip, match=r"layer cross \(MultiHeadAttention\): it attends to another"):
        shrink(keras.Model(ids, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(crossed))), 0.5)


def _silence(layer: keras.layers.Layer, unit: int, gates: int) -> None:
    """Zero every weight into one unit of a recurrent layer: its output stays 0."""
    kernel, recurrent, bias = layer.get_weights()
    units = recurrent.shape[0]
    columns = np.arange(gates) * units + unit
    kernel[:, columns], recurrent[:, columns], bias[..., columns] = 0, 0, 0
    layer.set_weights([kernel, recurrent, bias])


def test_structured_pruning_removes_silent_lstm_and_gru_units_without_changing_the_function():
    from compress.strategies.structured import shrink

    ids = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(60, 8, name="embedding")(ids)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bilstm")(x)
    x = keras.layers.GRU(4, name="gru")(x)
    model = keras.Model(ids, keras.layers.Dense(3, name="logits")(x))
    bilstm = model.get_layer("bilstm")
    for direction in (bilstm.forward_layer, bilstm.backward_layer):
        for unit in (1, 3):
            _silence(direction, unit, 4)
    for unit in (0, 2):
        _silence(model.get_layer("gru"), unit, 3)
    embedding = model.get_layer("embedding")
    table = embedding.get_weights()[0]
    table[:, ::2] = 0  # half the embedding width says nothing
    embedding.set_weights([table])
    cut = shrink(model, 0.5)
    assert set(cut.groups) == {("embedding",), ("bilstm",), ("bilstm/backward",), ("gru",)}
    smaller = cut.model.get_layer("bilstm")
    assert smaller.forward_layer.units == smaller.backward_layer.units == 2
    assert cut.model.get_layer("gru").units == 2 and cut.model.get_layer("embedding").output_dim == 4
    tokens = np.random.default_rng(0).integers(0, 60, (32, 10)).astype(np.int32)
    np.testing.assert_allclose(cut.model.predict(tokens, verbose=0), model.predict(tokens, verbose=0),
                               atol=1e-5)
    assert cut.model.count_params() < model.count_params() / 2


def test_structured_pruning_removes_silent_heads_and_feed_forward_units_and_keeps_the_residual_width():
    from compress.strategies.structured import shrink

    model = build_model("transformer:1,4,16", (12,), 3, seed=0, vocabulary=500)
    attention = model.get_layer("block0_attention")
    weights = attention.get_weights()
    for index, variable in enumerate(attention.weights):
        part, name = variable.name.split("/")[-2:]
        if name.startswith("kernel") and part == "attention_output":  # heads 0 and 2 write nothing
            weights[index][[0, 2]] = 0
        elif name.startswith("kernel"):  # and read nothing
            weights[index][:, [0, 2]] = 0
    attention.set_weights(weights)
    inner, outer = model.get_layer("block0_ffn_in"), model.get_layer("block0_ffn_out")
    kernel, bias = inner.get_weights()
    silent = np.arange(0, kernel.shape[1], 2)
    kernel[:, silent], bias[silent] = 0, 0
    inner.set_weights([kernel, bias])
    cut = shrink(model, 0.5)
    assert set(cut.groups) == {("block0_ffn_in",), ("block0_attention/heads",)}
    assert cut.model.get_layer("block0_attention").get_config()["num_heads"] == 2
    assert cut.model.get_layer("block0_ffn_in").units == kernel.shape[1] // 2
    assert cut.model.get_layer("embedding").output_dim == 16  # the layer norms keep the residual width
    tokens = np.random.default_rng(0).integers(0, 500, (16, 12)).astype(np.int32)
    np.testing.assert_allclose(cut.model.predict(tokens, verbose=0), model.predict(tokens, verbose=0),
                               atol=1e-5)
    assert cut.model.get_layer("block0_ffn_out").input_shape[-1] == outer.input_shape[-1] // 2


def test_empty_texts_are_dropped_and_counted_only_when_asked(tmp_path):
    frame = _texts()
    frame.loc[[3, 7], "message"] = " "
    path = _csv(tmp_path, frame)
    with pytest.raises(UserError, match=r"2 empty texts \(the first in data row 4\).*missing='drop'"):
        load_file(path, seed=0, target="topic")
    dataset, record = load_file(path, seed=0, target="topic", missing="drop")
    assert record.rows_dropped == 2 and "2 rows with missing values dropped" in record.summary()
    assert len(dataset.training.y_train) + len(dataset.training.y_val) + len(dataset.y_test) == 298


def test_the_embedding_table_counts_among_the_weights_a_quantizer_reports():
    from compress.models.flatbuffer import kernel_types

    model = build_model("textcnn:16:8", (12,), 3, seed=0, vocabulary=200)  # a 3,200-weight table
    assert ("GATHER", "float32") in kernel_types(to_tflite(model))
    assert ("GATHER", "int8") in kernel_types(to_tflite(model, optimize=True))
    assert ("GATHER", "float16") in kernel_types(to_tflite(model, float16=True))


def test_a_teacher_of_its_own_token_ids_is_refused_on_raw_texts(tmp_path):
    from click.testing import CliRunner

    from compress.cli import cli

    path = _csv(tmp_path, _texts())
    _bilstm().save(tmp_path / "bilstm.keras")
    refused = CliRunner().invoke(cli, ["run", "--data", str(path), "--target", "topic", "--teacher",
                                       str(tmp_path / "bilstm.keras"), "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "takes token ids from its own tokenizer" in refused.stderr and "--tokens" in refused.stderr
    assert not (tmp_path / "run").exists()


def test_bench_times_a_text_model_on_ids_every_table_holds(tmp_path):
    from compress.orchestrate.bench import bench

    model = build_model("textcnn:8:8", (12,), 3, seed=0, vocabulary=3)  # ids 0 to 2 only
    (tmp_path / "text.tflite").write_bytes(to_tflite(model))
    rows = bench([tmp_path / "text.tflite"])
    assert rows[0]["latency_us_p50"] > 0 and "random rows" in rows[0]["inputs"]


def test_recurrent_and_attention_layers_count_their_multiply_accumulates():
    """A student must be smaller in MACs too: a BiLSTM teacher counted at its Dense head alone
    made every convolutional student look costlier."""
    from compress.models.cost import forward_macs

    bilstm = build_model("bilstm:16:8", (12,), 3, seed=0, vocabulary=50)
    assert forward_macs(bilstm) == 2 * 12 * (16 * 32 + 8 * 32) + 16 * 3  # two directions, 4 gates
    transformer = build_model("transformer:1,2,16", (12,), 3, seed=0, vocabulary=50)
    attention = 12 * 4 * 16 * 16 + 2 * 12 * 12 * 16  # four projections; scores and weighted sum
    assert forward_macs(transformer) >= attention


@pytest.mark.slow  # a search and its confirmation: about a minute
def test_tune_searches_a_text_teacher_and_keeps_its_tokenizer(tmp_path):
    from compress.orchestrate.executors import SerialExecutor
    from compress.orchestrate.tune import tune
    from compress.orchestrate.tune_space import TuneSettings

    path = _csv(tmp_path, _texts(1500))  # validation rows enough to certify 5 pp
    settings = TuneSettings(max_accuracy_drop=5.0, max_trials=3,
                            strategies=("quantize-dynamic", "quantize-int8", "quantize-float16"))
    result = tune(settings, SerialExecutor(), out=tmp_path / "tune", seeds=1, data=path, target="topic",
                  epochs=2)
    summary = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert all(t["status"] == "ok" for t in summary["trials"]), summary["trials"]
    assert result is not None and (tmp_path / "tune" / "tokenizer.json").exists()


def test_mixed_precision_names_the_attention_layer_whose_ops_it_cannot_pair():
    from compress.strategies.quantizing import LayerGraph

    model = build_model("transformer:1,2,16", (12,), 3, seed=0, vocabulary=50)
    with pytest.raises(UserError, match=r"other ops come from block0_attention \(MultiHeadAttention\)\)$"):
        LayerGraph(model)


def test_quantization_aware_training_skips_token_ids_in_one_line(tmp_path):
    from compress.strategies.apply import apply_strategy
    from compress.strategies.base import Skip
    from compress.strategies.quantization import QuantizeQAT

    data, _ = load_file(_ids_npz(tmp_path), seed=0, text=TextOptions(tokens=True))
    model = build_model("textcnn:8:8", (12,), 3, seed=0, vocabulary=40)
    with pytest.raises(Skip, match=r"token ids are integers its QuantizeLayer cannot take \(embedding "
                                   r"\(Embedding\)\)"):
        apply_strategy(QuantizeQAT(epochs=1), model, "textcnn:8:8", data.training, seed=0, workdir=tmp_path)
