"""Keras 3 files: translated to tf_keras layer by layer, and proved equal before anything runs.

No Keras 3 model is built, loaded or run in the pytest process (tfmot imports the keras package,
nothing more).  The ``_make_*`` functions below run in a child (``_in_keras3``) that builds,
trains and saves the Keras 3 models and writes their predictions; the product gets its reference
predictions the same way.  So nothing Keras 3 does can change tf_keras, seeds or graphs for the
rest of the session.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from compress.common.errors import UserError
from compress.models.keras3 import ACTIVATIONS, TOLERANCE, check_translation, is_keras3_file, translate

ROOT = Path(__file__).resolve().parent.parent

#: Models whose translation must predict exactly what Keras 3 predicts.
EQUIVALENT = ("mlp", "cnn", "conv1d", "residual", "separable", "zoo2d", "zoo1d", "activations", "nested",
              "recurrent", "transformer")


def _in_keras3(function: str, *args: str) -> None:
    """Run one of this module's ``_make_*`` functions in a child process with Keras 3."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environment["KERAS_BACKEND"] = "tensorflow"
    code = f"import sys\nfrom tests.test_keras3 import {function}\n{function}(*sys.argv[1:])\n"
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


def _make_models(folder: str) -> None:
    """Small Keras 3 models, each trained 1 epoch on random data; saved with their predictions."""
    import keras
    from keras import layers

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    out = Path(folder)

    def save(name: str, model: keras.Model, classes: int = 3) -> None:
        shape = (64, *model.input_shape[1:])
        ids = "int" in str(model.inputs[0].dtype)
        x = rng.integers(0, 50, size=shape).astype(np.int32) if ids else \
            rng.normal(size=shape).astype(np.float32)
        model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)  # no tracing: faster
        model.fit(x, rng.integers(0, classes, len(x)), epochs=1, batch_size=64, verbose=0)
        model.save(out / f"{name}.keras")
        np.save(out / f"{name}.x.npy", x)
        np.save(out / f"{name}.y.npy", np.asarray(model(x, training=False)))

    save("mlp", keras.Sequential([keras.Input((6,)), layers.Dense(16, activation="relu"),
                                  layers.Dropout(0.2), layers.Dense(3, activation="softmax")]))
    save("cnn", keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")]), classes=10)
    inputs = keras.Input((12, 2))  # recurrent and attention layers (issue 41)
    x = layers.LSTM(8, return_sequences=True, dropout=0.1, seed=3)(inputs)
    x = layers.Bidirectional(layers.GRU(6, return_sequences=True))(x)
    attended = layers.MultiHeadAttention(2, 4)(x, x)
    x = layers.LayerNormalization()(layers.Add()([x, attended]))
    x = layers.SimpleRNN(5)(layers.Dropout(0.1)(x))
    save("recurrent", keras.Model(inputs, layers.Dense(3)(x)))
    inputs = keras.Input((10,), dtype="int32")  # a two-block Transformer over token ids (issue 41)
    x = layers.Embedding(50, 8)(inputs)
    for _ in range(2):
        x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(2, 4)(x, x)]))
        hidden = layers.Dense(16, activation="relu")(x)
        x = layers.LayerNormalization()(layers.Add()([x, layers.Dense(8)(hidden)]))
    x = layers.Conv1D(8, 3, padding="same", activation="relu")(layers.Dropout(0.1)(x))
    save("transformer", keras.Model(inputs, layers.Dense(3)(layers.GlobalMaxPooling1D()(x))))
    save("conv1d", keras.Sequential([
        keras.Input((40, 1)), layers.Conv1D(8, 5, activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling1D(2), layers.Conv1D(8, 3, padding="causal"), layers.GlobalAveragePooling1D(),
        layers.Dense(3)]))

    inputs = keras.Input((8, 8, 1))
    stem = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    branch = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(stem))
    merged = layers.Activation("relu")(layers.Add()([stem, branch]))
    merged = layers.Concatenate()([merged, layers.Conv2D(4, 1)(stem)])
    save("residual", keras.Model(inputs, layers.Dense(3, activation="softmax")(
        layers.GlobalAveragePooling2D()(merged))))

    inputs = keras.Input((8, 8, 1))
    x = layers.ReLU(max_value=6.0)(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
    x = layers.Conv2D(16, 1, activation="relu6")(x)
    x = layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    save("separable", keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x))))

    normalization = layers.Normalization()
    normalization.adapt(rng.normal(2.0, 3.0, size=(32, 8, 8, 1)).astype(np.float32))
    inputs = keras.Input((8, 8, 1))
    x = layers.Rescaling(0.5, offset=0.1)(normalization(inputs))
    x = layers.Cropping2D(1)(layers.ZeroPadding2D(2)(x))
    x = layers.Conv2D(8, 3, activation="swish", kernel_regularizer="l2",
                      kernel_constraint=keras.constraints.MaxNorm(3.0))(x)
    x = layers.LayerNormalization()(layers.LeakyReLU(0.1)(x))
    x = layers.GroupNormalization(groups=2)(layers.PReLU()(x))
    x = layers.UpSampling2D()(layers.AveragePooling2D(2)(x))
    x = layers.SpatialDropout2D(0.1)(layers.GaussianNoise(0.1)(layers.GaussianDropout(0.1)(x)))
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="gelu")(x)
    a, b = layers.Activation("tanh")(x), layers.Activation("sigmoid")(x)
    x = layers.Concatenate()([layers.Multiply()([a, b]), layers.Subtract()([a, b]),
                              layers.Average()([a, b]), layers.Maximum()([a, b]), layers.Minimum()([a, b])])
    x = layers.Permute((2, 1, 3))(layers.ELU()(x))
    pooled = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    pooled = layers.UnitNormalization()(layers.Dense(12, activation="selu")(pooled))
    x = layers.Reshape((3, 4))(pooled)
    x = layers.Softmax()(layers.Dense(3)(layers.Flatten()(x)))
    save("zoo2d", keras.Model(inputs, x))

    inputs = keras.Input((40, 1))
    x = layers.Cropping1D((1, 2))(layers.ZeroPadding1D(3)(inputs))
    x = layers.SeparableConv1D(8, 5, activation="elu")(x)
    x = layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same")(x)
    x = layers.UpSampling1D(2)(layers.AveragePooling1D(2)(layers.SpatialDropout1D(0.1)(x)))
    x = layers.Concatenate()([layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x)])
    save("zoo1d", keras.Model(inputs, layers.Dense(3, activation="softplus")(x)))

    inputs = keras.Input((6,))
    heads = layers.Concatenate()([layers.Dense(2, activation=name)(inputs) for name in sorted(ACTIVATIONS)])
    save("activations", keras.Model(inputs, layers.Dense(3, activation="softmax")(heads)))

    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, layers.BatchNormalization()(layers.Dense(8, activation="tanh")(inner_in)))
    stack = keras.Sequential([keras.Input((8,)), layers.Dense(8, activation="relu")])
    shared = layers.Dense(8, activation="relu")
    inputs = keras.Input((6,))
    x = stack(inner(inputs, training=False))
    x = layers.Add()([shared(x), shared(shared(x))])
    save("nested", keras.Model(inputs, layers.Dense(3, activation="softmax")(x)))

    @keras.saving.register_keras_serializable(package="Tests")
    class MyBlock(layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((6,))
    keras.Model(inputs, layers.Dense(3)(MyBlock(name="my_block")(inputs))).save(out / "custom.keras")
    keras.Sequential([keras.Input((6,)), layers.Lambda(lambda t: t * 2.0, name="doubler"),
                      layers.Dense(3)]).save(out / "lambda.keras")
    keras.Sequential([keras.Input((6,)), layers.Dense(3, activation="hard_sigmoid", name="gate")]).save(
        out / "hard_sigmoid.keras")
    inputs = keras.Input((6,))
    keras.Model(inputs, layers.Dense(3)(inputs + 1.0)).save(out / "ops.keras")

    binary = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"),
                               layers.Dense(1, activation="sigmoid")])
    x = rng.normal(size=(64, 6)).astype(np.float32)
    binary.compile("adam", "binary_crossentropy", run_eagerly=True)
    binary.fit(x, (x[:, 0] > 0).astype(np.float32), epochs=1, batch_size=64, verbose=0)
    binary.save(out / "binary.keras")
    binary.save(out / "binary.h5")  # legacy HDF5, which tf_keras cannot read back
    np.save(out / "binary.x.npy", x)
    np.save(out / "binary.y.npy", np.asarray(binary(x, training=False)))
    lookup = layers.StringLookup(vocabulary=["a", "b"], name="words")
    keras.Sequential([keras.Input((1,), dtype="string"), lookup, layers.Embedding(4, 4), layers.Flatten(),
                      layers.Dense(3)]).save(out / "lookup.keras")


def _make_digits_cnn(data: str, path: str) -> None:
    """A Keras 3 CNN trained well on the digits in ``data``, saved to ``path``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    arrays = np.load(data)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dense(32, activation="relu"),
        layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(arrays["x"], arrays["y"], epochs=15, batch_size=32, verbose=0)
    model.save(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keras3")
    _in_keras3("_make_models", str(folder))
    return folder


def test_keras3_files_are_told_from_tf_keras_files(models, tmp_path):
    from compress.models.backend import keras

    legacy = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    legacy.save(tmp_path / "legacy.keras")
    (tmp_path / "text.keras").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "no_metadata.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    assert is_keras3_file(models / "cnn.keras")
    for other in ("legacy.keras", "text.keras", "no_metadata.keras", "missing.keras"):
        assert not is_keras3_file(tmp_path / other), other


@pytest.mark.parametrize("name", EQUIVALENT)
def test_the_translation_predicts_what_keras3_predicts(models, name):
    from compress.models.architectures import clone
    from compress.models.backend import keras

    model = translate(models / f"{name}.keras")
    assert isinstance(model, keras.Model)
    x, expected = np.load(models / f"{name}.x.npy"), np.load(models / f"{name}.y.npy")
    assert np.max(np.abs(model.predict(x, verbose=0) - expected)) <= TOLERANCE
    # Every strategy starts from a clone, which rebuilds the model from its tf_keras config.
    assert np.max(np.abs(clone(model).predict(x, verbose=0) - expected)) <= TOLERANCE


def test_layers_keep_their_kind_statistics_and_training_settings(models):
    from compress.models.backend import keras

    cnn = translate(models / "cnn.keras")
    assert [type(layer) for layer in cnn.layers[:2]] == [keras.layers.Conv2D, keras.layers.BatchNormalization]
    assert cnn.layers[1].moving_variance.numpy().std() > 0  # trained statistics were copied
    zoo = {type(layer).__name__: layer for layer in translate(models / "zoo2d.keras").layers}
    conv = zoo["Conv2D"]
    assert conv.kernel_regularizer.get_config() == {"l2": pytest.approx(0.01)}
    assert conv.kernel_constraint.get_config() == {"max_value": 3.0, "axis": 0}
    assert zoo["LeakyReLU"].alpha == pytest.approx(0.1)


@pytest.mark.parametrize(("name", "message"), [
    ("custom", r"^layer 'my_block' \(MyBlock\) has no tf_keras equivalent; re-save the model with "
               r"standard layers or as a tf_keras model$"),
    ("lambda", r"^layer 'doubler' is a Lambda layer: Lambda layers .* cannot be translated"),
    ("hard_sigmoid", r"^layer 'gate' \(Dense\) uses activation 'hard_sigmoid', which tf_keras defines "
                     r"differently"),
    ("ops", r"^'add\w*' is a keras\.ops call \(Add\) .* use the matching layer"),
])
def test_what_cannot_be_translated_is_refused_in_one_line(models, name, message):
    with pytest.raises(UserError, match=message) as refused:
        translate(models / f"{name}.keras")
    assert "\n" not in str(refused.value)


def _handmade(path: Path, config: object) -> Path:
    """A Keras 3 file holding ``config`` and no weights."""
    weights = io.BytesIO()
    with h5py.File(weights, "w"):
        pass
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())
    return path


def test_subclassed_and_damaged_files_are_refused_in_one_line(tmp_path):
    subclassed = _handmade(tmp_path / "sub.keras", {"class_name": "MyModel", "config": {},
                                                     "registered_name": "Tests>MyModel"})
    with pytest.raises(UserError, match=r"^sub\.keras holds a MyModel model, not a Sequential or "):
        translate(subclassed)
    damaged = _handmade(tmp_path / "bad.keras", {"class_name": "Functional", "config": {"name": "m"}})
    with pytest.raises(UserError, match=r"^bad\.keras is a damaged or unusual Keras 3 file \(KeyError"):
        translate(damaged)


def test_check_translation_measures_against_keras3_itself(models):
    """Off by exactly the bias shift: Keras 3 really ran (a translation that matches is the next
    test's, through load_teacher)."""
    path = models / "separable.keras"
    model = translate(path)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + 0.01])
    before = random.getstate(), np.random.get_state()[1].copy()
    difference = check_translation(path, model, np.load(models / "separable.x.npy"))
    assert difference == pytest.approx(0.01, abs=1e-5)
    # Keras 3 ran elsewhere: this process's random state (a run's reproducibility) is untouched.
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])


def _npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.normal(size=(150, 6)).astype(np.float32), y=np.arange(150) % 3)
    return path


def test_load_teacher_translates_and_proves_a_keras3_file(models, tmp_path):
    from compress.data.userdata import load_file
    from compress.models.teacher import load_teacher

    dataset, _ = load_file(_npz(tmp_path), seed=0)
    teacher = load_teacher(models / "mlp.keras", dataset)
    assert teacher.architecture == "user:mlp.keras (Keras 3 file, translated; predictions within 1e-05 " \
                                   "of Keras 3's)"
    # Another seed's validation rows give another difference, but the same teacher: the
    # description groups a run's seeds in the report (three seeds once refused to report).
    other, _ = load_file(_npz(tmp_path), seed=1)
    assert load_teacher(models / "mlp.keras", other).architecture == teacher.architecture
    with pytest.raises(UserError, match="Lambda layers"):
        load_teacher(models / "lambda.keras", dataset, trust=True)  # trust cannot make code portable


def test_a_binary_sigmoid_teacher_becomes_two_class_logits(models, tmp_path):
    """Dense(1, "sigmoid"), the usual binary head: softmax of the two logits is [1 - p, p]."""
    from compress.data.userdata import load_file
    from compress.models.teacher import load_teacher

    x = np.load(models / "binary.x.npy")
    path = tmp_path / "binary.npz"
    np.savez(path, x=np.concatenate([x, x, x]), y=np.tile((x[:, 0] > 0).astype(int), 3))
    dataset, _ = load_file(path, seed=0)
    teacher = load_teacher(models / "binary.keras", dataset)
    assert teacher.architecture.endswith("(its one binary output as two class logits)")
    logits = teacher.model.predict(x, verbose=0)
    assert logits.shape == (len(x), 2)
    probability = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    keras3 = np.load(models / "binary.y.npy")[:, 0]
    np.testing.assert_allclose(probability[:, 1], keras3, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(logits, axis=1), keras3 > 0.5)  # class 1 where p > 0.5


def test_lookup_layers_and_keras3_h5_files_are_refused_in_one_line(models, tmp_path):
    from compress.data.userdata import load_file
    from compress.models.teacher import load_teacher

    with pytest.raises(UserError, match=r"^layer 'words' \(StringLookup\) maps strings or ids inside the "
                                        r"model: compress tokenizes texts itself"):
        translate(models / "lookup.keras")
    dataset, _ = load_file(_npz(tmp_path), seed=0)
    with pytest.raises(UserError, match=r"binary\.h5 cannot be loaded by tf_keras \(saved by Keras 3, "
                                        r".*; save the model as a \.keras file$") as refused:
        load_teacher(models / "binary.h5", dataset, trust=True)
    assert "\n" not in str(refused.value)


def test_keras3_runs_once_per_file_inputs_and_versions(models, tmp_path, monkeypatch):
    """Its predictions are cached: the same teacher on the same data skips the child process."""
    import compress.models.keras3

    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    children = []
    real = compress.models.keras3.subprocess.run
    monkeypatch.setattr(compress.models.keras3.subprocess, "run",
                        lambda *a, **k: children.append(a) or real(*a, **k))
    path, x = models / "mlp.keras", np.load(models / "mlp.x.npy")
    model = translate(path)
    first = check_translation(path, model, x)
    assert check_translation(path, model, x) == first and len(children) == 1  # from the cache
    check_translation(path, model, x[:10])  # other inputs: Keras 3 runs again
    check_translation(path, model, x, use_cache=False)  # --no-cache
    assert len(children) == 3 and len(list((tmp_path / "cache" / "keras3").glob("*.npy"))) == 2


def test_bench_times_a_keras3_file_as_its_translation(models):
    from compress.models.backend import to_tflite
    from compress.orchestrate.bench import load_flatbuffer

    assert load_flatbuffer(models / "cnn.keras") == to_tflite(translate(models / "cnn.keras"))


def test_a_translation_that_predicts_differently_is_refused(models, tmp_path, monkeypatch):
    from compress.data.userdata import load_file
    from compress.models.teacher import load_teacher

    dataset, _ = load_file(_npz(tmp_path), seed=0)
    monkeypatch.setattr("compress.models.keras3.check_translation", lambda *_, **__: 3e-4)
    with pytest.raises(UserError, match=r"^teacher mlp\.keras: its tf_keras translation predicts up to "
                                        r"0\.0003 away from Keras 3 on the validation split"):
        load_teacher(models / "mlp.keras", dataset)


@pytest.mark.slow
def test_a_keras3_cnn_teacher_runs_through_every_technique(tmp_path):
    from sklearn.datasets import load_digits

    from compress.api import compare

    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32)[..., np.newaxis], digits.target
    data = tmp_path / "digits.npz"  # the teacher never sees the test rows
    np.savez(data, x=x[:1500], y=y[:1500], x_test=x[1500:], y_test=y[1500:])
    _in_keras3("_make_digits_cnn", str(data), str(tmp_path / "cnn.keras"))
    frame = compare(data=data, teacher=tmp_path / "cnn.keras", out=tmp_path / "run",
                    strategies=["quantize-int8", "prune-magnitude", "prune-structured", "distill:epochs=5"])
    rows = {row["strategy"]: row for row in frame.to_dict("records")}
    assert {"baseline", "quantize-int8", "prune-magnitude", "prune-structured", "distill"} <= set(rows)
    for row in rows.values():  # distill's controls too
        assert row["status"] == "ok", (row["strategy"], row["reason"])
    assert "Keras 3 file, translated" in rows["baseline"]["teacher_architecture"]
    assert "Keras 3 file, translated" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_augmentation_layers_are_left_out_as_at_inference(tmp_path):
    """RandomFlip, RandomZoom...: identity at inference, so the translation drops them, and the
    translation is still checked against Keras 3's own predictions."""
    script = (
        "import sys, keras\n"
        "L = keras.layers\n"
        "inputs = keras.Input((8, 8, 1))\n"
        "x = L.RandomFlip('horizontal')(inputs)\n"
        "x = L.RandomTranslation(0.1, 0.1)(L.Rescaling(1 / 255)(x))\n"
        "x = L.RandomZoom(0.1)(L.RandomContrast(0.1)(x))\n"
        "x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(x))\n"
        "keras.Model(inputs, L.Dense(3)(x)).save(sys.argv[1] + '/functional.keras')\n"
        "keras.Sequential([keras.Input((8, 8, 1)), L.RandomRotation(0.1), L.Flatten(), L.Dense(3)])"
        ".save(sys.argv[1] + '/sequential.keras')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, capture_output=True)
    x = np.random.default_rng(0).uniform(0, 255, size=(16, 8, 8, 1)).astype(np.float32)
    for name in ("functional", "sequential"):
        model = translate(tmp_path / f"{name}.keras")
        assert not any(type(layer).__name__.startswith("Random") for layer in model.layers)
        assert check_translation(tmp_path / f"{name}.keras", model, x, use_cache=False) <= TOLERANCE
