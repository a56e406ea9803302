"""Intermediate-feature targets (FitNets, Romero et al. 2015): which hidden layer of a student
learns to reproduce which hidden layer of its teacher.

A student of the teacher's own kind and depth (``student_ladder``) has a hidden layer for each
of the teacher's, narrower; the pairs are found by position, never by name, so a user's model
pairs with a derived student as a built-in one does.  A linear map from the student's width to
the teacher's is trained beside the student (``FeatureTargets``) and dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from compress.models.backend import keras, tf

#: Layers whose outputs are features: what computes, not what reshapes, pools or normalizes.
FEATURE_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense")


def hidden_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's own layers that compute features, in order, without the last (the logits).
    Layers inside a nested model are left out: their outputs are not reachable from the outer
    model's input."""
    layers = [layer for layer in model.layers if type(layer).__name__ in FEATURE_LAYERS]
    return layers[:-1]


def feature_pairs(student: keras.Model, teacher: keras.Model) -> list[tuple[str, str]]:
    """(student layer, teacher layer) names whose outputs have the same shape but for the
    channels: each student hidden layer with the teacher's at the same relative depth, so a
    student as deep as the teacher pairs layer for layer and a shallower one with evenly spaced
    layers of the teacher."""
    mine, theirs = hidden_layers(student), hidden_layers(teacher)
    if not mine or not theirs:
        return []
    pairs = []
    for i, layer in enumerate(mine):
        target = theirs[min(len(theirs) - 1, max(0, round((i + 1) * len(theirs) / len(mine)) - 1))]
        if tuple(layer.output.shape[1:-1]) == tuple(target.output.shape[1:-1]):
            pairs.append((layer.name, target.name))
    return pairs


class FeatureTargets:
    """The student's and the teacher's paired features on a batch, and the loss between them:
    per pair, the mean squared error between the mapped student features and the teacher's,
    divided by the mean square of the teacher's (so wide and narrow layers weigh alike)."""

    def __init__(self, student: keras.Model, teacher: keras.Model,
                 pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self.student = keras.Model(student.inputs, [student.output, *(
            student.get_layer(s).output for s, _ in self.pairs)])
        self.teacher = keras.Model(teacher.inputs, [teacher.output, *(
            teacher.get_layer(t).output for _, t in self.pairs)])
        self.maps = [keras.layers.Dense(int(teacher.get_layer(t).output.shape[-1]), use_bias=False,
                                        name=f"feature_map_{i}") for i, (_, t) in enumerate(self.pairs)]
        for layer, (name, _) in zip(self.maps, self.pairs, strict=True):  # weights made now, not in a graph
            layer.build(student.get_layer(name).output.shape)

    @classmethod
    def between(cls, student: keras.Model, teacher: keras.Model | None) -> FeatureTargets | None:
        """The targets for this pair of models; None when no hidden layers pair up."""
        pairs = feature_pairs(student, teacher) if teacher is not None else []
        return cls(student, teacher, pairs) if pairs else None

    def describe(self) -> str:
        return ", ".join(f"{s}→{t}" for s, t in self.pairs)

    @property
    def variables(self) -> list[tf.Variable]:
        """The maps' weights, trained with the student's."""
        return [v for layer in self.maps for v in layer.trainable_variables]

    def loss(self, student_features: Sequence[tf.Tensor], teacher_features: Sequence[tf.Tensor]) -> tf.Tensor:
        losses = []
        for layer, mine, theirs in zip(self.maps, student_features, teacher_features, strict=True):
            theirs = tf.stop_gradient(theirs)
            scale = tf.reduce_mean(tf.square(theirs)) + 1e-6
            losses.append(tf.reduce_mean(tf.square(layer(mine) - theirs)) / scale)
        return tf.add_n(losses) / len(losses)
