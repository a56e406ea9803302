"""What the teacher says about training rows, for the loops that learn from it: distillation's
students and structured pruning's recoveries.

Two costs are paid once here instead of on every call.  Pruning recovers after every cut of its
schedule, each time on the teacher's logits for the same rows: they are computed once per
teacher (measured: docs/benchmarks.md, "A real-size image model through every strategy:
MobileNetV2 at 96×96 (issue 30)").  And distillation labels new mixup blends at every step: a
costly teacher labels them in LiteRT, through its TFLite flatbuffer, rather than in the training
graph (``FLATBUFFER_COST``).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from compress.models.backend import keras, to_tflite
from compress.models.cost import sample_cost
from compress.models.flatbuffer import TFLiteModel
from compress.models.training import REFERENCE_COST

#: Probabilities are clipped here before their log: a softmax can round a class to exactly 0.
PROBABILITY_FLOOR = 1e-7
#: A teacher whose training sample costs at least this (``cost.sample_cost``) labels mixup blends
#: in LiteRT: MobileNetV2 (alpha 0.35) at 96x96 ran several times faster there than in
#: TensorFlow's graph on one thread, for a conversion paid once per teacher (measured:
#: docs/benchmarks.md, "A real-size image model through every strategy: MobileNetV2 at 96×96
#: (issue 30)").  Every cheaper teacher, which includes every model the default budgets were chosen
#: on, stays in the graph, where its labels cost less than converting it would.
FLATBUFFER_COST = REFERENCE_COST

_REMEMBERED: weakref.WeakKeyDictionary[keras.Model, dict[Any, Any]] = weakref.WeakKeyDictionary()


def are_probabilities(outputs: np.ndarray) -> bool:
    """Whether a teacher's outputs are probabilities (it ends in softmax), not logits."""
    return bool(np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))


def as_logits(outputs: np.ndarray) -> np.ndarray:
    """A teacher that ends in softmax gives probabilities: their log is a valid logit."""
    return np.log(np.clip(outputs, PROBABILITY_FLOOR, 1.0)) if are_probabilities(outputs) else outputs


def teacher_logits(teacher: keras.Model, rows: np.ndarray) -> np.ndarray:
    """The teacher's logits for ``rows`` (a split of the read-only training data), computed once
    per teacher, weights and array."""

    def predict() -> tuple[np.ndarray, np.ndarray]:
        outputs = teacher.predict(rows.astype(np.float32), batch_size=1024, verbose=0)
        return rows, as_logits(outputs).astype(np.float32)  # the rows are kept so id() stays theirs

    return _remembered(teacher, ("logits", id(rows)), predict)[1]


def flatbuffer_teacher(teacher: keras.Model) -> TFLiteModel | None:
    """The teacher in LiteRT, converted once per teacher and weights, when it is costly enough
    for that to pay (``FLATBUFFER_COST``); None otherwise."""

    def convert() -> TFLiteModel | None:
        cost = sample_cost(teacher)
        return TFLiteModel(to_tflite(teacher)) if cost is not None and cost >= FLATBUFFER_COST else None

    return _remembered(teacher, "flatbuffer", convert)


def blended_logits(labeller: TFLiteModel, x: np.ndarray, order: np.ndarray, partners: np.ndarray,
                   weights: np.ndarray, batch_size: int) -> np.ndarray:
    """The teacher's logits for one epoch of mixup blends, in the epoch's order: batch ``b`` blends
    rows ``order`` with ``partners`` at ``weights[b]``, as the training graph does."""
    logits = []
    for b, start in enumerate(range(0, len(order), batch_size)):
        rows, mates = order[start:start + batch_size], partners[start:start + batch_size]
        weight = np.float32(weights[b])
        logits.append(labeller.predict(weight * x[rows] + (1 - weight) * x[mates], batch=batch_size))
    return as_logits(np.concatenate(logits)).astype(np.float32)


def _remembered(teacher: keras.Model, key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` once per teacher, key and weights: a teacher trained in between is asked again."""
    fingerprint = _fingerprint(teacher)
    remembered = _REMEMBERED.setdefault(teacher, {})
    if remembered.get("fingerprint") != fingerprint:
        remembered.clear()
        remembered["fingerprint"] = fingerprint
    if key not in remembered:
        remembered[key] = make()
    return remembered[key]


def _fingerprint(model: keras.Model) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
