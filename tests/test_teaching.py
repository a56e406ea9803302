"""The teacher's labels for training loops: computed once, and in LiteRT for a costly teacher."""

from __future__ import annotations

import numpy as np

from compress.models.backend import keras
from compress.models.flatbuffer import TFLiteModel
from compress.strategies import students, teaching
from compress.strategies.apply import apply_strategy
from compress.strategies.distillation import Distill
from compress.strategies.pruning import PruneStructured
from compress.strategies.teaching import as_logits, blended_logits, flatbuffer_teacher, teacher_logits


def _copy(model: keras.Model) -> keras.Model:
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _count_predictions(monkeypatch, model: keras.Model) -> list[int]:
    """How many rows each ``predict`` of the model's class was asked for."""
    asked, predict = [], type(model).predict

    def counted(self, x, *args, **kwargs):
        asked.append(len(x))
        return predict(self, x, *args, **kwargs)

    monkeypatch.setattr(type(model), "predict", counted)
    return asked


def test_the_teachers_logits_are_computed_once_per_teacher_weights_and_rows(tiny, monkeypatch):
    data, trained, _ = tiny
    teacher = _copy(trained)
    asked = _count_predictions(monkeypatch, teacher)
    first = teacher_logits(teacher, data.x_train)
    np.testing.assert_array_equal(first, as_logits(trained.predict(data.x_train, batch_size=1024, verbose=0)))
    assert teacher_logits(teacher, data.x_train) is first and len(asked) == 2  # the check above, once
    teacher_logits(teacher, data.x_val)
    assert asked[-1] == len(data.x_val)
    teacher.set_weights([w * 0.5 for w in teacher.get_weights()])  # trained in between: asked again
    again = teacher_logits(teacher, data.x_train)
    assert asked[-1] == len(data.x_train) and not np.array_equal(again, first)


def test_only_a_costly_teacher_is_converted_and_it_labels_blends_as_the_graph_does(tiny, monkeypatch):
    data, trained, _ = tiny
    teacher = _copy(trained)
    assert flatbuffer_teacher(teacher) is None  # cheaper than the reference: it stays in the graph
    monkeypatch.setattr(teaching, "FLATBUFFER_COST", 0)
    teacher = _copy(trained)  # a new teacher: the first one's answer is remembered
    labeller = flatbuffer_teacher(teacher)
    assert isinstance(labeller, TFLiteModel) and flatbuffer_teacher(teacher) is labeller
    x = data.x_train.astype(np.float32)
    rng = np.random.default_rng(0)
    order, partners = rng.permutation(len(x)), rng.permutation(len(x))
    weights = rng.beta(0.2, 0.2, size=-(-len(x) // 64)).astype(np.float32)
    labelled = blended_logits(labeller, x, order, partners, weights, 64)
    batch = np.repeat(weights, 64)[: len(x), None]
    blends = batch * x[order] + (1 - batch) * x[partners]
    np.testing.assert_allclose(labelled, teacher(blends, training=False).numpy(), atol=1e-4)


def test_distill_trains_the_same_student_whichever_runs_its_teacher(tiny, tmp_path, monkeypatch):
    """Labels made before the epoch reach the same steps as the graph's own: given the graph's
    values the student is the very same, and given LiteRT's, which differ by float rounding,
    nearly (Adam's first steps follow the gradient's sign, so a larger model drifts further)."""
    from compress.models.backend import tf

    data, teacher, architecture = tiny
    predicted = {}
    in_graph = apply_strategy(Distill(epochs=2), teacher, architecture, data, seed=3, workdir=tmp_path)
    monkeypatch.setattr(teaching, "FLATBUFFER_COST", 0)
    labels = tf.function(lambda rows: teacher(rows, training=False))
    epochs = []

    def from_the_graph(labeller, x, order, partners, weights, batch_size):
        epochs.append(1)
        blends = [weights[b] * x[order[start:start + batch_size]]
                  + (1 - weights[b]) * x[partners[start:start + batch_size]]
                  for b, start in enumerate(range(0, len(order), batch_size))]
        return np.concatenate([labels(blend).numpy() for blend in blends])

    for name, labelled in (("graph's values", from_the_graph), ("litert", teaching.blended_logits)):
        monkeypatch.setattr(students, "blended_logits", labelled)
        made = apply_strategy(Distill(epochs=2), teacher, architecture, data, seed=3, workdir=tmp_path)
        predicted[name] = TFLiteModel(made.flatbuffer).predict(data.x_val)
    assert len(epochs) == 2
    reference = TFLiteModel(in_graph.flatbuffer).predict(data.x_val)
    np.testing.assert_array_equal(predicted["graph's values"], reference)
    np.testing.assert_allclose(predicted["litert"], reference, atol=1e-3)


def test_a_pruning_schedule_asks_the_teacher_for_its_logits_once(tiny, tmp_path, monkeypatch):
    data, teacher, architecture = tiny
    asked = _count_predictions(monkeypatch, teacher)
    made = apply_strategy(PruneStructured(epochs=2, cuts=4), teacher, architecture, data, seed=0,
                          workdir=tmp_path)
    assert "in cuts of 12%, each followed by" in made.notes
    assert asked == [len(data.x_train)]
