from __future__ import annotations

import numpy as np
import pytest

from compress.models.backend import tf
from compress.models.flatbuffer import TFLiteModel
from compress.orchestrate.steps import apply_strategy
from compress.strategies.distillation import (
    Distill,
    StudentScratch,
    StudentScratchMixup,
    as_logits,
    kd_loss,
)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_kd_loss_matches_a_hand_computation():
    student = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=np.float32)
    teacher = np.array([[3.0, 1.0, -2.0], [-1.0, 2.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 2])
    alpha, t = 0.3, 4.0
    hard = -np.mean(np.log(_softmax(student)[np.arange(2), labels]))
    p_teacher, p_student = _softmax(teacher / t), _softmax(student / t)
    # KL(teacher || student): the teacher's distribution is the target.
    kl = np.mean(np.sum(p_teacher * np.log(p_teacher / p_student), axis=1))
    expected = alpha * hard + (1 - alpha) * t**2 * kl
    got = kd_loss(tf.constant(labels), tf.constant(student), tf.constant(teacher), alpha=alpha, temperature=t)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_kd_loss_temperature_acts_on_logits_not_probabilities():
    # Shifting all logits by a constant leaves softmax(logits / T) unchanged, so the loss too;
    # the document's bug (softmax of probabilities / T) would not have this property.
    student = tf.constant([[1.0, 2.0, 3.0]])
    teacher = np.array([[0.5, 0.1, 2.0]], dtype=np.float32)
    a = kd_loss(tf.constant([2]), student, tf.constant(teacher), alpha=0.0, temperature=2.0)
    b = kd_loss(tf.constant([2]), student, tf.constant(teacher + 7.0), alpha=0.0, temperature=2.0)
    assert float(a) == pytest.approx(float(b), abs=1e-6)


@pytest.mark.parametrize(("transfer", "control"), [("none", StudentScratch), ("mixup", StudentScratchMixup)])
def test_alpha_one_distillation_equals_its_control(tiny, tmp_path, transfer, control):
    """Without soft targets distillation is its control: on the labels alone, or (the default
    transfer) on the same mixup blends."""
    data, teacher, architecture = tiny
    results = [
        apply_strategy(strategy, teacher, architecture, data, seed=3, workdir=tmp_path)
        for strategy in (Distill(alpha=1.0, epochs=2, transfer=transfer), control(epochs=2))
    ]
    distilled, scratch = (TFLiteModel(r.flatbuffer).predict(data.x_val) for r in results)
    assert np.array_equal(distilled, scratch)


def test_controls_copy_the_distill_settings_of_their_run():
    from compress.orchestrate.plan import plan_steps

    steps = plan_steps(["distill:epochs=7,lr=0.01,student=mlp:16,patience=0.3"])
    by_name = {s.strategy.name: s.strategy for s in steps}
    assert list(by_name) == ["baseline", "distill", "student-scratch", "student-scratch-mixup"]
    for control in ("student-scratch", "student-scratch-mixup"):
        params = by_name[control].get_params()
        assert params == {"epochs": 7, "lr": 0.01, "batch_size": 64, "student": "mlp:16",
                          "max_steps": 24_000, "patience": 0.3}


def test_a_teacher_that_outputs_probabilities_is_read_as_logits():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=np.float32)
    recovered = as_logits(_softmax(logits))
    np.testing.assert_allclose(_softmax(recovered), _softmax(logits), atol=1e-5)
    np.testing.assert_array_equal(as_logits(logits), logits)  # logits pass through


@pytest.mark.parametrize("transfer", ["augment", "mixup"])
def test_transfer_modes_train_a_student(tiny, tmp_path, transfer):
    data, teacher, architecture = tiny
    artifact = apply_strategy(Distill(epochs=1, transfer=transfer), teacher, architecture, data,
                              seed=0, workdir=tmp_path)
    predictions = TFLiteModel(artifact.flatbuffer).predict(data.x_val)
    assert np.all(np.isfinite(predictions)) and f"transfer={transfer}" in artifact.notes


def test_mixup_control_differs_from_plain_scratch(tiny, tmp_path):
    data, teacher, architecture = tiny
    plain, mixed = (TFLiteModel(apply_strategy(s, teacher, architecture, data, seed=0,
                                               workdir=tmp_path).flatbuffer).predict(data.x_val)
                    for s in (StudentScratch(epochs=2), StudentScratchMixup(epochs=2)))
    assert not np.array_equal(plain, mixed)


@pytest.mark.parametrize("transfer", ["none", "mixup"])
def test_a_softmax_teacher_distills_as_its_logits_would(tiny, tmp_path, transfer):
    """The same teacher with a softmax on top: the temperature must act on its logits whether
    they are computed once or per step (softmax(p / 2) of probabilities is near uniform)."""
    from compress.models.backend import keras

    data, teacher, architecture = tiny
    probabilities = keras.Model(teacher.input, keras.layers.Softmax()(teacher.output))
    distill = Distill(epochs=2, transfer=transfer, temperature=2.0, alpha=0.5)
    flatbuffers = [apply_strategy(distill, model, architecture, data, seed=3, workdir=tmp_path).flatbuffer
                   for model in (teacher, probabilities)]
    from_logits, from_probabilities = (TFLiteModel(f).predict(data.x_val) for f in flatbuffers)
    np.testing.assert_allclose(from_probabilities, from_logits, atol=1e-3)
