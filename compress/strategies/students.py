"""The training loop of students: distillation's, its controls' and structured pruning's
recoveries, one loop so that a technique and its control differ only by the teacher.

Its own module, not distillation's: pruning recovers through it, and one family never imports
another.  The temperature divides the *logits* before the softmax (Hinton et al., 2015), and
the soft term is scaled by T^2 so its gradients keep their size as T changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from compress.models.backend import keras, tf
from compress.models.features import FeatureTargets
from compress.models.teacher import WORD_DROPOUT, augmenter
from compress.strategies.teaching import (
    PROBABILITY_FLOOR,
    are_probabilities,
    blended_logits,
    flatbuffer_teacher,
    teacher_logits,
)

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData
    from compress.models.training import Plan
    from compress.strategies.base import Context

MIXUP = 0.2  # Beta(0.2, 0.2): the usual strength for small data


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
    ctx: Context,
    *,
    teacher: keras.Model | None,
    alpha: float,
    temperature: float,
    epochs: int,
    max_steps: int | None,
    lr: float,
    batch_size: int,
    patience: float | None = None,
    transfer: str = "none",
    mixup: float = 0.0,
    features: float = 0.0,
    decay: bool = False,
) -> str:
    """One loop for distilled students, their controls and pruning's recoveries: same batches,
    optimizer and order.

    ``transfer`` widens what the teacher labels: ``augment`` perturbs each batch
    (noise, shifts or word dropout) and ``mixup`` blends pairs; both run the teacher on every
    step.  Token ids are never blended: mixup on texts is word dropout (``augmenter``), the
    teacher labelling each perturbed batch and the controls training on the same perturbations.
    Without them the teacher's logits are computed once.  ``mixup`` > 0
    blends inputs and hard labels with Beta(mixup, mixup) weights.  ``features`` > 0 adds, with
    that weight, intermediate-feature targets (``models.features``): each hidden layer of the
    student learns, through a linear map, to reproduce the teacher's at the same depth on the
    same batch (a teacher run every step, so only with ``transfer``).

    The budget is planned for the data and the teacher (``ctx.limits.plan``), and the loop stops
    between epochs once ``ctx.limits`` says the time allowed is spent.  ``patience`` (a fraction
    of the planned epochs; 0: off) stops when validation accuracy has not improved for that
    long, and the best epoch's weights are kept.  ``decay`` anneals the learning rate to zero
    along a cosine over the planned steps, so a short training ends settled, not mid-stride.
    Returns what was trained, for the row's notes.

    One function on purpose: the step, the epoch's graph and the loop close over the same
    planned batches, labels and random stream, drawn in one order; pieces would pass a dozen
    values between them and make that order (which every seeded result depends on) easy to break.
    """
    x, y = ctx.data.x_train.astype(np.float32), ctx.data.y_train.astype(np.int64)
    planned = ctx.limits.plan(epochs, len(x), batch_size=batch_size, max_steps=max_steps)
    batch_size, batches = planned.batch_size, planned.steps_per_epoch
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(lr, planned.epochs * batches) if decay else lr)
    blend = mixup if mixup > 0 else (MIXUP if transfer == "mixup" else 0.0)
    instead_of_mixup = bool(blend) and ctx.data.kind == "tokens"
    if instead_of_mixup:  # a blend of two ids is no word: word dropout instead
        transfer, blend = "augment", 0.0
    use_teacher = teacher is not None and alpha < 1.0
    per_step = use_teacher and transfer != "none"
    no_labels = np.zeros((0, ctx.data.n_classes), np.float32)
    logits = teacher_logits(teacher, ctx.data.x_train) if use_teacher and not per_step else no_labels
    perturb = augmenter(ctx.data, noise=0.1) if transfer == "augment" else None
    hints = FeatureTargets.between(student, teacher) if features > 0 and per_step else None
    # Mixup blends are made from the epoch's order and weights, so a costly teacher can label
    # them in LiteRT before the epoch; feature targets and ``augment``'s random perturbations
    # need the teacher in the graph.
    labeller = flatbuffer_teacher(teacher) if per_step and transfer == "mixup" and hints is None else None
    in_graph = per_step and labeller is None
    # Per step the teacher labels new inputs; softened as they come, its probabilities would be
    # near uniform at any temperature (softmax(p / T)), so they become logits first, as above.
    step_probabilities = in_graph and are_probabilities(teacher.predict(x[:256], verbose=0))
    inputs, labels, targets = tf.constant(x), tf.constant(y), tf.constant(logits)

    def step(rows: tf.Tensor, partners: tf.Tensor, weight: tf.Tensor, labelled: tf.Tensor) -> None:
        xb, ya = tf.gather(inputs, rows), tf.gather(labels, rows)
        yb = tf.gather(labels, partners)
        if blend:
            xb = weight * xb + (1 - weight) * tf.gather(inputs, partners)
        if perturb is not None:
            xb = perturb(xb)
        soft, theirs = None, []
        if hints is not None:
            soft, *theirs = hints.teacher(xb, training=False)
        elif in_graph:
            soft = teacher(xb, training=False)
        elif labeller is not None:
            soft = labelled
        elif use_teacher:
            soft = tf.gather(targets, rows)
        if soft is not None and step_probabilities:
            soft = tf.math.log(tf.clip_by_value(soft, PROBABILITY_FLOOR, 1.0))
        with tf.GradientTape() as tape:
            if hints is not None:
                out, *mine = hints.student(xb, training=True)
            else:
                out = student(xb, training=True)
            loss = kd_loss(ya, out, soft, alpha=alpha, temperature=temperature)
            if blend:
                loss = weight * loss + (1 - weight) * kd_loss(
                    yb, out, soft, alpha=alpha, temperature=temperature)
            if hints is not None:
                loss += features * hints.loss(mine, theirs)
        variables = student.trainable_variables + (hints.variables if hints is not None else [])
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    # One graph call per epoch: calling a tf.function per batch costs more than the step itself.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64),
                                  tf.TensorSpec([None], tf.float32),
                                  tf.TensorSpec([None, ctx.data.n_classes], tf.float32)])
    def epoch(order: tf.Tensor, partners: tf.Tensor, weights: tf.Tensor, labelled: tf.Tensor) -> None:
        for b in tf.range(batches):
            begin = b * batch_size
            end = tf.minimum(begin + batch_size, len(x))
            step(order[begin:end], partners[begin:end], weights[b], labelled[begin:end])

    rng = np.random.default_rng(ctx.seed)
    keep = _BestEpoch(student, ctx.data, planned.epochs, patience)
    for done in range(planned.epochs):
        if done and ctx.limits.out_of_time():
            ctx.limits.record_cut(f"{done} of {planned.describe()}")
            break
        order = rng.permutation(len(x))
        partners, weights = order.copy(), np.ones(batches, np.float32)
        if blend:
            for b in range(batches):  # mixup pairs rows within each batch
                rows = slice(b * batch_size, (b + 1) * batch_size)
                partners[rows] = order[rows][rng.permutation(len(order[rows]))]
                weights[b] = rng.beta(blend, blend)
        labelled = no_labels if labeller is None else \
            blended_logits(labeller, x, order, partners, weights, batch_size)
        epoch(order, partners, weights, labelled)
        if keep.finished_epoch():
            break
    trained = keep.restore(planned)
    if instead_of_mixup:
        trained += (f", word dropout ({WORD_DROPOUT:.0%} of the words as padding) in place of mixup, which "
                    "blends no token ids")
    if features > 0 and hints is None:
        trained += ", no feature targets (no hidden layer pairs with the teacher's)"
    if hints is not None:
        trained += f", hidden layers matching the teacher's ({hints.describe()}, weight {features:g})"
    return trained


class _BestEpoch:
    """Early stopping for the student loop: validation accuracy after every epoch, the best
    epoch's weights kept, a stop after ``patience`` × the planned epochs without a better one
    (0 or None: every epoch runs and the last one's weights are kept)."""

    def __init__(self, model: keras.Model, data: TrainingData, epochs: int, patience: float | None) -> None:
        self.model, self.data = model, data
        self.wait = max(1, math.ceil(patience * epochs)) if patience else None
        self.epochs, self.best, self.best_epoch, self.weights = 0, -1.0, 0, None

    def finished_epoch(self) -> bool:
        """Record an epoch; True when it is time to stop."""
        self.epochs += 1
        if self.wait is None or not len(self.data.y_val):
            return False
        outputs = self.model(self.data.x_val.astype(np.float32), training=False)
        accuracy = float(np.mean(np.argmax(outputs, axis=1) == self.data.y_val))
        if accuracy > self.best:
            self.best, self.best_epoch, self.weights = accuracy, self.epochs, self.model.get_weights()
        return self.epochs - self.best_epoch >= self.wait

    def restore(self, planned: Plan) -> str:
        """Put the best epoch's weights back; say what was trained."""
        ran = planned.describe()
        if self.epochs < planned.epochs:
            ran = f"{self.epochs} of {ran}"
        if self.weights is None:
            return ran
        self.model.set_weights(self.weights)
        return f"{ran}, the best validation epoch ({self.best_epoch}) kept"
