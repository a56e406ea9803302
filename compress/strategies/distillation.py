"""Distillation family: a small student learns from the teacher's soft targets.

Unlike the source document's code, the temperature divides the *logits*
before the softmax (Hinton et al., 2015), and the soft term is scaled by T^2
so its gradients keep their size as T changes.  ``student-scratch`` trains the
same student with the same loop and hard labels only: without that control a
distillation row says nothing about what the teacher added.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from compress.backend import keras, tf
from compress.models import build_model, default_student, parse_architecture
from compress.strategies.base import Compressed, Context, Strategy, register
from compress.training import BATCH_SIZE

DEFAULT_STUDENT = "auto"


def kd_loss(
    labels: tf.Tensor,
    student_logits: tf.Tensor,
    teacher_logits: tf.Tensor | None,
    *,
    alpha: float,
    temperature: float,
) -> tf.Tensor:
    """alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T).

    ``teacher_T`` and ``student_T`` are softmax(logits / T).  With alpha = 1
    the soft term is not computed at all, so distillation reduces exactly to
    training from scratch.
    """
    hard = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=student_logits)
    )
    if alpha == 1.0 or teacher_logits is None:
        return hard
    log_p_teacher = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    log_p_student = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    return alpha * hard + (1.0 - alpha) * temperature**2 * tf.reduce_mean(kl)


def train_student(
    student: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray | None,
    *,
    alpha: float,
    temperature: float,
    epochs: int,
    lr: float,
    seed: int,
) -> None:
    """One loop for distilled and scratch students: same batches, optimizer and order."""
    optimizer = keras.optimizers.Adam(lr)
    use_teacher = teacher_logits is not None and alpha < 1.0

    @tf.function(reduce_retracing=True)
    def step(xb: tf.Tensor, yb: tf.Tensor, tb: tf.Tensor | None) -> None:
        with tf.GradientTape() as tape:
            logits = student(xb, training=True)
            loss = kd_loss(yb, logits, tb, alpha=alpha, temperature=temperature)
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables, strict=True))

    order = np.random.default_rng(seed)
    for _ in range(epochs):
        permutation = order.permutation(len(x))
        for start in range(0, len(x), BATCH_SIZE):
            rows = permutation[start : start + BATCH_SIZE]
            soft = teacher_logits[rows] if use_teacher else None
            step(x[rows], y[rows], soft)


class _Student(Strategy):
    """Shared by ``distill`` and its control: build the student the same way."""

    family = "distillation"

    def make_student(self, ctx: Context) -> keras.Model:
        spec = self.student
        if spec == DEFAULT_STUDENT:
            spec = default_student(ctx.data.is_image)
        data = ctx.data
        return build_model(spec, data.input_shape, data.n_classes, seed=ctx.seed, name="student")

    def _check_common(self) -> None:
        self._check(self.epochs is None or self.epochs >= 1,
                    f"epochs must be at least 1, got {self.epochs}")
        self._check_positive("lr", self.lr)
        if self.student != DEFAULT_STUDENT:
            parse_architecture(self.student)


@register
class Distill(_Student):
    name = "distill"
    summary = "Hinton knowledge distillation on logits (temperature, alpha, T^2 scaling)."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 2}

    def __init__(
        self,
        temperature: float = 2.0,
        alpha: float = 0.5,
        epochs: int | None = None,
        lr: float = 1e-3,
        student: str = DEFAULT_STUDENT,
    ) -> None:
        self.temperature = temperature
        self.alpha = alpha
        self.epochs = epochs
        self.lr = lr
        self.student = student
        self._check_positive("temperature", temperature)
        self._check(0 <= alpha <= 1, f"alpha must be between 0 and 1, got {alpha}")
        self._check_common()

    def compress(self, ctx: Context) -> Compressed:
        student = self.make_student(ctx)
        teacher_logits = None
        if self.alpha < 1.0:
            # The data is not augmented, so the teacher runs once, not on every step.
            teacher_logits = ctx.teacher.predict(ctx.data.x_train, batch_size=1024, verbose=0)
        train_student(
            student, ctx.data.x_train, ctx.data.y_train, teacher_logits,
            alpha=self.alpha, temperature=self.temperature, epochs=self.epochs or ctx.epochs,
            lr=self.lr, seed=ctx.seed,
        )
        return Compressed(
            model=student,
            notes=f"Student {student.count_params():,} params trained on soft targets "
            f"(T={self.temperature:g}, alpha={self.alpha:g}); compare with student-scratch.",
        )


@register
class StudentScratch(_Student):
    name = "student-scratch"
    summary = "Control for distill: the same student and loop, hard labels only."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 2}
    control = True

    def __init__(
        self, epochs: int | None = None, lr: float = 1e-3, student: str = DEFAULT_STUDENT
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.student = student
        self._check_common()

    def compress(self, ctx: Context) -> Compressed:
        student = self.make_student(ctx)
        train_student(
            student, ctx.data.x_train, ctx.data.y_train, None,
            alpha=1.0, temperature=1.0, epochs=self.epochs or ctx.epochs, lr=self.lr, seed=ctx.seed,
        )
        return Compressed(
            model=student,
            notes="Same student, optimizer, epochs and batch order as distill, without the teacher.",
        )
