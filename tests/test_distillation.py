from __future__ import annotations

import numpy as np
import pytest

from compress.backend import tf
from compress.measure import TFLiteModel
from compress.runner import apply_strategy
from compress.strategies.distillation import Distill, StudentScratch, kd_loss


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


def test_alpha_one_distillation_equals_training_from_scratch(tiny, tmp_path):
    data, teacher, architecture = tiny
    results = [
        apply_strategy(strategy, teacher, architecture, data, seed=3, epochs=2, workdir=tmp_path)
        for strategy in (Distill(alpha=1.0, epochs=2), StudentScratch(epochs=2))
    ]
    distilled, scratch = (TFLiteModel(r.flatbuffer).predict(data.x_val) for r in results)
    assert np.array_equal(distilled, scratch)
