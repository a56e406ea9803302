"""Architectures by data kind, the built-in teachers, and students derived from the teacher."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.common.errors import UserError
from compress.models.architectures import build_model, check_fits, default_teacher, derive_student
from compress.models.backend import keras


@pytest.mark.parametrize(("shape", "teacher"), [((20,), "mlp:128,64"), ((40, 1), "cnn1d:32,64,64:64"),
                                                ((8, 8, 1), "cnn:32,64:128")])
def test_the_default_teacher_follows_the_datas_kind(shape, teacher):
    assert default_teacher(shape) == teacher
    model = build_model(teacher, shape, 3, seed=0)
    assert model.input_shape[1:] == shape  # never an axis the data does not have


@pytest.mark.parametrize(("spec", "shape", "message"), [
    ("cnn:8:8", (20,), "does not fit features data"),
    ("cnn1d:8:8", (8, 8, 1), "for this data use mlp:W[,W...] or cnn:C[,C...]:W[,W...]"),
    ("dsres:8", (40, 1), "for this data use mlp:W[,W...] or cnn1d"),
    ("mobile:8,16", (20,), "for this data use mlp:W[,W...]"),
    ("rnn:8", (20,), "is not understood; use one of"),
    ("mlp:0", (20,), "positive widths"),
])
def test_a_spec_that_does_not_fit_the_data_is_one_line(spec, shape, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_fits(spec, shape)


def test_the_depthwise_residual_teacher_has_depthwise_residual_blocks():
    model = build_model("dsres:8,8", (16, 16, 3), 4, seed=0)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"DepthwiseConv2D", "Add", "BatchNormalization", "ReLU", "GlobalAveragePooling2D"} <= kinds


@pytest.mark.parametrize(("spec", "shape"), [
    ("mlp:128,64", (20,)), ("mlp:256,128,64", (20,)), ("cnn1d:32,64:64", (40, 1)),
    ("cnn1d:16:32", (40, 1)), ("cnn:32,64:128", (8, 8, 1)), ("dsres:16,32", (16, 16, 3)),
])
def test_the_automatic_student_is_of_the_teachers_kind_and_smaller(spec, shape):
    teacher = build_model(spec, shape, 3, seed=0)
    student_spec = derive_student(teacher, spec, shape)
    student = build_model(student_spec, shape, 3, seed=0)
    assert student.count_params() < teacher.count_params() / 2
    if spec.startswith("cnn1d"):
        assert student_spec.startswith("cnn1d:")


def test_the_mobilenet_halves_the_resolution_at_every_width_with_two_separable_blocks():
    model = build_model("mobile:8,16,32", (32, 32, 3), 4, seed=0)
    pooled_input = model.get_layer("global_pool").input_shape
    assert pooled_input == (None, 4, 4, 32)  # 32 -> 16 (stem) -> 8 -> 4
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert [layer.strides for layer in depthwise] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    assert build_model("mobile:8,16,32", (32, 32, 3), 4, seed=0).get_weights()[0].tolist() == \
        model.get_weights()[0].tolist()  # the seed fixes the weights


def _mobilenet_v2(side: int) -> keras.Model:
    import tf_keras

    return tf_keras.applications.MobileNetV2(input_shape=(side, side, 3), alpha=0.35, weights=None,
                                             classes=10, classifier_activation=None)


@pytest.mark.parametrize(("side", "student"), [(96, "mobile:8,16,32,64"), (32, "mobile:8,16,32")])
def test_a_mobilenet_teacher_gets_a_mobilenet_student_of_its_resolutions(side, student):
    """MobileNetV2's maps at 96x96 are 48, 24, 12, 6 and 3 pixels: one width each down to 4 (the
    3x3 is too small to halve to), from half its first convolution's 16 filters."""
    teacher = _mobilenet_v2(side)
    assert derive_student(teacher, "user:mobilenet.keras", (side, side, 3)) == student
    built = build_model(student, (side, side, 3), 10, seed=0)
    assert built.count_params() < teacher.count_params() / 20
    assert derive_student(teacher, "user:mobilenet.keras", (side, side, 3), shrink=8) == \
        "mobile:" + ",".join(str(int(w) // 2) for w in student.split(":")[1].split(","))


def test_the_mobilenet_ladder_narrows_its_students():
    from compress.models.architectures import LADDER_STEP, student_ladder

    teacher = _mobilenet_v2(96)
    rungs = student_ladder(teacher, "user:mobilenet.keras", (96, 96, 3), 10)
    assert all(spec.startswith("mobile:") for spec, _ in rungs) and len(rungs) >= 3
    assert rungs[0][1] <= teacher.count_params() / 2
    assert all(smaller <= larger * LADDER_STEP
               for (_, smaller), (_, larger) in zip(rungs[1:], rungs, strict=False))


def _one_strided_stem(shape: tuple[int, ...], classes: int) -> keras.Model:
    layers = keras.layers
    inputs = keras.Input(shape)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    return keras.Model(inputs, layers.Dense(classes)(layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("teacher", [
    lambda: build_model("dsres:16,32", (16, 16, 3), 3, seed=0),  # depthwise, never strided
    lambda: _one_strided_stem((16, 16, 3), 3),  # halves once: no pyramid to follow
])
def test_a_depthwise_teacher_that_is_no_pyramid_gets_no_mobilenet_student(teacher):
    assert derive_student(teacher(), "user:model.keras", (16, 16, 3)).startswith("cnn:")


def test_a_users_conv1d_model_gets_a_conv1d_student():
    layers = keras.layers
    inputs = keras.Input((40, 1))
    x = layers.Conv1D(32, 5, activation="relu")(inputs)
    x = layers.Conv1D(64, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(4)(layers.Dense(32, activation="relu")(x)))
    spec = derive_student(model, "user:signal.keras", (40, 1))
    assert spec == "cnn1d:8,16:8"


@pytest.mark.parametrize(("args", "message"), [
    (["--teacher-arch", "cnn:8:8"], "does not fit features data"),
    (["--teacher-arch", "nope"], "is not understood"),
    (["--teacher-arch", "mlp:8", "--teacher", "x.keras"], "not both"),
])
def test_teacher_arch_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["run", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_chance_level_teacher_stops_the_run_unless_allowed(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int))
    keras.utils.set_random_seed(0)
    untrained = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    untrained.layers[-1].set_weights([np.zeros((6, 3)), np.array([0.0, 0.0, 5.0])])  # always class 2
    untrained.save(tmp_path / "teacher.keras")
    args = ["run", "--data", str(tmp_path / "data.npz"), "--teacher", str(tmp_path / "teacher.keras"),
            "--strategy", "quantize-dynamic", "--out", str(tmp_path / "run")]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "majority class" in refused.stderr and "--allow-weak-teacher" in refused.stderr
    assert "a different label order" in refused.stderr  # the user's model: a mismatch with the data
    assert not (tmp_path / "run").exists()
    allowed = CliRunner().invoke(cli, [*args, "--allow-weak-teacher"])
    assert allowed.exit_code == 0, allowed.stderr
    header = (tmp_path / "run" / "report.md").read_text().split("## Recommendation")[0]
    assert "**Weak teacher" in header and "majority class" in header


def test_a_weak_teachers_causes_read_as_one_sentence():
    import numpy as np

    from compress.data.builtin import Dataset, TrainingData
    from compress.models.teacher import DEFAULT_RECIPE, Teacher
    from compress.orchestrate.teachers import weak_teacher

    y = np.arange(300) % 3
    x = np.zeros((300, 2), dtype=np.float32)
    dataset = Dataset(TrainingData("t", x, y, x, y, ("a", "b", "c")), x, y)
    trained_here = Teacher(None, "mlp:8", DEFAULT_RECIPE, 100, False, 0.34, 0.34, 1.0, "key")
    assert weak_teacher(trained_here, dataset).endswith(
        "likely causes: features that say little about the label")
    short = Teacher(None, "mlp:8", DEFAULT_RECIPE.with_epochs(2), 2, False, 0.34, 0.34, 1.0, "key")
    assert weak_teacher(short, dataset).endswith(
        "likely causes: a short training (2 epochs; epochs sets it), or features that say little "
        "about the label")
